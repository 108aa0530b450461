// Python's arenas kept warm (core/arena_cache).
#include "core/arena_cache.hpp"

#include <doctest/doctest.h>

#include <cstring>

TEST_CASE("arena cache: a freed arena is handed out again, up to the cap") {
  constexpr size_t kArena = 1u << 20;
  ep::ArenaCache cache(2 * kArena);
  void* a = cache.allocate(kArena);
  void* b = cache.allocate(kArena);
  void* c = cache.allocate(kArena);
  REQUIRE(a);
  REQUIRE(b);
  REQUIRE(c);
  std::memset(a, 1, kArena);  // usable memory
  cache.release(a, kArena);
  cache.release(b, kArena);
  CHECK(cache.cached_bytes() == 2 * kArena);
  cache.release(c, kArena);  // over the cap: unmapped
  CHECK(cache.cached_bytes() == 2 * kArena);
  void* d = cache.allocate(kArena);  // the most recently freed first
  CHECK(d == b);
  void* e = cache.allocate(kArena);
  CHECK(e == a);
  CHECK(static_cast<unsigned char*>(e)[kArena - 1] == 1);  // the same pages, kept
  CHECK(cache.cached_bytes() == 0);
  void* other = cache.allocate(kArena / 2);  // another size: mapped anew
  REQUIRE(other);
  cache.release(other, kArena / 2);
  cache.release(d, kArena);
  CHECK(cache.allocate(kArena) == d);  // a cached arena of the wrong size is skipped
  cache.release(d, kArena);
  cache.release(e, kArena);
}
