#include "core/loop_host_module.hpp"

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

// take(loop) -> [tuple]: every request queued for the loop, in arrival order.
PyObject* take(PyObject*, PyObject* arg) {
  LoopInbox* inbox = inbox_arg(arg);
  if (!inbox) return nullptr;
  const std::vector<Request>& batch = inbox->take();
  PyRef list = PyRef::steal(PyList_New(0));
  if (!list) return nullptr;
  for (const Request& r : batch) {
    PyRef reqid = reqid_of(r);
    if (!reqid) return nullptr;
    PyRef item;
    try {
      item = decode_item(r, reqid.get());
      if (!item) {
        PyObject *type = nullptr, *value = nullptr, *tb = nullptr;
        PyErr_Fetch(&type, &value, &tb);
        PyErr_NormalizeException(&type, &value, &tb);
        PyRef t = PyRef::steal(type), v = PyRef::steal(value), trace = PyRef::steal(tb);
        PyRef text = PyRef::steal(v ? PyObject_Str(v.get()) : PyUnicode_FromString(""));
        const char* msg = text ? PyUnicode_AsUTF8(text.get()) : nullptr;
        PyErr_Clear();
        item = unreadable(reqid.get(),
                          t ? reinterpret_cast<PyTypeObject*>(t.get())->tp_name : "SystemError",
                          msg ? msg : "");
      }
    } catch (const MsgpackError& e) {
      PyErr_Clear();
      item =
          unreadable(reqid.get(), "ProtocolError", std::string("malformed message: ") + e.what());
    }
    if (!item || PyList_Append(list.get(), item.get()) < 0) return nullptr;
  }
  return list.release();
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

// flush(loop): sends the framed replies in one write.
PyObject* flush(PyObject*, PyObject* arg) {
  LoopInbox* inbox = inbox_arg(arg);
  if (!inbox) return nullptr;
  inbox->flush();
  Py_RETURN_NONE;
}

// spin(loop) -> bool: after answering, waits briefly (GIL released) for the
// next request; true if one is queued (then the caller drains at once).
PyObject* spin(PyObject*, PyObject* arg) {
  LoopInbox* inbox = inbox_arg(arg);
  if (!inbox) return nullptr;
  unsigned us = Runtime::instance().loops().spin_us();
  if (us == 0) Py_RETURN_FALSE;
  bool got;
  Py_BEGIN_ALLOW_THREADS got = inbox->spin(us);
  Py_END_ALLOW_THREADS return PyBool_FromLong(got);
}

PyMethodDef kMethods[] = {
    {"take", take, METH_O, "take(loop): the requests queued for the loop, as tuples."},
    {"reply", fastcall(reply), METH_FASTCALL, "reply(loop, reqid, value): frame a result."},
    {"reply_error", fastcall(reply_error), METH_FASTCALL,
     "reply_error(loop, reqid, class, message, traceback): frame an error."},
    {"flush", flush, METH_O, "flush(loop): send the framed replies."},
    {"spin", spin, METH_O, "spin(loop): wait briefly for the next request; True if queued."},
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
