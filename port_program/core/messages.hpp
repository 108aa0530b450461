// Every message the core sends (spec/PROTOCOL.md, "Messages, port program ->
// Erlang"), built in this one place whatever carries it: the port's pipe today,
// a linked-in driver tomorrow, so both send identical bytes.
//
// Each function appends one message (msgpack, no length prefix) to `out`. A
// caller sending one message starts `out` with begin_message() (message_sink.hpp)
// and hands it to the sink; an event loop appends several, each behind its own
// header room (loop_host_module.cpp). A message that ends with values only the
// caller can encode (Python objects) is written up to them: the returned writer
// appends the rest, which the caller must write (exactly the elements named).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/msgpack_writer.hpp"

namespace ep::messages {

// [0, Version, {"python": Version, "pid": OsPid, "contexts": N}]
void hello(std::string& out, std::string_view python_version, int64_t os_pid, int64_t contexts);

// [4, ReqId, ...]: the caller writes Value. `reqid` is the request ID's msgpack.
MsgpackWriter reply_ok(std::string& out, std::string_view reqid);

// [5, ReqId, Class, Message, Traceback]
void reply_error(std::string& out, std::string_view reqid, std::string_view cls,
                 std::string_view message, std::string_view traceback);

// [6, Stream, Ctx, Data]: `ctx` < 0 is nil (the writer is not known).
void output(std::string& out, int stream, int ctx, std::string_view data);

// [7, ...]: the caller writes Level, Logger, Message, Meta.
MsgpackWriter log(std::string& out);

// [14, Reason]
void protocol_error(std::string& out, std::string_view reason);

// [16, CbId, Handler, Name, [...]]: the caller writes the `nargs` arguments.
// `handler` empty is nil (an async call).
MsgpackWriter callback(std::string& out, uint64_t id, std::optional<uint64_t> handler,
                       std::string_view name, uint32_t nargs);

// [17, ...]: the caller writes Pid, Term.
MsgpackWriter send(std::string& out);

// Channel messages name the channel's server and counters by their msgpack
// (Channels::Handle), and carry the messages taken and their bytes since the
// last acknowledgement.
struct ChannelRef {
  uint64_t id;
  std::string_view server;
  std::string_view counters;
};

// [30, ChanId, Server, Counters, Count, Bytes, Want]
void channel_ack(std::string& out, const ChannelRef& ch, uint64_t count, uint64_t bytes, bool want);
// [32, ChanId, Server, Counters]
void channel_close(std::string& out, const ChannelRef& ch);
// [34, ChanId, Server, Bytes]
void channel_bytes(std::string& out, const ChannelRef& ch, std::string_view data);
// [35, ChanId, Server, Counters, Count, Bytes]
void channel_probe(std::string& out, const ChannelRef& ch, uint64_t count, uint64_t bytes);
// [36, ChanId, Server, Counters, Count, Bytes]
void channel_return(std::string& out, const ChannelRef& ch, uint64_t count, uint64_t bytes);

}  // namespace ep::messages
