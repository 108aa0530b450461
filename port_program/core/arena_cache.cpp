#include "core/arena_cache.hpp"

#include <Python.h>
#include <sys/mman.h>

namespace ep {

void ArenaCache::install() {
  PyObjectArenaAllocator allocator{
      this, [](void* ctx, size_t size) { return static_cast<ArenaCache*>(ctx)->allocate(size); },
      [](void* ctx, void* ptr, size_t size) { static_cast<ArenaCache*>(ctx)->release(ptr, size); }};
  PyObject_SetArenaAllocator(&allocator);
}

void* ArenaCache::allocate(size_t size) {
  {
    std::lock_guard lk(mu_);
    for (auto it = free_.rbegin(); it != free_.rend(); ++it) {
      if (it->size == size) {
        void* ptr = it->ptr;
        free_.erase(std::next(it).base());
        free_bytes_ -= size;
        return ptr;
      }
    }
  }
  // What CPython's own arena allocator does.
  void* ptr = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  return ptr == MAP_FAILED ? nullptr : ptr;
}

void ArenaCache::release(void* ptr, size_t size) {
  {
    std::lock_guard lk(mu_);
    if (free_bytes_ + size <= max_bytes_) {
      free_.push_back({ptr, size});
      free_bytes_ += size;
      return;
    }
  }
  munmap(ptr, size);
}

size_t ArenaCache::cached_bytes() {
  std::lock_guard lk(mu_);
  return free_bytes_;
}

}  // namespace ep
