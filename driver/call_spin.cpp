#include "driver/call_spin.hpp"

#include <sched.h>

#include <algorithm>
#include <atomic>
#include <chrono>

namespace ep::drv {
namespace {

// One polling scheduler in the VM.
std::atomic<bool> g_polling{false};

}  // namespace

bool CallSpin::begin(unsigned budget_us) {
  if (budget_us == 0) return false;
  if (skip_ > 0) {
    --skip_;
    return false;
  }
  if (g_polling.exchange(true, std::memory_order_acquire)) return false;
  budget_us_ = std::min(budget_us, kMaxUs);
  return true;
}

ReplySlot::State CallSpin::wait(const ReplySlot& slot) const {
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  const auto deadline = start + std::chrono::microseconds(budget_us_);
  // The first microseconds in a tight loop (the executor runs elsewhere),
  // then yielding: an executor on this scheduler's CPU gets it.
  const auto tight_until = start + std::chrono::microseconds(2);
  while (true) {
    auto state = static_cast<ReplySlot::State>(slot.state.load(std::memory_order_acquire));
    if (state != ReplySlot::kWaiting) return state;
    auto now = Clock::now();
    if (now >= deadline) return ReplySlot::kWaiting;
    if (now >= tight_until) sched_yield();
  }
}

void CallSpin::end(bool ran_out) {
  if (ran_out) skip_ = kSkipAfterMiss;
  g_polling.store(false, std::memory_order_release);
}

}  // namespace ep::drv
