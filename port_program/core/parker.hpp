// A wake-up token for the one thread that waits on it (the futex "parker").
//
// park() sleeps until unpark() is called from any thread, or returns at once
// if unpark() came first; it may also return for no reason, so the caller
// re-checks what it waits for. Unlike a condition variable, waking a thread
// that is not asleep costs no system call, and the woken thread takes no lock:
// a thread woken from pthread_cond_wait gets its mutex back marked contended,
// so its next unlock makes one more futex call, on every wake-up.
#pragma once

#include <atomic>
#include <cstdint>

namespace ep {

class Parker {
 public:
  Parker() = default;
  Parker(const Parker&) = delete;
  Parker& operator=(const Parker&) = delete;

  void park();
  // park(), after polling for an unpark() for up to `spin_us` microseconds
  // without sleeping: a waker then costs no futex wake-up.
  void park_spinning(unsigned spin_us);
  void unpark();

 private:
  static constexpr int32_t kParked = -1, kEmpty = 0, kNotified = 1;
  std::atomic<int32_t> state_{kEmpty};
};

}  // namespace ep
