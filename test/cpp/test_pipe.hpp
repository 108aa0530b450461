// A non-blocking pipe for the C++ tests, closed when it goes out of scope.
#pragma once

#include <doctest/doctest.h>
#include <fcntl.h>
#include <unistd.h>

namespace ep_test {

struct Pipe {
  int fds[2] = {-1, -1};
  Pipe() { REQUIRE(pipe2(fds, O_NONBLOCK | O_CLOEXEC) == 0); }
  ~Pipe() {
    close(fds[0]);
    close(fds[1]);
  }
  Pipe(const Pipe&) = delete;
  Pipe& operator=(const Pipe&) = delete;
};

}  // namespace ep_test
