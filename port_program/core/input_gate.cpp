#include "core/input_gate.hpp"

#include <algorithm>
#include <chrono>

#include "core/native_thread.hpp"

namespace ep {
namespace {

// How long a vacancy lasts at least before the standby covers it, and how many
// ticks without any change of hands send the standby to sleep until the next one.
constexpr auto kTick = std::chrono::milliseconds(1);
constexpr int kQuietTicks = 100;

}  // namespace

InputGate::InputGate() = default;

InputGate::~InputGate() {
  {
    std::lock_guard g(mu_);
    stopping_ = true;
    if (leader_ == &standby_mark_) source_->interrupt();
  }
  standby_cv_.notify_one();
  standby_thread_.reset();
}

void InputGate::start(InputSource& source) {
  std::lock_guard g(mu_);
  source_ = &source;
  if (!leader_) promote_locked();
  standby_thread_ = std::make_unique<NativeThread>([this] { standby(); });
}

void InputGate::wait_once(std::unique_lock<std::mutex>& lk, std::condition_variable& cv,
                          ReadyRef ready) {
  Follower me{lk.mutex(), &cv};
  // Lock order: the gate's mutex, then a waiter's (promote_locked): never hold
  // the waiter's own mutex while taking the gate's.
  lk.unlock();
  bool leading = false;
  {
    std::lock_guard g(mu_);
    if (source_ && !leader_) {
      leader_ = &me;
      ++epoch_;
      leading = true;
    } else {
      followers_.push_back(&me);
      if (leader_ == &standby_mark_ && !kicked_) {
        kicked_ = true;
        source_->interrupt();
      }
    }
  }
  if (!leading) {
    lk.lock();
    cv.wait(lk, [&] { return ready() || me.promoted.load(std::memory_order_acquire); });
    if (!me.promoted.load(std::memory_order_acquire)) {
      // What we wait for came: leave the followers, unless promoted meanwhile.
      lk.unlock();
      bool promoted;
      {
        std::lock_guard g(mu_);
        promoted = me.promoted.load(std::memory_order_relaxed);
        if (!promoted) followers_.erase(std::find(followers_.begin(), followers_.end(), &me));
      }
      if (promoted) resign();
      lk.lock();
      return;
    }
    lk.unlock();
  }
  lead(lk, ready);
}

void InputGate::lead(std::unique_lock<std::mutex>& lk, ReadyRef ready) {
  while (true) {
    lk.lock();
    if (ready()) break;
    lk.unlock();
    source_->read();
  }
  lk.unlock();
  resign();
  lk.lock();
}

void InputGate::resign() {
  std::lock_guard g(mu_);
  leader_ = nullptr;
  ++epoch_;
  if (!promote_locked() && standby_deep_) standby_cv_.notify_one();
}

bool InputGate::promote_locked() {
  if (followers_.empty()) return false;
  Follower* f = followers_.back();
  followers_.pop_back();
  leader_ = f;
  ++epoch_;
  f->promoted.store(true, std::memory_order_release);
  { std::lock_guard fl(*f->mu); }  // f is in cv.wait or will see the flag
  // f cannot leave before it resigns, which needs mu_, held here.
  f->cv->notify_one();
  return true;
}

void InputGate::standby() {
  std::unique_lock g(mu_);
  uint64_t seen = epoch_;
  bool seen_vacant = false;
  int quiet = 0;
  while (!stopping_) {
    if (!leader_ && seen_vacant && epoch_ == seen) {
      standby_lead(g);  // vacant for a whole tick
      seen = epoch_;
      seen_vacant = false;
      quiet = 0;
      continue;
    }
    if (epoch_ != seen) {
      seen = epoch_;
      quiet = 0;
    } else {
      ++quiet;
    }
    seen_vacant = !leader_;
    if (leader_ && quiet > kQuietTicks) {
      standby_deep_ = true;
      standby_cv_.wait(g, [this] { return stopping_ || !leader_; });
      standby_deep_ = false;
      seen = epoch_;
      seen_vacant = !leader_;
      quiet = 0;
    }
    standby_cv_.wait_for(g, kTick);
  }
}

void InputGate::standby_lead(std::unique_lock<std::mutex>& g) {
  leader_ = &standby_mark_;
  ++epoch_;
  kicked_ = false;
  while (!stopping_ && followers_.empty()) {
    g.unlock();
    source_->read_interruptible();
    g.lock();
  }
  leader_ = nullptr;
  ++epoch_;
  kicked_ = false;
  promote_locked();
}

}  // namespace ep
