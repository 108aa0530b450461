#include "core/stack_room.hpp"

#include <pthread.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>

namespace ep {
namespace {

// What the deepest conversion frame may still need below the check (Python's
// allocator, an exception being formatted); sanitizers' frames are larger. A
// small stack keeps a quarter of itself instead.
#if defined(__SANITIZE_ADDRESS__)
constexpr size_t kReserve = 512 * 1024;
#else
constexpr size_t kReserve = 64 * 1024;
#endif

// The lowest frame address a conversion may use on this thread; 0: not known yet.
thread_local uintptr_t tl_limit = 0;

uintptr_t limit_of_this_thread() {
  pthread_attr_t attr;
  if (pthread_getattr_np(pthread_self(), &attr) != 0) return 1;  // unknown: no limit
  void* low = nullptr;
  size_t size = 0;
  int rc = pthread_attr_getstack(&attr, &low, &size);
  pthread_attr_destroy(&attr);
  if (rc != 0 || low == nullptr) return 1;
  return reinterpret_cast<uintptr_t>(low) + std::min(kReserve, size / 4);
}

}  // namespace

bool stack_nearly_full() {
  if (tl_limit == 0) tl_limit = limit_of_this_thread();
  return reinterpret_cast<uintptr_t>(__builtin_frame_address(0)) < tl_limit;
}

}  // namespace ep
