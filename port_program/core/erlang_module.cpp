#include "core/erlang_module.hpp"

#include <string_view>

#include "core/output.hpp"

namespace ep {
namespace {

PyObject* write_output(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
  int stream = 0;
  if (nargs != 2 || (stream = PyLong_AsLong(args[0])) < 1 || stream > 2 ||
      !PyUnicode_Check(args[1])) {
    if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "write_output(stream, text)");
    return nullptr;
  }
  Py_ssize_t len = 0;
  const char* s = PyUnicode_AsUTF8AndSize(args[1], &len);
  if (!s) return nullptr;
  output::write(stream, {s, static_cast<size_t>(len)});
  Py_RETURN_NONE;
}

PyObject* flush_output(PyObject*, PyObject* arg) {
  long stream = PyLong_AsLong(arg);
  if (stream == -1 && PyErr_Occurred()) return nullptr;
  output::flush(static_cast<int>(stream));
  Py_RETURN_NONE;
}

PyMethodDef kMethods[] = {
    {"write_output", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(write_output)),
     METH_FASTCALL, "Forward text written to sys.stdout/sys.stderr to Erlang."},
    {"flush_output", flush_output, METH_O, "Send the buffered partial line of a stream."},
    {nullptr, nullptr, 0, nullptr},
};

PyModuleDef kModule = {PyModuleDef_HEAD_INIT, "_erlang", "erlang_python's native layer.", -1,
                       kMethods, nullptr, nullptr, nullptr, nullptr};

}  // namespace

PyObject* init_erlang_module() { return PyModule_Create(&kModule); }

}  // namespace ep
