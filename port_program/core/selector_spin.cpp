// An ErlangEventLoop that awaits erlang.async_call replies reads the port
// program's input itself before it sleeps (see loop_state.hpp,
// spin_for_replies), as a py_event_loop loop does for its next request
// (LoopInbox::spin): the reply frame is then read, dispatched and signalled
// on the loop's own thread, and the loop finds it without being woken.
#include <poll.h>
#include <sched.h>

#include <algorithm>
#include <chrono>

#include "core/loop_state.hpp"
#include "core/runtime.hpp"

namespace ep {
namespace {

// Whether the libuv loop has something for its next turn: its epoll
// descriptor is readable once a watched descriptor is (the bridge's eventfd
// that a reply signals included), a uv_async was sent or a signal came.
bool backend_ready(int fd) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, 0) > 0;
}

}  // namespace

bool spin_for_replies(SelectorObject* s, long timeout_ms) {
  if (s->reply_fd < 0 || timeout_ms == 0) return false;
  Runtime& rt = Runtime::instance();
  unsigned us = rt.loops().spin_us();
  if (timeout_ms > 0) us = static_cast<unsigned>(std::min<long>(us, timeout_ms * 1000));
  if (us == 0 || !rt.callbacks().async_waiting(s->reply_fd)) return false;
  if (s->spin_skip_next) {
    // The last spin was in vain: this wait sleeps at once (a spinner that
    // shares its CPU with the Erlang scheduler it waits for can hold that
    // thread off for the whole spin; see LoopInbox::spin). The next spins.
    s->spin_skip_next = false;
    return false;
  }
  const int backend = s->sel->backend_fd();
  bool seen = false;  // only this thread calls ready()
  auto ready = [&seen, backend] { return seen = seen || backend_ready(backend); };
  s->selecting = true;
  {
    GilRelease nogil;
    // It leads the input only while its spins catch their replies: taking the
    // role and handing it back after a spin in vain costs the other reader
    // two wake-ups. Otherwise (or when a hot thread reads, or without a pipe:
    // the linked-in driver) it polls its libuv loop while another thread reads.
    auto deadline = std::chrono::steady_clock::now() + std::chrono::microseconds(us);
    bool lead = s->spin_hits >= kSpinLeadAfterHits;
    if (!lead || !rt.input().read_for(us, ready)) {
      while (!ready() && std::chrono::steady_clock::now() < deadline) {
        sched_yield();  // whoever shares this CPU (an Erlang scheduler) goes first
      }
    }
    ready();
  }
  s->selecting = false;
  ++s->spins;
  s->spins_caught += seen ? 1 : 0;
  s->spin_skip_next = !seen;
  s->spin_hits = seen ? std::min(s->spin_hits + 1, kSpinLeadAfterHits) : 0;
  return seen;
}

}  // namespace ep
