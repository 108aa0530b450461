#include "core/loop_host_module.hpp"

#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

#include "core/loop_inbox.hpp"
#include "core/message_sink.hpp"
#include "core/messages.hpp"
#include "core/msgpack_reader.hpp"
#include "core/msgpack_writer.hpp"
#include "core/protocol.hpp"
#include "core/py_ref.hpp"
#include "core/runtime.hpp"
#include "core/term_codec.hpp"

namespace ep {
namespace {

// Rounds of requests one pump() takes (the loop spins between them) before
// the loop runs its other work again.
constexpr int kPumpRounds = 16;

LoopInbox* inbox_arg(PyObject* arg) {
  unsigned long id = PyLong_AsUnsignedLong(arg);
  if (id == static_cast<unsigned long>(-1) && PyErr_Occurred()) return nullptr;
  LoopInbox* inbox = Runtime::instance().loops().find(static_cast<uint32_t>(id));
  if (!inbox) PyErr_Format(PyExc_ValueError, "no event loop %lu in this port program", id);
  return inbox;
}

PyRef py_str(std::string_view s) {
  return PyRef::steal(PyUnicode_DecodeUTF8(s.data(), s.size(), "strict"));
}

PyRef reqid_of(const Request& r) {
  if (!r.wants_reply()) return PyRef::borrow(Py_None);
  std::string_view id = r.reqid();
  return PyRef::steal(PyBytes_FromStringAndSize(id.data(), static_cast<Py_ssize_t>(id.size())));
}

// One request as a tuple (spec/PROTOCOL.md, "Event loops"); null with a Python
// error set, or MsgpackError, when it cannot be read.
PyRef decode_item(const Request& r, PyObject* reqid) {
  const TermTypes& types = Runtime::instance().types();
  MsgpackReader in(r.body());
  switch (r.type) {
    case protocol::kLoopTask: {
      PyRef ns = decode_term(in, types);
      if (!ns) return {};
      PyRef module = py_str(in.str());
      if (!module) return {};
      PyRef function = py_str(in.str());
      if (!function) return {};
      PyRef args = decode_args(in, types);
      if (!args) return {};
      PyRef kwargs = decode_kwargs(in, types);
      if (!kwargs) return {};
      return PyRef::steal(Py_BuildValue("(iOOOOOO)", r.type, reqid, ns.get(), module.get(),
                                        function.get(), args.get(), kwargs.get()));
    }
    case protocol::kLoopExec:
    case protocol::kLoopEval: {
      PyRef ns = decode_term(in, types);
      if (!ns) return {};
      PyRef code = py_str(in.str());
      if (!code) return {};
      return PyRef::steal(Py_BuildValue("(iOOO)", r.type, reqid, ns.get(), code.get()));
    }
    case protocol::kLoopForget: {
      PyRef ns = decode_term(in, types);
      if (!ns) return {};
      return PyRef::steal(Py_BuildValue("(iOO)", r.type, reqid, ns.get()));
    }
    default:  // kLoopCancel
      return PyRef::steal(Py_BuildValue("(iO)", r.type, reqid));
  }
}

// A request that could not be read: (0, reqid, class, message), answered as an error.
PyRef unreadable(PyObject* reqid, const char* cls, const std::string& message) {
  return PyRef::steal(Py_BuildValue("(iOss)", 0, reqid, cls, message.c_str()));
}

// A request that could not be read as a tuple for the host; a Python error
// or MsgpackError is turned into an unreadable() item.
PyRef item_of(const Request& r, PyObject* reqid) {
  try {
    PyRef item = decode_item(r, reqid);
    if (item) return item;
    PyObject *type = nullptr, *value = nullptr, *tb = nullptr;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    PyRef t = PyRef::steal(type), v = PyRef::steal(value), trace = PyRef::steal(tb);
    PyRef text = PyRef::steal(v ? PyObject_Str(v.get()) : PyUnicode_FromString(""));
    const char* msg = text ? PyUnicode_AsUTF8(text.get()) : nullptr;
    PyErr_Clear();
    return unreadable(reqid, t ? reinterpret_cast<PyTypeObject*>(t.get())->tp_name : "SystemError",
                      msg ? msg : "");
  } catch (const MsgpackError& e) {
    PyErr_Clear();
    return unreadable(reqid, "ProtocolError", std::string("malformed message: ") + e.what());
  }
}

bool reqid_bytes(PyObject* obj, std::string_view& out) {
  char* data = nullptr;
  Py_ssize_t len = 0;
  if (PyBytes_AsStringAndSize(obj, &data, &len) < 0) return false;
  out = std::string_view(data, static_cast<size_t>(len));
  return true;
}

// Ends a frame started at `start` in `out`: writes its length prefix.
void seal(std::string& out, size_t start) {
  uint32_t len = static_cast<uint32_t>(out.size() - start - kHeaderRoom);
  out[start] = static_cast<char>(len >> 24);
  out[start + 1] = static_cast<char>(len >> 16);
  out[start + 2] = static_cast<char>(len >> 8);
  out[start + 3] = static_cast<char>(len);
}

// reply(loop, reqid, value) -> bool: frames [4, ReqId, Value]; True when it is
// the first reply since the last flush (the caller schedules one). Raises
// (nothing framed) when the value has no Erlang term.
PyObject* reply(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
  if (nargs != 3) {
    PyErr_SetString(PyExc_TypeError, "reply(loop, reqid, value)");
    return nullptr;
  }
  LoopInbox* inbox = inbox_arg(args[0]);
  std::string_view id;
  if (!inbox || !reqid_bytes(args[1], id)) return nullptr;
  std::string& out = inbox->out();
  size_t start = out.size();
  out.append(kHeaderRoom, '\0');
  MsgpackWriter w = messages::reply_ok(out, id);
  if (!encode_term(w, args[2], Runtime::instance().types())) {
    out.resize(start);
    return nullptr;
  }
  seal(out, start);
  return PyBool_FromLong(start == 0);
}

bool utf8(PyObject* obj, std::string_view& out) {
  Py_ssize_t len = 0;
  const char* s = PyUnicode_AsUTF8AndSize(obj, &len);
  if (!s) return false;
  out = std::string_view(s, static_cast<size_t>(len));
  return true;
}

// reply_error(loop, reqid, class, message, traceback) -> bool: frames [5, ...].
PyObject* reply_error(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
  if (nargs != 5) {
    PyErr_SetString(PyExc_TypeError, "reply_error(loop, reqid, class, message, traceback)");
    return nullptr;
  }
  LoopInbox* inbox = inbox_arg(args[0]);
  std::string_view id, cls, message, traceback;
  if (!inbox || !reqid_bytes(args[1], id) || !utf8(args[2], cls) || !utf8(args[3], message) ||
      !utf8(args[4], traceback)) {
    return nullptr;
  }
  std::string& out = inbox->out();
  size_t start = out.size();
  out.append(kHeaderRoom, '\0');
  messages::reply_error(out, id, cls, message, traceback);
  seal(out, start);
  return PyBool_FromLong(start == 0);
}

// The host's methods pump() hands requests to: (loop, handle, started, fail,
// finish, tasks, create_task).
struct Host {
  PyObject* loop;
  PyObject* handle;       // handle(item): any other request, as a tuple (decode_item)
  PyObject* started;      // started(reqid, result): a task whose result is not plain
  PyObject* fail;         // fail(reqid, exc[, count]): a task that raised
  PyObject* finish;       // finish(reqid, coro): the coroutine an asyncio task runs
  PyObject* tasks;        // dict: the running tasks by request ID (to cancel)
  PyObject* create_task;  // loop.create_task
};

// Results that are never awaitable (exact types): the task is done.
bool plain_result(PyObject* v) {
  PyTypeObject* t = Py_TYPE(v);
  return v == Py_None || t == &PyLong_Type || t == &PyFloat_Type || t == &PyUnicode_Type ||
         t == &PyBytes_Type || t == &PyBool_Type || t == &PyList_Type || t == &PyDict_Type ||
         t == &PyTuple_Type;
}

// Calls a host method; what it raises is reported (no request is dropped).
void call_host(PyObject* method, std::initializer_list<PyObject*> args) {
  PyRef tuple = PyRef::steal(PyTuple_New(static_cast<Py_ssize_t>(args.size())));
  if (tuple) {
    Py_ssize_t i = 0;
    for (PyObject* a : args) {
      Py_INCREF(a);
      PyTuple_SET_ITEM(tuple.get(), i++, a);
    }
    PyRef done = PyRef::steal(PyObject_Call(method, tuple.get(), nullptr));
    if (done) return;
  }
  PyErr_WriteUnraisable(method);
}

// The exception being raised, normalised and cleared.
PyRef fetch_exception() {
  PyObject *type = nullptr, *value = nullptr, *tb = nullptr;
  PyErr_Fetch(&type, &value, &tb);
  PyErr_NormalizeException(&type, &value, &tb);
  if (value && tb) PyException_SetTraceback(value, tb);
  Py_XDECREF(type);
  Py_XDECREF(tb);
  return PyRef::steal(value);
}

// The function of a task naming an attribute of an imported module (the
// common case), or null (no error set): the host looks it up itself, with
// the namespaces, dotted names and imports that takes.
PyRef quick_function(PyObject* ns, PyObject* module, PyObject* function) {
  if (ns != Py_None) return {};
  Py_ssize_t dot = PyUnicode_FindChar(function, '.', 0, PY_SSIZE_T_MAX, 1);
  if (dot != -1) {
    if (dot == -2) PyErr_Clear();
    return {};
  }
  PyObject* mod = PyDict_GetItemWithError(PyImport_GetModuleDict(), module);
  if (!mod) {
    PyErr_Clear();
    return {};
  }
  PyRef fn = PyRef::steal(PyObject_GetAttr(mod, function));
  if (!fn) PyErr_Clear();
  return fn;
}

// A task whose function returned a coroutine: an asyncio task of the loop
// runs host.finish(reqid, coro), as started() would make it.
void start_coroutine(const Host& host, PyObject* reqid, PyObject* coro) {
  PyObject* finish_args[] = {reqid, coro};
  PyRef wrapper = PyRef::steal(PyObject_Vectorcall(host.finish, finish_args, 2, nullptr));
  PyRef task =
      wrapper ? PyRef::steal(PyObject_CallOneArg(host.create_task, wrapper.get())) : PyRef();
  if (task && (reqid == Py_None || PyDict_SetItem(host.tasks, reqid, task.get()) == 0)) return;
  PyRef exc = fetch_exception();
  if (wrapper && !task) {  // never to run: no "never awaited" warning
    PyRef closed = PyRef::steal(PyObject_CallMethod(wrapper.get(), "close", nullptr));
    if (!closed) PyErr_Clear();
  }
  call_host(host.fail, {reqid, exc ? exc.get() : Py_None});
}

// Runs a task here when its function is found at once: its plain result is
// framed without going through Python code. False when the host must run it.
bool run_task_here(LoopInbox& inbox, const Request& r, PyObject* reqid, const Host& host) {
  PyRef ns, module, function, args, kwargs;
  try {
    const TermTypes& types = Runtime::instance().types();
    MsgpackReader in(r.body());
    ns = decode_term(in, types);
    if (ns) module = py_str(in.str());
    if (module) function = py_str(in.str());
    if (function) args = decode_args(in, types);
    if (args) kwargs = decode_kwargs(in, types);
  } catch (const MsgpackError&) {
    PyErr_Clear();
    return false;
  }
  if (!kwargs || !PyTuple_Check(args.get())) {
    PyErr_Clear();
    return false;  // handle() gets it, and reports what cannot be read
  }
  PyRef fn = quick_function(ns.get(), module.get(), function.get());
  if (!fn) return false;
  inbox.counts().submitted++;
  PyRef result = PyRef::steal(
      PyObject_Call(fn.get(), args.get(), kwargs.get() == Py_None ? nullptr : kwargs.get()));
  if (!result) {
    PyRef exc = fetch_exception();
    call_host(host.fail, {reqid, exc ? exc.get() : Py_None});
  } else if (PyCoro_CheckExact(result.get())) {
    start_coroutine(host, reqid, result.get());
  } else if (!plain_result(result.get())) {
    call_host(host.started, {reqid, result.get()});
  } else {
    inbox.counts().completed++;
    if (reqid == Py_None) return true;
    std::string_view id;
    if (!reqid_bytes(reqid, id)) {
      PyErr_Clear();
      return true;
    }
    std::string& out = inbox.out();
    size_t start = out.size();
    out.append(kHeaderRoom, '\0');
    MsgpackWriter w = messages::reply_ok(out, id);
    if (encode_term(w, result.get(), Runtime::instance().types())) {
      seal(out, start);
    } else {  // no Erlang term for the value
      out.resize(start);
      PyRef exc = fetch_exception();
      call_host(host.fail, {reqid, exc ? exc.get() : Py_None, Py_False});
    }
  }
  return true;
}

// Whether the asyncio loop has callbacks ready to run (they go first).
bool loop_busy(PyObject* loop) {
  PyRef ready = PyRef::steal(PyObject_GetAttrString(loop, "_ready"));
  int busy = ready ? PyObject_IsTrue(ready.get()) : 1;
  if (busy < 0 || !ready) PyErr_Clear();
  return busy != 0;
}

// pump(loop, (asyncio_loop, handle, started, fail, finish, tasks, create_task))
// -> bool: runs what the inbox holds, in arrival order. A task calling a
// function of an imported module runs here: its plain result is framed here,
// a coroutine it returns becomes an asyncio task here; every other request
// goes to the host. The replies leave in one write per round; then, with
// nothing else ready on the loop, the loop spins for the caller's next
// request (GIL released) and takes it in the same call, a few rounds at most.
// True when requests were still coming (the caller runs pump() again after
// the loop's other work).
PyObject* pump(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
  if (nargs != 2 || !PyTuple_Check(args[1]) || PyTuple_GET_SIZE(args[1]) != 7 ||
      !PyDict_Check(PyTuple_GET_ITEM(args[1], 5))) {
    PyErr_SetString(PyExc_TypeError,
                    "pump(loop, (asyncio_loop, handle, started, fail, finish, tasks, "
                    "create_task))");
    return nullptr;
  }
  LoopInbox* inbox = inbox_arg(args[0]);
  if (!inbox) return nullptr;
  PyObject* const* h = &PyTuple_GET_ITEM(args[1], 0);
  const Host host{h[0], h[1], h[2], h[3], h[4], h[5], h[6]};
  const unsigned us = Runtime::instance().loops().spin_us();
  std::vector<Request> batch;
  for (int round = 0; round < kPumpRounds; ++round) {
    inbox->take(batch);
    for (const Request& r : batch) {
      PyRef reqid = reqid_of(r);
      if (!reqid) {
        PyErr_WriteUnraisable(args[0]);
        continue;
      }
      if (r.type == protocol::kLoopTask && run_task_here(*inbox, r, reqid.get(), host)) continue;
      PyRef item = item_of(r, reqid.get());
      if (item) {
        call_host(host.handle, {item.get()});
      } else {
        PyErr_WriteUnraisable(args[0]);
      }
    }
    bool answered = !inbox->out().empty();
    inbox->flush();
    if (!answered || us == 0 || loop_busy(host.loop)) Py_RETURN_FALSE;
    bool got;
    Py_BEGIN_ALLOW_THREADS got = inbox->spin(us);
    Py_END_ALLOW_THREADS if (!got) Py_RETURN_FALSE;
  }
  Py_RETURN_TRUE;
}

// counts(loop) -> (submitted, completed, spins, spin_hits): the tasks pump()
// ran itself, and the loop's waits for a next request (those that caught one).
PyObject* counts(PyObject*, PyObject* arg) {
  LoopInbox* inbox = inbox_arg(arg);
  if (!inbox) return nullptr;
  const LoopInbox::Counts& c = inbox->counts();
  using ull = unsigned long long;
  return Py_BuildValue("(KKKK)", static_cast<ull>(c.submitted), static_cast<ull>(c.completed),
                       static_cast<ull>(c.spins), static_cast<ull>(c.spin_hits));
}

PyMethodDef kMethods[] = {
    {"pump", fastcall(pump), METH_FASTCALL,
     "pump(loop, (asyncio_loop, handle, started, fail, finish, tasks, create_task)): run "
     "the queued requests."},
    {"counts", counts, METH_O,
     "counts(loop): (submitted, completed, spins, spin_hits) of pump()'s tasks and spins."},
    {"reply", fastcall(reply), METH_FASTCALL, "reply(loop, reqid, value): frame a result."},
    {"reply_error", fastcall(reply_error), METH_FASTCALL,
     "reply_error(loop, reqid, class, message, traceback): frame an error."},
    {nullptr, nullptr, 0, nullptr},
};

PyModuleDef kModule = {PyModuleDef_HEAD_INIT,
                       "_erlang_loop_host",
                       "erlang_python's event loops for py_event_loop.",
                       -1,
                       kMethods,
                       nullptr,
                       nullptr,
                       nullptr,
                       nullptr};

}  // namespace

PyObject* init_loop_host_module() {
  PyRef module = PyRef::steal(PyModule_Create(&kModule));
  // The kinds of take()'s tuples: the message types of protocol.hpp.
  if (!module || PyModule_AddIntConstant(module.get(), "TASK", protocol::kLoopTask) < 0 ||
      PyModule_AddIntConstant(module.get(), "EXEC", protocol::kLoopExec) < 0 ||
      PyModule_AddIntConstant(module.get(), "EVAL", protocol::kLoopEval) < 0 ||
      PyModule_AddIntConstant(module.get(), "FORGET", protocol::kLoopForget) < 0 ||
      PyModule_AddIntConstant(module.get(), "CANCEL", protocol::kLoopCancel) < 0) {
    return nullptr;
  }
  return module.release();
}

}  // namespace ep
