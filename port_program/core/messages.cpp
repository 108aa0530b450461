#include "core/messages.hpp"

#include "core/protocol.hpp"

namespace ep::messages {
namespace {

MsgpackWriter start(std::string& out, uint32_t elements, protocol::MessageType type) {
  MsgpackWriter w(out);
  w.array_header(elements);
  w.int64(type);
  return w;
}

MsgpackWriter channel_head(std::string& out, uint32_t elements, protocol::MessageType type,
                           const ChannelRef& ch) {
  MsgpackWriter w = start(out, elements, type);
  w.uint64(ch.id);
  w.raw(ch.server);
  return w;
}

void counted(std::string& out, uint32_t elements, protocol::MessageType type, const ChannelRef& ch,
             uint64_t count, uint64_t bytes) {
  MsgpackWriter w = channel_head(out, elements, type, ch);
  w.raw(ch.counters);
  w.uint64(count);
  w.uint64(bytes);
}

}  // namespace

void hello(std::string& out, std::string_view python_version, int64_t os_pid, int64_t contexts) {
  MsgpackWriter w = start(out, 3, protocol::kHello);
  w.int64(protocol::kVersion);
  w.map_header(3);
  w.str("python");
  w.str(python_version);
  w.str("pid");
  w.int64(os_pid);
  w.str("contexts");
  w.int64(contexts);
}

MsgpackWriter reply_ok(std::string& out, std::string_view reqid) {
  MsgpackWriter w = start(out, 3, protocol::kReplyOk);
  w.raw(reqid);
  return w;
}

void reply_error(std::string& out, std::string_view reqid, std::string_view cls,
                 std::string_view message, std::string_view traceback) {
  MsgpackWriter w = start(out, 5, protocol::kReplyError);
  w.raw(reqid);
  w.str(cls);
  w.str(message);
  w.str(traceback);
}

void output(std::string& out, int stream, int ctx, std::string_view data) {
  MsgpackWriter w = start(out, 4, protocol::kOutput);
  w.int64(stream);
  if (ctx >= 0) {
    w.int64(ctx);
  } else {
    w.nil();
  }
  w.bin(data);
}

MsgpackWriter log(std::string& out) {
  return start(out, 5, protocol::kLog);
}

void protocol_error(std::string& out, std::string_view reason) {
  start(out, 2, protocol::kProtocolError).str(reason);
}

MsgpackWriter callback(std::string& out, uint64_t id, std::optional<uint64_t> handler,
                       std::string_view name, uint32_t nargs) {
  MsgpackWriter w = start(out, 5, protocol::kCallback);
  w.uint64(id);
  if (handler) {
    w.uint64(*handler);
  } else {
    w.nil();
  }
  w.str(name);
  w.array_header(nargs);
  return w;
}

MsgpackWriter send(std::string& out) {
  return start(out, 3, protocol::kSend);
}

void channel_ack(std::string& out, const ChannelRef& ch, uint64_t count, uint64_t bytes,
                 bool want) {
  counted(out, 7, protocol::kChannelAck, ch, count, bytes);
  MsgpackWriter(out).boolean(want);
}

void channel_close(std::string& out, const ChannelRef& ch) {
  channel_head(out, 4, protocol::kChannelClose, ch).raw(ch.counters);
}

void channel_bytes(std::string& out, const ChannelRef& ch, std::string_view data) {
  channel_head(out, 4, protocol::kChannelBytes, ch).bin(data);
}

void channel_probe(std::string& out, const ChannelRef& ch, uint64_t count, uint64_t bytes) {
  counted(out, 6, protocol::kChannelProbe, ch, count, bytes);
}

void channel_return(std::string& out, const ChannelRef& ch, uint64_t count, uint64_t bytes) {
  counted(out, 6, protocol::kChannelReturn, ch, count, bytes);
}

}  // namespace ep::messages
