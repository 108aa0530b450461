// The I/O readiness source of one ErlangEventLoop: its own uv_loop_t, a
// uv_poll per watched file descriptor, a uv_async for wake-ups from any thread,
// a uv_timer bounding each wait, and uv_signal watches. Plain C++: the Python
// type around it is in loop_module.cpp.
#pragma once

#include <uv.h>

#include <memory>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/uv_handle.hpp"
#include "core/uv_poll_watch.hpp"
#include "core/uv_signal_watch.hpp"

namespace ep {

struct AsyncSlot {
  uv_async_t async;
};
struct TimerSlot {
  uv_timer_t timer;
};

class UvSelector {
 public:
  // 0 or a libuv error; the selector is usable only after a successful init.
  int init();
  ~UvSelector();
  // Back to the state init() left it in (no watches, nothing ready), for
  // another loop; false when it cannot be reused.
  bool recycle();

  // Watch `fd` for `events` (UV_READABLE | UV_WRITABLE); 0 stops watching it.
  int watch(int fd, int events);
  // Waits up to `timeout_ms` (-1: until an event) for readiness, a wake-up or
  // a signal. Call without the GIL. ready() then lists (fd, events).
  int select(long timeout_ms);
  // One turn that does not wait (the GIL may be held): true when it found
  // readiness, a wake-up or a signal, i.e. select() need not wait.
  bool poll_now();
  const std::vector<std::pair<int, int>>& ready_list() const { return ready_; }
  void clear_ready() { ready_.clear(); }
  std::vector<int> take_signals() { return std::exchange(signals_, {}); }

  // Any thread.
  void wakeup();

  int signal_watch(int signum, bool on);
  size_t watched() const { return polls_.size(); }
  // The descriptor libuv waits on (readable when a turn has something to do).
  int backend_fd() const { return uv_backend_fd(loop_.get()); }

  // Called by the handles during select().
  void ready(int fd, int events) { ready_.emplace_back(fd, events); }
  void signalled(int signum) { signals_.push_back(signum); }

 private:
  std::unique_ptr<uv_loop_t> loop_;
  UvHandle<AsyncSlot> async_;
  UvHandle<TimerSlot> timer_;
  std::unordered_map<int, PollWatch> polls_;
  std::unordered_map<int, SignalWatch> signal_watches_;
  std::vector<std::pair<int, int>> ready_;
  std::vector<int> signals_;
  bool woken_ = false;  // the uv_async fired during poll_now()
};

}  // namespace ep
