#include "core/channel_module.hpp"

#include <string>

#include "core/channels.hpp"
#include "core/context.hpp"
#include "core/msgpack_writer.hpp"
#include "core/runtime.hpp"
#include "core/term_codec.hpp"

namespace ep {
namespace {

// Unique objects that tell "nothing yet" and "closed and drained" apart from
// any message (None is a valid message).
struct ModuleState {
  PyObject* empty;
  PyObject* closed;
};

ModuleState& state(PyObject* module) {
  return *static_cast<ModuleState*>(PyModule_GetState(module));
}

bool channel_id(PyObject* arg, uint64_t& id) {
  id = PyLong_AsUnsignedLongLong(arg);
  return !(id == static_cast<uint64_t>(-1) && PyErr_Occurred());
}

PyObject* unknown(uint64_t id) {
  PyErr_Format(PyExc_ValueError, "channel %llu is not open in this port program",
               static_cast<unsigned long long>(id));
  return nullptr;
}

bool encoded(PyObject* obj, std::string& out) {
  MsgpackWriter w(out);
  return encode_term(w, obj, Runtime::instance().types());
}

// open(id, kind, server_pid, counters_ref, max_size)
PyObject* open(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
  const TermTypes& types = Runtime::instance().types();
  Channels::Handle h;
  long kind = 0;
  if (nargs != 5 || !channel_id(args[0], h.id) ||
      ((kind = PyLong_AsLong(args[1])) == -1 && PyErr_Occurred()) ||
      Py_TYPE(args[2]) != reinterpret_cast<PyTypeObject*>(types.pid.get()) ||
      Py_TYPE(args[3]) != reinterpret_cast<PyTypeObject*>(types.ref.get()) ||
      ((h.max_size = PyLong_AsLongLong(args[4])) == -1 && PyErr_Occurred())) {
    if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "open(id, kind, pid, ref, max_size)");
    return nullptr;
  }
  h.kind = kind == 1 ? Channels::Kind::kBytes : Channels::Kind::kTerm;
  if (!encoded(args[2], h.server) || !encoded(args[3], h.counters)) return nullptr;
  Runtime::instance().channels().open(std::move(h));
  Py_RETURN_NONE;
}

PyObject* result(PyObject* module, Channels::Take take, PyRef& value, uint64_t id) {
  switch (take) {
    case Channels::Take::kItem:
      return value.release();  // null with the decode error set
    case Channels::Take::kEmpty:
      return Py_NewRef(state(module).empty);
    case Channels::Take::kClosed:
      return Py_NewRef(state(module).closed);
    case Channels::Take::kUnknown:
    case Channels::Take::kPending:
      break;
  }
  return unknown(id);
}

// receive(id): blocks until a message or the close; the GIL is released meanwhile.
// Not checked by -Wthread-safety: wake.mu is held through a std::unique_lock.
PyObject* receive(PyObject* module, PyObject* arg) NO_THREAD_SAFETY_ANALYSIS {
  uint64_t id;
  if (!channel_id(arg, id)) return nullptr;
  Channels& channels = Runtime::instance().channels();
  PyRef value;
  if (Context* ctx = Context::current()) {
    // The executor keeps serving nested requests while it waits.
    ChannelWaker waker{ChannelWaker::Kind::kContext, ctx, nullptr, -1};
    while (true) {
      Channels::Take take = channels.take(id, value, &waker);
      if (take != Channels::Take::kEmpty) return result(module, take, value, id);
      Context::WaitResult r = ctx->wait_event();
      if (r != Context::WaitResult::kWoken) {
        channels.unregister(id, waker);
        PyErr_SetString(
            PyExc_RuntimeError,
            r == Context::WaitResult::kCancelled
                ? "channel receive cancelled: the Erlang caller of this Python call gave up"
                : "channel receive interrupted: the port program is stopping");
        return nullptr;
      }
    }
  }
  ThreadWake wake;
  ChannelWaker waker{ChannelWaker::Kind::kThread, nullptr, &wake, -1};
  while (true) {
    Channels::Take take = channels.take(id, value, &waker);
    if (take != Channels::Take::kEmpty) {
      channels.unregister(id, waker);
      return result(module, take, value, id);
    }
    GilRelease nogil;
    std::unique_lock lk(wake.mu);
    // Meanwhile this thread may be the one reading the input.
    Runtime::instance().input().wait(lk, wake.parker,
                                     [&]() REQUIRES(wake.mu) { return wake.woken; });
    wake.woken = false;
  }
}

// try_receive(id): a message, EMPTY or CLOSED. With nothing buffered here it
// asks the server what is queued (one round trip, GIL released; an executor
// keeps serving the requests of its waits' chains meanwhile): EMPTY means the
// channel had nothing queued when the server got the question.
PyObject* try_receive(PyObject* module, PyObject* arg) NO_THREAD_SAFETY_ANALYSIS {
  uint64_t id;
  if (!channel_id(arg, id)) return nullptr;
  Channels& channels = Runtime::instance().channels();
  PyRef value;
  uint64_t ticket = 0;
  if (Context* ctx = Context::current()) {
    ChannelWaker waker{ChannelWaker::Kind::kContext, ctx, nullptr, -1};
    while (true) {
      Channels::Take take = channels.take_now(id, value, ticket, waker);
      if (take != Channels::Take::kPending) {
        channels.unregister(id, waker);
        return result(module, take, value, id);
      }
      Context::WaitResult r = ctx->wait_event();
      if (r != Context::WaitResult::kWoken) {
        channels.unregister(id, waker);
        PyErr_SetString(
            PyExc_RuntimeError,
            r == Context::WaitResult::kCancelled
                ? "channel try_receive cancelled: the Erlang caller of this Python call gave up"
                : "channel try_receive interrupted: the port program is stopping");
        return nullptr;
      }
    }
  }
  ThreadWake wake;
  ChannelWaker waker{ChannelWaker::Kind::kThread, nullptr, &wake, -1};
  while (true) {
    Channels::Take take = channels.take_now(id, value, ticket, waker);
    if (take != Channels::Take::kPending) {
      channels.unregister(id, waker);
      return result(module, take, value, id);
    }
    GilRelease nogil;
    std::unique_lock lk(wake.mu);
    Runtime::instance().input().wait(lk, wake.parker,
                                     [&]() REQUIRES(wake.mu) { return wake.woken; });
    wake.woken = false;
  }
}

// take(id): what try_receive did before it asked the server: a message
// buffered here, EMPTY (and a want is sent) or CLOSED, without waiting.
PyObject* take_buffered(PyObject* module, PyObject* arg) {
  uint64_t id;
  if (!channel_id(arg, id)) return nullptr;
  PyRef value;
  return result(module, Runtime::instance().channels().take(id, value, nullptr), value, id);
}

// poll(id, fd): like try_receive, and when EMPTY the eventfd `fd` is signalled
// once data or the close arrives.
PyObject* poll(PyObject* module, PyObject* const* args, Py_ssize_t nargs) {
  uint64_t id;
  int fd = -1;
  if (nargs != 2 || !channel_id(args[0], id) || (fd = PyLong_AsLong(args[1])) < 0) {
    if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "poll(id, fd)");
    return nullptr;
  }
  ChannelWaker waker{ChannelWaker::Kind::kFd, nullptr, nullptr, fd};
  PyRef value;
  return result(module, Runtime::instance().channels().take(id, value, &waker), value, id);
}

PyObject* release(PyObject*, PyObject* arg) {
  uint64_t id;
  if (!channel_id(arg, id)) return nullptr;
  Runtime::instance().channels().release(id);
  Py_RETURN_NONE;
}

PyObject* forget_fd(PyObject*, PyObject* arg) {
  long fd = PyLong_AsLong(arg);
  if (fd == -1 && PyErr_Occurred()) return nullptr;
  Runtime::instance().channels().forget_fd(static_cast<int>(fd));
  Py_RETURN_NONE;
}

PyObject* close(PyObject*, PyObject* arg) {
  uint64_t id;
  if (!channel_id(arg, id)) return nullptr;
  if (!Runtime::instance().channels().close(id)) return unknown(id);
  Py_RETURN_NONE;
}

PyObject* is_closed(PyObject*, PyObject* arg) {
  uint64_t id;
  if (!channel_id(arg, id)) return nullptr;
  return PyBool_FromLong(Runtime::instance().channels().is_closed(id));
}

// send_bytes(id, data): data is any bytes-like object.
PyObject* send_bytes(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
  uint64_t id;
  if (nargs != 2 || !channel_id(args[0], id)) {
    if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "send_bytes(id, data)");
    return nullptr;
  }
  if (PyUnicode_Check(args[1]) || !PyObject_CheckBuffer(args[1])) {
    PyErr_Format(PyExc_TypeError, "send_bytes() needs a bytes-like object, not %.100s",
                 Py_TYPE(args[1])->tp_name);
    return nullptr;
  }
  Py_buffer view;
  if (PyObject_GetBuffer(args[1], &view, PyBUF_SIMPLE) < 0) return nullptr;
  bool ok = Runtime::instance().channels().send_bytes(
      id, {static_cast<const char*>(view.buf), static_cast<size_t>(view.len)});
  PyBuffer_Release(&view);
  if (!ok) return unknown(id);
  Py_RETURN_NONE;
}

PyMethodDef kMethods[] = {
    {"open", fastcall(open), METH_FASTCALL, "open(id, kind, pid, ref, max_size)"},
    {"receive", receive, METH_O, "receive(id): the next message or CLOSED; blocks."},
    {"try_receive", try_receive, METH_O,
     "try_receive(id): the next message, EMPTY or CLOSED; asks the server when none is here."},
    {"take", take_buffered, METH_O, "take(id): a message buffered here, EMPTY or CLOSED."},
    {"poll", fastcall(poll), METH_FASTCALL, "poll(id, fd): try_receive, signalling fd later."},
    {"release", release, METH_O, "release(id): a Channel object of the channel is gone."},
    {"forget_fd", forget_fd, METH_O, "Drop every poll registration of an eventfd."},
    {"close", close, METH_O, "close(id): close the channel for every receiver."},
    {"is_closed", is_closed, METH_O, "is_closed(id): closed (by the server) here."},
    {"send_bytes", fastcall(send_bytes), METH_FASTCALL, "send_bytes(id, data)"},
    {nullptr, nullptr, 0, nullptr},
};

int exec_module(PyObject* module) {
  ModuleState& st = state(module);
  st.empty = PyObject_CallNoArgs(reinterpret_cast<PyObject*>(&PyBaseObject_Type));
  st.closed = PyObject_CallNoArgs(reinterpret_cast<PyObject*>(&PyBaseObject_Type));
  if (!st.empty || !st.closed) return -1;
  if (PyModule_AddObjectRef(module, "EMPTY", st.empty) < 0) return -1;
  if (PyModule_AddObjectRef(module, "CLOSED", st.closed) < 0) return -1;
  return 0;
}

PyModuleDef_Slot kSlots[] = {{Py_mod_exec, reinterpret_cast<void*>(exec_module)}, {0, nullptr}};

void free_module(void* module) {
  ModuleState& st = state(static_cast<PyObject*>(module));
  Py_CLEAR(st.empty);
  Py_CLEAR(st.closed);
}

PyModuleDef kModule = {PyModuleDef_HEAD_INIT,
                       "_erlang_channel",
                       "erlang_python's native channel layer.",
                       sizeof(ModuleState),
                       kMethods,
                       kSlots,
                       nullptr,
                       nullptr,
                       free_module};

}  // namespace

PyObject* init_channel_module() {
  return PyModuleDef_Init(&kModule);
}

}  // namespace ep
