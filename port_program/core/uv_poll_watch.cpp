#include "core/uv_poll_watch.hpp"

#include "core/uv_selector.hpp"

namespace ep {

int PollWatch::open(uv_loop_t* loop, UvSelector* owner, int fd, int events, PollWatch& out) {
  auto slot = std::make_unique<PollSlot>();
  slot->owner = owner;
  slot->fd = fd;
  slot->events = events;
  if (int rc = uv_poll_init(loop, &slot->poll, fd); rc < 0) return rc;  // nothing to close
  out.slot_ = UvHandle<PollSlot>(std::move(slot));
  return uv_poll_start(&out.slot_->poll, events, on_ready);
}

int PollWatch::change(int events) {
  slot_->events = events;
  return uv_poll_start(&slot_->poll, events, on_ready);
}

void PollWatch::on_ready(uv_poll_t* poll, int status, int events) {
  PollSlot* slot = reinterpret_cast<PollSlot*>(poll);
  // An error (EBADF ...) is reported as ready: the callback meets it, as with select().
  slot->owner->ready(slot->fd, status < 0 ? slot->events : (events & slot->events));
}

}  // namespace ep
