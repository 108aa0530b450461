// The libuv selector of ErlangEventLoop (core/uv_selector), without Python.
#include "core/uv_selector.hpp"

#include <doctest/doctest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <thread>
#include <vector>

#include "test_pipe.hpp"

using ep_test::Pipe;

TEST_CASE("uv_selector: readiness of a watched fd, and only of it") {
  ep::UvSelector sel;
  REQUIRE(sel.init() == 0);
  Pipe p;
  REQUIRE(sel.watch(p.fds[0], UV_READABLE) == 0);
  REQUIRE(sel.select(0) == 0);
  CHECK(sel.ready_list().empty());
  REQUIRE(write(p.fds[1], "x", 1) == 1);
  REQUIRE(sel.select(-1) == 0);
  REQUIRE(sel.ready_list().size() == 1);
  CHECK(sel.ready_list()[0].first == p.fds[0]);
  CHECK(sel.ready_list()[0].second == UV_READABLE);
  // Readable and writable at once, then unwatched.
  REQUIRE(sel.watch(p.fds[1], UV_WRITABLE) == 0);
  REQUIRE(sel.select(-1) == 0);
  CHECK(sel.ready_list().size() == 2);
  REQUIRE(sel.watch(p.fds[0], 0) == 0);
  REQUIRE(sel.watch(p.fds[1], 0) == 0);
  CHECK(sel.watched() == 0);
  REQUIRE(sel.select(0) == 0);
  CHECK(sel.ready_list().empty());
}

TEST_CASE("uv_selector: a timeout ends the wait, a wakeup from another thread too") {
  ep::UvSelector sel;
  REQUIRE(sel.init() == 0);
  auto t0 = std::chrono::steady_clock::now();
  REQUIRE(sel.select(30) == 0);
  CHECK(std::chrono::steady_clock::now() - t0 >= std::chrono::milliseconds(29));
  CHECK(sel.ready_list().empty());
  std::thread waker([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    sel.wakeup();
  });
  REQUIRE(sel.select(-1) == 0);  // returns: no timeout, no fd
  waker.join();
  // A wakeup before the wait makes the next wait return at once.
  sel.wakeup();
  REQUIRE(sel.select(-1) == 0);
}

TEST_CASE("uv_selector: a regular file cannot be watched (an error, not an abort)") {
  ep::UvSelector sel;
  REQUIRE(sel.init() == 0);
  FILE* f = tmpfile();
  REQUIRE(f != nullptr);
  CHECK(sel.watch(fileno(f), UV_READABLE) == UV_EPERM);
  CHECK(sel.watched() == 0);
  fclose(f);
}

TEST_CASE("uv_selector: signals through uv_signal, on this thread") {
  ep::UvSelector sel;
  REQUIRE(sel.init() == 0);
  REQUIRE(sel.signal_watch(SIGUSR2, true) == 0);
  REQUIRE(raise(SIGUSR2) == 0);
  std::vector<int> got;
  for (int i = 0; i < 10 && got.empty(); ++i) {
    REQUIRE(sel.select(100) == 0);
    got = sel.take_signals();
  }
  REQUIRE(got.size() == 1);
  CHECK(got[0] == SIGUSR2);
  REQUIRE(sel.signal_watch(SIGUSR2, false) == 0);
  CHECK(sel.signal_watch(SIGKILL, true) == UV_EINVAL);
}
