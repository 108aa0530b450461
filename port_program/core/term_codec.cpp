#include "core/term_codec.hpp"

#include <cmath>
#include <cstring>
#include <string>

#include "core/protocol.hpp"
#include "core/stack_room.hpp"

namespace ep {
namespace {

using protocol::kMaxDepth;

PyRef too_deep() {
  PyErr_Format(PyExc_ValueError, "term nesting exceeds %zu levels", kMaxDepth);
  return {};
}

// A container nested as deep as the protocol allows, on a thread whose stack
// cannot hold that many levels: RecursionError, as Python's own recursion gives.
bool out_of_stack(size_t depth) {
  if (!stack_nearly_full()) return false;
  PyErr_Format(PyExc_RecursionError, "term nesting too deep for this thread's stack (%zu levels)",
               depth);
  return true;
}

PyRef make_atom(std::string_view name, const TermTypes& types) {
  PyRef key = PyRef::steal(PyUnicode_DecodeUTF8(name.data(), name.size(), "strict"));
  if (!key) return {};
  PyObject* cached = PyDict_GetItemWithError(types.atom_cache.get(), key.get());
  if (cached) return PyRef::borrow(cached);
  if (PyErr_Occurred()) return {};
  PyRef atom = PyRef::steal(PyObject_CallOneArg(types.atom.get(), key.get()));
  if (!atom || PyDict_SetItem(types.atom_cache.get(), key.get(), atom.get()) < 0) return {};
  return atom;
}

PyRef make_wrapped(PyObject* cls, std::string_view payload) {
  PyRef bytes = PyRef::steal(PyBytes_FromStringAndSize(payload.data(), payload.size()));
  if (!bytes) return {};
  return PyRef::steal(PyObject_CallOneArg(cls, bytes.get()));
}

PyRef make_bigint(std::string_view payload) {
  if (payload.empty() || (payload[0] != 0 && payload[0] != 1)) {
    PyErr_SetString(PyExc_ValueError, "malformed bigint");
    return {};
  }
  const auto* mag = reinterpret_cast<const unsigned char*>(payload.data() + 1);
  PyRef value = PyRef::steal(_PyLong_FromByteArray(mag, payload.size() - 1, 0, 0));
  if (!value || payload[0] == 0) return value;
  return PyRef::steal(PyNumber_Negative(value.get()));
}

// Guards against a header that claims more elements than bytes remain, which
// would otherwise allocate a huge container before failing.
void check_count(const MsgpackReader& in, uint32_t n) {
  if (n > in.remaining()) throw MsgpackError("container length exceeds the frame");
}

PyRef decode(MsgpackReader& in, const TermTypes& types, size_t depth);

PyRef decode_sequence(MsgpackReader& in, const TermTypes& types, size_t depth, bool tuple) {
  if (depth > kMaxDepth) return too_deep();
  if (out_of_stack(depth)) return {};
  uint32_t n = in.array_header();
  check_count(in, n);
  PyRef seq = PyRef::steal(tuple ? PyTuple_New(n) : PyList_New(n));
  if (!seq) return {};
  for (uint32_t i = 0; i < n; ++i) {
    PyRef item = decode(in, types, depth);
    if (!item) return {};
    if (tuple) {
      PyTuple_SET_ITEM(seq.get(), i, item.release());
    } else {
      PyList_SET_ITEM(seq.get(), i, item.release());
    }
  }
  return seq;
}

PyRef decode_map(MsgpackReader& in, const TermTypes& types, size_t depth) {
  if (depth > kMaxDepth) return too_deep();
  if (out_of_stack(depth)) return {};
  uint32_t n = in.map_header();
  check_count(in, n);
  PyRef dict = PyRef::steal(PyDict_New());
  if (!dict) return {};
  for (uint32_t i = 0; i < n; ++i) {
    PyRef key = decode(in, types, depth);
    if (!key) return {};
    PyRef value = decode(in, types, depth);
    if (!value || PyDict_SetItem(dict.get(), key.get(), value.get()) < 0) return {};
  }
  return dict;
}

PyRef decode_ext(MsgpackReader& in, const TermTypes& types, size_t depth) {
  MsgpackExt ext = in.ext();
  switch (ext.type) {
    case protocol::kExtAtom:
      return make_atom(ext.payload, types);
    case protocol::kExtTuple: {
      MsgpackReader inner(ext.payload);
      PyRef t = decode_sequence(inner, types, depth, true);
      if (t && !inner.at_end()) throw MsgpackError("trailing bytes in tuple");
      return t;
    }
    case protocol::kExtPid:
      return make_wrapped(types.pid.get(), ext.payload);
    case protocol::kExtRef:
      return make_wrapped(types.ref.get(), ext.payload);
    case protocol::kExtOpaque:
      return make_wrapped(types.opaque.get(), ext.payload);
    case protocol::kExtBigint:
      return make_bigint(ext.payload);
    default:
      PyErr_Format(PyExc_ValueError, "unknown msgpack ext type %d", int(ext.type));
      return {};
  }
}

// `depth` counts containers (arrays, maps, tuples) around the value.
PyRef decode(MsgpackReader& in, const TermTypes& types, size_t depth) {
  switch (in.peek()) {
    case MsgpackType::Nil:
      in.nil();
      return PyRef::borrow(Py_None);
    case MsgpackType::Bool:
      return PyRef::borrow(in.boolean() ? Py_True : Py_False);
    case MsgpackType::Int: {
      MsgpackInt v = in.integer();
      if (!v.negative) return PyRef::steal(PyLong_FromUnsignedLongLong(v.magnitude));
      // -magnitude computed in unsigned arithmetic covers INT64_MIN.
      return PyRef::steal(PyLong_FromLongLong(static_cast<long long>(0 - v.magnitude)));
    }
    case MsgpackType::Float:
      return PyRef::steal(PyFloat_FromDouble(in.float_value()));
    case MsgpackType::Str: {
      std::string_view s = in.str();
      return PyRef::steal(PyUnicode_DecodeUTF8(s.data(), s.size(), "strict"));
    }
    case MsgpackType::Bin: {
      std::string_view b = in.bin();
      return PyRef::steal(PyBytes_FromStringAndSize(b.data(), b.size()));
    }
    case MsgpackType::Array:
      return decode_sequence(in, types, depth + 1, false);
    case MsgpackType::Map:
      return decode_map(in, types, depth + 1);
    case MsgpackType::Ext:
      return decode_ext(in, types, depth + 1);
  }
  PyErr_SetString(PyExc_ValueError, "unknown msgpack type");
  return {};
}

// ---- encoding ----

bool fail_type(PyObject* obj) {
  if (PyGen_Check(obj) || PyAsyncGen_CheckExact(obj)) {
    PyErr_Format(PyExc_TypeError,
                 "cannot convert a %.200s to an Erlang term: stream it with py:stream/3,4, "
                 "py:stream_eval/1,2 or py:stream_start/3,4",
                 Py_TYPE(obj)->tp_name);
    return false;
  }
  PyErr_Format(PyExc_TypeError, "cannot convert Python object of type '%.200s' to an Erlang term",
               Py_TYPE(obj)->tp_name);
  return false;
}

// NumPy arrays and scalars (int64, float32, bool_, ...) travel as what their
// tolist() returns: nested lists of Python numbers. Null without an error for
// anything else.
PyRef numpy_tolist(PyObject* obj) {
  PyRef module =
      PyRef::steal(PyObject_GetAttrString(reinterpret_cast<PyObject*>(Py_TYPE(obj)), "__module__"));
  if (!module) {
    PyErr_Clear();
    return {};
  }
  if (!PyUnicode_Check(module.get()) ||
      PyUnicode_CompareWithASCIIString(module.get(), "numpy") != 0 ||
      !PyObject_HasAttrString(obj, "tolist")) {
    return {};
  }
  return PyRef::steal(PyObject_CallMethod(obj, "tolist", nullptr));
}

void atom(MsgpackWriter& out, std::string_view name) {
  out.ext(protocol::kExtAtom, name);
}

bool encode_int(MsgpackWriter& out, PyObject* obj) {
  int overflow = 0;
  long long v = PyLong_AsLongLongAndOverflow(obj, &overflow);
  if (overflow == 0) {
    if (v == -1 && PyErr_Occurred()) return false;
    out.int64(v);
    return true;
  }
  if (overflow > 0) {
    unsigned long long u = PyLong_AsUnsignedLongLong(obj);
    if (!(u == static_cast<unsigned long long>(-1) && PyErr_Occurred())) {
      out.uint64(u);
      return true;
    }
    PyErr_Clear();
  }
  PyRef mag = PyRef::steal(PyNumber_Absolute(obj));
  if (!mag) return false;
  size_t bits = _PyLong_NumBits(mag.get());
  if (bits == static_cast<size_t>(-1)) return false;
  std::string payload(1 + (bits + 7) / 8, '\0');
  payload[0] = overflow < 0 ? 1 : 0;
  if (_PyLong_AsByteArray(reinterpret_cast<PyLongObject*>(mag.get()),
                          reinterpret_cast<unsigned char*>(payload.data() + 1), payload.size() - 1,
                          0, 0) < 0) {
    return false;
  }
  out.ext(protocol::kExtBigint, payload);
  return true;
}

void encode_float(MsgpackWriter& out, double v) {
  if (std::isnan(v)) {
    atom(out, "nan");
  } else if (std::isinf(v)) {
    atom(out, v > 0 ? "infinity" : "neg_infinity");
  } else {
    out.float64(v);
  }
}

bool encode_str(MsgpackWriter& out, PyObject* obj) {
  Py_ssize_t len = 0;
  const char* s = PyUnicode_AsUTF8AndSize(obj, &len);
  if (!s) return false;
  out.str({s, static_cast<size_t>(len)});
  return true;
}

bool encode_wrapped(MsgpackWriter& out, PyObject* obj, int8_t type) {
  PyRef data = PyRef::steal(PyObject_GetAttrString(obj, "_b"));
  if (!data) return false;
  if (!PyBytes_Check(data.get())) return fail_type(obj);
  out.ext(type, {PyBytes_AS_STRING(data.get()), static_cast<size_t>(PyBytes_GET_SIZE(data.get()))});
  return true;
}

bool encode(MsgpackWriter& out, PyObject* obj, const TermTypes& types, size_t depth);

bool encode_items(MsgpackWriter& out, PyObject* seq, const TermTypes& types, size_t depth) {
  if (++depth > kMaxDepth) {
    too_deep();
    return false;
  }
  if (out_of_stack(depth)) return false;
  Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
  PyObject** items = PySequence_Fast_ITEMS(seq);
  out.array_header(static_cast<uint32_t>(n));
  for (Py_ssize_t i = 0; i < n; ++i) {
    if (!encode(out, items[i], types, depth)) return false;
  }
  return true;
}

bool encode_tuple(MsgpackWriter& out, PyObject* tuple, const TermTypes& types, size_t depth) {
  size_t mark = out.begin_ext(protocol::kExtTuple);
  if (!encode_items(out, tuple, types, depth)) return false;
  out.end_ext(mark);
  return true;
}

bool encode_dict(MsgpackWriter& out, PyObject* dict, const TermTypes& types, size_t depth) {
  if (++depth > kMaxDepth) {
    too_deep();
    return false;
  }
  if (out_of_stack(depth)) return false;
  out.map_header(static_cast<uint32_t>(PyDict_GET_SIZE(dict)));
  Py_ssize_t pos = 0;
  PyObject *key, *value;
  while (PyDict_Next(dict, &pos, &key, &value)) {
    if (!encode(out, key, types, depth) || !encode(out, value, types, depth)) return false;
  }
  return true;
}

bool encode_buffer(MsgpackWriter& out, PyObject* obj) {
  Py_buffer view;
  if (PyObject_GetBuffer(obj, &view, PyBUF_CONTIG_RO) < 0) return false;
  out.bin({static_cast<const char*>(view.buf), static_cast<size_t>(view.len)});
  PyBuffer_Release(&view);
  return true;
}

// `depth` counts the containers the object is in; a container adds one level.
bool encode(MsgpackWriter& out, PyObject* obj, const TermTypes& types, size_t depth) {
  PyTypeObject* t = Py_TYPE(obj);
  // Exact types first: the common case costs one pointer comparison each.
  if (t == &PyLong_Type) return encode_int(out, obj);
  if (t == &PyUnicode_Type) return encode_str(out, obj);
  if (t == &PyFloat_Type) {
    encode_float(out, PyFloat_AS_DOUBLE(obj));
    return true;
  }
  if (obj == Py_None) {
    out.nil();
    return true;
  }
  if (obj == Py_True || obj == Py_False) {
    out.boolean(obj == Py_True);
    return true;
  }
  if (t == &PyList_Type) return encode_items(out, obj, types, depth);
  if (t == &PyTuple_Type) return encode_tuple(out, obj, types, depth);
  if (t == &PyDict_Type) return encode_dict(out, obj, types, depth);
  if (t == &PyBytes_Type) {
    out.bin({PyBytes_AS_STRING(obj), static_cast<size_t>(PyBytes_GET_SIZE(obj))});
    return true;
  }
  auto* type_obj = reinterpret_cast<PyObject*>(t);
  if (type_obj == types.atom.get()) {
    Py_ssize_t len = 0;
    const char* s = PyUnicode_AsUTF8AndSize(obj, &len);
    if (!s) return false;
    atom(out, {s, static_cast<size_t>(len)});
    return true;
  }
  if (type_obj == types.pid.get()) return encode_wrapped(out, obj, protocol::kExtPid);
  if (type_obj == types.ref.get()) return encode_wrapped(out, obj, protocol::kExtRef);
  if (type_obj == types.opaque.get()) return encode_wrapped(out, obj, protocol::kExtOpaque);
  // Subclasses (IntEnum, OrderedDict, namedtuple, ...) travel as their base type.
  if (PyLong_Check(obj)) return encode_int(out, obj);
  if (PyUnicode_Check(obj)) return encode_str(out, obj);
  if (PyFloat_Check(obj)) {
    encode_float(out, PyFloat_AsDouble(obj));
    return true;
  }
  if (PyList_Check(obj)) return encode_items(out, obj, types, depth);
  if (PyTuple_Check(obj)) return encode_tuple(out, obj, types, depth);
  if (PyDict_Check(obj)) return encode_dict(out, obj, types, depth);
  if (PyBytes_Check(obj) || PyByteArray_Check(obj) || PyMemoryView_Check(obj)) {
    return encode_buffer(out, obj);
  }
  if (PyRef plain = numpy_tolist(obj)) return encode(out, plain.get(), types, depth);
  if (PyErr_Occurred()) return false;
  return fail_type(obj);
}

}  // namespace

PyRef decode_term(MsgpackReader& in, const TermTypes& types) {
  return decode(in, types, 0);
}

PyRef decode_args(MsgpackReader& in, const TermTypes& types) {
  return decode_sequence(in, types, 0, true);
}

PyRef decode_kwargs(MsgpackReader& in, const TermTypes& types) {
  if (in.peek() == MsgpackType::Map) {
    MsgpackReader probe = in;
    if (probe.map_header() == 0) {
      in = probe;
      return PyRef::borrow(Py_None);
    }
  }
  return decode_map(in, types, 0);
}

bool encode_term(MsgpackWriter& out, PyObject* obj, const TermTypes& types) {
  return encode(out, obj, types, 0);
}

}  // namespace ep
