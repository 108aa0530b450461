// Reads each incoming message's header and routes it: requests to their
// context's executor, control messages handled here. Runs on whichever thread
// reads the input (input_gate.hpp) and never touches Python, except an
// interrupt (Context::interrupt, which takes the GIL for a moment).
#pragma once

#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include "core/context.hpp"
#include "core/msgpack_reader.hpp"

namespace ep {

class Dispatcher {
 public:
  explicit Dispatcher(std::vector<std::unique_ptr<Context>>& contexts) : contexts_(contexts) {}

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

  std::vector<std::unique_ptr<Context>>& contexts_;
  bool shutdown_ = false;
  bool nested_batch_ = false;  // inside a batch: a batch in it is an error
};

// Builds and sends the port program's hello.
void send_hello(int contexts);

}  // namespace ep
