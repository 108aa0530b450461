// A thread of the driver's own that runs queued jobs in order: the jobs a
// scheduler thread must not run itself (anything that may wait for the GIL,
// joining a closed port's executors).
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>

#include "core/native_thread.hpp"
#include "driver/thread_affinity.hpp"

namespace ep::drv {

class Worker {
 public:
  Worker() : thread_(std::make_unique<NativeThread>([this] { run(); })) {}
  ~Worker() {
    {
      std::lock_guard lk(mu_);
      stop_ = true;
    }
    cv_.notify_one();
    thread_.reset();
  }
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // Any thread; never blocks for long.
  void push(std::function<void()> job) {
    {
      std::lock_guard lk(mu_);
      jobs_.push_back(std::move(job));
    }
    cv_.notify_one();
  }

 private:
  void run() {
    unbind_this_thread();  // created on a scheduler thread
    std::unique_lock lk(mu_);
    while (true) {
      cv_.wait(lk, [this] { return stop_ || !jobs_.empty(); });
      if (jobs_.empty()) return;
      std::function<void()> job = std::move(jobs_.front());
      jobs_.pop_front();
      lk.unlock();
      job();
      job = nullptr;  // what it held goes here, off the lock
      lk.lock();
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> jobs_;
  bool stop_ = false;
  std::unique_ptr<NativeThread> thread_;  // last: starts after the rest exists
};

}  // namespace ep::drv
