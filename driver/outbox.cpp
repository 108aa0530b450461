#include "driver/outbox.hpp"

#include <sched.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cstdint>

namespace ep::drv {
namespace {

ErlDrvEvent as_event(int fd) {
  return reinterpret_cast<ErlDrvEvent>(static_cast<intptr_t>(fd));
}

}  // namespace

Outbox::Outbox() : fd_(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {}

Outbox::~Outbox() {
  if (fd_ >= 0 && !watched_) ::close(fd_);
}

bool Outbox::watch(ErlDrvPort port) {
  if (fd_ < 0) return false;
  watched_ = driver_select(port, as_event(fd_), ERL_DRV_READ | ERL_DRV_USE, 1) == 0;
  return watched_;
}

void Outbox::unwatch(ErlDrvPort port) {
  {
    std::lock_guard lk(mu_);
    stopped_ = true;  // no signal() is promised after this
    queue_.clear();
  }
  // The eventfd stays open until the signals promised before are written.
  while (signalling_.load(std::memory_order_acquire) > 0) sched_yield();
  if (watched_) driver_select(port, as_event(fd_), ERL_DRV_USE, 0);
}

void Outbox::close_event(ErlDrvEvent event) {
  ::close(static_cast<int>(reinterpret_cast<intptr_t>(event)));
}

bool Outbox::push(Entry entry) {
  std::lock_guard lk(mu_);
  if (stopped_) return false;
  queue_.push_back(std::move(entry));
  if (queue_.size() > 1) return false;  // signalled already, not yet taken
  signalling_.fetch_add(1, std::memory_order_relaxed);
  return true;
}

void Outbox::signal() {
  uint64_t one = 1;
  (void)!::write(fd_, &one, sizeof one);
  signalling_.fetch_sub(1, std::memory_order_release);
}

void Outbox::take(std::vector<Entry>& into) {
  uint64_t count;
  // First: a push after this signals again (the box it finds is empty).
  (void)!::read(fd_, &count, sizeof count);
  into.clear();
  std::lock_guard lk(mu_);
  into.swap(queue_);
}

}  // namespace ep::drv
