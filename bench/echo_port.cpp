// bench_echo_port: the raw baseline for bench/py_bench.erl.
//
// A minimal {packet,4} echo port program: it reads frames (a 4-byte big-endian
// payload length, then the payload) from fd 0 and writes every payload back as a
// frame on fd 1. Each read() takes as many bytes as are available; all the complete
// frames of one read are echoed with a single write(). An echoed frame is
// byte-for-byte the frame that came in, so the batch is simply the prefix of the
// buffer that holds complete frames; a partial frame at its end is kept for the
// next read. Exits with status 0 on end of input, 1 on a read/write error and 2
// when a frame cannot be buffered.
//
// With the argument `sink' it is the raw baseline of a one-way transfer: it
// reads and drops every frame, and answers each empty frame with an empty frame
// (the sender's "all received?").
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>
#include <vector>

namespace {

constexpr size_t kHeader = 4;
constexpr size_t kInitialBuffer = 256 * 1024;

// Writes all of [data, data + len) to fd; false on error.
bool write_all(int fd, const char* data, size_t len) {
  while (len > 0) {
    ssize_t n = ::write(fd, data, len);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    data += n;
    len -= static_cast<size_t>(n);
  }
  return true;
}

uint32_t read_be32(const char* p) {
  const auto* u = reinterpret_cast<const unsigned char*>(p);
  return (uint32_t{u[0]} << 24) | (uint32_t{u[1]} << 16) | (uint32_t{u[2]} << 8) | uint32_t{u[3]};
}

}  // namespace

// Reads frames until EOF; acknowledges empty frames only.
int sink() {
  std::vector<char> buf(kInitialBuffer);
  size_t filled = 0;  // bytes of an incomplete header kept for the next read
  uint64_t skip = 0;  // payload bytes of the current frame still to drop
  for (;;) {
    ssize_t n = ::read(0, buf.data() + filled, buf.size() - filled);
    if (n == 0) return 0;
    if (n < 0) {
      if (errno == EINTR) continue;
      return 1;
    }
    size_t avail = filled + static_cast<size_t>(n), pos = 0;
    while (pos < avail) {
      if (skip > 0) {
        size_t d = avail - pos < skip ? avail - pos : static_cast<size_t>(skip);
        pos += d;
        skip -= d;
        continue;
      }
      if (avail - pos < kHeader) break;
      skip = read_be32(buf.data() + pos);
      pos += kHeader;
      if (skip == 0 && !write_all(1, "\0\0\0\0", kHeader)) return 1;
    }
    filled = avail - pos;
    if (filled > 0) std::memmove(buf.data(), buf.data() + pos, filled);
  }
}

int main(int argc, char** argv) {
  if (argc > 1 && std::strcmp(argv[1], "sink") == 0) return sink();
  std::vector<char> buf(kInitialBuffer);
  size_t filled = 0;  // bytes in buf[0, filled) not yet echoed

  for (;;) {
    if (filled == buf.size()) {
      // Only reached when one frame is larger than the buffer: make room for it.
      size_t need = kHeader + read_be32(buf.data());
      try {
        buf.resize(need > buf.size() * 2 ? need : buf.size() * 2);
      } catch (const std::bad_alloc&) {
        return 2;
      }
    }
    ssize_t n = ::read(0, buf.data() + filled, buf.size() - filled);
    if (n == 0) return 0;  // EOF: the port was closed
    if (n < 0) {
      if (errno == EINTR) continue;
      return 1;
    }
    filled += static_cast<size_t>(n);

    // Find the end of the last complete frame.
    size_t complete = 0;
    while (filled - complete >= kHeader) {
      size_t frame = kHeader + read_be32(buf.data() + complete);
      if (filled - complete < frame) break;
      complete += frame;
    }
    if (complete == 0) continue;

    if (!write_all(1, buf.data(), complete)) return 1;
    filled -= complete;
    if (filled > 0) std::memmove(buf.data(), buf.data() + complete, filled);
  }
}
