// One request as the dispatcher hands it to a context: the whole message, with
// the offsets of the parts the executor needs.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace ep {

// Besides call/eval/exec, the same queue carries what an executor waiting in
// erlang.call must see: callback replies (type kCallbackOk / kCallbackError,
// `bytes` = the payload, `callback_id` set) and cancellations (type kCancel,
// `bytes` = the request ID of the request whose caller gave up).
struct Request {
  uint8_t type = 0;
  uint64_t callback_id = 0;
  std::string bytes;       // the message, owned (the read buffer is reused)
  uint32_t reqid_off = 0;  // request ID bytes, copied verbatim into the reply
  uint32_t reqid_len = 0;
  uint32_t body_off = 0;  // first element after the context number
  uint32_t ns_off = 0;    // the namespace key's bytes (empty: the shared namespace)
  uint32_t ns_len = 0;
  bool want_ref = false;  // reply with a reference to the result, not the result
  // The chain marker (spec/PROTOCOL.md, "Callbacks"): the ID of the callback
  // whose Erlang process sent this request. It may run nested only while a
  // thread of its context waits for that callback.
  bool has_nest = false;
  uint64_t nest = 0;

  std::string_view reqid() const { return std::string_view(bytes).substr(reqid_off, reqid_len); }
  std::string_view body() const { return std::string_view(bytes).substr(body_off); }
  std::string_view ns() const { return std::string_view(bytes).substr(ns_off, ns_len); }
  // call, eval, exec, reference operation
  bool is_request() const { return (type >= 1 && type <= 3) || type == 12; }
  bool wants_reply() const { return !(reqid_len == 1 && bytes[reqid_off] == '\xc0'); }
};

}  // namespace ep
