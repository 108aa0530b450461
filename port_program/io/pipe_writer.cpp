#include "io/pipe_writer.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>

#include "core/frame_reader.hpp"

namespace ep {

PipeWriter::PipeWriter(Fd fd) : fd_(std::move(fd)) {
  int flags = fcntl(fd_.get(), F_GETFL);
  if (flags >= 0) fcntl(fd_.get(), F_SETFL, flags & ~O_NONBLOCK);
}

void PipeWriter::write_all(std::string_view bytes) {
  while (!bytes.empty()) {
    ssize_t n = ::write(fd_.get(), bytes.data(), bytes.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      // The Erlang side is gone: nobody is left to serve.
      std::_Exit(0);
    }
    bytes.remove_prefix(static_cast<size_t>(n));
  }
}

void PipeWriter::send(std::string& message) {
  uint32_t len = static_cast<uint32_t>(message.size() - kHeaderRoom);
  message[0] = static_cast<char>(len >> 24);
  message[1] = static_cast<char>(len >> 16);
  message[2] = static_cast<char>(len >> 8);
  message[3] = static_cast<char>(len);
  write_coalesced(message);
}

void PipeWriter::send_framed(std::string_view frames) {
  write_coalesced(frames);
}

void PipeWriter::write_coalesced(std::string_view bytes) {
  std::unique_lock lk(mu_);
  if (writing_) {
    pending_.append(bytes);
    return;
  }
  writing_ = true;
  lk.unlock();
  write_all(bytes);
  lk.lock();
  while (!pending_.empty()) {
    spare_.swap(pending_);
    lk.unlock();
    write_all(spare_);
    spare_.clear();
    lk.lock();
  }
  writing_ = false;
}

}  // namespace ep
