// Python -> Erlang calls: who waits for which reply.
//
// Every Python thread that calls erlang.call gets a slot (reused after the thread
// exits, so thread churn does not grow anything). A callback ID is
// (slot << 32 | sequence); the I/O thread routes a reply by its slot. A context's
// executor thread waits through its context queue instead, so that requests
// arriving meanwhile (Erlang calling back into the same context) still run.
// Async calls (erlang.async_call) are completed through an eventfd that the
// asyncio loop watches, so the loop thread never blocks.
#pragma once

#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/parker.hpp"

namespace ep {

class Context;

struct CallbackReply {
  enum class Kind { kOk, kError, kCancelled, kStopped } kind = Kind::kStopped;
  std::string payload;  // msgpack: the value (kOk) or the reason str (kError)
};

class CallbackWaiter {
 public:
  CallbackWaiter(uint32_t slot, uint32_t sequence) : slot_(slot), sequence_(sequence) {}
  uint32_t slot() const { return slot_; }
  // IDs stay unique when a slot is reused by a new thread: a late or duplicate
  // reply to the old thread's call can never match the new thread's.
  uint32_t sequence() const { return sequence_; }
  uint64_t next_id() { return (uint64_t{slot_} << 32) | (++sequence_ & 0xffffffffu); }
  // Nesting depth of erlang.call on this thread: nested calls are handled by
  // their own Erlang handler, so the outer one can wait for them.
  uint32_t depth = 0;

  void arm(uint64_t id);
  CallbackReply wait();  // blocks (the caller has released the GIL)
  void deliver(uint64_t id, CallbackReply reply);

 private:
  const uint32_t slot_;
  uint32_t sequence_;
  std::mutex mu_;
  Parker parker_;
  uint64_t armed_ = 0;
  std::optional<CallbackReply> reply_;
};

class CallbackRegistry {
 public:
  static constexpr uint64_t kAsyncBit = uint64_t{1} << 63;

  // The calling thread's waiter, created on first use, released at thread exit.
  CallbackWaiter& this_thread();

  // An async call: its reply is queued for `fd` and `fd` (an eventfd) signalled.
  // Made on a context's executor thread, it is pending on that context until
  // its reply comes or it is dropped (drop_async, forget_async).
  uint64_t register_async(int fd, uint64_t token);
  bool async_pending_on(uint64_t id, const Context* ctx);
  struct AsyncResult {
    uint64_t token;
    CallbackReply reply;
  };
  std::vector<AsyncResult> take_async(int fd);
  void forget_async(int fd);
  void drop_async(uint64_t id);  // a call that could not be sent, or is no longer awaited
  // Whether async calls for `fd` await their replies (an ErlangEventLoop
  // about to sleep then reads the input itself for a while: selector_spin.cpp).
  bool async_waiting(int fd);

  // From the I/O thread: a reply arrived.
  void deliver(uint64_t id, CallbackReply reply);

 private:
  friend struct ThreadSlot;
  void release(uint32_t slot);

  std::mutex mu_;
  std::vector<CallbackWaiter*> slots_;
  std::vector<uint32_t> free_;
  std::vector<uint32_t> sequences_;                   // slot -> last sequence used (for reuse)
  std::unordered_map<uint32_t, Context*> executors_;  // slot -> context of an executor thread
  uint64_t async_sequence_ = 0;
  struct AsyncTarget {
    int fd;
    uint64_t token;
    const Context* context;  // the executor's that made the call, or null
  };
  std::unordered_map<uint64_t, AsyncTarget> async_targets_;
  std::unordered_map<int, std::vector<AsyncResult>> async_results_;
  std::unordered_map<int, unsigned> async_waiting_;  // fd -> async_targets_ for it
  void erase_target_locked(std::unordered_map<uint64_t, AsyncTarget>::iterator it);
};

}  // namespace ep
