// Where the reply to a request goes while its caller's scheduler thread
// polls for it (port_control(Port, 3, Frame), see call_spin.hpp): filled by
// the replying thread under the router's lock, read by the polling thread.
#pragma once

#include <atomic>
#include <string>
#include <string_view>

namespace ep::drv {

struct ReplySlot {
  enum State : int {
    kWaiting,    // nothing yet
    kFilled,     // `payload` holds the reply
    kElsewhere,  // the reply went another way (through the owner)
  };
  std::atomic<int> state{kWaiting};
  std::string payload;     // written before `state` becomes kFilled
  std::string_view reqid;  // the request's ID (its msgpack), in the caller's frame
};

}  // namespace ep::drv
