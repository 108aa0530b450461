// Reusing ErlangEventLoop selectors (core/uv_selector_pool) and the
// non-blocking first turn of a wait (UvSelector::poll_now), without Python.
#include "core/uv_selector_pool.hpp"

#include <doctest/doctest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <memory>

#include "test_pipe.hpp"

using ep_test::Pipe;

TEST_CASE("uv_selector: poll_now reports readiness and wake-ups without waiting") {
  ep::UvSelector sel;
  REQUIRE(sel.init() == 0);
  CHECK_FALSE(sel.poll_now());
  sel.wakeup();
  CHECK(sel.poll_now());        // the wake-up, consumed here
  CHECK_FALSE(sel.poll_now());  // and only once
  Pipe p;
  REQUIRE(sel.watch(p.fds[0], UV_READABLE) == 0);
  REQUIRE(write(p.fds[1], "x", 1) == 1);
  CHECK(sel.poll_now());
  REQUIRE(sel.ready_list().size() == 1);
  CHECK(sel.ready_list()[0].first == p.fds[0]);
}

TEST_CASE("uv_selector_pool: a given-back selector is reused, without its watches") {
  std::unique_ptr<ep::UvSelector> a;
  REQUIRE(ep::take_selector(a) == 0);
  Pipe p;
  REQUIRE(a->watch(p.fds[0], UV_READABLE) == 0);
  REQUIRE(write(p.fds[1], "x", 1) == 1);
  ep::UvSelector* first = a.get();
  ep::give_back_selector(std::move(a));
  std::unique_ptr<ep::UvSelector> b;
  REQUIRE(ep::take_selector(b) == 0);
  CHECK(b.get() == first);
  CHECK(b->watched() == 0);
  REQUIRE(b->select(0) == 0);
  CHECK(b->ready_list().empty());  // the old watch is gone
  REQUIRE(b->watch(p.fds[0], UV_READABLE) == 0);
  REQUIRE(b->select(-1) == 0);
  CHECK(b->ready_list().size() == 1);
  ep::give_back_selector(std::move(b));
}

TEST_CASE("uv_selector_pool: a forked child never reuses its parent's loops") {
  std::unique_ptr<ep::UvSelector> a;
  REQUIRE(ep::take_selector(a) == 0);
  ep::UvSelector* parents = a.get();
  ep::give_back_selector(std::move(a));
  pid_t child = fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    std::unique_ptr<ep::UvSelector> b;
    int ok = ep::take_selector(b) == 0 && b.get() != parents;
    _exit(ok ? 0 : 1);
  }
  int status = 0;
  REQUIRE(waitpid(child, &status, 0) == child);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  std::unique_ptr<ep::UvSelector> c;  // the parent's pool is unchanged
  REQUIRE(ep::take_selector(c) == 0);
  CHECK(c.get() == parents);
  ep::give_back_selector(std::move(c));
}
