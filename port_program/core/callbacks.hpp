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

#include <atomic>
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
  // The loop's drain: the results queued for `fd`, after reading (clearing)
  // the eventfd when a reply signalled it, when `force` (someone else may
  // have: a channel), or when there are none (a stale signal).
  std::vector<AsyncResult> drain_async(int fd, bool force);
  void forget_async(int fd);
  void drop_async(uint64_t id);  // a call that could not be sent, or is no longer awaited

  // A loop's thread waits for the replies of `fd` reading the input itself
  // (selector_spin.cpp). begin_direct: false when no async call of `fd`
  // awaits its reply (no spin then); else, until end_direct, a reply for
  // `fd` sets *arrived (at once if results are queued) instead of
  // signalling the eventfd. end_direct: whether results for `fd` are queued
  // (the loop drains them now, signalled or not).
  bool begin_direct(int fd, std::atomic<bool>* arrived);
  bool end_direct(int fd);

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
  // The async calls of one eventfd (one event loop's bridge).
  struct AsyncFd {
    std::vector<AsyncResult> results;
    unsigned waiting = 0;                  // its entries in async_targets_
    bool signalled = false;                // a reply wrote the eventfd since the last drain
    std::atomic<bool>* arrived = nullptr;  // set while its loop reads the input (begin_direct)
  };
  std::unordered_map<int, AsyncFd> async_fds_;
  void erase_target_locked(std::unordered_map<uint64_t, AsyncTarget>::iterator it);
};

}  // namespace ep
