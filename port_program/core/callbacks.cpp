#include "core/callbacks.hpp"

#include <unistd.h>

#include <memory>

#include "core/context.hpp"
#include "core/runtime.hpp"

namespace ep {

void CallbackWaiter::arm(uint64_t id) {
  std::lock_guard lk(mu_);
  armed_ = id;
  reply_.reset();
}

CallbackReply CallbackWaiter::wait() {
  std::unique_lock lk(mu_);
  Runtime::instance().input().wait(
      lk, parker_, [this] { return reply_.has_value(); }, InputGate::Expect::kReply);
  armed_ = 0;
  return std::move(*reply_);
}

void CallbackWaiter::deliver(uint64_t id, CallbackReply reply) {
  {
    std::lock_guard lk(mu_);
    if (id != armed_ || reply_) return;  // a reply nobody waits for any more
    reply_ = std::move(reply);
  }
  parker_.unpark();
}

// Owns the calling thread's waiter; gives its slot back when the thread exits.
struct ThreadSlot {
  CallbackRegistry* registry = nullptr;
  std::unique_ptr<CallbackWaiter> waiter;
  ~ThreadSlot() {
    if (registry && waiter) registry->release(waiter->slot());
  }
};

namespace {
thread_local ThreadSlot tl_slot;
}

CallbackWaiter& CallbackRegistry::this_thread() {
  if (tl_slot.waiter) return *tl_slot.waiter;
  std::lock_guard lk(mu_);
  uint32_t slot;
  if (!free_.empty()) {
    slot = free_.back();
    free_.pop_back();
  } else {
    slot = static_cast<uint32_t>(slots_.size());
    slots_.push_back(nullptr);
    sequences_.push_back(0);
  }
  tl_slot.registry = this;
  tl_slot.waiter = std::make_unique<CallbackWaiter>(slot, sequences_[slot]);
  slots_[slot] = tl_slot.waiter.get();
  if (Context* ctx = Context::current()) executors_[slot] = ctx;
  return *tl_slot.waiter;
}

void CallbackRegistry::release(uint32_t slot) {
  std::lock_guard lk(mu_);
  if (slots_[slot]) sequences_[slot] = slots_[slot]->sequence();
  slots_[slot] = nullptr;
  executors_.erase(slot);
  free_.push_back(slot);
}

uint64_t CallbackRegistry::register_async(int fd, uint64_t token) {
  std::lock_guard lk(mu_);
  uint64_t id = kAsyncBit | ++async_sequence_;
  async_targets_.emplace(id, AsyncTarget{fd, token, Context::current()});
  ++async_fds_[fd].waiting;
  return id;
}

bool CallbackRegistry::async_pending_on(uint64_t id, const Context* ctx) {
  std::lock_guard lk(mu_);
  auto it = async_targets_.find(id);
  return it != async_targets_.end() && it->second.context == ctx;
}

std::vector<CallbackRegistry::AsyncResult> CallbackRegistry::take_async(int fd) {
  std::lock_guard lk(mu_);
  std::vector<AsyncResult> out;
  if (auto it = async_fds_.find(fd); it != async_fds_.end()) out.swap(it->second.results);
  return out;
}

std::vector<CallbackRegistry::AsyncResult> CallbackRegistry::drain_async(int fd, bool force) {
  std::lock_guard lk(mu_);
  std::vector<AsyncResult> out;
  bool read = force;
  if (auto it = async_fds_.find(fd); it != async_fds_.end()) {
    out.swap(it->second.results);
    read = read || it->second.signalled;
    it->second.signalled = false;
  }
  if (read || out.empty()) {
    // Under the lock: a reply queued after this read signals the eventfd again.
    uint64_t count;
    ssize_t n = ::read(fd, &count, sizeof count);
    (void)n;  // EAGAIN: nothing to clear
  }
  return out;
}

void CallbackRegistry::forget_async(int fd) {
  std::lock_guard lk(mu_);
  async_fds_.erase(fd);
  std::erase_if(async_targets_, [fd](const auto& kv) { return kv.second.fd == fd; });
}

void CallbackRegistry::drop_async(uint64_t id) {
  std::lock_guard lk(mu_);
  if (auto it = async_targets_.find(id); it != async_targets_.end()) erase_target_locked(it);
}

bool CallbackRegistry::begin_direct(int fd, std::atomic<bool>* arrived) {
  std::lock_guard lk(mu_);
  auto it = async_fds_.find(fd);
  if (it == async_fds_.end() || it->second.waiting == 0) return false;
  it->second.arrived = arrived;
  if (!it->second.results.empty()) arrived->store(true, std::memory_order_release);
  return true;
}

bool CallbackRegistry::end_direct(int fd) {
  std::lock_guard lk(mu_);
  auto it = async_fds_.find(fd);
  if (it == async_fds_.end()) return false;
  it->second.arrived = nullptr;
  return !it->second.results.empty();
}

void CallbackRegistry::erase_target_locked(std::unordered_map<uint64_t, AsyncTarget>::iterator it) {
  if (auto f = async_fds_.find(it->second.fd); f != async_fds_.end() && f->second.waiting > 0) {
    --f->second.waiting;
  }
  async_targets_.erase(it);
}

void CallbackRegistry::deliver(uint64_t id, CallbackReply reply) {
  if (id & kAsyncBit) {
    int fd = -1;
    {
      std::lock_guard lk(mu_);
      auto it = async_targets_.find(id);
      if (it == async_targets_.end()) return;
      fd = it->second.fd;
      AsyncFd& f = async_fds_[fd];
      f.results.push_back({it->second.token, std::move(reply)});
      erase_target_locked(it);
      if (f.arrived) {
        // Its loop's thread reads the input (maybe this is it): no signal.
        f.arrived->store(true, std::memory_order_release);
        return;
      }
      f.signalled = true;
    }
    uint64_t one = 1;
    ssize_t n = ::write(fd, &one, sizeof one);
    (void)n;  // an eventfd write fails only on overflow, which a pending read clears
    return;
  }
  uint32_t slot = static_cast<uint32_t>(id >> 32);
  std::unique_lock lk(mu_);
  if (slot >= slots_.size() || slots_[slot] == nullptr) return;
  if (auto it = executors_.find(slot); it != executors_.end()) {
    Context* ctx = it->second;
    lk.unlock();
    ctx->post_callback_reply(id, std::move(reply));
    return;
  }
  CallbackWaiter* waiter = slots_[slot];
  // Delivery under the registry lock: the waiter cannot be released meanwhile.
  waiter->deliver(id, std::move(reply));
}

}  // namespace ep
