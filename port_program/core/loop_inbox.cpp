#include "core/loop_inbox.hpp"

#include <sched.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>

#include "core/py_ref.hpp"
#include "core/runtime.hpp"

namespace ep {

LoopInbox::LoopInbox(uint32_t id) : id_(id), fd_(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {}

LoopInbox::~LoopInbox() {
  if (fd_ >= 0) ::close(fd_);
}

void LoopInbox::post(Request&& request) {
  bool wake;
  {
    std::lock_guard lk(mu_);
    queue_.push_back(std::move(request));
    queued_.store(true, std::memory_order_release);
    wake = !signalled_ && !spinning_;  // a spinning loop sees queued_ (spin() below)
    signalled_ = signalled_ || wake;
  }
  if (wake) {
    uint64_t one = 1;
    ssize_t n = ::write(fd_, &one, sizeof one);
    (void)n;  // fails only on overflow, which the loop's next take clears
  }
}

void LoopInbox::take(std::vector<Request>& batch) {
  batch.clear();
  std::lock_guard lk(mu_);
  batch.swap(queue_);
  queued_.store(false, std::memory_order_relaxed);
  if (signalled_) {
    uint64_t count;
    ssize_t n = ::read(fd_, &count, sizeof count);
    (void)n;  // EAGAIN: the loop woke for this inbox before the write landed
    signalled_ = false;
  }
}

bool LoopInbox::spin(unsigned us) {
  ++counts_.spins;
  {
    std::lock_guard lk(mu_);
    if (!queue_.empty()) {
      ++counts_.spin_hits;
      return true;
    }
    if (policy_.skip()) return false;
    spinning_ = true;
  }
  policy_.spin(Runtime::instance().input(), us,
               [this] { return queued_.load(std::memory_order_acquire); });
  // Whatever post() came while spinning_ was set sent no wake-up: it is in the queue.
  std::lock_guard lk(mu_);
  spinning_ = false;
  bool got = !queue_.empty();
  policy_.record(got);
  if (got) ++counts_.spin_hits;
  return got;
}

void LoopInbox::flush() {
  if (out_.empty()) return;
  Runtime::instance().sink().send_framed(out_);
  out_.clear();
}

namespace {

// The body of a loop's thread: erlang._loop_host.serve(id, fd) runs the loop
// forever (a port program exits with _Exit, never joining it).
void serve(LoopInbox* inbox) {
  PyThreadState* ts = PyThreadState_New(Runtime::instance().interpreter());
  GilHold gil(ts);
  PyRef host = PyRef::steal(PyImport_ImportModule("erlang._loop_host"));
  PyRef done =
      host ? PyRef::steal(PyObject_CallMethod(host.get(), "serve", "Ii", inbox->id(), inbox->fd()))
           : PyRef();
  if (!done) PyErr_Print();  // reaches the logger as stderr output
}

}  // namespace

void Loops::post(uint32_t id, Request&& request) {
  LoopInbox* inbox;
  {
    std::lock_guard lk(mu_);
    Hosted& h = loops_.at(id);
    if (!h.inbox) {
      h.inbox = std::make_unique<LoopInbox>(id);
      LoopInbox* raw = h.inbox.get();
      h.thread = std::make_unique<NativeThread>([raw] { serve(raw); });
    }
    inbox = h.inbox.get();
  }
  inbox->post(std::move(request));
}

LoopInbox* Loops::find(uint32_t id) {
  std::lock_guard lk(mu_);
  return id < kMaxLoops ? loops_[id].inbox.get() : nullptr;
}

}  // namespace ep
