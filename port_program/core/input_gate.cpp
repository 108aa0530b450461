#include "core/input_gate.hpp"

#include <sched.h>

#include <algorithm>

#include "core/native_thread.hpp"

namespace ep {
namespace {

// How long a vacancy lasts at least before the standby covers it, and how many
// ticks without any change of hands send the standby to sleep until the next one.
constexpr auto kTick = std::chrono::milliseconds(1);
constexpr int kQuietTicks = 100;

// When this thread's own input last came; its address names the thread.
thread_local std::chrono::steady_clock::time_point tl_served;

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
  if (!leader_ && !followers_.empty()) make_leader_locked(followers_.back());
  standby_thread_ = std::make_unique<NativeThread>([this] { standby(); });
}

size_t InputGate::waiting() {
  std::lock_guard g(mu_);
  return followers_.size();
}

void InputGate::wait_once(std::unique_lock<std::mutex>& lk, Parker& parker, ReadyRef ready,
                          Expect expect) {
  Clock::time_point now = Clock::now();
  Follower me{&parker, expect == Expect::kReply ? Clock::time_point::max() : tl_served + kHot};
  // The waiter's mutex is free while this thread is in the gate: as leader it
  // dispatches frames, and whoever delivers one takes the mutex of its waiter.
  lk.unlock();
  bool leading = false;
  {
    std::lock_guard g(mu_);
    if (source_ && !leader_) {
      leader_ = &me;
      leader_hot_until_ = me.hot_until;
      ++epoch_;
      leading = true;
    } else {
      followers_.push_back(&me);
      bool reader_cold = leader_ == &standby_mark_ || leader_hot_until_ <= now;
      if (source_ && reader_cold && !kicked_ && me.hot_until > now && !other_hot_locked(me, now)) {
        kicked_ = true;
        kicker_ = &me;
        source_->interrupt();
      }
    }
  }
  if (!leading) {
    lk.lock();
    while (!ready() && !me.promoted.load(std::memory_order_acquire)) {
      lk.unlock();
      unsigned spin = source_ ? 0 : idle_spin_us_.load(std::memory_order_relaxed);
      if (spin > 0 && me.hot_until > Clock::now()) {
        parker.park_spinning(spin);
      } else {
        parker.park();
      }
      lk.lock();
    }
    if (!me.promoted.load(std::memory_order_acquire)) {
      // What we wait for came: leave the followers, unless promoted meanwhile.
      lk.unlock();
      bool promoted;
      {
        std::lock_guard g(mu_);
        promoted = me.promoted.load(std::memory_order_relaxed);
        if (!promoted) {
          remove_follower_locked(&me);
          served_locked(Clock::now());
        }
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
    bool stepped_down = false;
    {
      std::lock_guard g(mu_);
      if (kicked_) {
        step_down_locked();
        stepped_down = true;
      }
    }
    if (stepped_down) {
      lk.lock();
      return;  // the caller waits again, as a follower
    }
    source_->read_interruptible();
  }
  lk.unlock();
  resign();
  lk.lock();
}

void InputGate::resign() {
  std::lock_guard g(mu_);
  Clock::time_point now = Clock::now();
  served_locked(now);
  ++epoch_;
  if (kicked_) {
    step_down_locked();
    return;
  }
  bool hot_waits = std::any_of(followers_.begin(), followers_.end(),
                               [now](const Follower* f) { return f->hot_until > now; });
  if (hot_waits) {
    // Others are in flight: the standby reads for all of them from now on. A
    // follower made leader would resign as soon as its own input came, so the
    // role would change hands (a wake-up, and no reader meanwhile) every few frames.
    leader_ = &standby_mark_;
    leader_hot_until_ = {};
    standby_cv_.notify_one();
    return;
  }
  leader_ = nullptr;
  if (standby_deep_) standby_cv_.notify_one();
}

bool InputGate::read_for_impl(unsigned us, ReadyRef ready) {
  Clock::time_point now = Clock::now();
  const Clock::time_point deadline = now + std::chrono::microseconds(us);
  Parker unused;  // promotion is polled, never slept on
  Follower me{&unused, deadline};
  bool leading = false;
  {
    std::lock_guard g(mu_);
    if (!source_ || stopping_) return false;
    if (!leader_) {
      leader_ = &me;
      leader_hot_until_ = deadline;
      ++epoch_;
      leading = true;
    } else {
      bool reader_cold = leader_ == &standby_mark_ || leader_hot_until_ <= now;
      if (!reader_cold || kicked_ || other_hot_locked(me, now)) return false;
      followers_.push_back(&me);
      kicked_ = true;
      kicker_ = &me;
      source_->interrupt();
    }
  }
  if (!leading) {
    // The reader steps down within microseconds when it polls, or once the
    // kick wakes it from poll(); past the deadline the kick is withdrawn.
    while (!me.promoted.load(std::memory_order_acquire) && !ready() && Clock::now() < deadline) {
      sched_yield();
    }
    std::lock_guard g(mu_);
    if (!me.promoted.load(std::memory_order_relaxed)) {
      remove_follower_locked(&me);
      return false;
    }
  }
  while (!ready()) {
    {
      std::lock_guard g(mu_);
      if (kicked_) {  // a hot waiter wants the role
        step_down_locked();
        return false;
      }
    }
    now = Clock::now();
    if (now >= deadline) {
      // The caller goes to sleep elsewhere: a waiting thread reads from now on.
      std::lock_guard g(mu_);
      ++epoch_;
      if (kicked_) {
        step_down_locked();
      } else if (!followers_.empty()) {
        auto hot = std::find_if(followers_.begin(), followers_.end(),
                                [now](const Follower* f) { return f->hot_until > now; });
        if (hot != followers_.end()) {
          leader_ = &standby_mark_;  // as resign(): a steady reader for those in flight
          leader_hot_until_ = {};
          standby_cv_.notify_one();
        } else {
          make_leader_locked(followers_.back());
        }
      } else {
        leader_ = nullptr;
        if (standby_deep_) standby_cv_.notify_one();
      }
      return true;
    }
    source_->read_polling(static_cast<unsigned>(
        std::chrono::duration_cast<std::chrono::microseconds>(deadline - now).count()));
  }
  resign();  // what it waited for came: back soon, as a hot executor is
  return true;
}

void InputGate::served_locked(Clock::time_point now) {
  tl_served = now;
  const void* self = &tl_served;
  Served* slot = &served_[0];
  for (Served& s : served_) {
    if (s.thread == self) {
      slot = &s;
      break;
    }
    if (s.at < slot->at) slot = &s;
  }
  *slot = {self, now};
}

bool InputGate::other_hot_locked(const Follower& me, Clock::time_point now) const {
  for (const Follower* f : followers_) {
    if (f != &me && f->hot_until > now) return true;
  }
  if (leader_ && leader_ != &standby_mark_ && leader_hot_until_ > now) return true;
  for (const Served& s : served_) {
    if (s.thread && s.thread != &tl_served && now - s.at < kHot) return true;
  }
  return false;
}

void InputGate::make_leader_locked(Follower* f) {
  remove_follower_locked(f);
  leader_ = f;
  leader_hot_until_ = f->hot_until;
  ++epoch_;
  f->promoted.store(true, std::memory_order_release);
  // f cannot leave before it resigns, which needs mu_, held here.
  f->parker->unpark();
}

void InputGate::step_down_locked() {
  Follower* kicker = kicker_;
  kicked_ = false;
  kicker_ = nullptr;
  leader_ = nullptr;
  ++epoch_;
  if (kicker) make_leader_locked(kicker);
}

void InputGate::remove_follower_locked(Follower* f) {
  auto it = std::find(followers_.begin(), followers_.end(), f);
  if (it != followers_.end()) followers_.erase(it);
  if (kicker_ == f) {
    // It needs the role no more; a read the kick interrupts just goes on.
    kicked_ = false;
    kicker_ = nullptr;
  }
}

void InputGate::standby() {
  std::unique_lock g(mu_);
  uint64_t seen = epoch_;
  bool seen_vacant = false;
  int quiet = 0;
  while (!stopping_) {
    bool vacant_a_tick = !leader_ && seen_vacant && epoch_ == seen;
    if (vacant_a_tick) {
      leader_ = &standby_mark_;
      leader_hot_until_ = {};
      ++epoch_;
    }
    if (leader_ == &standby_mark_) {
      standby_lead(g);  // covering a vacancy, or handed the role by a resigning leader
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
      standby_cv_.wait(
          g, [this]() REQUIRES(mu_) { return stopping_ || !leader_ || leader_ == &standby_mark_; });
      standby_deep_ = false;
      seen = epoch_;
      seen_vacant = !leader_;
      quiet = 0;
      if (leader_ == &standby_mark_) continue;
    }
    standby_cv_.wait_for(g, kTick);
  }
}

void InputGate::standby_lead(std::unique_lock<std::mutex>& g) {
  while (!stopping_ && !kicked_) {
    g.unlock();
    source_->read_interruptible();
    g.lock();
  }
  if (kicked_) {
    step_down_locked();
  } else {
    leader_ = nullptr;
    ++epoch_;
  }
}

}  // namespace ep
