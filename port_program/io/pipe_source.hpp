// The protocol pipe as the core's InputSource: whichever thread leads (see
// core/input_gate.hpp) waits for it (and for interrupt()'s eventfd) in poll(),
// reads it and dispatches the complete frames. End of input ends the process
// at once, even if Python is stuck.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>

#include "core/dispatcher.hpp"
#include "core/frame_reader.hpp"
#include "core/input_gate.hpp"
#include "io/fd.hpp"

namespace ep {

class PipeSource : public InputSource {
 public:
  // `on_shutdown` is called once, on the reading thread, after a shutdown message.
  // `spin_us`: see read_interruptible().
  PipeSource(Fd fd, size_t max_frame, unsigned spin_us, Dispatcher& dispatcher,
             std::function<void()> on_shutdown);

  void read_interruptible() override;
  void interrupt() override;
  void read_polling(unsigned us) override;

 private:
  static constexpr size_t kBufferSize = 256 * 1024;

  // Before the blocking poll, read_interruptible() tries to read for up
  // to spin_us while input has lately come that soon after the leader started
  // waiting. On a VM, a reader that sleeps is woken through its idle vCPU, which
  // can cost ~100 µs; a reader that polls briefly catches the next request of a
  // caller that is calling in a loop. Input that comes later than that stops
  // the polling until it comes sooner again, so a quiet port program uses no CPU.
  using Clock = std::chrono::steady_clock;
  ssize_t read_some();                            // the pipe never blocks: -1/EAGAIN if empty
  void took(Clock::time_point start, ssize_t n);  // n: read_some()'s result
  void drain_kick();
  static unsigned elapsed_us(Clock::time_point start);
  void consume(ssize_t n);
  [[noreturn]] void end_of_input();

  Fd fd_;
  Fd kick_;                          // eventfd: interrupt(), for a blocking poll
  std::atomic<bool> kicked_{false};  // interrupt(), for the spinning loop
  Dispatcher& dispatcher_;
  FrameReader frames_;
  std::unique_ptr<char[]> buffer_;  // reused: fresh pages are slow to touch
  std::function<void()> on_shutdown_;
  bool shutdown_seen_ = false;
  const unsigned spin_us_;
  unsigned recent_gap_us_ = ~0u;  // how soon input came after the last waits (smoothed)
};

}  // namespace ep
