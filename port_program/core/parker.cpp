#include "core/parker.hpp"

#include <linux/futex.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <chrono>

namespace ep {
namespace {

int32_t* futex_word(std::atomic<int32_t>& a) {
  static_assert(sizeof(std::atomic<int32_t>) == sizeof(int32_t) &&
                std::atomic<int32_t>::is_always_lock_free);
  return reinterpret_cast<int32_t*>(&a);
}

}  // namespace

void Parker::park() {
  // kNotified -> kEmpty: the token was there; kEmpty -> kParked: sleep.
  if (state_.fetch_sub(1, std::memory_order_acquire) == kNotified) return;
  while (true) {
    // Returns at once if unpark() already changed the word.
    syscall(SYS_futex, futex_word(state_), FUTEX_WAIT_PRIVATE, kParked, nullptr, nullptr, 0);
    int32_t notified = kNotified;
    if (state_.compare_exchange_strong(notified, kEmpty, std::memory_order_acquire)) return;
    // Woken by a signal or by a stale wake of the same address: still parked.
  }
}

void Parker::park_spinning(unsigned spin_us) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::microseconds(spin_us);
  while (state_.load(std::memory_order_acquire) != kNotified) {
    if (std::chrono::steady_clock::now() >= deadline) break;
    // Whoever shares this CPU (an Erlang scheduler with the caller to run)
    // goes first, as in the port program's polling reader.
    sched_yield();
  }
  park();
}

void Parker::unpark() {
  // The parked thread may return and free this Parker as soon as the exchange
  // is seen; the wake only names the address, which the kernel does not read.
  if (state_.exchange(kNotified, std::memory_order_release) == kParked) {
    syscall(SYS_futex, futex_word(state_), FUTEX_WAKE_PRIVATE, 1, nullptr, nullptr, 0);
  }
}

}  // namespace ep
