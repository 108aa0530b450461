// The inbox of an event loop (core/loop_inbox): batches, one wake-up per batch.
#include "core/loop_inbox.hpp"

#include <doctest/doctest.h>
#include <poll.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

namespace {

ep::Request task(int n) {
  ep::Request r;
  r.type = 48;
  r.bytes = std::to_string(n);
  return r;
}

bool readable(int fd) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, 0) == 1;
}

}  // namespace

TEST_CASE("loop inbox: a batch in arrival order, one wake-up for it") {
  ep::LoopInbox inbox(0);
  REQUIRE(inbox.fd() >= 0);
  CHECK_FALSE(readable(inbox.fd()));
  for (int i = 0; i < 100; ++i) inbox.post(task(i));
  CHECK(readable(inbox.fd()));
  std::vector<ep::Request> batch;
  inbox.take(batch);
  REQUIRE(batch.size() == 100);
  for (int i = 0; i < 100; ++i) CHECK(batch[i].bytes == std::to_string(i));
  CHECK_FALSE(readable(inbox.fd()));  // the wake-up was taken with the batch
  inbox.take(batch);
  CHECK(batch.empty());
  inbox.post(task(7));  // the next post signals again
  CHECK(readable(inbox.fd()));
  inbox.take(batch);
  CHECK(batch.size() == 1);
}

TEST_CASE("loop inbox: posts from another thread are all taken, none lost") {
  ep::LoopInbox inbox(1);
  constexpr int kPosts = 50000;
  std::thread poster([&] {
    for (int i = 0; i < kPosts; ++i) inbox.post(task(i));
  });
  int next = 0;
  std::vector<ep::Request> batch;
  while (next < kPosts) {
    pollfd p{inbox.fd(), POLLIN, 0};
    ::poll(&p, 1, 1000);  // a batch pending always shows as readable
    inbox.take(batch);
    for (const auto& r : batch) {
      CHECK(r.bytes == std::to_string(next));
      ++next;
    }
  }
  poster.join();
  CHECK(next == kPosts);
}

TEST_CASE("loop inbox: a post while the loop spins is seen without a wake-up") {
  ep::LoopInbox inbox(0);
  CHECK_FALSE(inbox.spin(1000));  // nothing comes: false after the time
  auto t0 = std::chrono::steady_clock::now();
  CHECK_FALSE(inbox.spin(5'000'000));  // after a spin in vain, the next one is skipped
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(1));
  std::thread poster([&] {
    while (!inbox.spinning()) std::this_thread::yield();
    inbox.post(task(1));
  });
  CHECK(inbox.spin(5'000'000));  // the post ends the spin
  poster.join();
  CHECK_FALSE(readable(inbox.fd()));  // no eventfd write for a spinning loop
  std::vector<ep::Request> batch;
  inbox.take(batch);
  CHECK(batch.size() == 1);
  inbox.post(task(2));  // not spinning: the usual wake-up
  CHECK(readable(inbox.fd()));
  CHECK(inbox.spin(1000));  // queued already: true at once
  inbox.take(batch);
  CHECK(batch.size() == 1);
  CHECK(inbox.counts().spins == 4);  // and the two that caught a request
  CHECK(inbox.counts().spin_hits == 2);
}
