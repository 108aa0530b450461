// Leader/follower reading (core/input_gate): who reads, and who gets what was read.
#include "core/input_gate.hpp"

#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
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
  void read_polling(unsigned us) override { take(true, std::chrono::microseconds(us)); }
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
  // Whoever waits for input in read_interruptible() or read_polling() now.
  std::thread::id reader() {
    std::lock_guard l(mu_);
    return reading_;
  }
  // Blocks until `id` waits for input in read_interruptible().
  void await_reader(std::thread::id id) {
    std::unique_lock l(mu_);
    cv_.wait(l, [&] { return reading_ == id; });
  }

 private:
  // Runs the next action; returns without one when kicked (if interruptible)
  // or, with a limit, when it passes.
  void take(bool interruptible, std::optional<std::chrono::microseconds> limit = std::nullopt) {
    std::function<void()> action;
    {
      std::unique_lock l(mu_);
      reading_ = std::this_thread::get_id();
      cv_.notify_all();
      auto ready = [&] { return !items_.empty() || (interruptible && kicked_); };
      if (limit) {
        cv_.wait_for(l, *limit, ready);
      } else {
        cv_.wait(l, ready);
      }
      reading_ = {};
      if ((interruptible && kicked_) || items_.empty()) {
        if (interruptible) kicked_ = false;
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

// Blocks until `t` waits in the gate: as the leader reading, or as a follower
// (if the standby took the vacant role before `t` came, under load).
void await_in_gate(FakeSource& source, ep::InputGate& gate, const std::thread& t) {
  while (source.reader() != t.get_id() && gate.waiting() == 0) std::this_thread::yield();
}

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
  await_in_gate(source, gate, idler);           // (or the standby does: cold too)
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

TEST_CASE("input gate: read_for takes the role from an idle leader, then hands it back") {
  FakeSource source;
  ep::InputGate gate;
  gate.start(source);
  Box idle;
  std::thread idler([&] { idle.wait(gate); });  // an idle executor: it leads
  await_in_gate(source, gate, idler);           // (or the standby does: cold too)
  // An event loop's thread that just answered: it reads its own next input.
  std::atomic<bool> mine{false};
  std::thread::id me = std::this_thread::get_id();
  std::thread feeder([&] {
    source.await_reader(me);  // the idle leader stepped down for this thread
    source.push([&] { mine.store(true); });
  });
  CHECK(gate.read_for(2'000'000, [&] { return mine.load(); }));
  feeder.join();
  CHECK(mine.load());
  CHECK(source.last_reader() == std::this_thread::get_id());
  // Nothing more comes within the window: the role goes back to the idle
  // follower, which reads its own input.
  std::atomic<bool> never{false};
  CHECK(gate.read_for(1000, [&] { return never.load(); }));
  std::thread::id idler_id = idler.get_id();
  source.push([&] { idle.set(); });
  idler.join();
  CHECK(idle.ready);
  CHECK(source.last_reader() == idler_id);
}

TEST_CASE("input gate: read_for leaves a hot reader alone, and needs a source") {
  ep::InputGate no_source;
  CHECK_FALSE(no_source.read_for(1000, [] { return false; }));  // the linked-in driver
  FakeSource source;
  ep::InputGate gate;
  gate.start(source);
  Box mine;
  std::thread waiter([&] { mine.wait(gate, ep::InputGate::Expect::kReply); });  // hot: it leads
  source.await_reader(waiter.get_id());
  CHECK_FALSE(gate.read_for(1000, [] { return false; }));
  source.push([&] { mine.set(); });
  waiter.join();
  CHECK(mine.ready);
}
