// Where the core's outgoing messages go: the port's pipe, or the driver's output.
#pragma once

#include <string>

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
};

// Starts a message buffer: clears it and leaves the header room.
inline void begin_message(std::string& buf) {
  buf.assign(kHeaderRoom, '\0');
}

}  // namespace ep
