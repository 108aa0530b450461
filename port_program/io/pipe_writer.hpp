// The port program's MessageSink: frames written to the protocol pipe with the
// {packet,4} length prefix. Writers that arrive while another thread is writing
// append to a pending buffer that the writing thread flushes in the same write,
// so concurrent replies coalesce into few system calls.
#pragma once

#include <mutex>
#include <string>

#include "core/message_sink.hpp"
#include "io/fd.hpp"

namespace ep {

class PipeWriter : public MessageSink {
 public:
  explicit PipeWriter(Fd fd);
  void send(std::string& message) override;
  void send_framed(std::string_view frames) override;

 private:
  void write_all(std::string_view bytes);
  void write_coalesced(std::string_view bytes);

  Fd fd_;
  std::mutex mu_;
  bool writing_ = false;
  std::string pending_;
  std::string spare_;
};

}  // namespace ep
