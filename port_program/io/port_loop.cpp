#include "io/port_loop.hpp"

#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <thread>

#include "core/output.hpp"
#include "core/protocol.hpp"
#include "core/runtime.hpp"

namespace ep {

namespace {

// libuv calls that set the loop up cannot fail short of a broken process (no
// memory, no fds): say which one did, and exit (the owner sees the status).
void uv_check(int rc, const char* what) {
  if (rc == 0) return;
  std::fprintf(stderr, "erlang_python: %s failed: %s\n", what, uv_strerror(rc));
  std::fflush(stderr);
  std::_Exit(3);
}

}  // namespace

PortLoop::PortLoop(Fd stdout_read, Fd stderr_read, std::vector<std::unique_ptr<Context>>& contexts)
    : contexts_(contexts) {
  uv_check(uv_loop_init(&loop_), "uv_loop_init");
  uv_check(uv_async_init(&loop_, &shutdown_async_,
                         [](uv_async_t* a) { static_cast<PortLoop*>(a->data)->begin_shutdown(); }),
           "uv_async_init");
  shutdown_async_.data = this;  // also keeps the loop running after fds 1 and 2 close
  stdout_.on_data = [](std::string_view b) { output::send_raw(protocol::kStdout, -1, b); };
  stderr_.on_data = [](std::string_view b) { output::send_raw(protocol::kStderr, -1, b); };
  stdout_.on_eof = stderr_.on_eof = [] {};
  open(stdout_, std::move(stdout_read));
  open(stderr_, std::move(stderr_read));
}

void PortLoop::open(Reader& reader, Fd fd) {
  reader.loop = this;
  uv_check(uv_pipe_init(&loop_, &reader.pipe, 0), "uv_pipe_init");
  reader.pipe.data = &reader;
  if (uv_pipe_open(&reader.pipe, fd.get()) != 0) {
    std::fprintf(stderr, "erlang_python: cannot watch fd %d\n", fd.get());
    std::_Exit(3);
  }
  fd.release();  // the handle owns it now
  int rc = uv_read_start(
      reinterpret_cast<uv_stream_t*>(&reader.pipe),
      [](uv_handle_t* h, size_t, uv_buf_t* buf) {
        auto* self = static_cast<Reader*>(h->data)->loop;
        *buf = uv_buf_init(self->read_buffer_.data(), self->read_buffer_.size());
      },
      [](uv_stream_t* s, ssize_t n, const uv_buf_t* buf) {
        auto* r = static_cast<Reader*>(s->data);
        if (n > 0) {
          r->on_data(std::string_view(buf->base, static_cast<size_t>(n)));
        } else if (n < 0) {
          (void)uv_read_stop(s);  // cannot fail on a reading stream
          r->on_eof();
        }
      });
  uv_check(rc, "uv_read_start");
}

void PortLoop::request_shutdown() {
  // Fails only on a handle that is closing: the loop is going away anyway.
  if (int rc = uv_async_send(&shutdown_async_); rc != 0)
    std::fprintf(stderr, "erlang_python: uv_async_send failed: %s\n", uv_strerror(rc));
}

void PortLoop::begin_shutdown() {
  if (shutdown_deadline_ != 0) return;
  shutdown_deadline_ = uv_now(&loop_) + 1000;
  uv_check(uv_timer_init(&loop_, &shutdown_timer_), "uv_timer_init");
  shutdown_timer_.data = this;
  uv_check(uv_timer_start(
               &shutdown_timer_,
               [](uv_timer_t* t) {
                 auto* self = static_cast<PortLoop*>(t->data);
                 bool idle = true;
                 for (auto& c : self->contexts_) idle = idle && c->idle();
                 if (idle || uv_now(&self->loop_) >= self->shutdown_deadline_) exit_now();
               },
               0, 5),
           "uv_timer_start");
}

namespace {

size_t resident_bytes() {
  FILE* f = std::fopen("/proc/self/statm", "r");
  if (!f) return 0;
  unsigned long size = 0, resident = 0;
  int n = std::fscanf(f, "%lu %lu", &size, &resident);
  std::fclose(f);
  return n == 2 ? resident * static_cast<size_t>(sysconf(_SC_PAGESIZE)) : 0;
}

}  // namespace

// Raising needs the GIL, which Python code busy in C (one huge allocation)
// holds until it is done: a thread of its own waits for it, so that the timer
// keeps ticking and can still kill the process at twice the cap. The process
// only ends by exiting, so the detached thread never outlives what it uses.
void PortLoop::raise_memory_error_async() {
  if (raising_.exchange(true)) return;
  std::thread([this] {
    Runtime::instance().raise_memory_error();
    raising_ = false;
  }).detach();
}

void PortLoop::cap_memory(size_t bytes) {
  max_memory_ = bytes;
  uv_check(uv_timer_init(&loop_, &memory_timer_), "uv_timer_init");
  memory_timer_.data = this;
  uv_check(uv_timer_start(
               &memory_timer_,
               [](uv_timer_t* t) {
                 auto* self = static_cast<PortLoop*>(t->data);
                 size_t used = resident_bytes();
                 uint64_t now = uv_now(&self->loop_);
                 if (used <= self->max_memory_) {
                   self->over_since_ = 0;  // re-armed
                   return;
                 }
                 // Over the cap: first MemoryError in the Python code running now (its
                 // request fails, the context lives on); killed if it is still over
                 // after kMemoryGraceMs, or at twice the cap.
                 if (self->over_since_ == 0) {
                   self->over_since_ = now;
                   self->raise_memory_error_async();
                 }
                 if (now - self->over_since_ >= kMemoryGraceMs || used / 2 > self->max_memory_) {
                   std::fprintf(stderr,
                                "erlang_python: resident memory %zu bytes exceeds max_memory %zu\n",
                                used, self->max_memory_);
                   std::fflush(stderr);
                   kill(getpid(), SIGKILL);
                 }
               },
               20, 20),
           "uv_timer_start");
  uv_unref(reinterpret_cast<uv_handle_t*>(&memory_timer_));
}

void PortLoop::exit_now() {
  // Python may be stuck in a loop on an executor: no joins, no finalisation.
  std::fflush(nullptr);
  std::_Exit(0);
}

void PortLoop::run() {
  // returns when no handle is active (the pipes closed): the end either way
  (void)uv_run(&loop_, UV_RUN_DEFAULT);
  exit_now();
}

}  // namespace ep
