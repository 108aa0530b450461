// Python's object arenas, kept warm. pymalloc returns an arena to the system
// (munmap) as soon as its last object is freed, and maps a fresh one for the
// next burst; on these VMs touching a fresh page costs ~15 µs, so a loop that
// runs thousands of tasks at a time paid ~4 ms per 1 MiB arena again and
// again. The cache keeps up to `max_bytes` of freed arenas (still mapped and
// touched) and hands them out first.
#pragma once

#include <cstddef>
#include <mutex>
#include <vector>

namespace ep {

class ArenaCache {
 public:
  explicit ArenaCache(size_t max_bytes) : max_bytes_(max_bytes) {}
  ArenaCache(const ArenaCache&) = delete;
  ArenaCache& operator=(const ArenaCache&) = delete;

  // Makes Python allocate its arenas through this cache (before Py_Initialize).
  void install();

  void* allocate(size_t size);
  void release(void* ptr, size_t size);
  size_t cached_bytes();

 private:
  struct Arena {
    void* ptr;
    size_t size;
  };
  const size_t max_bytes_;
  std::mutex mu_;
  std::vector<Arena> free_;  // most recently freed last (its pages are the warmest)
  size_t free_bytes_ = 0;
};

}  // namespace ep
