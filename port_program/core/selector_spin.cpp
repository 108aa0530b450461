// An ErlangEventLoop that awaits erlang.async_call replies reads the port
// program's input itself before it sleeps (see loop_state.hpp,
// spin_for_replies), as a py_event_loop loop does for its next request
// (LoopInbox::spin): the reply frame is then read and dispatched on the
// loop's own thread, which finds it with no wake-up and no system call
// (the registry sets a flag instead of signalling the bridge's eventfd).
#include <poll.h>

#include <algorithm>
#include <atomic>
#include <chrono>

#include "core/loop_state.hpp"
#include "core/runtime.hpp"

namespace ep {
namespace {

using Clock = std::chrono::steady_clock;

// While spinning, the libuv loop's other sources are looked at this often
// (a system call each): a socket, a wake-up or a signal ends the spin.
constexpr auto kCheckEvery = std::chrono::microseconds(20);

// Whether the libuv loop has something for its next turn: its epoll
// descriptor is readable once a watched descriptor is, a uv_async was sent
// or a signal came.
bool backend_ready(int fd) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, 0) > 0;
}

// What a spin found.
struct Found {
  bool spun = false;     // false: no async call awaits its reply
  bool replies = false;  // results queued for the bridge (no signal written)
  bool events = false;   // the libuv loop has something ready
};

Found spin(SelectorObject* s, CallbackRegistry& registry, unsigned us) {
  Runtime& rt = Runtime::instance();
  std::atomic<bool> arrived{false};
  if (!registry.begin_direct(s->reply_fd, &arrived)) return {};
  const int backend = s->sel->backend_fd();
  Clock::time_point next_check = Clock::now() + kCheckEvery;
  bool events = false;
  // Only this thread calls ready().
  auto ready = [&] {
    if (arrived.load(std::memory_order_acquire) || events) return true;
    Clock::time_point now = Clock::now();
    if (now < next_check) return false;
    next_check = now + kCheckEvery;
    return events = backend_ready(backend);
  };
  {
    GilRelease nogil;
    s->spin_policy.spin(rt.input(), us, ready);
  }
  Found found;
  found.spun = true;
  found.replies = registry.end_direct(s->reply_fd);
  found.events = events;
  return found;
}

}  // namespace

bool spin_for_replies(SelectorObject* s, long timeout_ms) {
  if (s->reply_fd < 0 || timeout_ms == 0) return false;
  Runtime& rt = Runtime::instance();
  unsigned us = rt.loops().spin_us();
  if (timeout_ms > 0) us = static_cast<unsigned>(std::min<long>(us, timeout_ms * 1000));
  if (us == 0) return false;
  if (s->spin_policy.skip()) return false;
  s->selecting = true;
  Found found = spin(s, rt.callbacks(), us);
  s->selecting = false;
  if (!found.spun) return false;
  bool seen = found.replies || found.events;
  ++s->spins;
  s->spins_caught += seen ? 1 : 0;
  s->spin_policy.record(seen);
  if (!seen) return false;
  uint64_t now = uv_hrtime();
  if (found.events || now - s->io_polled_ns >= kIoPollEveryNs) {
    // The other sources get their turn too (every few replies at least).
    s->io_polled_ns = now;
    s->sel->poll_now();
  } else {
    s->sel->clear_ready();
  }
  if (found.replies) {
    const auto& ready = s->sel->ready_list();
    bool listed = std::any_of(ready.begin(), ready.end(),
                              [fd = s->reply_fd](const auto& r) { return r.first == fd; });
    if (!listed) s->sel->ready(s->reply_fd, UV_READABLE);
  }
  return true;
}

}  // namespace ep
