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
  ++async_waiting_[fd];
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
  if (auto it = async_results_.find(fd); it != async_results_.end()) out.swap(it->second);
  return out;
}

void CallbackRegistry::forget_async(int fd) {
  std::lock_guard lk(mu_);
  async_results_.erase(fd);
  async_waiting_.erase(fd);
  std::erase_if(async_targets_, [fd](const auto& kv) { return kv.second.fd == fd; });
}

void CallbackRegistry::drop_async(uint64_t id) {
  std::lock_guard lk(mu_);
  if (auto it = async_targets_.find(id); it != async_targets_.end()) erase_target_locked(it);
}

bool CallbackRegistry::async_waiting(int fd) {
  std::lock_guard lk(mu_);
  return async_waiting_.contains(fd);
}

void CallbackRegistry::erase_target_locked(std::unordered_map<uint64_t, AsyncTarget>::iterator it) {
  if (auto w = async_waiting_.find(it->second.fd); w != async_waiting_.end() && --w->second == 0) {
    async_waiting_.erase(w);
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
      async_results_[fd].push_back({it->second.token, std::move(reply)});
      erase_target_locked(it);
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
