// `_erlang_loop_host`: the native layer of erlang._loop_host (the event loops that
// py_event_loop submits tasks to): takes a loop's inbox as Python tuples and
// frames its replies.
#pragma once

#include <Python.h>

namespace ep {

// Registered with PyImport_AppendInittab before the interpreter starts.
PyObject* init_loop_host_module();

}  // namespace ep
