#include "core/uv_selector.hpp"

namespace ep {

int UvSelector::init() {
  auto loop = std::make_unique<uv_loop_t>();
  if (int rc = uv_loop_init(loop.get()); rc < 0) return rc;
  loop_ = std::move(loop);
  auto async = std::make_unique<AsyncSlot>();
  if (int rc =
          uv_async_init(loop_.get(), &async->async,
                        [](uv_async_t* a) { static_cast<UvSelector*>(a->data)->woken_ = true; });
      rc < 0) {
    return rc;
  }
  async->async.data = this;
  async_ = UvHandle<AsyncSlot>(std::move(async));
  auto timer = std::make_unique<TimerSlot>();
  if (int rc = uv_timer_init(loop_.get(), &timer->timer); rc < 0) return rc;
  timer_ = UvHandle<TimerSlot>(std::move(timer));
  return 0;
}

UvSelector::~UvSelector() {
  if (!loop_) return;
  polls_.clear();
  signal_watches_.clear();
  async_.close();
  timer_.close();
  // Runs the close callbacks, which free the handles.
  uv_run(loop_.get(), UV_RUN_DEFAULT);
  uv_loop_close(loop_.get());
}

bool UvSelector::recycle() {
  if (!loop_ || !async_ || !timer_) return false;
  polls_.clear();
  signal_watches_.clear();
  // The closing polls' and signals' callbacks run (and free them) in this turn.
  uv_run(loop_.get(), UV_RUN_NOWAIT);
  ready_.clear();
  signals_.clear();
  return true;
}

int UvSelector::watch(int fd, int events) {
  auto it = polls_.find(fd);
  if (events == 0) {
    if (it != polls_.end()) polls_.erase(it);
    return 0;
  }
  if (it != polls_.end()) return it->second.change(events);
  PollWatch w;
  int rc = PollWatch::open(loop_.get(), this, fd, events, w);
  if (rc == 0) polls_.emplace(fd, std::move(w));
  return rc;
}

bool UvSelector::poll_now() {
  ready_.clear();
  woken_ = false;
  uv_run(loop_.get(), UV_RUN_NOWAIT);
  return woken_ || !ready_.empty() || !signals_.empty();
}

int UvSelector::select(long timeout_ms) {
  ready_.clear();
  if (timeout_ms == 0) {
    uv_run(loop_.get(), UV_RUN_NOWAIT);
    return 0;
  }
  if (timeout_ms > 0) {
    uv_update_time(loop_.get());
    // The timer stops uv_run instead of only waking the poll: libuv 1.44's
    // UV_RUN_ONCE runs due timers before it polls, so a thread preempted for
    // the whole timeout between here and uv_run saw the timer fire first and
    // then polled with no timeout left, i.e. forever (a loaded machine hung
    // test_tasks' test_context_3). With uv_stop the poll does not block.
    if (int rc = uv_timer_start(
            &timer_->timer, [](uv_timer_t* t) { uv_stop(t->loop); },
            static_cast<uint64_t>(timeout_ms), 0);
        rc < 0) {
      return rc;
    }
  }
  uv_run(loop_.get(), UV_RUN_ONCE);
  if (timeout_ms > 0) uv_timer_stop(&timer_->timer);
  return 0;
}

void UvSelector::wakeup() {
  uv_async_send(&async_->async);
}

int UvSelector::signal_watch(int signum, bool on) {
  if (!on) {
    signal_watches_.erase(signum);
    return 0;
  }
  if (signal_watches_.count(signum)) return 0;
  SignalWatch w;
  int rc = SignalWatch::open(loop_.get(), this, signum, w);
  if (rc == 0) signal_watches_.emplace(signum, std::move(w));
  return rc;
}

}  // namespace ep
