// `_erlang`: the built-in extension module behind the Python package `erlang`.
#pragma once

#include <Python.h>

namespace ep {

// Registered with PyImport_AppendInittab before the interpreter starts.
PyObject* init_erlang_module();

}  // namespace ep
