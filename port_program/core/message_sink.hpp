// Where the core's outgoing messages go: the port's pipe, or the driver's output.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace ep {

// Outgoing messages are built in a buffer whose first kHeaderRoom bytes are left
// free, so a transport that needs a length prefix writes it in place: no copy.
inline constexpr size_t kHeaderRoom = 4;

class MessageSink {
 public:
  virtual ~MessageSink() = default;
  // `message` holds kHeaderRoom free bytes followed by one msgpack message. Safe to
  // call from any thread; may block while the reader is slow (backpressure).
  virtual void send(std::string& message) = 0;
  // `frames` holds whole frames, each with its 4-byte big-endian length: sent
  // together (one write for the port's pipe). The default sends them one by one.
  virtual void send_framed(std::string_view frames) {
    std::string one;
    while (frames.size() >= kHeaderRoom) {
      size_t len = (size_t(uint8_t(frames[0])) << 24) | (size_t(uint8_t(frames[1])) << 16) |
                   (size_t(uint8_t(frames[2])) << 8) | size_t(uint8_t(frames[3]));
      one.assign(frames.substr(0, kHeaderRoom + len));
      send(one);
      frames.remove_prefix(one.size());
    }
  }
};

// Starts a message buffer: clears it and leaves the header room.
inline void begin_message(std::string& buf) {
  buf.assign(kHeaderRoom, '\0');
}

}  // namespace ep
