// Leader/follower reading of the input.
//
// Every thread that waits for input — an idle executor, an executor or a Python
// thread blocked in erlang.call — may read the input itself. One of them, the
// leader, reads and dispatches frames; when a frame is for the leader (the
// common case: one context per port program), the leader handles it on the
// thread that read it, with no thread wake-up. Frames for others go to their
// queues and wake them.
//
// Who should lead is whoever is likely to get the next frame. A waiter is *hot*
// when it waits for the reply to something it just sent (Expect::kReply), or
// when its own input came less than kHot ago (an executor serving a caller that
// calls in a loop); otherwise it is *cold* (an idle executor of a worker pool).
//  - A hot waiter that is the only hot thread takes the role from a cold
//    leader or the standby (it kicks the reader, which steps down): a caller
//    of one context of a worker pool gets no thread hop per call.
//  - A leader whose own input came hands the role to the standby when hot
//    followers wait (many threads in flight: a steady reader beats the role
//    changing hands every few frames), and otherwise leaves it vacant: a hot
//    leader is back in microseconds, and cold followers are covered below.
//
// A vacancy (every thread busy, e.g. an executor running a long call) is
// covered by a standby thread: it takes the role over once the vacancy has
// lasted a whole tick (1–2 ms), so cancellations, other contexts' requests,
// callback replies and end of input are never held up for long, even when
// Python is stuck. The standby ticks only while the role changes hands; after
// a quiet spell it sleeps until the next vacancy wakes it, so an idle port
// program uses no CPU.
//
// Without a source (the linked-in driver, where the emulator pushes input),
// waiters just sleep until what they wait for is posted.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <vector>

#include "core/parker.hpp"
#include "core/thread_annotations.hpp"

namespace ep {

class NativeThread;

// Where the input comes from (the port program's protocol pipe).
class InputSource {
 public:
  virtual ~InputSource() = default;
  // Blocks until input arrives or interrupt() is called, then dispatches every
  // complete frame it read. At end of input it ends the process. Leader only.
  virtual void read_interruptible() = 0;
  // Makes a read_interruptible() in progress, or the next one, return. Any thread.
  virtual void interrupt() = 0;
  // Polls for input for up to `us` microseconds without sleeping and
  // dispatches what it read; returns after the first read that got data,
  // after interrupt(), or when the time is up. Leader only.
  virtual void read_polling(unsigned us) = 0;
};

class InputGate {
 public:
  // What a waiter waits for: see "hot" above.
  enum class Expect { kInput, kReply };

  InputGate();
  ~InputGate();  // stops the standby
  InputGate(const InputGate&) = delete;
  InputGate& operator=(const InputGate&) = delete;

  // Installs the source and starts the standby. Threads already waiting are served.
  void start(InputSource& source);

  // Blocks until ready() is true. `lk` holds the mutex guarding what ready()
  // reads, and whoever makes ready() true then unparks `parker` (one waiting
  // thread per parker). Meanwhile the calling thread may read and dispatch
  // input itself.
  template <class Ready>
  void wait(std::unique_lock<std::mutex>& lk, Parker& parker, Ready&& ready,
            Expect expect = Expect::kInput) NO_THREAD_SAFETY_ANALYSIS {
    while (!ready()) wait_once(lk, parker, ReadyRef(ready), expect);
  }

  // A thread that expects input soon but blocks for nothing in particular
  // (an event loop that just answered: its caller's next task is likely on
  // its way) reads the input itself for up to `us` microseconds, until
  // ready() is true; ready() is called without any lock held, so it must be
  // thread-safe (an atomic flag). It leads if the role is vacant, or takes it
  // from a reader that is not hot (the standby, an idle follower); a hot
  // leader keeps it. Returns false if it did not lead (the caller waits its
  // own way). Afterwards the role is vacant if ready() came true (the caller
  // is back in microseconds, as a hot executor is), else handed to a waiting
  // follower (the caller is going to sleep elsewhere).
  template <class Ready>
  bool read_for(unsigned us, Ready&& ready) NO_THREAD_SAFETY_ANALYSIS {
    return read_for_impl(us, ReadyRef(ready));
  }

  // Without a source (the linked-in driver): how long a hot waiter (see
  // above) polls for its input before it sleeps (cf. the port program's
  // --read-spin-us). 0: never.
  void set_idle_spin_us(unsigned us) { idle_spin_us_.store(us, std::memory_order_relaxed); }

  // How many threads wait as followers (for tests and diagnostics).
  size_t waiting();

 private:
  using Clock = std::chrono::steady_clock;
  // How long after its own input came a waiter still counts as hot.
  static constexpr auto kHot = std::chrono::milliseconds(2);

  // A borrowed predicate, without std::function's allocation.
  class ReadyRef {
   public:
    template <class F>
    explicit ReadyRef(F& f)
        : obj_(&f), call_([](void* o) NO_THREAD_SAFETY_ANALYSIS {
            return static_cast<bool>((*static_cast<F*>(o))());  // called with the lock held
          }) {}
    bool operator()() const { return call_(obj_); }

   private:
    void* obj_;
    bool (*call_)(void*);
  };

  // A waiting thread, on its stack while it waits.
  struct Follower {
    Parker* parker;
    Clock::time_point hot_until;
    std::atomic<bool> promoted{false};  // made the leader by the previous one
  };

  // A thread whose own input came lately (it is busy with it, or waits again).
  struct Served {
    const void* thread = nullptr;
    Clock::time_point at;
  };

  void wait_once(std::unique_lock<std::mutex>& lk, Parker& parker, ReadyRef ready,
                 Expect expect) NO_THREAD_SAFETY_ANALYSIS;
  // Reads until the caller's input came, or until it stepped down for a kicker.
  void lead(std::unique_lock<std::mutex>& lk, ReadyRef ready) NO_THREAD_SAFETY_ANALYSIS;
  void resign();
  bool read_for_impl(unsigned us, ReadyRef ready) NO_THREAD_SAFETY_ANALYSIS;
  // The rest run with mu_ held.
  void served_locked(Clock::time_point now) REQUIRES(mu_);
  bool other_hot_locked(const Follower& me, Clock::time_point now) const REQUIRES(mu_);
  void make_leader_locked(Follower* f) REQUIRES(mu_);
  void step_down_locked() REQUIRES(mu_);
  void remove_follower_locked(Follower* f) REQUIRES(mu_);
  void standby() NO_THREAD_SAFETY_ANALYSIS;
  void standby_lead(std::unique_lock<std::mutex>& g) NO_THREAD_SAFETY_ANALYSIS;

  std::mutex mu_;
  InputSource* source_ = nullptr;
  const void* leader_ GUARDED_BY(mu_) = nullptr;  // a Follower, &standby_mark_, or null (vacant)
  Clock::time_point leader_hot_until_ GUARDED_BY(mu_);
  std::vector<Follower*> followers_ GUARDED_BY(mu_);
  std::array<Served, 4> served_ GUARDED_BY(mu_);  // the last few threads whose input came
  uint64_t epoch_ GUARDED_BY(mu_) = 0;            // changes whenever the role changes hands
  bool kicked_ GUARDED_BY(mu_) = false;           // a hot waiter asked the reader to step down
  Follower* kicker_ GUARDED_BY(mu_) = nullptr;    // ... this one, to lead (if it still waits)
  bool standby_deep_ GUARDED_BY(mu_) = false;     // the standby sleeps until a vacancy
  bool stopping_ GUARDED_BY(mu_) = false;
  char standby_mark_ = 0;
  std::atomic<unsigned> idle_spin_us_{0};
  std::condition_variable standby_cv_;
  std::unique_ptr<NativeThread> standby_thread_;
};

}  // namespace ep
