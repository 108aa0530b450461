#include "core/output.hpp"

#include <string>

#include "core/messages.hpp"
#include "core/protocol.hpp"
#include "core/runtime.hpp"

namespace ep::output {
namespace {

thread_local int tl_context = -1;
thread_local std::string tl_pending[2];  // stdout, stderr

std::string& pending(int stream) {
  return tl_pending[stream == protocol::kStderr ? 1 : 0];
}

}  // namespace

void set_current_context(int ctx) {
  tl_context = ctx;
}
int current_context() {
  return tl_context;
}

void send_raw(int stream, int ctx, std::string_view data) {
  std::string msg;
  begin_message(msg);
  messages::output(msg, stream, ctx, data);
  Runtime::instance().sink().send(msg);
}

void write(int stream, std::string_view text) {
  std::string& buf = pending(stream);
  size_t nl = text.rfind('\n');
  if (nl == std::string_view::npos) {
    buf.append(text);
    return;
  }
  buf.append(text.substr(0, nl));
  send_raw(stream, tl_context, buf);
  buf.assign(text.substr(nl + 1));
}

void flush(int stream) {
  std::string& buf = pending(stream);
  if (buf.empty()) return;
  send_raw(stream, tl_context, buf);
  buf.clear();
}

void flush_all() {
  flush(protocol::kStdout);
  flush(protocol::kStderr);
}

}  // namespace ep::output
