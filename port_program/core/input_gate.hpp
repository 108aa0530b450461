// Leader/follower reading of the input.
//
// Every thread that waits for input — an idle executor, an executor or a Python
// thread blocked in erlang.call — may read the input itself. One of them, the
// leader, reads and dispatches frames; when a frame is for the leader (the
// common case: one context per port program), the leader handles it on the
// thread that read it, with no thread wake-up. Frames for others go to their
// queues and wake them, as before. A leader whose own input has come hands the
// role to a waiting thread (a follower), or leaves it vacant when none waits.
//
// A vacancy (every thread busy, e.g. an executor running a long call) is
// covered by a standby thread: it takes the role over once the vacancy has
// lasted a whole tick (1–2 ms), so cancellations, other contexts' requests,
// callback replies and end of input are never held up for long, even when
// Python is stuck. The standby ticks only while the role changes hands; after
// a quiet spell it sleeps until the next vacancy wakes it, so an idle port
// program uses no CPU. It gives the role back as soon as a thread waits.
//
// Without a source (the linked-in driver, where the emulator pushes input),
// waiters just sleep until what they wait for is posted.
#pragma once

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <vector>

namespace ep {

class NativeThread;

// Where the input comes from (the port program's protocol pipe).
class InputSource {
 public:
  virtual ~InputSource() = default;
  // Blocks until input arrives, then dispatches every complete frame it read.
  // At end of input it ends the process. Called by the leader only.
  virtual void read() = 0;
  // The same, but also returns (having read nothing) after interrupt().
  virtual void read_interruptible() = 0;
  // Makes a read_interruptible() in progress, or the next one, return. Any thread.
  virtual void interrupt() = 0;
};

class InputGate {
 public:
  InputGate();
  ~InputGate();  // stops the standby
  InputGate(const InputGate&) = delete;
  InputGate& operator=(const InputGate&) = delete;

  // Installs the source and starts the standby. Threads already waiting are served.
  void start(InputSource& source);

  // Blocks until ready() is true. `lk` holds the mutex guarding what ready()
  // reads, and whoever makes ready() true notifies `cv` (one waiter per cv).
  // Meanwhile the calling thread may read and dispatch input itself.
  template <class Ready>
  void wait(std::unique_lock<std::mutex>& lk, std::condition_variable& cv, Ready&& ready) {
    while (!ready()) wait_once(lk, cv, ReadyRef(ready));
  }

 private:
  // A borrowed predicate, without std::function's allocation.
  class ReadyRef {
   public:
    template <class F>
    explicit ReadyRef(F& f)
        : obj_(&f), call_([](void* o) { return static_cast<bool>((*static_cast<F*>(o))()); }) {}
    bool operator()() const { return call_(obj_); }

   private:
    void* obj_;
    bool (*call_)(void*);
  };

  // A waiting thread, on its stack while it waits.
  struct Follower {
    std::mutex* mu;
    std::condition_variable* cv;
    std::atomic<bool> promoted{false};  // made the leader by a resigning one
  };

  void wait_once(std::unique_lock<std::mutex>& lk, std::condition_variable& cv, ReadyRef ready);
  void lead(std::unique_lock<std::mutex>& lk, ReadyRef ready);
  void resign();
  // With mu_ held: hands the role to the most recent follower, if any.
  bool promote_locked();
  void standby();
  void standby_lead(std::unique_lock<std::mutex>& g);

  std::mutex mu_;
  InputSource* source_ = nullptr;
  const void* leader_ = nullptr;  // a Follower, &standby_mark_, or null (vacant)
  std::vector<Follower*> followers_;
  uint64_t epoch_ = 0;         // changes whenever the role changes hands
  bool kicked_ = false;        // the standby leads and was asked to give the role back
  bool standby_deep_ = false;  // the standby sleeps until a vacancy
  bool stopping_ = false;
  char standby_mark_ = 0;
  std::condition_variable standby_cv_;
  std::unique_ptr<NativeThread> standby_thread_;
};

}  // namespace ep
