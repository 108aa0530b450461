// Async calls in the callback registry (core/callbacks): which eventfds still
// await replies, replies to a loop that reads the input itself (no signal),
// and the drain that clears the eventfd.
#include "core/callbacks.hpp"

#include <doctest/doctest.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>

#include "io/fd.hpp"

namespace {

bool readable(int fd) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, 0) == 1;
}

// Whether a loop of `fd` would spin for replies now.
bool waiting(ep::CallbackRegistry& registry, int fd) {
  std::atomic<bool> arrived{false};
  if (!registry.begin_direct(fd, &arrived)) return false;
  registry.end_direct(fd);
  return true;
}

ep::Fd eventfd() {
  return ep::Fd(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
}

}  // namespace

TEST_CASE("callbacks: an eventfd awaits replies while one of its async calls is pending") {
  ep::CallbackRegistry registry;
  ep::Fd a = eventfd();
  ep::Fd b = eventfd();
  REQUIRE(a);
  REQUIRE(b);
  CHECK_FALSE(waiting(registry, a.get()));
  uint64_t first = registry.register_async(a.get(), 1);
  uint64_t second = registry.register_async(a.get(), 2);
  uint64_t other = registry.register_async(b.get(), 3);
  CHECK(waiting(registry, a.get()));
  CHECK(waiting(registry, b.get()));

  registry.drop_async(first);  // cancelled: its reply will be dropped
  CHECK(waiting(registry, a.get()));
  registry.drop_async(first);  // twice: no effect on the count
  CHECK(waiting(registry, a.get()));
  registry.deliver(first, {ep::CallbackReply::Kind::kOk, "late"});
  CHECK_FALSE(readable(a.get()));
  CHECK(registry.take_async(a.get()).empty());

  registry.deliver(second, {ep::CallbackReply::Kind::kOk, "two"});
  CHECK_FALSE(waiting(registry, a.get()));
  CHECK(readable(a.get()));  // the reply signalled it
  auto results = registry.drain_async(a.get(), false);
  CHECK_FALSE(readable(a.get()));  // ... and the drain cleared it
  REQUIRE(results.size() == 1);
  CHECK(results[0].token == 2);
  CHECK(results[0].reply.payload == "two");
  registry.deliver(second, {ep::CallbackReply::Kind::kOk, "again"});  // a duplicate: dropped
  CHECK(registry.drain_async(a.get(), false).empty());

  registry.forget_async(b.get());  // its loop is gone
  CHECK_FALSE(waiting(registry, b.get()));
  registry.deliver(other, {ep::CallbackReply::Kind::kOk, "nobody"});
  CHECK(registry.take_async(b.get()).empty());
}

TEST_CASE("callbacks: a loop reading the input itself gets its replies unsignalled") {
  ep::CallbackRegistry registry;
  ep::Fd fd = eventfd();
  REQUIRE(fd);
  uint64_t id = registry.register_async(fd.get(), 7);
  std::atomic<bool> arrived{false};
  REQUIRE(registry.begin_direct(fd.get(), &arrived));
  registry.deliver(id, {ep::CallbackReply::Kind::kOk, "direct"});
  CHECK(arrived.load());
  CHECK_FALSE(readable(fd.get()));
  CHECK(registry.end_direct(fd.get()));  // queued: the loop drains them now
  auto results = registry.drain_async(fd.get(), false);
  REQUIRE(results.size() == 1);
  CHECK(results[0].reply.payload == "direct");

  // A reply after end_direct signals again; one queued before begin_direct
  // sets the flag at once.
  uint64_t next = registry.register_async(fd.get(), 8);
  uint64_t last = registry.register_async(fd.get(), 9);
  registry.deliver(next, {ep::CallbackReply::Kind::kOk, "signalled"});
  CHECK(readable(fd.get()));
  std::atomic<bool> again{false};
  REQUIRE(registry.begin_direct(fd.get(), &again));
  CHECK(again.load());
  CHECK(registry.end_direct(fd.get()));
  CHECK(registry.drain_async(fd.get(), false).size() == 1);
  CHECK_FALSE(readable(fd.get()));
  registry.deliver(last, {ep::CallbackReply::Kind::kOk, "last"});
  CHECK(registry.drain_async(fd.get(), false).size() == 1);

  // Someone else's signal (a channel's): cleared when forced, or when no
  // result came with it.
  uint64_t one = 1;
  REQUIRE(::write(fd.get(), &one, sizeof one) == sizeof one);
  CHECK(registry.drain_async(fd.get(), false).empty());
  CHECK_FALSE(readable(fd.get()));
  REQUIRE(::write(fd.get(), &one, sizeof one) == sizeof one);
  CHECK(registry.drain_async(fd.get(), true).empty());
  CHECK_FALSE(readable(fd.get()));
}
