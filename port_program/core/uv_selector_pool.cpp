// The pool of idle UvSelectors: closing an ErlangEventLoop's selector keeps
// its libuv loop (epoll fd, async eventfd, timer) for the next loop made, as
// `py:call` of a coroutine function makes one loop per call. Making and
// closing a uv_loop_t costs ~50 us of system calls; a pooled one, none.
// The one piece of process-wide mutable state of the loop layer.
#include "core/uv_selector_pool.hpp"

#include <unistd.h>

#include <mutex>
#include <vector>

namespace ep {
namespace {

constexpr size_t kMaxIdle = 4;

struct IdleSelectors {
  std::mutex mu;
  pid_t pid = getpid();  // the process the idle loops belong to
  std::vector<std::unique_ptr<UvSelector>> idle;
};

IdleSelectors& idle_selectors() {
  static IdleSelectors pool;  // destroyed at exit: the loops are closed then
  return pool;
}

// In a forked child the idle loops share their epoll instances with the
// parent's: closing or using one would change the parent's. They are
// abandoned there (their memory and descriptors stay the child's until it
// exits or execs), never touched.
void forget_parents(IdleSelectors& pool) {
  pid_t now = getpid();
  if (now == pool.pid) return;
  for (auto& sel : pool.idle) static_cast<void>(sel.release());
  pool.idle.clear();
  pool.pid = now;
}

}  // namespace

int take_selector(std::unique_ptr<UvSelector>& out) {
  {
    IdleSelectors& pool = idle_selectors();
    std::lock_guard lock(pool.mu);
    forget_parents(pool);
    if (!pool.idle.empty()) {
      out = std::move(pool.idle.back());
      pool.idle.pop_back();
      return 0;
    }
  }
  auto sel = std::make_unique<UvSelector>();
  if (int rc = sel->init(); rc < 0) return rc;
  out = std::move(sel);
  return 0;
}

void give_back_selector(std::unique_ptr<UvSelector> sel) {
  if (!sel || !sel->recycle()) return;  // destroyed here
  IdleSelectors& pool = idle_selectors();
  std::lock_guard lock(pool.mu);
  forget_parents(pool);
  if (pool.idle.size() < kMaxIdle) pool.idle.push_back(std::move(sel));
}

}  // namespace ep
