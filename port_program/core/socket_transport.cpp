// The per-read and per-write methods of ErlangSocketTransport, natively: the
// same steps, checks, exceptions and messages as asyncio's
// _SelectorSocketTransport (Python 3.11), with recv/send on the descriptor
// and the protocol called directly. Anything unusual (a buffer already
// pending, a lost connection, a max_size above the loop's read buffer, a
// buffer object send() cannot take) goes to the standard library's method.
#include "core/socket_transport.hpp"

#include <sys/socket.h>

#include <cerrno>
#include <iterator>

#include "core/loop_state.hpp"
#include "core/py_ref.hpp"
#include "core/timer_heap.hpp"

namespace ep {
namespace {

enum Name : int {
  kConnLost,
  kSockFd,
  kReadBuffer,
  kMaxSize,
  kProtocol,
  kFatalError,
  kOnEof,
  kDataReceived,
  kGetBuffer,
  kBufferUpdated,
  kReadReadyCb,
  kEof,
  kEmptyWaiter,
  kBuffer,
  kWriteRest,
  kBaseWrite,
  kBaseReadData,
  kMsgRead,
  kMsgDataReceived,
  kMsgGetBuffer,
  kMsgBufferUpdated,
  kMsgWrite,
  kNameCount,
};

constexpr const char* kNameText[] = {
    "_conn_lost",
    "_sock_fd",
    "_read_buffer_data",
    "max_size",
    "_protocol",
    "_fatal_error",
    "_read_ready__on_eof",
    "data_received",
    "get_buffer",
    "buffer_updated",
    "_read_ready_cb",
    "_eof",
    "_empty_waiter",
    "_buffer",
    "_write_rest",
    "_base_write",
    "_base_read_ready__data_received",
    "Fatal read error on socket transport",
    "Fatal error: protocol.data_received() call failed.",
    "Fatal error: protocol.get_buffer() call failed.",
    "Fatal error: protocol.buffer_updated() call failed.",
    "Fatal write error on socket transport",
};
static_assert(std::size(kNameText) == kNameCount);
static_assert(kNameCount <= sizeof(LoopState::transport_names) / sizeof(PyObject*));

const LoopState& state(PyTypeObject* cls) {
  return *static_cast<LoopState*>(PyType_GetModuleState(cls));
}

PyObject* name(PyTypeObject* cls, Name n) {
  return state(cls).transport_names[n];
}

PyRef get(PyObject* o, PyObject* attr) {
  return PyRef::steal(PyObject_GetAttr(o, attr));
}

// self.<n>: read from its slot when self is exactly the registered class.
PyRef attr(PyTypeObject* cls, PyObject* self, Name n) {
  const LoopState& st = state(cls);
  if (Py_TYPE(self) == reinterpret_cast<PyTypeObject*>(st.transport_type) &&
      st.transport_offsets[n] >= 0) {
    if (PyObject* v = slot_value(self, st.transport_offsets[n])) return PyRef::borrow(v);
  }
  return get(self, st.transport_names[n]);
}

// The truth of self.<n>: 1, 0, or -1 with an error set.
int attr_truth(PyTypeObject* cls, PyObject* self, Name n) {
  PyRef v = attr(cls, self, n);
  if (!v) return -1;
  if (v.get() == Py_False || v.get() == Py_None) return 0;
  if (v.get() == Py_True) return 1;
  if (PyLong_CheckExact(v.get())) return Py_SIZE(v.get()) != 0;
  return PyObject_IsTrue(v.get());
}

// The pending exception, normalised with its traceback; null if none.
PyRef take_exception() {
  PyObject *type, *value, *tb;
  PyErr_Fetch(&type, &value, &tb);
  if (!type) return {};
  PyErr_NormalizeException(&type, &value, &tb);
  if (tb && value) PyException_SetTraceback(value, tb);
  Py_XDECREF(type);
  Py_XDECREF(tb);
  return PyRef::steal(value);
}

// The pending exception goes to self._fatal_error(exc, message), as the
// standard library's `except BaseException` clauses do; SystemExit and
// KeyboardInterrupt propagate. A new reference to None, or null.
PyObject* fatal(PyTypeObject* cls, PyObject* self, Name message) {
  if (PyErr_ExceptionMatches(PyExc_SystemExit) || PyErr_ExceptionMatches(PyExc_KeyboardInterrupt)) {
    return nullptr;
  }
  PyRef exc = take_exception();
  if (!exc) Py_RETURN_NONE;
  return PyObject_CallMethodObjArgs(self, name(cls, kFatalError), exc.get(), name(cls, message),
                                    nullptr);
}

// The descriptor; -1 with an error set.
int sock_fd(PyTypeObject* cls, PyObject* self) {
  PyRef fd = attr(cls, self, kSockFd);
  if (!fd) return -1;
  long v = PyLong_AsLong(fd.get());
  if (v == -1 && PyErr_Occurred()) return -1;
  if (v < 0) {
    // A closed socket: as sock.recv/send on it.
    errno = EBADF;
    PyErr_SetFromErrno(PyExc_OSError);
    return -1;
  }
  return static_cast<int>(v);
}

bool retry_later(int err) {
  return err == EAGAIN || err == EWOULDBLOCK || err == EINTR;
}

PyObject* call_protocol(PyTypeObject* cls, PyObject* self, Name method, PyObject* arg) {
  PyRef protocol = attr(cls, self, kProtocol);
  if (!protocol) return nullptr;
  return PyObject_CallMethodOneArg(protocol.get(), name(cls, method), arg);
}

// _read_ready__data_received: recv into the loop's buffer, data_received(bytes).
PyObject* read_data(PyObject* self, PyTypeObject* cls, PyObject* const*, size_t nargsf, PyObject*) {
  if (PyVectorcall_NARGS(nargsf) != 0) {
    PyErr_SetString(PyExc_TypeError, "_read_ready__data_received() takes no arguments");
    return nullptr;
  }
  int lost = attr_truth(cls, self, kConnLost);
  if (lost != 0) return lost < 0 ? nullptr : Py_NewRef(Py_None);
  PyRef buffer = attr(cls, self, kReadBuffer);
  if (!buffer) {
    // A subclass that did not set the loop's buffer: the standard library's read.
    if (!PyErr_ExceptionMatches(PyExc_AttributeError)) return nullptr;
    PyErr_Clear();
    return PyObject_CallMethodNoArgs(self, name(cls, kBaseReadData));
  }
  PyRef max_size = attr(cls, self, kMaxSize);
  if (!max_size) return nullptr;
  Py_ssize_t size = PyLong_AsSsize_t(max_size.get());
  if (size == -1 && PyErr_Occurred()) return nullptr;
  if (!PyByteArray_Check(buffer.get()) || size > PyByteArray_GET_SIZE(buffer.get()) || size <= 0) {
    return PyObject_CallMethodNoArgs(self, name(cls, kBaseReadData));
  }
  int fd = sock_fd(cls, self);
  if (fd < 0) return fatal(cls, self, kMsgRead);
  char* bytes = PyByteArray_AS_STRING(buffer.get());
  ssize_t n = recv(fd, bytes, static_cast<size_t>(size), 0);
  if (n < 0) {
    if (retry_later(errno)) Py_RETURN_NONE;
    PyErr_SetFromErrno(PyExc_OSError);
    return fatal(cls, self, kMsgRead);
  }
  if (n == 0) return PyObject_CallMethodNoArgs(self, name(cls, kOnEof));
  PyRef data = PyRef::steal(PyBytes_FromStringAndSize(bytes, n));
  if (!data) return nullptr;
  PyRef r = PyRef::steal(call_protocol(cls, self, kDataReceived, data.get()));
  if (r) Py_RETURN_NONE;
  return fatal(cls, self, kMsgDataReceived);
}

// _read_ready__get_buffer: BufferedProtocol's get_buffer/recv_into/buffer_updated.
PyObject* read_buffered(PyObject* self, PyTypeObject* cls, PyObject* const*, size_t nargsf,
                        PyObject*) {
  if (PyVectorcall_NARGS(nargsf) != 0) {
    PyErr_SetString(PyExc_TypeError, "_read_ready__get_buffer() takes no arguments");
    return nullptr;
  }
  int lost = attr_truth(cls, self, kConnLost);
  if (lost != 0) return lost < 0 ? nullptr : Py_NewRef(Py_None);
  PyRef minus_one = PyRef::steal(PyLong_FromLong(-1));
  if (!minus_one) return nullptr;
  PyRef buf = PyRef::steal(call_protocol(cls, self, kGetBuffer, minus_one.get()));
  Py_ssize_t len = buf ? PyObject_Length(buf.get()) : -1;
  if (len == 0) PyErr_SetString(PyExc_RuntimeError, "get_buffer() returned an empty buffer");
  if (len <= 0) return fatal(cls, self, kMsgGetBuffer);
  Py_buffer view;
  int fd = sock_fd(cls, self);
  if (fd < 0 || PyObject_GetBuffer(buf.get(), &view, PyBUF_WRITABLE) < 0) {
    return fatal(cls, self, kMsgRead);
  }
  ssize_t n = recv(fd, view.buf, static_cast<size_t>(view.len), 0);
  int err = errno;
  PyBuffer_Release(&view);
  if (n < 0) {
    if (retry_later(err)) Py_RETURN_NONE;
    errno = err;
    PyErr_SetFromErrno(PyExc_OSError);
    return fatal(cls, self, kMsgRead);
  }
  if (n == 0) return PyObject_CallMethodNoArgs(self, name(cls, kOnEof));
  PyRef nbytes = PyRef::steal(PyLong_FromSsize_t(n));
  if (!nbytes) return nullptr;
  PyRef r = PyRef::steal(call_protocol(cls, self, kBufferUpdated, nbytes.get()));
  if (r) Py_RETURN_NONE;
  return fatal(cls, self, kMsgBufferUpdated);
}

// _read_ready: the read callback set_protocol chose.
PyObject* read_ready(PyObject* self, PyTypeObject* cls, PyObject* const*, size_t nargsf,
                     PyObject*) {
  if (PyVectorcall_NARGS(nargsf) != 0) {
    PyErr_SetString(PyExc_TypeError, "_read_ready() takes no arguments");
    return nullptr;
  }
  PyRef cb = attr(cls, self, kReadReadyCb);
  return cb ? PyObject_CallNoArgs(cb.get()) : nullptr;
}

// The bytes of a bytes-like object: a bytes object's own, else its buffer,
// released at the end of the scope.
struct Bytes {
  const void* buf = nullptr;
  Py_ssize_t len = 0;
  Py_buffer view{};
  bool has_view = false;

  bool open(PyObject* data) {
    if (PyBytes_CheckExact(data)) {
      buf = PyBytes_AS_STRING(data);
      len = PyBytes_GET_SIZE(data);
      return true;
    }
    if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0) return false;
    has_view = true;
    buf = view.buf;
    len = view.len;
    return true;
  }
  Bytes() = default;
  Bytes(const Bytes&) = delete;
  Bytes& operator=(const Bytes&) = delete;
  ~Bytes() {
    if (has_view) PyBuffer_Release(&view);
  }
};

// write(data): sent at once when nothing is buffered; the rest (or anything
// unusual) through the Python methods.
PyObject* write(PyObject* self, PyTypeObject* cls, PyObject* const* args, size_t nargsf,
                PyObject* kwnames) {
  if (PyVectorcall_NARGS(nargsf) != 1 || kwnames) {
    PyErr_SetString(PyExc_TypeError, "write() takes exactly one argument (data)");
    return nullptr;
  }
  PyObject* data = args[0];
  if (!PyBytes_Check(data) && !PyByteArray_Check(data) && !PyMemoryView_Check(data)) {
    PyErr_Format(PyExc_TypeError, "data argument must be a bytes-like object, not '%.200s'",
                 Py_TYPE(data)->tp_name);
    return nullptr;
  }
  int eof = attr_truth(cls, self, kEof);
  if (eof != 0) {
    if (eof > 0) PyErr_SetString(PyExc_RuntimeError, "Cannot call write() after write_eof()");
    return nullptr;
  }
  PyRef waiter = attr(cls, self, kEmptyWaiter);
  if (!waiter) return nullptr;
  if (waiter.get() != Py_None) {
    PyErr_SetString(PyExc_RuntimeError, "unable to write; sendfile is in progress");
    return nullptr;
  }
  int lost = attr_truth(cls, self, kConnLost);
  if (lost < 0) return nullptr;
  PyRef pending = attr(cls, self, kBuffer);
  Py_ssize_t npending = !pending ? -1
                        : PyByteArray_CheckExact(pending.get())
                            ? PyByteArray_GET_SIZE(pending.get())
                            : PyObject_Length(pending.get());
  if (npending < 0) return nullptr;
  Bytes bytes;
  if (lost || npending > 0 || !bytes.open(data)) {
    PyErr_Clear();
    return PyObject_CallMethodOneArg(self, name(cls, kBaseWrite), data);
  }
  if (bytes.len == 0) Py_RETURN_NONE;
  int fd = sock_fd(cls, self);
  if (fd < 0) return fatal(cls, self, kMsgWrite);
  ssize_t n = send(fd, bytes.buf, static_cast<size_t>(bytes.len), MSG_NOSIGNAL);
  if (n == bytes.len) Py_RETURN_NONE;
  if (n < 0) {
    if (!retry_later(errno)) {
      PyErr_SetFromErrno(PyExc_OSError);
      return fatal(cls, self, kMsgWrite);
    }
    n = 0;
  }
  PyRef sent = PyRef::steal(PyLong_FromSsize_t(n));
  if (!sent) return nullptr;
  return PyObject_CallMethodObjArgs(self, name(cls, kWriteRest), data, sent.get(), nullptr);
}

template <class F>
PyCFunction method(F f) {
  return reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(f));
}

constexpr int kFlags = METH_METHOD | METH_FASTCALL | METH_KEYWORDS;

PyMethodDef kMethods[] = {
    {"_read_ready", method(read_ready), kFlags, "Calls the read callback set_protocol chose."},
    {"_read_ready__data_received", method(read_data), kFlags,
     "_SelectorSocketTransport._read_ready__data_received, natively."},
    {"_read_ready__get_buffer", method(read_buffered), kFlags,
     "_SelectorSocketTransport._read_ready__get_buffer, natively."},
    {"write", method(write), kFlags, "_SelectorSocketTransport.write, natively."},
    {nullptr, nullptr, 0, nullptr},
};

PyType_Slot kSlots[] = {
    {Py_tp_doc, const_cast<char*>("Native per-read and per-write methods of socket transports.")},
    {Py_tp_methods, kMethods},
    {0, nullptr},
};

PyType_Spec kSpec = {"_erlang_loop.SocketTransportCore", sizeof(PyObject), 0,
                     Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE, kSlots};

}  // namespace

bool init_transport_names(LoopState& st) {
  for (int i = 0; i < kNameCount; ++i) {
    if (!(st.transport_names[i] = PyUnicode_InternFromString(kNameText[i]))) return false;
  }
  return true;
}

void free_transport_names(LoopState& st) {
  for (PyObject*& p : st.transport_names) Py_CLEAR(p);
  Py_CLEAR(st.transport_type);
}

PyObject* set_socket_transport(PyObject* module, PyObject* cls) {
  if (!PyType_Check(cls)) {
    PyErr_SetString(PyExc_TypeError, "set_socket_transport(cls): a class");
    return nullptr;
  }
  LoopState& st = loop_state(module);
  for (int i = 0; i < kNameCount; ++i) {
    st.transport_offsets[i] = slot_offset(cls, st.transport_names[i]);
  }
  Py_XSETREF(st.transport_type, Py_NewRef(cls));
  Py_RETURN_NONE;
}

PyObject* make_socket_transport_core_type(PyObject* module) {
  return PyType_FromModuleAndSpec(module, &kSpec, nullptr);
}

}  // namespace ep
