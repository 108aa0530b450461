// Event loops a port program hosts for py_event_loop (spec/PROTOCOL.md, "Event
// loops"): a thread per loop runs an asyncio loop forever. The thread that reads
// the input appends task requests to the loop's inbox and signals an eventfd the
// loop watches; the loop takes the whole inbox at once, and its replies leave
// in one write per batch.
#pragma once

#include <Python.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/native_thread.hpp"
#include "core/request.hpp"
#include "core/spin_policy.hpp"

namespace ep {

class LoopInbox {
 public:
  explicit LoopInbox(uint32_t id);
  ~LoopInbox();
  LoopInbox(const LoopInbox&) = delete;
  LoopInbox& operator=(const LoopInbox&) = delete;

  uint32_t id() const { return id_; }
  int fd() const { return fd_; }
  // Reading thread: queues a request and wakes the loop if it may be asleep.
  void post(Request&& request);
  // Loop thread: everything queued so far (in arrival order), into `batch`
  // (its previous contents are dropped).
  void take(std::vector<Request>& batch);

  // Loop thread, GIL released: waits up to `us` microseconds, without
  // sleeping, for a request; true if one is queued. A loop that just answered
  // a request spins before it sleeps: the next request of a caller in a loop
  // then costs no thread wake-up (cf. read_spin_us). While requests keep
  // coming within the spin, the loop's thread reads the port program's input
  // itself meanwhile (InputGate::read_for): no other thread reads the
  // request and hands it over.
  bool spin(unsigned us);
  // Whether the loop is in spin() (tests, diagnostics).
  bool spinning() {
    std::lock_guard lk(mu_);
    return spinning_;
  }

  // Loop thread, GIL held: replies are framed into `out` and leave with flush().
  std::string& out() { return out_; }
  // Sends the framed replies in one write.
  void flush();

  // Loop thread: the tasks the loop ran without its host's Python code, and
  // its spins (those that caught a request).
  struct Counts {
    uint64_t submitted = 0;
    uint64_t completed = 0;
    uint64_t spins = 0;
    uint64_t spin_hits = 0;
  };
  Counts& counts() { return counts_; }

 private:
  const uint32_t id_;
  int fd_ = -1;
  std::mutex mu_;
  std::vector<Request> queue_;
  bool signalled_ = false;           // the eventfd holds a wake-up not yet taken
  bool spinning_ = false;            // the loop waits in spin(): post() need not wake it
  SpinPolicy policy_;                // used by the loop's thread only
  std::atomic<bool> queued_{false};  // queue_ is not empty (read without the lock)
  std::string out_;                  // framed replies ({packet,4} prefixes included)
  Counts counts_;                    // the loop thread's
};

// The loops of this port program, made on first use. Loop IDs are small ints.
class Loops {
 public:
  static constexpr uint32_t kMaxLoops = 64;

  Loops() = default;
  Loops(const Loops&) = delete;
  Loops& operator=(const Loops&) = delete;

  // Reading thread: queues `request` for loop `id` (< kMaxLoops), starting the
  // loop's thread first if needed.
  void post(uint32_t id, Request&& request);
  // Any thread: the inbox of loop `id`, or null if it was never started.
  LoopInbox* find(uint32_t id);
  // How long a loop spins for the next request after answering one (µs; the
  // port program's --read-spin-us).
  void set_spin_us(unsigned us) { spin_us_.store(us, std::memory_order_relaxed); }
  unsigned spin_us() const { return spin_us_.load(std::memory_order_relaxed); }

 private:
  struct Hosted {
    std::unique_ptr<LoopInbox> inbox;
    std::unique_ptr<NativeThread> thread;  // runs erlang._loop_host.serve
  };
  std::atomic<unsigned> spin_us_{0};
  std::mutex mu_;
  std::vector<Hosted> loops_ = std::vector<Hosted>(kMaxLoops);
};

}  // namespace ep
