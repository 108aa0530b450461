// How a loop's thread waits a moment for what it expects next (a
// py_event_loop loop: its next request, LoopInbox::spin; an ErlangEventLoop:
// its erlang.async_call replies, selector_spin.cpp) before it sleeps.
#pragma once

#include <sched.h>

#include <algorithm>
#include <chrono>

#include "core/input_gate.hpp"

namespace ep {

// When to spin, and whether to read the input meanwhile. Zero-initialised
// storage is not a valid state: construct it.
class SpinPolicy {
 public:
  // Spins in a row that caught what they waited for before a spin leads the
  // input again (a new spinner leads at once).
  static constexpr unsigned kLeadAfterHits = 8;

  // The last spin was in vain: this wait sleeps at once (true), the next
  // spins again. What it waited for may well have come only once the spin
  // had ended: a thread spinning on the CPU of the Erlang scheduler it waits
  // for does not always let that thread run (sched_yield gives way only to
  // threads that ran about as little), so the round trip took the whole
  // spin and more.
  bool skip() {
    if (!skip_next_) return false;
    skip_next_ = false;
    return true;
  }

  // Waits up to `us` for ready(), reading the input itself meanwhile, so that
  // what comes costs no hand-over from another reading thread; or, when a
  // hot thread keeps the reading role (or without a pipe: the linked-in
  // driver), polling ready(). It leads only while its spins catch what they
  // wait for: taking the role and handing it back after a spin in vain costs
  // another thread two wake-ups. The GIL must not be held.
  template <class Ready>
  void spin(InputGate& input, unsigned us, Ready&& ready) const {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::microseconds(us);
    if (hits_ >= kLeadAfterHits && input.read_for(us, ready)) return;
    while (!ready() && std::chrono::steady_clock::now() < deadline) {
      sched_yield();  // whoever shares this CPU (an Erlang scheduler) goes first
    }
  }

  // What the spin caught decides the next ones.
  void record(bool caught) {
    skip_next_ = !caught;
    hits_ = caught ? std::min(hits_ + 1, kLeadAfterHits) : 0;
  }

 private:
  bool skip_next_ = false;
  unsigned hits_ = kLeadAfterHits;
};

}  // namespace ep
