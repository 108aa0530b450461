// `_erlang_channel`: the native layer behind erlang.channel (Channel, ByteChannel).
#pragma once

#include <Python.h>

namespace ep {

// Registered with PyImport_AppendInittab before the interpreter starts.
PyObject* init_channel_module();

}  // namespace ep
