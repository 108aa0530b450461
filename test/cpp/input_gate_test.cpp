// Leader/follower reading (core/input_gate): who reads, and who gets what was read.
#include "core/input_gate.hpp"

#include <doctest/doctest.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

namespace {

// Input is a queue of actions; reading one runs it, as dispatching a frame would.
class FakeSource : public ep::InputSource {
 public:
  void push(std::function<void()> action) {
    {
      std::lock_guard l(mu_);
      items_.push_back(std::move(action));
    }
    cv_.notify_all();
  }
  void read_interruptible() override { take(true); }
  void interrupt() override {
    {
      std::lock_guard l(mu_);
      kicked_ = true;
    }
    cv_.notify_all();
  }
  std::thread::id last_reader() {
    std::lock_guard l(mu_);
    return last_reader_;
  }
  // Blocks until `id` waits for input in read_interruptible().
  void await_reader(std::thread::id id) {
    std::unique_lock l(mu_);
    cv_.wait(l, [&] { return reading_ == id; });
  }

 private:
  void take(bool interruptible) {
    std::function<void()> action;
    {
      std::unique_lock l(mu_);
      reading_ = std::this_thread::get_id();
      cv_.notify_all();
      cv_.wait(l, [&] { return !items_.empty() || (interruptible && kicked_); });
      reading_ = {};
      if (interruptible && kicked_) {
        kicked_ = false;
        return;
      }
      action = std::move(items_.front());
      items_.pop_front();
      last_reader_ = std::this_thread::get_id();
    }
    action();
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> items_;
  bool kicked_ = false;
  std::thread::id last_reader_;
  std::thread::id reading_;
};

// What one waiting thread waits for.
struct Box {
  std::mutex mu;
  ep::Parker parker;
  bool ready = false;
  void set() {
    {
      std::lock_guard l(mu);
      ready = true;
    }
    parker.unpark();
  }
  void wait(ep::InputGate& gate, ep::InputGate::Expect expect = ep::InputGate::Expect::kInput) {
    std::unique_lock lk(mu);
    gate.wait(
        lk, parker, [this] { return ready; }, expect);
  }
};

}  // namespace

TEST_CASE("input gate: a lone waiter reads its own input") {
  FakeSource source;
  ep::InputGate gate;
  gate.start(source);
  Box box;
  source.push([&] { box.set(); });
  box.wait(gate);
  CHECK(box.ready);
  CHECK(source.last_reader() == std::this_thread::get_id());
}

TEST_CASE("input gate: input for another waiter reaches it, and the role passes on") {
  FakeSource source;
  ep::InputGate gate;
  gate.start(source);
  constexpr int kThreads = 4;
  Box boxes[kThreads];
  std::thread threads[kThreads];
  for (int i = 0; i < kThreads; ++i) threads[i] = std::thread([&, i] { boxes[i].wait(gate); });
  // In reverse order: most of them are read by a thread other than their own.
  for (int i = kThreads - 1; i >= 0; --i) source.push([&, i] { boxes[i].set(); });
  for (auto& t : threads) t.join();
  for (auto& b : boxes) CHECK(b.ready);
}

TEST_CASE("input gate: the standby reads when no thread waits") {
  FakeSource source;
  ep::InputGate gate;
  gate.start(source);
  // Waited for outside the gate, so only the standby can read it.
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  source.push([&] {
    {
      std::lock_guard l(mu);
      done = true;
    }
    cv.notify_one();
  });
  std::unique_lock lk(mu);
  CHECK(cv.wait_for(lk, std::chrono::seconds(2), [&] { return done; }));
  CHECK(source.last_reader() != std::this_thread::get_id());
}

TEST_CASE("input gate: a waiter for a reply takes the role from an idle leader") {
  FakeSource source;
  ep::InputGate gate;
  gate.start(source);
  Box idle, mine;
  std::thread idler([&] { idle.wait(gate); });  // an idle executor: it leads
  source.await_reader(idler.get_id());
  std::thread::id me = std::this_thread::get_id();
  std::thread feeder([&] {
    source.await_reader(me);  // the idle leader stepped down for this thread
    source.push([&] { mine.set(); });
  });
  mine.wait(gate, ep::InputGate::Expect::kReply);
  CHECK(source.last_reader() == me);
  feeder.join();
  source.push([&] { idle.set(); });  // the standby covers the idle one now
  idler.join();
  CHECK(idle.ready);
}

TEST_CASE("input gate: with several replies awaited, the standby reads for all") {
  FakeSource source;
  ep::InputGate gate;
  gate.start(source);
  Box first, second;
  std::thread::id me = std::this_thread::get_id();
  std::thread other;
  std::thread feeder([&] {
    source.await_reader(me);  // this thread leads; the other one follows
    other = std::thread([&] { second.wait(gate, ep::InputGate::Expect::kReply); });
    while (gate.waiting() < 1) std::this_thread::yield();
    source.push([&] { first.set(); });
  });
  first.wait(gate, ep::InputGate::Expect::kReply);
  feeder.join();
  // The role went to the standby rather than to the other waiter.
  source.push([&] { second.set(); });
  other.join();
  CHECK(second.ready);
  CHECK(source.last_reader() != me);
  CHECK(source.last_reader() != other.get_id());
}
