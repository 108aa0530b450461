// Reads each incoming message's header and routes it: requests to their
// context's executor, control messages handled here. Runs on whichever thread
// reads the input (input_gate.hpp) and never touches Python, except an
// interrupt (Context::interrupt, which takes the GIL for a moment).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string_view>
#include <vector>

#include "core/context.hpp"
#include "core/msgpack_reader.hpp"

namespace ep {

class Dispatcher {
 public:
  // Runs a job that takes the GIL. The port program's input thread may block
  // on it; the driver's scheduler threads must not, so the driver passes one
  // that runs the job on another thread (after everything such posted before).
  using GilRunner = std::function<void(std::function<void()>)>;

  explicit Dispatcher(std::vector<std::unique_ptr<Context>>& contexts, GilRunner gil_runner = {})
      : contexts_(contexts), gil_runner_(std::move(gil_runner)) {}

  void on_frame(std::string_view message);
  void on_oversized(std::string_view head, uint64_t declared_len, size_t max_frame);
  void on_truncated();

  bool shutdown_requested() const { return shutdown_; }

 private:
  void protocol_error(std::string_view reason);
  void error_reply(std::string_view reqid, std::string_view reason);
  void read_trailer(MsgpackReader& in, uint32_t trailing, uint32_t body, Request& request);
  bool oversized_for_waiter(MsgpackReader& in, uint64_t type, uint32_t n, uint64_t declared_len,
                            size_t max_frame);

  void run_with_gil(std::function<void()> job);

  std::vector<std::unique_ptr<Context>>& contexts_;
  GilRunner gil_runner_;
  bool shutdown_ = false;
  bool nested_batch_ = false;  // inside a batch: a batch in it is an error
};

// Builds and sends the port program's hello.
void send_hello(int contexts);

}  // namespace ep
