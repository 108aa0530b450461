// libFuzzer target for the Python -> msgpack direction (core/term_codec
// encode_term): the input starts with a msgpack value (a seed from
// spec/vectors/ decodes to a Python object; anything else gives None); the
// bytes after it are a small program that builds Python objects around it:
// containers, nested and self-referencing ones, strings with lone surrogates,
// big integers, NaN, sets, arbitrary objects. Encoding must either fail with
// a Python exception (TypeError, ValueError, ...) or give bytes that decode
// back and encode again to the same bytes (the encoding is canonical).
#include <Python.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "core/msgpack_reader.hpp"
#include "core/msgpack_writer.hpp"
#include "core/term_codec.hpp"

namespace {

ep::TermTypes* g_types = nullptr;

ep::PyRef attr(PyObject* module, const char* name) {
  return ep::PyRef::steal(PyObject_GetAttrString(module, name));
}

class Program {
 public:
  Program(std::string_view code, ep::PyRef seed) : code_(code) { stack_.push_back(std::move(seed)); }

  // Runs the program; returns the object on top of the stack.
  ep::PyRef run() {
    while (pc_ < code_.size() && stack_.size() < 256) step(next());
    return ep::PyRef::borrow(stack_.back().get());
  }

 private:
  uint8_t next() { return pc_ < code_.size() ? static_cast<uint8_t>(code_[pc_++]) : 0; }

  std::string take(size_t n) {
    n = std::min(n, code_.size() - pc_);
    std::string s(code_.substr(pc_, n));
    pc_ += n;
    return s;
  }

  void push(PyObject* obj) {
    if (obj) {
      stack_.push_back(ep::PyRef::steal(obj));
    } else {
      PyErr_Clear();
    }
  }

  // The top `n' objects (at least one, the stack never empties).
  std::vector<ep::PyRef> pop(size_t n) {
    n = std::min(n, stack_.size() - 1);
    std::vector<ep::PyRef> items;
    for (size_t i = stack_.size() - n; i < stack_.size(); ++i) items.push_back(std::move(stack_[i]));
    stack_.resize(stack_.size() - n);
    return items;
  }

  void step(uint8_t op) {
    switch (op % 16) {
      case 0: push(PyLong_FromLongLong(static_cast<int8_t>(next()))); break;
      case 1: {  // an integer of up to 32 bytes, either sign
        std::string b = take(next() % 33);
        push(_PyLong_FromByteArray(reinterpret_cast<const unsigned char*>(b.data()), b.size(), 1, 1));
        break;
      }
      case 2: {
        static const double kFloats[] = {0.0, -0.0, 1.5, 1e308, -1e-308, __builtin_nan(""),
                                         __builtin_inf(), -__builtin_inf()};
        push(PyFloat_FromDouble(kFloats[next() % 8]));
        break;
      }
      case 3: {  // a str from raw bytes: invalid UTF-8 becomes lone surrogates
        std::string b = take(next() % 64);
        push(PyUnicode_DecodeUTF8(b.data(), static_cast<Py_ssize_t>(b.size()), "surrogateescape"));
        break;
      }
      case 4: {
        std::string b = take(next() % 64);
        push(PyBytes_FromStringAndSize(b.data(), static_cast<Py_ssize_t>(b.size())));
        break;
      }
      case 5: {
        std::string b = take(next() % 300);  // atom names longer than 255 too
        ep::PyRef name = ep::PyRef::steal(
            PyUnicode_DecodeUTF8(b.data(), static_cast<Py_ssize_t>(b.size()), "surrogateescape"));
        if (name) push(PyObject_CallOneArg(g_types->atom.get(), name.get()));
        else PyErr_Clear();
        break;
      }
      case 6: {
        std::vector<ep::PyRef> items = pop(next() % 8);
        PyObject* list = PyList_New(0);
        for (auto& i : items) PyList_Append(list, i.get());
        push(list);
        break;
      }
      case 7: {
        std::vector<ep::PyRef> items = pop(next() % 8);
        PyObject* tuple = PyTuple_New(static_cast<Py_ssize_t>(items.size()));
        for (size_t i = 0; i < items.size(); ++i) {
          Py_INCREF(items[i].get());
          PyTuple_SET_ITEM(tuple, static_cast<Py_ssize_t>(i), items[i].get());
        }
        push(tuple);
        break;
      }
      case 8: {
        std::vector<ep::PyRef> items = pop(2 * (next() % 4));
        PyObject* dict = PyDict_New();
        for (size_t i = 0; i + 1 < items.size(); i += 2)
          if (PyDict_SetItem(dict, items[i].get(), items[i + 1].get()) < 0) PyErr_Clear();
        push(dict);
        break;
      }
      case 9: {  // a list that contains itself: encoding must refuse, not recurse forever
        PyObject* list = PyList_New(0);
        PyList_Append(list, list);
        push(list);
        break;
      }
      case 10: {  // deep nesting
        uint8_t n = next();
        size_t depth = n == 255 ? 12000 : (n % 4 + 1) * 64;  // past kMaxDepth, rarely (slow)
        ep::PyRef obj = ep::PyRef::borrow(stack_.back().get());
        for (size_t i = 0; i < depth && obj; ++i) {
          ep::PyRef outer = ep::PyRef::steal(PyList_New(0));
          if (outer && PyList_Append(outer.get(), obj.get()) < 0) outer = ep::PyRef();
          obj = std::move(outer);
        }
        if (obj) stack_.push_back(std::move(obj));
        else PyErr_Clear();
        break;
      }
      case 11: push(PySet_New(nullptr)); break;
      case 12: push(PyObject_CallNoArgs(reinterpret_cast<PyObject*>(&PyBaseObject_Type))); break;
      case 13: {
        Py_INCREF(Py_None);
        push(next() % 3 == 0 ? Py_None : PyBool_FromLong(next() & 1));
        break;
      }
      case 14: {
        std::string b = take(next() % 16);
        PyObject* cls = next() % 2 ? g_types->pid.get() : g_types->opaque.get();
        ep::PyRef bytes = ep::PyRef::steal(PyBytes_FromStringAndSize(b.data(), static_cast<Py_ssize_t>(b.size())));
        push(PyObject_CallOneArg(cls, bytes.get()));
        break;
      }
      default:
        // share a value; not a container: a DAG of shared lists expands
        // exponentially when encoded, which makes the fuzzer crawl
        if (stack_.size() > 1) {
          PyObject* obj = stack_[next() % stack_.size()].get();
          if (!PyList_Check(obj) && !PyTuple_Check(obj) && !PyDict_Check(obj))
            stack_.push_back(ep::PyRef::borrow(obj));
        }
        break;
    }
  }

  std::string_view code_;
  size_t pc_ = 0;
  std::vector<ep::PyRef> stack_;
};

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
  std::string_view input(reinterpret_cast<const char*>(data), size);
  ep::MsgpackReader in(input);
  ep::PyRef seed;
  size_t used = 0;
  try {
    seed = ep::decode_term(in, *g_types);
    used = in.offset();
  } catch (const ep::MsgpackError&) {
  }
  if (!seed) {
    PyErr_Clear();
    Py_INCREF(Py_None);
    seed = ep::PyRef::steal(Py_None);
  }
  ep::PyRef value = Program(input.substr(used), std::move(seed)).run();

  std::string bytes;
  ep::MsgpackWriter out(bytes);
  if (!ep::encode_term(out, value.get(), *g_types)) {
    if (!PyErr_Occurred()) {
      std::fprintf(stderr, "encode_term failed without a Python exception\n");
      std::abort();
    }
    PyErr_Clear();
    return 0;
  }
  if (PyErr_Occurred()) {
    std::fprintf(stderr, "encode_term succeeded with a Python exception set\n");
    PyErr_Print();
    std::abort();
  }
  ep::MsgpackReader again(bytes);
  ep::PyRef copy = ep::decode_term(again, *g_types);  // a MsgpackError here is a bug
  if (!copy || !again.at_end()) {
    PyErr_Print();
    std::fprintf(stderr, "encoded bytes do not decode as one value\n");
    std::abort();
  }
  std::string bytes2;
  ep::MsgpackWriter out2(bytes2);
  if (!ep::encode_term(out2, copy.get(), *g_types) || bytes2 != bytes) {
    PyErr_Print();
    std::fprintf(stderr, "re-encoding changed %zu bytes into %zu\n", bytes.size(), bytes2.size());
    std::abort();
  }
  return 0;
}
