// libFuzzer target for the term codec (core/term_codec): any bytes either fail
// to decode cleanly (MsgpackError or a Python exception) or decode to a value
// that encodes and decodes back to an equal value. Run with `make fuzz`.
#include <Python.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "core/msgpack_reader.hpp"
#include "core/msgpack_writer.hpp"
#include "core/term_codec.hpp"

namespace {

ep::TermTypes* g_types = nullptr;

ep::PyRef attr(PyObject* module, const char* name) {
  return ep::PyRef::steal(PyObject_GetAttrString(module, name));
}

std::string repr(PyObject* obj) {
  ep::PyRef r = ep::PyRef::steal(PyObject_Repr(obj));
  const char* s = r ? PyUnicode_AsUTF8(r.get()) : nullptr;
  return s ? s : "?";
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  Py_Initialize();
  ep::PyRef path = ep::PyRef::steal(PyUnicode_FromString(EP_PYTHON_PKG_DIR));
  if (!path || PyList_Insert(PySys_GetObject("path"), 0, path.get()) < 0) std::abort();
  ep::PyRef erlang = ep::PyRef::steal(PyImport_ImportModule("erlang"));
  if (!erlang) {
    PyErr_Print();
    std::abort();
  }
  g_types = new ep::TermTypes{attr(erlang.get(), "Atom"), attr(erlang.get(), "Pid"),
                              attr(erlang.get(), "Ref"), attr(erlang.get(), "OpaqueTerm"),
                              ep::PyRef::steal(PyDict_New())};
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  ep::MsgpackReader in(std::string_view(reinterpret_cast<const char*>(data), size));
  ep::PyRef value;
  try {
    value = ep::decode_term(in, *g_types);
  } catch (const ep::MsgpackError&) {
    return 0;
  }
  if (!value) {
    PyErr_Clear();
    return 0;
  }
  std::string bytes;
  ep::MsgpackWriter out(bytes);
  if (!ep::encode_term(out, value.get(), *g_types)) {
    PyErr_Clear();  // e.g. a float NaN from msgpack: Erlang has no such float
    return 0;
  }
  ep::MsgpackReader again(bytes);
  ep::PyRef copy = ep::decode_term(again, *g_types);  // a MsgpackError here is a bug
  if (!copy) {
    PyErr_Print();
    std::abort();
  }
  int equal = PyObject_RichCompareBool(value.get(), copy.get(), Py_EQ);
  if (equal < 0) PyErr_Clear();
  if (equal == 0) {
    std::string r = repr(value.get());
    // float nan / inf come back as the atoms nan / infinity (the type mapping)
    if (r.find("nan") != r.npos || r.find("inf") != r.npos) return 0;
    std::fprintf(stderr, "round trip changed %s into %s\n", r.c_str(), repr(copy.get()).c_str());
    std::abort();
  }
  return 0;
}
