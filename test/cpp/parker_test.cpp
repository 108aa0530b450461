// The wake-up token of waiting threads (core/parker).
#include "core/parker.hpp"

#include <doctest/doctest.h>

#include <atomic>
#include <thread>

TEST_CASE("parker: an unpark before the park is kept, once") {
  ep::Parker parker;
  parker.unpark();
  parker.unpark();  // tokens do not add up
  parker.park();    // takes the one token: returns at once
  std::atomic<bool> set{false};
  std::thread waker([&] {
    set = true;
    parker.unpark();
  });
  parker.park();  // no token left: sleeps until the waker's unpark
  CHECK(set.load());
  waker.join();
}

TEST_CASE("parker: every unpark ends a park, from another thread") {
  ep::Parker to_worker, to_main;
  constexpr int kRounds = 20000;
  int seen = 0;
  std::thread worker([&] {
    for (int i = 0; i < kRounds; ++i) {
      to_worker.park();
      ++seen;  // ordered by the parker: main reads it only after to_main
      to_main.unpark();
    }
  });
  for (int i = 0; i < kRounds; ++i) {
    to_worker.unpark();
    to_main.park();
    CHECK(seen == i + 1);
  }
  worker.join();
}
