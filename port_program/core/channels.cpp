#include "core/channels.hpp"

#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <limits>
#include <memory>

#include "core/context.hpp"
#include "core/messages.hpp"
#include "core/msgpack_reader.hpp"
#include "core/runtime.hpp"
#include "core/term_codec.hpp"

namespace ep {
namespace {

// Unbounded channels are acknowledged at least this often, so the server can
// free the messages it keeps for redelivery.
constexpr uint64_t kAckEveryCount = 4096;

// Bytes of a message as Erlang counted them: the encoded term, or the raw data
// of a byte channel.
// What a message counts for in acknowledgements: its encoded size, or for a
// byte channel the data in its bin. `head` is the start of the message (its
// first byte is enough), `size` its whole encoded size.
uint64_t accounted_size(Channels::Kind kind, std::string_view head, uint64_t size) {
  if (kind == Channels::Kind::kTerm || head.empty()) return size;
  uint64_t header = 0;
  switch (static_cast<uint8_t>(head[0])) {
    case 0xc4:
      header = 2;
      break;  // bin 8
    case 0xc5:
      header = 3;
      break;  // bin 16
    case 0xc6:
      header = 5;
      break;  // bin 32
  }
  return size >= header ? size - header : size;
}

messages::ChannelRef ref_of(const Channels::Handle& h) {
  return {h.id, h.server, h.counters};
}

}  // namespace

void ChannelWaker::wake() const {
  switch (kind) {
    case Kind::kContext:
      context->wake();
      break;
    case Kind::kThread: {
      // Unpark while holding the mutex: the waiter cannot return (and destroy
      // the ThreadWake on its stack) before we let go.
      std::lock_guard lk(thread->mu);
      thread->woken = true;
      thread->parker.unpark();
      break;
    }
    case Kind::kFd: {
      uint64_t one = 1;
      ssize_t r = ::write(fd, &one, sizeof one);
      (void)r;  // EAGAIN: already signalled; EBADF: the loop is gone
      break;
    }
  }
}

void Channels::open(Handle handle) {
  std::lock_guard lk(mu_);
  auto [it, inserted] = channels_.try_emplace(handle.id);
  if (inserted) it->second.handle = std::move(handle);
  ++it->second.objects;
}

void Channels::release(uint64_t id) {
  std::string frame;
  {
    std::lock_guard lk(mu_);
    auto it = channels_.find(id);
    if (it == channels_.end()) return;
    Channel& ch = it->second;
    if (ch.objects > 0) --ch.objects;
    if (ch.objects > 0) return;
    forget(it, frame);
  }
  if (!frame.empty()) Runtime::instance().sink().send(frame);
}

void Channels::forget(std::unordered_map<uint64_t, Channel>::iterator it, std::string& out) {
  Channel& ch = it->second;
  if (!ch.closed && (ch.buffered > 0 || ch.want_sent)) {
    // Withdraw: the server requeues every message it shipped here beyond the
    // ones this frame acknowledges (including any batch on its way, which is
    // dropped on arrival) and forgets the want; it confirms with [37].
    return_frame(out, ch);
    ch.batches.clear();
    ch.buffered = 0;
    ch.want_sent = false;
    ch.withdrawing = true;
    return;
  }
  if (ch.unacked_count > 0) ack_frame(out, ch, false);
  if (!ch.withdrawing) channels_.erase(it);  // else when the confirmation comes
}

void Channels::ack_frame(std::string& out, Channel& ch, bool want) {
  begin_message(out);
  messages::channel_ack(out, ref_of(ch.handle), ch.unacked_count, ch.unacked_bytes, want);
  ch.unacked_count = 0;
  ch.unacked_bytes = 0;
}

void Channels::probe_frame(std::string& out, Channel& ch) {
  begin_message(out);
  messages::channel_probe(out, ref_of(ch.handle), ch.unacked_count, ch.unacked_bytes);
  ch.unacked_count = 0;
  ch.unacked_bytes = 0;
}

void Channels::return_frame(std::string& out, Channel& ch) {
  begin_message(out);
  messages::channel_return(out, ref_of(ch.handle), ch.unacked_count, ch.unacked_bytes);
  ch.unacked_count = 0;
  ch.unacked_bytes = 0;
}

Channels::Take Channels::take(uint64_t id, PyRef& value, const ChannelWaker* waker) {
  return take_impl(id, value, waker, Empty::kWant, nullptr);
}

Channels::Take Channels::take_now(uint64_t id, PyRef& value, uint64_t& ticket,
                                  const ChannelWaker& waker) {
  return take_impl(id, value, &waker, Empty::kProbe, &ticket);
}

Channels::Take Channels::take_impl(uint64_t id, PyRef& value, const ChannelWaker* waker,
                                   Empty empty, uint64_t* ticket) {
  std::string frame;
  std::shared_ptr<const std::string> bytes;  // keeps the item alive outside the lock
  std::string_view item;
  std::string error;  // an unreadable message's
  Take result;
  {
    std::lock_guard lk(mu_);
    auto it = channels_.find(id);
    if (it == channels_.end()) return Take::kUnknown;
    Channel& ch = it->second;
    while (!ch.batches.empty() && ch.batches.front().next == ch.batches.front().ends.size()) {
      ch.batches.pop_front();
    }
    if (!ch.batches.empty()) {
      Batch& b = ch.batches.front();
      if (b.error.empty()) {
        uint32_t start = b.next == 0 ? 0 : b.ends[b.next - 1];
        bytes = b.bytes;
        item = std::string_view(*bytes).substr(start, b.ends[b.next] - start);
        ch.unacked_bytes += accounted_size(ch.handle.kind, item, item.size());
      } else {
        error.swap(b.error);
        ch.unacked_bytes +=
            accounted_size(ch.handle.kind, std::string_view(&b.error_first, 1), b.error_size);
      }
      ++b.next;
      --ch.buffered;
      ++ch.unacked_count;
      bool drained = ch.buffered == 0;
      bool due = ch.handle.max_size >= 0
                     ? ch.unacked_bytes * 4 >= static_cast<uint64_t>(ch.handle.max_size)
                     : ch.unacked_count >= kAckEveryCount;
      if (!drained && !ch.want_sent && ch.buffered * 2 <= ch.last_batch) {
        // Half of the last batch is gone: ask for the next one now, so that it
        // travels while the rest is consumed.
        ch.want_sent = true;
        ack_frame(frame, ch, true);
      } else if (due || drained) {
        // Drained: taken counts as consumed at once (backpressure, the close).
        ack_frame(frame, ch, false);
      }
      result = Take::kItem;
    } else if (ch.closed) {
      result = Take::kClosed;
    } else if (empty == Empty::kProbe && *ticket != 0 && ch.probes_answered >= *ticket) {
      // The server said what was queued when it got the probe: all taken.
      result = Take::kEmpty;
    } else if (empty == Empty::kProbe) {
      if (std::find(ch.waiters.begin(), ch.waiters.end(), *waker) == ch.waiters.end()) {
        ch.waiters.push_back(*waker);
      }
      if (*ticket == 0) {
        *ticket = ++ch.probes_sent;
        probe_frame(frame, ch);
      }
      result = Take::kPending;
    } else {
      if (waker && std::find(ch.waiters.begin(), ch.waiters.end(), *waker) == ch.waiters.end()) {
        ch.waiters.push_back(*waker);
      }
      if (!ch.want_sent) {
        ch.want_sent = true;
        ack_frame(frame, ch, true);
      } else if (ch.unacked_count > 0) {
        ack_frame(frame, ch, false);  // about to wait: everything taken counts as consumed
      }
      result = Take::kEmpty;
    }
  }
  // Decoding may run Python code (a collection's finalizers) that uses channels
  // itself: never with the lock held.
  if (result == Take::kItem && !error.empty()) {
    PyErr_SetString(PyExc_ValueError, error.c_str());
    value = PyRef();
  } else if (result == Take::kItem) {
    MsgpackReader in(item);
    try {
      value = decode_term(in, Runtime::instance().types());
    } catch (const MsgpackError& e) {
      PyErr_Format(PyExc_ValueError, "malformed channel message: %s", e.what());
      value = PyRef();
    }
  }
  if (!frame.empty()) Runtime::instance().sink().send(frame);
  return result;
}

void Channels::unregister(uint64_t id, const ChannelWaker& waker) {
  std::lock_guard lk(mu_);
  auto it = channels_.find(id);
  if (it == channels_.end()) return;
  auto& w = it->second.waiters;
  w.erase(std::remove(w.begin(), w.end(), waker), w.end());
}

void Channels::forget_fd(int fd) {
  std::lock_guard lk(mu_);
  for (auto& [id, ch] : channels_) {
    auto& w = ch.waiters;
    w.erase(std::remove_if(w.begin(), w.end(),
                           [fd](const ChannelWaker& x) {
                             return x.kind == ChannelWaker::Kind::kFd && x.fd == fd;
                           }),
            w.end());
  }
}

bool Channels::close(uint64_t id) {
  std::string frame;
  {
    std::lock_guard lk(mu_);
    auto it = channels_.find(id);
    if (it == channels_.end()) return false;
    begin_message(frame);
    messages::channel_close(frame, ref_of(it->second.handle));
  }
  Runtime::instance().sink().send(frame);
  return true;
}

bool Channels::send_bytes(uint64_t id, std::string_view data) {
  std::string frame;
  {
    std::lock_guard lk(mu_);
    auto it = channels_.find(id);
    if (it == channels_.end()) return false;
    frame.reserve(kHeaderRoom + 32 + it->second.handle.server.size() + data.size());
    begin_message(frame);
    messages::channel_bytes(frame, ref_of(it->second.handle), data);
  }
  Runtime::instance().sink().send(frame);
  return true;
}

bool Channels::is_closed(uint64_t id) {
  std::lock_guard lk(mu_);
  auto it = channels_.find(id);
  return it == channels_.end() || it->second.closed;
}

void Channels::wake_all(std::vector<ChannelWaker>& waiters) {
  for (const ChannelWaker& w : waiters) w.wake();
}

void Channels::deliver(uint64_t id, MsgpackReader& items, uint32_t count, bool probe) {
  Batch batch;
  std::string_view region = items.rest();
  batch.ends.reserve(count);
  size_t base = items.offset();
  for (uint32_t i = 0; i < count; ++i) {
    // Any depth: a message nested deeper than a receiver can decode still counts
    // as one (its receive() raises), so acknowledgements stay exact. Throws on
    // malformed msgpack: the frame is rejected whole.
    items.raw_object(std::numeric_limits<size_t>::max());
    batch.ends.push_back(static_cast<uint32_t>(items.offset() - base));
  }
  batch.bytes = std::make_shared<const std::string>(region.substr(0, items.offset() - base));
  arrived(id, std::move(batch), count, probe);
}

void Channels::deliver_unreadable(uint64_t id, std::string reason, std::string_view head,
                                  uint64_t size, bool probe) {
  Batch batch;
  batch.ends.push_back(0);
  batch.error = std::move(reason);
  batch.error_first = head.empty() ? '\0' : head[0];
  batch.error_size = size;
  arrived(id, std::move(batch), 1, probe);
}

void Channels::arrived(uint64_t id, Batch batch, uint32_t count, bool probe) {
  std::vector<ChannelWaker> waiters;
  std::string frame;
  {
    std::lock_guard lk(mu_);
    auto it = channels_.find(id);
    if (it == channels_.end()) return;  // never opened here: nobody asked for it
    Channel& ch = it->second;
    if (probe) {
      ++ch.probes_answered;
      waiters.swap(ch.waiters);  // a try_receive waits for this answer
    }
    // Before the server confirms a withdrawal, any data is the answer to the
    // withdrawn want (or an earlier probe): the server has requeued it.
    if (!ch.withdrawing) {
      if (!probe) ch.want_sent = false;
      if (count > 0) {
        ch.batches.push_back(std::move(batch));
        ch.buffered += count;
        ch.last_batch = count;
      }
      if (ch.objects == 0) {
        forget(it, frame);
      } else {
        waiters.insert(waiters.end(), ch.waiters.begin(), ch.waiters.end());
        ch.waiters.clear();
      }
    }
  }
  if (!frame.empty()) Runtime::instance().sink().send(frame);
  wake_all(waiters);
}

void Channels::closed(uint64_t id) {
  std::vector<ChannelWaker> waiters;
  std::string frame;
  {
    std::lock_guard lk(mu_);
    auto it = channels_.find(id);
    if (it == channels_.end()) return;
    it->second.closed = true;
    it->second.want_sent = false;
    if (it->second.objects == 0) {
      // Closed for good: no confirmation of a withdrawal is needed any more.
      it->second.withdrawing = false;
      forget(it, frame);
    } else {
      waiters.swap(it->second.waiters);
    }
  }
  if (!frame.empty()) Runtime::instance().sink().send(frame);
  wake_all(waiters);
}

void Channels::returned(uint64_t id) {
  std::lock_guard lk(mu_);
  auto it = channels_.find(id);
  if (it == channels_.end()) return;
  Channel& ch = it->second;
  ch.withdrawing = false;
  if (ch.objects == 0 && !ch.want_sent && ch.buffered == 0 && ch.unacked_count == 0) {
    channels_.erase(it);
  }
}

}  // namespace ep
