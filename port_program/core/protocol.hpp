// Message and ext type numbers of spec/PROTOCOL.md. erlang_src/py_protocol.hrl and
// test/python/wire.py mirror them name for name (test_protocol_vocabulary.py checks).
#pragma once

#include <cstddef>
#include <cstdint>

namespace ep::protocol {

inline constexpr int kVersion = 1;
inline constexpr size_t kMaxDepth = 10000;
// The largest frame a port program accepts unless told (--max-frame).
inline constexpr size_t kDefaultMaxFrame = 64u << 20;

enum MessageType : uint8_t {
  kHello = 0,
  kCall = 1,
  kEval = 2,
  kExec = 3,
  kReplyOk = 4,
  kReplyError = 5,
  kOutput = 6,
  kLog = 7,
  kCancel = 8,
  kDropNamespace = 9,  // Erlang -> port: [9, Ctx, NsKey]
  kInterrupt = 10,     // Erlang -> port: [10, ReqId, Ctx]
  kWatchEnd = 11,      // Erlang -> port: [11, WatchId, Ctx, ReqId]
  kRefOp = 12,         // Erlang -> port: [12, ReqId, Ctx, Op, RefId, Name, Args, Kwargs, ...]
  kProtocolError = 14,
  kShutdown = 15,
  kCallback = 16,
  kSend = 17,
  kCallbackOk = 20,
  kCallbackError = 21,
  kChannelAck = 30,        // port -> Erlang: messages taken, and maybe a want
  kChannelData = 31,       // Erlang -> port: messages of one channel
  kChannelClose = 32,      // port -> Erlang: Python closed the channel
  kChannelClosed = 33,     // Erlang -> port: closed and drained
  kChannelBytes = 34,      // port -> Erlang: ByteChannel.send_bytes
  kChannelProbe = 35,      // port -> Erlang: ack, and send what is queued now (try_receive)
  kChannelReturn = 36,     // port -> Erlang: ack, and what was not taken goes back
  kChannelReturned = 37,   // Erlang -> port: the return is done
  kChannelProbeData = 38,  // Erlang -> port: the answer to a probe: what was queued (maybe none)
  kLoopTask = 48,          // Erlang -> port: run a function or coroutine on an event loop
  kLoopExec = 49,          // Erlang -> port: exec in the caller's namespace on a loop
  kLoopEval = 50,          // Erlang -> port: eval in the caller's namespace on a loop
  kLoopForget = 51,        // Erlang -> port: the caller's namespace on a loop is gone
  kLoopCancel = 52,        // Erlang -> port: the caller of a task gave up
  kBatch = 53,             // Erlang -> port: [53, [Message, ...]], dispatched in order
};

// Queue items that never cross the wire.
enum InternalType : uint8_t {
  kWake = 250,  // a channel waited on by the executor has news
};

// A request's fixed elements (type, ReqId, Ctx and its body); after them come
// the optional trailing ones: Chain (reserved, nil), NsKey, ReturnRef.
inline constexpr uint32_t fixed_elements(uint8_t type) {
  switch (type) {
    case kCall:
      return 7;
    case kEval:
      return 5;
    case kExec:
      return 4;
    case kRefOp:
      return 8;
    default:
      return 0;
  }
}
inline constexpr bool is_request(uint8_t type) {
  return fixed_elements(type) != 0;
}

// Operations of kRefOp.
enum RefOp : uint8_t { kRefCallMethod = 0, kRefGetattr = 1, kRefToTerm = 2, kRefRelease = 3 };

enum ExtType : int8_t {
  kExtAtom = 1,
  kExtTuple = 2,
  kExtPid = 3,
  kExtRef = 4,
  kExtBigint = 5,
  kExtOpaque = 7,
};

enum Stream : uint8_t { kStdout = 1, kStderr = 2 };

}  // namespace ep::protocol
