// The port program's I/O thread: a libuv loop that reads the pipes behind fds 1
// and 2 (forwarded as output messages) and runs the timers of an orderly
// shutdown and of the memory cap. The protocol pipe is not read here: the
// threads that wait for input read it themselves (io/pipe_source.hpp).
#pragma once

#include <uv.h>

#include <array>
#include <atomic>
#include <functional>
#include <memory>
#include <vector>

#include "core/context.hpp"
#include "io/fd.hpp"

namespace ep {

class PortLoop {
 public:
  PortLoop(Fd stdout_read, Fd stderr_read, std::vector<std::unique_ptr<Context>>& contexts);
  PortLoop(const PortLoop&) = delete;
  PortLoop& operator=(const PortLoop&) = delete;

  // Runs until the process exits: at end of input (PipeSource exits at once) or
  // after request_shutdown() (when the contexts are idle, within 1 s).
  [[noreturn]] void run();

  // A shutdown message was read (on any thread): exit once the contexts are idle.
  void request_shutdown();

  // Caps resident memory at `bytes`, checked every 20 ms: crossing it raises
  // MemoryError in the Python code running then (the request fails, the
  // context lives on); still over after kMemoryGraceMs, or at twice the cap,
  // the process is killed (SIGKILL, as the kernel's OOM killer would).
  void cap_memory(size_t bytes);
  static constexpr uint64_t kMemoryGraceMs = 2000;

 private:
  // One readable pipe: the uv handle, and what to do with the bytes.
  struct Reader {
    uv_pipe_t pipe;
    PortLoop* loop;
    std::function<void(std::string_view)> on_data;
    std::function<void()> on_eof;
  };

  void open(Reader& reader, Fd fd);
  void begin_shutdown();
  [[noreturn]] static void exit_now();
  void raise_memory_error_async();

  uv_loop_t loop_;
  std::vector<std::unique_ptr<Context>>& contexts_;
  std::array<char, 64 * 1024> read_buffer_;
  Reader stdout_{}, stderr_{};
  uv_async_t shutdown_async_{};
  uv_timer_t shutdown_timer_{};
  uv_timer_t memory_timer_{};
  size_t max_memory_ = 0;
  uint64_t over_since_ = 0;           // uv_now() when usage went over the cap; 0: under
  std::atomic<bool> raising_{false};  // a raise_memory_error_async thread runs
  uint64_t shutdown_deadline_ = 0;
};

}  // namespace ep
