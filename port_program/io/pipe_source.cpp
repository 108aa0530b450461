#include "io/pipe_source.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>

namespace ep {

PipeSource::PipeSource(Fd fd, size_t max_frame, unsigned spin_us, Dispatcher& dispatcher,
                       std::function<void()> on_shutdown)
    : fd_(std::move(fd)),
      kick_(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)),
      dispatcher_(dispatcher),
      frames_(max_frame),
      buffer_(std::make_unique<char[]>(kBufferSize)),
      on_shutdown_(std::move(on_shutdown)),
      spin_us_(spin_us) {
  // Non-blocking: the polling loop reads at once instead of asking poll()
  // first. Only this process holds the read end (main.cpp moved it off stdin).
  int flags = fcntl(fd_.get(), F_GETFL);
  if (flags >= 0) fcntl(fd_.get(), F_SETFL, flags | O_NONBLOCK);
  if (!kick_) {
    std::perror("erlang_python: eventfd");
    std::_Exit(3);
  }
}

ssize_t PipeSource::read_some() {
  return ::read(fd_.get(), buffer_.get(), kBufferSize);
}

void PipeSource::took(Clock::time_point start, ssize_t n) {
  // How soon input came: smoothed, but one quick arrival is enough to poll again.
  unsigned gap = elapsed_us(start);
  recent_gap_us_ = gap <= spin_us_ || recent_gap_us_ == ~0u ? gap : (recent_gap_us_ + gap) / 2;
  consume(n);
}

unsigned PipeSource::elapsed_us(Clock::time_point start) {
  return static_cast<unsigned>(
      std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start).count());
}

void PipeSource::read_interruptible() {
  auto start = Clock::now();
  if (spin_us_ > 0 && recent_gap_us_ <= spin_us_) {
    // Only the pipe is read here; a kick shows in kicked_ (cheaper than polling
    // the eventfd too, which would slow the loop that catches the next request).
    while (true) {
      if (kicked_.exchange(false, std::memory_order_acquire)) return drain_kick();
      ssize_t n = read_some();
      if (n >= 0 || errno != EAGAIN) return took(start, n);
      if (elapsed_us(start) > spin_us_) break;
      sched_yield();  // whoever shares this CPU (an Erlang scheduler) goes first
    }
  }
  pollfd fds[2] = {{fd_.get(), POLLIN, 0}, {kick_.get(), POLLIN, 0}};
  if (poll(fds, 2, -1) < 0) return;  // EINTR: the caller loops
  if (fds[1].revents & POLLIN) {
    kicked_.store(false, std::memory_order_relaxed);
    return drain_kick();
  }
  if (fds[0].revents) took(start, read_some());
}

void PipeSource::read_polling(unsigned us) {
  auto start = Clock::now();
  while (true) {
    if (kicked_.exchange(false, std::memory_order_acquire)) return drain_kick();
    ssize_t n = read_some();
    // took(): the next leader polls in read_interruptible() too while input
    // comes this soon, instead of sleeping in poll().
    if (n >= 0 || errno != EAGAIN) return took(start, n);
    if (elapsed_us(start) >= us) return;
    sched_yield();  // whoever shares this CPU (an Erlang scheduler) goes first
  }
}

void PipeSource::drain_kick() {
  uint64_t n;
  ssize_t r = ::read(kick_.get(), &n, sizeof n);  // non-blocking: nothing to drain is fine
  (void)r;
}

void PipeSource::interrupt() {
  kicked_.store(true, std::memory_order_release);
  uint64_t one = 1;
  ssize_t r = ::write(kick_.get(), &one, sizeof one);
  (void)r;  // fails only when the counter is saturated: it is signalled anyway
}

void PipeSource::consume(ssize_t n) {
  if (n < 0) {
    if (errno == EINTR || errno == EAGAIN) return;
    end_of_input();
  }
  if (n == 0) end_of_input();
  frames_.feed(
      std::string_view(buffer_.get(), static_cast<size_t>(n)),
      [this](std::string_view message) { dispatcher_.on_frame(message); },
      [this](std::string_view head, uint64_t len) {
        dispatcher_.on_oversized(head, len, frames_.max_frame());
      });
  if (!shutdown_seen_ && dispatcher_.shutdown_requested()) {
    shutdown_seen_ = true;
    on_shutdown_();
  }
}

void PipeSource::end_of_input() {
  if (frames_.has_partial()) dispatcher_.on_truncated();
  // Python may be stuck in a loop on an executor: no joins, no finalisation.
  std::fflush(nullptr);
  std::_Exit(0);
}

}  // namespace ep
