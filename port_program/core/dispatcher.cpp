#include "core/dispatcher.hpp"

#include <unistd.h>

#include <string>

#include "core/messages.hpp"
#include "core/msgpack_reader.hpp"
#include "core/msgpack_writer.hpp"
#include "core/protocol.hpp"
#include "core/runtime.hpp"

namespace ep {

void send_hello(int contexts) {
  Runtime& rt = Runtime::instance();
  std::string msg;
  begin_message(msg);
  messages::hello(msg, rt.python_version(), getpid(), contexts);
  rt.sink().send(msg);
}

void Dispatcher::run_with_gil(std::function<void()> job) {
  if (gil_runner_) {
    gil_runner_(std::move(job));
  } else {
    job();
  }
}

void Dispatcher::protocol_error(std::string_view reason) {
  std::string msg;
  begin_message(msg);
  messages::protocol_error(msg, reason);
  Runtime::instance().sink().send(msg);
}

void Dispatcher::error_reply(std::string_view reqid, std::string_view reason) {
  std::string msg;
  begin_message(msg);
  messages::reply_error(msg, reqid, "ProtocolError", reason, "");
  Runtime::instance().sink().send(msg);
}

namespace {

// A callback reply that fails the call: what waits for it raises RuntimeError.
CallbackReply failed_reply(const std::string& reason) {
  CallbackReply reply{CallbackReply::Kind::kError, {}};
  MsgpackWriter(reply.payload).str(reason);
  return reply;
}

}  // namespace

namespace {}  // namespace

void Dispatcher::on_frame(std::string_view message) {
  MsgpackReader in(message);
  std::string_view reqid;
  try {
    uint32_t n = in.array_header();
    if (n == 0) throw MsgpackError("empty message");
    MsgpackInt type = in.integer();
    if (type.negative || type.magnitude > 255) throw MsgpackError("bad message type");
    switch (type.magnitude) {
      case protocol::kHello: {
        MsgpackInt version = in.integer();
        if (version.negative || version.magnitude != protocol::kVersion) {
          protocol_error("unsupported protocol version");
        }
        return;
      }
      case protocol::kShutdown:
        shutdown_ = true;
        return;
      case protocol::kCallbackOk:
      case protocol::kCallbackError: {
        MsgpackInt id = in.integer();
        if (id.negative || n != 3) throw MsgpackError("bad callback reply");
        CallbackReply reply{type.magnitude == protocol::kCallbackOk ? CallbackReply::Kind::kOk
                                                                    : CallbackReply::Kind::kError,
                            {}};
        try {
          reply.payload.assign(in.raw_object());
        } catch (const MsgpackError& e) {
          // A value that cannot cross (nested too deeply) still answers the call:
          // the thread waiting for it must not wait forever.
          reply = failed_reply(std::string("its result cannot be decoded: ") + e.what());
        }
        Runtime::instance().callbacks().deliver(id.magnitude, std::move(reply));
        return;
      }
      case protocol::kChannelData:
      case protocol::kChannelProbeData: {
        MsgpackInt id = in.integer();
        if (id.negative || n < 2) throw MsgpackError("bad channel data");
        Runtime::instance().channels().deliver(id.magnitude, in, n - 2,
                                               type.magnitude == protocol::kChannelProbeData);
        return;
      }
      case protocol::kChannelReturned: {
        MsgpackInt id = in.integer();
        if (id.negative || n != 2) throw MsgpackError("bad channel return confirmation");
        Runtime::instance().channels().returned(id.magnitude);
        return;
      }
      case protocol::kChannelClosed: {
        MsgpackInt id = in.integer();
        if (id.negative || n != 2) throw MsgpackError("bad channel close");
        Runtime::instance().channels().closed(id.magnitude);
        return;
      }
      case protocol::kCancel: {
        reqid = in.raw_object();
        MsgpackInt ctx = in.integer();
        if (ctx.negative || ctx.magnitude >= contexts_.size()) return;
        // Withdrawn here, in input order: a frame after this one (a callback
        // reply that lets the executor take its next request) cannot run the
        // request first. Only stopping its running code waits for the GIL.
        Context* target = contexts_[ctx.magnitude].get();
        if (!target->withdraw(reqid)) {
          run_with_gil([target, id = std::string(reqid)] { target->interrupt(id); });
        }
        return;
      }
      case protocol::kDropNamespace: {
        if (n != 3) throw MsgpackError("bad namespace drop");
        MsgpackInt ctx = in.integer();
        size_t key_off = in.offset();
        std::string_view key = in.raw_object();
        if (ctx.negative || ctx.magnitude >= contexts_.size()) return;
        Request request;
        request.type = protocol::kDropNamespace;
        request.bytes.assign(message);
        request.ns_off = static_cast<uint32_t>(key_off);
        request.ns_len = key == "\xc0" ? 0 : static_cast<uint32_t>(key.size());
        contexts_[ctx.magnitude]->post(std::move(request));
        return;
      }
      case protocol::kInterrupt: {
        reqid = in.raw_object();
        if (n != 3) throw MsgpackError("bad interrupt");
        MsgpackInt ctx = in.integer();
        if (ctx.negative || ctx.magnitude >= contexts_.size()) {
          error_reply(reqid, "no context " + std::to_string(ctx.magnitude));
          return;
        }
        bool running = contexts_[ctx.magnitude]->interrupt({});
        std::string msg;
        begin_message(msg);
        messages::reply_ok(msg, reqid).boolean(running);
        Runtime::instance().sink().send(msg);
        return;
      }
      case protocol::kWatchEnd: {
        reqid = in.raw_object();
        if (n != 4) throw MsgpackError("bad watch");
        MsgpackInt ctx = in.integer();
        std::string_view target = in.raw_object();
        if (ctx.negative || ctx.magnitude >= contexts_.size()) {
          error_reply(reqid, "no context " + std::to_string(ctx.magnitude));
          return;
        }
        contexts_[ctx.magnitude]->watch_end(reqid, target);
        return;
      }
      case protocol::kCall:
      case protocol::kEval:
      case protocol::kExec:
      case protocol::kRefOp: {
        size_t reqid_off = in.offset();
        reqid = in.raw_object();
        if (n < 4) throw MsgpackError("request has too few elements");
        MsgpackInt ctx = in.integer();
        if (ctx.negative || ctx.magnitude >= contexts_.size()) {
          error_reply(reqid, "no context " + (ctx.negative ? "-" : std::string()) +
                                 std::to_string(ctx.magnitude));
          return;
        }
        Request request;
        request.type = static_cast<uint8_t>(type.magnitude);
        request.bytes.assign(message);
        request.reqid_off = static_cast<uint32_t>(reqid_off);
        request.reqid_len = static_cast<uint32_t>(reqid.size());
        request.body_off = static_cast<uint32_t>(in.offset());
        uint32_t fixed = protocol::fixed_elements(request.type);
        if (n < fixed) throw MsgpackError("request has too few elements");
        if (n > fixed) read_trailer(in, n - fixed, fixed - 3, request);
        contexts_[ctx.magnitude]->post(std::move(request));
        return;
      }
      case protocol::kLoopTask:  // event loops (loop_inbox.hpp): [T, ReqId, Loop, ...]
      case protocol::kLoopExec:
      case protocol::kLoopEval:
      case protocol::kLoopForget:
      case protocol::kLoopCancel: {
        size_t reqid_off = in.offset();
        reqid = in.raw_object();
        MsgpackInt loop = in.integer();
        if (n < 3 || loop.negative || loop.magnitude >= Loops::kMaxLoops) {
          error_reply(reqid, "no event loop " + std::to_string(loop.magnitude));
          return;
        }
        Request request{static_cast<uint8_t>(type.magnitude),
                        0,
                        std::string(message),
                        static_cast<uint32_t>(reqid_off),
                        static_cast<uint32_t>(reqid.size()),
                        static_cast<uint32_t>(in.offset())};
        Runtime::instance().loops().post(static_cast<uint32_t>(loop.magnitude), std::move(request));
        return;
      }
      case protocol::kBatch: {  // [53, [Message, ...]]: one write for many requests
        if (n != 2 || nested_batch_) throw MsgpackError("bad batch");
        uint32_t items = in.array_header();
        nested_batch_ = true;
        try {
          for (uint32_t i = 0; i < items; ++i) on_frame(in.raw_object());
        } catch (...) {
          nested_batch_ = false;
          throw;
        }
        nested_batch_ = false;
        return;
      }
      default:
        if (n >= 2) {
          reqid = in.raw_object();
          error_reply(reqid, "unknown message type " + std::to_string(type.magnitude));
        } else {
          protocol_error("unknown message type " + std::to_string(type.magnitude));
        }
        return;
    }
  } catch (const MsgpackError& e) {
    std::string reason = std::string("malformed message: ") + e.what();
    if (!reqid.empty()) {
      error_reply(reqid, reason);
    } else {
      protocol_error(reason);
    }
  }
}

// The optional elements after a request's body (spec/PROTOCOL.md, "Request
// trailer"): Nest (the chain marker, nil or a CbId), NsKey (nil: the shared
// namespace), ReturnRef (bool). The body is skipped only when a trailer is
// there, never on the plain call path.
void Dispatcher::read_trailer(MsgpackReader& in, uint32_t trailing, uint32_t body,
                              Request& request) {
  try {
    for (uint32_t i = 0; i < body; ++i) in.raw_object();
  } catch (const MsgpackError&) {
    return;  // a body too deep to skip: the executor's decoding reports it
  }
  if (in.peek() == MsgpackType::Nil) {
    in.nil();
  } else {
    MsgpackInt nest = in.integer();
    if (nest.negative) throw MsgpackError("bad chain marker");
    request.has_nest = true;
    request.nest = nest.magnitude;
  }
  if (trailing >= 2) {
    size_t off = in.offset();
    std::string_view key = in.raw_object();
    if (key != "\xc0") {
      request.ns_off = static_cast<uint32_t>(off);
      request.ns_len = static_cast<uint32_t>(key.size());
    }
  }
  if (trailing >= 3) request.want_ref = in.boolean();
}

void Dispatcher::on_oversized(std::string_view head, uint64_t declared_len, size_t max_frame) {
  std::string reason = "frame of " + std::to_string(declared_len) +
                       " bytes exceeds the maximum of " + std::to_string(max_frame);
  try {
    MsgpackReader in(head);
    uint32_t n = in.array_header();
    if (n >= 2) {
      MsgpackInt type = in.integer();
      if (type.negative) throw MsgpackError("bad message type");
      if (oversized_for_waiter(in, type.magnitude, n, declared_len, max_frame)) return;
      std::string_view reqid = in.raw_object();
      error_reply(reqid, reason);
      return;
    }
  } catch (const MsgpackError&) {
  }
  protocol_error(reason);
}

// Frames that answer a waiting Python thread or receiver rather than a request:
// what waits for them learns that the value did not fit, instead of waiting
// forever. `in` is past the message type.
bool Dispatcher::oversized_for_waiter(MsgpackReader& in, uint64_t type, uint32_t n,
                                      uint64_t declared_len, size_t max_frame) {
  std::string too_big = std::to_string(declared_len) + " bytes, over the maximum frame of " +
                        std::to_string(max_frame) + " bytes (max_frame)";
  if ((type == protocol::kCallbackOk || type == protocol::kCallbackError) && n == 3) {
    MsgpackInt id = in.integer();
    if (id.negative) return false;
    Runtime::instance().callbacks().deliver(id.magnitude,
                                            failed_reply("its result does not fit: " + too_big));
    return true;
  }
  if ((type == protocol::kChannelData || type == protocol::kChannelProbeData) && n == 3) {
    // One message (the server ships a bigger one alone): it counts as taken.
    MsgpackInt id = in.integer();
    if (id.negative) return false;
    Runtime::instance().channels().deliver_unreadable(
        id.magnitude, "channel message does not fit: " + too_big, in.rest(),
        declared_len - in.offset(), type == protocol::kChannelProbeData);
    return true;
  }
  return false;
}

void Dispatcher::on_truncated() {
  protocol_error("truncated frame at end of input");
}

}  // namespace ep
