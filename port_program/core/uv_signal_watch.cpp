#include "core/uv_signal_watch.hpp"

#include "core/uv_selector.hpp"

namespace ep {

int SignalWatch::open(uv_loop_t* loop, UvSelector* owner, int signum, SignalWatch& out) {
  auto slot = std::make_unique<SignalSlot>();
  slot->owner = owner;
  if (int rc = uv_signal_init(loop, &slot->signal); rc < 0) return rc;
  out.slot_ = UvHandle<SignalSlot>(std::move(slot));
  return uv_signal_start(&out.slot_->signal, on_signal, signum);
}

void SignalWatch::on_signal(uv_signal_t* signal, int signum) {
  reinterpret_cast<SignalSlot*>(signal)->owner->signalled(signum);
}

}  // namespace ep
