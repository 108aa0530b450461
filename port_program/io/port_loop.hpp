// The port program's I/O thread: a libuv loop that reads the protocol pipe and
// the pipes behind fds 1 and 2, and hands complete frames to the dispatcher.
#pragma once

#include <uv.h>

#include <array>
#include <functional>
#include <memory>
#include <vector>

#include "core/context.hpp"
#include "core/dispatcher.hpp"
#include "core/frame_reader.hpp"
#include "io/fd.hpp"

namespace ep {

class PortLoop {
 public:
  PortLoop(Fd protocol_in, Fd stdout_read, Fd stderr_read, size_t max_frame,
           std::vector<std::unique_ptr<Context>>& contexts);
  PortLoop(const PortLoop&) = delete;
  PortLoop& operator=(const PortLoop&) = delete;

  // Runs until input ends (exits at once) or a shutdown message was handled
  // (exits when the contexts are idle, within 1 s). Never returns normally.
  [[noreturn]] void run();

  // Kills the process (SIGKILL, as the kernel's OOM killer would) when its
  // resident memory exceeds `bytes`; checked every 20 ms.
  void cap_memory(size_t bytes);

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

  uv_loop_t loop_;
  std::vector<std::unique_ptr<Context>>& contexts_;
  Dispatcher dispatcher_;
  FrameReader frames_;
  std::array<char, 64 * 1024> read_buffer_;
  Reader protocol_{}, stdout_{}, stderr_{};
  uv_timer_t shutdown_timer_{};
  uv_timer_t memory_timer_{};
  size_t max_memory_ = 0;
  uint64_t shutdown_deadline_ = 0;
};

}  // namespace ep
