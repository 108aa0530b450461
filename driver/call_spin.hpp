// The caller's scheduler thread polls for a short reply instead of going
// to sleep: port_control(Port, 3, Frame).
//
// A sequential call through the outbox costs one thread wake-up each way:
// the executor's (it polls too, so that one is often saved) and the
// scheduler's, which has gone to sleep in its poll set by the time the
// reply comes. Here the scheduler that wrote the request polls for its
// reply for up to `budget_us` (the pool's read_spin_us, at most kMaxUs)
// and sends it to the caller itself: no wake-up, no port task. Python
// still runs on the executor only; the scheduler just waits, as a NIF of
// that length would.
//
// It polls only where that is likely to pay:
//  - one scheduler at a time in the VM (the contexts share one GIL, and
//    a polling scheduler takes a CPU from the executors), and only while no
//    other reply is awaited (many callers: the executors need the CPUs);
//  - after a poll that ran out, the next kSkipAfterMiss calls of that port
//    do not poll (a pool of long calls pays one poll in kSkipAfterMiss+1);
//  - a poll stops as soon as anything else is queued for the port (a
//    callback request of the call, another caller's reply): its
//    ready_input, which the polling scheduler holds off, has work.
// A reply that comes after the poll ran out goes the usual way (outbox).
#pragma once

#include "driver/reply_slot.hpp"

namespace ep::drv {

class CallSpin {
 public:
  static constexpr unsigned kMaxUs = 200;
  static constexpr unsigned kSkipAfterMiss = 16;

  // Scheduler thread, the port locked. True: poll (then call end()).
  bool begin(unsigned budget_us);
  // Polls `slot` for up to the budget: what it holds then (kWaiting: the
  // poll ran out).
  ReplySlot::State wait(const ReplySlot& slot) const;
  void end(bool ran_out);

 private:
  unsigned budget_us_ = 0;
  unsigned skip_ = 0;  // the port's: guarded by the port lock
};

}  // namespace ep::drv
