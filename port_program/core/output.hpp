// Python's sys.stdout / sys.stderr text, forwarded to Erlang line by line and
// tagged with the context that wrote it.
#pragma once

#include <string_view>

namespace ep::output {

// The context whose executor runs on this thread (-1: not an executor thread).
void set_current_context(int ctx);
int current_context();

// Buffers text per thread and stream; sends every complete line.
void write(int stream, std::string_view text);
// Sends what is buffered on this thread (end of a request, explicit flush).
void flush(int stream);
void flush_all();

// Sends raw bytes as one output message (fd-level writes, context unknown).
void send_raw(int stream, int ctx, std::string_view data);

}  // namespace ep::output
