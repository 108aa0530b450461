// `_erlang_loop`: the native layer behind erlang.ErlangEventLoop.
#pragma once

#include <Python.h>

namespace ep {

// Registered with PyImport_AppendInittab before the interpreter starts.
PyObject* init_loop_module();

}  // namespace ep
