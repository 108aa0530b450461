// The port program's side of py_channel / py_byte_channel (spec/PROTOCOL.md,
// "Channels").
//
// The queue of a channel lives in its Erlang server process. A port program asks
// for messages only when one of its Python receivers finds the local buffer
// empty ("want"), so a port never hoards messages nobody here is waiting for, and
// a lagging consumer gets everything queued meanwhile in one frame. Every message
// taken is acknowledged (count and bytes) so the sender-side size accounting in
// Erlang drops as soon as Python has consumed the data.
//
// try_receive finds out whether the channel is empty rather than this buffer:
// with nothing buffered it sends a probe, which the server answers at once with
// what is queued (maybe nothing), apart from any want.
//
// Receivers wait in one of three ways: an executor thread keeps running nested
// requests (Context::wait_event), any other Python thread sleeps on a condition
// variable with the GIL released, and an asyncio loop watches an eventfd.
#pragma once

#include <Python.h>

#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/msgpack_writer.hpp"
#include "core/parker.hpp"
#include "core/py_ref.hpp"
#include "core/thread_annotations.hpp"

namespace ep {

class Context;
class MsgpackReader;

// A plain thread's wait: set and signalled by whoever delivers.
struct ThreadWake {
  std::mutex mu;
  Parker parker;
  bool woken GUARDED_BY(mu) = false;
};

struct ChannelWaker {
  enum class Kind { kContext, kThread, kFd } kind;
  Context* context = nullptr;
  ThreadWake* thread = nullptr;
  int fd = -1;

  bool operator==(const ChannelWaker& o) const {
    return kind == o.kind && context == o.context && thread == o.thread && fd == o.fd;
  }
  void wake() const;
};

class Channels {
 public:
  enum class Kind { kTerm = 0, kBytes = 1 };

  // What Python learns from the handle: the server and counters are kept
  // encoded, ready to be copied into the frames that name them.
  struct Handle {
    uint64_t id = 0;
    Kind kind = Kind::kTerm;
    std::string server;     // msgpack of the server's pid
    std::string counters;   // msgpack of the atomics reference
    int64_t max_size = -1;  // -1: unbounded
  };

  // kPending: take_now() asked the server; call it again once woken.
  enum class Take { kItem, kEmpty, kClosed, kUnknown, kPending };

  // A Python Channel object for the channel exists: makes it known here. Any thread.
  void open(Handle handle);
  // That object is gone. When none is left nobody here receives from the
  // channel: it is forgotten here (the next open starts afresh) and what was
  // shipped here but not taken goes back to the server, at once or, while a
  // want is outstanding, when its answer arrives.
  void release(uint64_t id);

  // GIL held. Takes the next message and decodes it into `value` (null with a
  // Python error set if it does not decode). When there is none and the channel
  // is open, asks Erlang for more and, if `waker` is given, registers it to be
  // woken when data or the close arrives.
  Take take(uint64_t id, PyRef& value, const ChannelWaker* waker);
  // GIL held: try_receive. A message buffered here is taken at once; when none
  // is and the channel is open, asks the server what is queued now (a probe,
  // `ticket` 0 on the first call, set here) and returns kPending with `waker`
  // registered: call again, with the same ticket, once woken. kEmpty only when
  // the server's answer to this probe came and left nothing here to take.
  Take take_now(uint64_t id, PyRef& value, uint64_t& ticket, const ChannelWaker& waker);
  void unregister(uint64_t id, const ChannelWaker& waker);
  void forget_fd(int fd);

  // Python closes the channel (for every receiver): tells the server.
  bool close(uint64_t id);
  // ByteChannel.send_bytes: raw bytes for py_byte_channel:recv/1,2.
  bool send_bytes(uint64_t id, std::string_view data);
  bool is_closed(uint64_t id);

  // From the I/O thread: `count` encoded messages for channel `id` (the rest of
  // the reader) answering a want, or a probe (maybe none), and the server's
  // "closed and drained".
  void deliver(uint64_t id, MsgpackReader& items, uint32_t count, bool probe);
  // One message that could not be delivered (a frame over the maximum size):
  // its receive() raises ValueError(`reason`). `head` is the start of the
  // message as encoded, `size` its whole encoded size: it is accounted as any.
  void deliver_unreadable(uint64_t id, std::string reason, std::string_view head, uint64_t size,
                          bool probe);
  void closed(uint64_t id);
  // The server confirms a return: data for the channel is fresh again.
  void returned(uint64_t id);

 private:
  // Messages as they arrived in one frame: one copy of the bytes, item ends.
  struct Batch {
    std::shared_ptr<const std::string> bytes;
    std::vector<uint32_t> ends;
    size_t next = 0;
    // An unreadable message (ends holds its one end): what its receive() raises,
    // the first byte of its encoding and its encoded size (for the accounting).
    std::string error;
    char error_first = 0;
    uint64_t error_size = 0;
  };
  // A batch came for channel `id`: buffer it and wake the receivers.
  void arrived(uint64_t id, Batch batch, uint32_t count, bool probe);
  enum class Empty { kWant, kProbe };
  Take take_impl(uint64_t id, PyRef& value, const ChannelWaker* waker, Empty empty,
                 uint64_t* ticket);
  struct Channel {
    Handle handle;
    std::deque<Batch> batches;
    size_t buffered = 0;       // messages in batches not taken yet
    size_t last_batch = 0;     // messages in the last batch that came
    bool withdrawing = false;  // a return [36] is not confirmed yet ([37])
    bool closed = false;
    bool want_sent = false;  // a want is on its way and no data came back yet
    // Probes (try_receive) sent and answered: the server answers each one, in
    // order, apart from wants ([38] does not answer a want, [31] no probe).
    uint64_t probes_sent = 0;
    uint64_t probes_answered = 0;
    uint32_t objects = 0;  // Python Channel objects alive
    uint64_t unacked_count = 0;
    uint64_t unacked_bytes = 0;
    std::vector<ChannelWaker> waiters;
  };

  // Make `out` an ack (and, with `want`, a request for more), a probe or a
  // return (core/messages.hpp), carrying the counts not acknowledged yet (then zero).
  static void ack_frame(std::string& out, Channel& ch, bool want);
  static void probe_frame(std::string& out, Channel& ch);
  static void return_frame(std::string& out, Channel& ch);
  // Lock held, no Channel object left and no want outstanding: acknowledges
  // what was taken, gives back what was not (into `out`), forgets `it`.
  void forget(std::unordered_map<uint64_t, Channel>::iterator it, std::string& out) REQUIRES(mu_);
  static void wake_all(std::vector<ChannelWaker>& waiters);

  std::mutex mu_;
  std::unordered_map<uint64_t, Channel> channels_ GUARDED_BY(mu_);
};

}  // namespace ep
