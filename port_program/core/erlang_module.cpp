#include "core/erlang_module.hpp"

#include <optional>
#include <string>
#include <string_view>

#include "core/context.hpp"
#include "core/messages.hpp"
#include "core/msgpack_writer.hpp"
#include "core/output.hpp"
#include "core/runtime.hpp"
#include "core/term_codec.hpp"

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

// Handler key of a callback: nested calls on one thread get handlers of their
// own (depth in the high bits), so an outer handler can wait for an inner one.
constexpr uint32_t kDepthShift = 24;
constexpr uint32_t kMaxDepth = 64;

// [16, ...]: `handler` empty for an async call.
bool encode_request(std::string& msg, uint64_t id, std::optional<uint64_t> handler, PyObject* name,
                    PyObject* const* args, Py_ssize_t nargs) {
  const TermTypes& types = Runtime::instance().types();
  Py_ssize_t len = 0;
  const char* s = PyUnicode_AsUTF8AndSize(name, &len);
  if (!s) return false;
  begin_message(msg);
  MsgpackWriter w = messages::callback(msg, id, handler, {s, static_cast<size_t>(len)},
                                       static_cast<uint32_t>(nargs));
  for (Py_ssize_t i = 0; i < nargs; ++i) {
    if (!encode_term(w, args[i], types)) return false;
  }
  return true;
}

bool check_name(PyObject* name, const char* fn) {
  if (PyUnicode_Check(name)) return true;
  PyErr_Format(PyExc_TypeError, "%s: the function name must be str, not %.100s", fn,
               Py_TYPE(name)->tp_name);
  return false;
}

// The reply of a callback as a Python value, or a RuntimeError naming the function.
PyObject* reply_value(PyObject* name, CallbackReply& reply) {
  switch (reply.kind) {
    case CallbackReply::Kind::kOk: {
      MsgpackReader in(reply.payload);
      try {
        return decode_term(in, Runtime::instance().types()).release();
      } catch (const MsgpackError& e) {
        PyErr_Format(PyExc_RuntimeError, "erlang.call('%U'): malformed reply: %s", name, e.what());
        return nullptr;
      }
    }
    case CallbackReply::Kind::kError: {
      std::string reason;
      try {
        MsgpackReader in(reply.payload);
        reason = std::string(in.str());
      } catch (const MsgpackError&) {
        reason = "unknown error";
      }
      PyErr_Format(PyExc_RuntimeError, "erlang.call('%U') failed: %s", name, reason.c_str());
      return nullptr;
    }
    case CallbackReply::Kind::kCancelled:
      PyErr_Format(PyExc_RuntimeError,
                   "erlang.call('%U') cancelled: the Erlang caller of this Python call gave up",
                   name);
      return nullptr;
    case CallbackReply::Kind::kStopped:
      break;
  }
  PyErr_Format(PyExc_RuntimeError, "erlang.call('%U'): the port program is stopping", name);
  return nullptr;
}

PyObject* call(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
  if (nargs < 1) {
    PyErr_SetString(PyExc_TypeError, "call(name, *args) needs a function name");
    return nullptr;
  }
  PyObject* name = args[0];
  if (!check_name(name, "erlang.call")) return nullptr;
  Runtime& rt = Runtime::instance();
  CallbackWaiter& waiter = rt.callbacks().this_thread();
  if (waiter.depth >= kMaxDepth) {
    PyErr_SetString(PyExc_RecursionError, "erlang.call nested too deeply");
    return nullptr;
  }
  uint64_t id = waiter.next_id();
  uint64_t key = waiter.slot() | (uint64_t{waiter.depth} << kDepthShift);
  std::string msg;
  if (!encode_request(msg, id, key, name, args + 1, nargs - 1)) return nullptr;
  ++waiter.depth;
  CallbackReply reply;
  if (Context* ctx = Context::current()) {
    if (ctx->cancelled()) {
      // The Erlang caller of this request gave up already: do not start more work.
      --waiter.depth;
      CallbackReply cancelled{CallbackReply::Kind::kCancelled, {}};
      return reply_value(name, cancelled);
    }
    rt.sink().send(msg);
    reply = ctx->wait_callback(id);
  } else {
    waiter.arm(id);
    GilRelease nogil;  // other threads run Python while this one writes and waits
    rt.sink().send(msg);
    reply = waiter.wait();
  }
  --waiter.depth;
  return reply_value(name, reply);
}

// call_async(name, args, fd, token) -> id: the reply is queued for `fd`, an eventfd.
PyObject* call_async(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
  unsigned long long token = 0;
  int fd = -1;
  if (nargs != 4 || !check_name(args[0], "erlang.async_call") || !PyTuple_Check(args[1]) ||
      (fd = PyLong_AsLong(args[2])) < 0 ||
      (token = PyLong_AsUnsignedLongLong(args[3]), PyErr_Occurred())) {
    if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "call_async(name, args, fd, token)");
    return nullptr;
  }
  Runtime& rt = Runtime::instance();
  uint64_t id = rt.callbacks().register_async(fd, token);
  std::string msg;
  if (!encode_request(msg, id, std::nullopt, args[0], PySequence_Fast_ITEMS(args[1]),
                      PyTuple_GET_SIZE(args[1]))) {
    rt.callbacks().drop_async(id);
    return nullptr;
  }
  rt.sink().send(msg);
  return PyLong_FromUnsignedLongLong(id);
}

// async_drop(id): nobody awaits async call `id` any more: its reply is dropped,
// and requests of its chain no longer run nested.
PyObject* async_drop(PyObject*, PyObject* arg) {
  unsigned long long id = PyLong_AsUnsignedLongLong(arg);
  if (PyErr_Occurred()) return nullptr;
  Runtime::instance().callbacks().drop_async(id);
  Py_RETURN_NONE;
}

PyObject* results_list(std::vector<CallbackRegistry::AsyncResult> results);

// async_results(fd) -> [(token, ok, value_or_reason)]
PyObject* async_results(PyObject*, PyObject* arg) {
  long fd = PyLong_AsLong(arg);
  if (fd == -1 && PyErr_Occurred()) return nullptr;
  return results_list(Runtime::instance().callbacks().take_async(static_cast<int>(fd)));
}

// async_drain(fd, force) -> [(token, ok, value_or_reason)], the eventfd
// cleared first when a reply signalled it, when `force` (a channel may have)
// or when there are none (CallbackRegistry::drain_async).
PyObject* async_drain(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
  if (nargs != 2) {
    PyErr_SetString(PyExc_TypeError, "async_drain(fd, force)");
    return nullptr;
  }
  long fd = PyLong_AsLong(args[0]);
  if (fd == -1 && PyErr_Occurred()) return nullptr;
  int force = PyObject_IsTrue(args[1]);
  if (force < 0) return nullptr;
  return results_list(
      Runtime::instance().callbacks().drain_async(static_cast<int>(fd), force != 0));
}

PyObject* results_list(std::vector<CallbackRegistry::AsyncResult> results) {
  PyRef list = PyRef::steal(PyList_New(0));
  if (!list) return nullptr;
  for (auto& r : results) {
    PyRef value;
    bool ok = r.reply.kind == CallbackReply::Kind::kOk;
    if (ok) {
      MsgpackReader in(r.reply.payload);
      try {
        value = decode_term(in, Runtime::instance().types());
      } catch (const MsgpackError& e) {
        PyErr_SetString(PyExc_ValueError, e.what());
      }
      if (!value) {
        ok = false;
        PyObject *t, *v, *tb;
        PyErr_Fetch(&t, &v, &tb);
        value = PyRef::steal(v ? PyObject_Str(v) : PyUnicode_FromString("bad reply"));
        Py_XDECREF(t);
        Py_XDECREF(v);
        Py_XDECREF(tb);
      }
    } else {
      std::string reason = "the port program is stopping";
      if (r.reply.kind == CallbackReply::Kind::kError) {
        try {
          MsgpackReader in(r.reply.payload);
          reason = std::string(in.str());
        } catch (const MsgpackError&) {
          reason = "unknown error";
        }
      }
      value = PyRef::steal(PyUnicode_DecodeUTF8(reason.data(), reason.size(), "replace"));
    }
    PyRef item = PyRef::steal(Py_BuildValue("(KOO)", static_cast<unsigned long long>(r.token),
                                            ok ? Py_True : Py_False, value.get()));
    if (!item || PyList_Append(list.get(), item.get()) < 0) return nullptr;
  }
  return list.release();
}

PyObject* async_forget(PyObject*, PyObject* arg) {
  long fd = PyLong_AsLong(arg);
  if (fd == -1 && PyErr_Occurred()) return nullptr;
  Runtime::instance().callbacks().forget_async(static_cast<int>(fd));
  Py_RETURN_NONE;
}

// nested_fd() -> the eventfd signalled when a request is queued for the calling
// executor thread's context while watched, or -1 on any other thread.
PyObject* nested_fd(PyObject*, PyObject*) {
  Context* ctx = Context::current();
  return PyLong_FromLong(ctx ? ctx->nested_fd() : -1);
}

PyObject* nested_watch(PyObject*, PyObject* arg) {
  int on = PyObject_IsTrue(arg);
  if (on < 0) return nullptr;
  if (Context* ctx = Context::current()) ctx->watch_nested(on != 0);
  Py_RETURN_NONE;
}

// run_nested() -> bool: runs the requests queued for the calling executor's
// context that belong to the chain of a callback it waits for; true when the
// caller of the request running there gave up.
PyObject* run_nested(PyObject*, PyObject*) {
  Context* ctx = Context::current();
  if (!ctx) Py_RETURN_FALSE;
  ctx->run_nested();
  return PyBool_FromLong(ctx->cancelled());
}

// send(pid, term): a message to an Erlang process, no reply.
PyObject* send(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
  Runtime& rt = Runtime::instance();
  const TermTypes& types = rt.types();
  if (nargs != 2 || Py_TYPE(args[0]) != reinterpret_cast<PyTypeObject*>(types.pid.get())) {
    PyErr_SetString(PyExc_TypeError, "send(pid, term): pid must be an erlang.Pid");
    return nullptr;
  }
  std::string msg;
  begin_message(msg);
  MsgpackWriter w = messages::send(msg);
  if (!encode_term(w, args[0], types) || !encode_term(w, args[1], types)) return nullptr;
  rt.sink().send(msg);
  Py_RETURN_NONE;
}

// log(levelno, logger, message, meta): a logging record for the Erlang logger
// ([7, ...]), no reply.
PyObject* log(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
  Runtime& rt = Runtime::instance();
  const TermTypes& types = rt.types();
  if (nargs != 4 || !PyLong_Check(args[0]) || !PyUnicode_Check(args[1]) ||
      !PyUnicode_Check(args[2]) || !PyDict_Check(args[3])) {
    PyErr_SetString(PyExc_TypeError, "log(levelno: int, logger: str, message: str, meta: dict)");
    return nullptr;
  }
  std::string msg;
  begin_message(msg);
  MsgpackWriter w = messages::log(msg);
  for (Py_ssize_t i = 0; i < nargs; ++i) {
    if (!encode_term(w, args[i], types)) return nullptr;
  }
  rt.sink().send(msg);
  Py_RETURN_NONE;
}

PyMethodDef kMethods[] = {
    {"call", fastcall(call), METH_FASTCALL,
     "call(name, *args): call a registered Erlang function."},
    {"call_async", fastcall(call_async), METH_FASTCALL,
     "Start a callback completed through an eventfd."},
    {"async_results", async_results, METH_O, "Take the completed async callbacks of an eventfd."},
    {"async_drain", fastcall(async_drain), METH_FASTCALL,
     "async_drain(fd, force): clear the eventfd as needed, take its completed async callbacks."},
    {"async_forget", async_forget, METH_O, "Drop what is pending for an eventfd."},
    {"async_drop", async_drop, METH_O, "Drop one async call nobody awaits any more."},
    {"nested_fd", nested_fd, METH_NOARGS, "The eventfd of the executor's queue, or -1."},
    {"nested_watch", nested_watch, METH_O, "Signal nested_fd() when a request is queued."},
    {"run_nested", run_nested, METH_NOARGS,
     "Run the requests queued for this executor; True if its request was cancelled."},
    {"send", fastcall(send), METH_FASTCALL,
     "send(pid, term): send a message to an Erlang process."},
    {"log", fastcall(log), METH_FASTCALL,
     "log(levelno, logger, message, meta): a logging record for the Erlang logger."},
    {"write_output", fastcall(write_output), METH_FASTCALL,
     "Forward text written to sys.stdout/sys.stderr to Erlang."},
    {"flush_output", flush_output, METH_O, "Send the buffered partial line of a stream."},
    {nullptr, nullptr, 0, nullptr},
};

PyModuleDef kModule = {PyModuleDef_HEAD_INIT,
                       "_erlang",
                       "erlang_python's native layer.",
                       -1,
                       kMethods,
                       nullptr,
                       nullptr,
                       nullptr,
                       nullptr};

}  // namespace

PyObject* init_erlang_module() {
  return PyModule_Create(&kModule);
}

}  // namespace ep
