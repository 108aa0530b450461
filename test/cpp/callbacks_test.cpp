// Async calls in the callback registry (core/callbacks): which eventfds still
// await replies (what an ErlangEventLoop's wait spins for), and delivery.
#include "core/callbacks.hpp"

#include <doctest/doctest.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "io/fd.hpp"

TEST_CASE("callbacks: an eventfd awaits replies while one of its async calls is pending") {
  ep::CallbackRegistry registry;
  ep::Fd a(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  ep::Fd b(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  REQUIRE(a);
  REQUIRE(b);
  CHECK_FALSE(registry.async_waiting(a.get()));
  uint64_t first = registry.register_async(a.get(), 1);
  uint64_t second = registry.register_async(a.get(), 2);
  uint64_t other = registry.register_async(b.get(), 3);
  CHECK(registry.async_waiting(a.get()));
  CHECK(registry.async_waiting(b.get()));

  registry.drop_async(first);  // cancelled: its reply will be dropped
  CHECK(registry.async_waiting(a.get()));
  registry.drop_async(first);  // twice: no effect on the count
  CHECK(registry.async_waiting(a.get()));
  registry.deliver(first, {ep::CallbackReply::Kind::kOk, "late"});
  CHECK(registry.take_async(a.get()).empty());

  registry.deliver(second, {ep::CallbackReply::Kind::kOk, "two"});
  CHECK_FALSE(registry.async_waiting(a.get()));
  uint64_t count = 0;
  CHECK(::read(a.get(), &count, sizeof count) == sizeof count);  // the reply signalled it
  auto results = registry.take_async(a.get());
  REQUIRE(results.size() == 1);
  CHECK(results[0].token == 2);
  CHECK(results[0].reply.payload == "two");
  registry.deliver(second, {ep::CallbackReply::Kind::kOk, "again"});  // a duplicate: dropped
  CHECK(registry.take_async(a.get()).empty());

  registry.forget_async(b.get());  // its loop is gone
  CHECK_FALSE(registry.async_waiting(b.get()));
  registry.deliver(other, {ep::CallbackReply::Kind::kOk, "nobody"});
  CHECK(registry.take_async(b.get()).empty());
}
