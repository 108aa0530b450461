// _erlang_loop.LoopCore: a base class of ErlangEventLoop (no instance data)
// whose methods replace BaseEventLoop's hot ones natively, with the same
// contract: call_soon, call_at and call_later make the same asyncio Handles
// and TimerHandles on the same _ready deque and _scheduled heap, and
// _run_once is run_once.cpp. In debug mode each is the standard library's
// (thread checks, source tracebacks, slow-callback timing).
#include <vector>

#include "core/loop_state.hpp"
#include "core/py_ref.hpp"

namespace ep {
namespace {

const LoopState& state_of(PyTypeObject* defining_class) {
  return *static_cast<LoopState*>(PyType_GetModuleState(defining_class));
}

// Positional arguments and the only keyword, context=.
struct CallArgs {
  PyObject* const* args;
  Py_ssize_t nargs;
  PyObject* context = Py_None;
};

bool parse(const char* name, PyObject* const* args, size_t nargsf, PyObject* kwnames,
           Py_ssize_t required, CallArgs& out) {
  out.args = args;
  out.nargs = PyVectorcall_NARGS(nargsf);
  Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
  for (Py_ssize_t i = 0; i < nkw; ++i) {
    PyObject* key = PyTuple_GET_ITEM(kwnames, i);
    if (PyUnicode_CompareWithASCIIString(key, "context") != 0) {
      PyErr_Format(PyExc_TypeError, "%s() got an unexpected keyword argument '%U'", name, key);
      return false;
    }
    out.context = args[out.nargs + i];
  }
  if (out.nargs < required) {
    PyErr_Format(PyExc_TypeError, "%s() missing required positional arguments", name);
    return false;
  }
  return true;
}

// The standard library's method, for debug mode: same arguments.
PyObject* base(PyObject* method, PyObject* self, PyObject* const* args, size_t nargsf,
               PyObject* kwnames) {
  Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
  Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
  std::vector<PyObject*> all(static_cast<size_t>(nargs + nkw + 1));
  all[0] = self;
  for (Py_ssize_t i = 0; i < nargs + nkw; ++i) all[static_cast<size_t>(i + 1)] = args[i];
  return PyObject_Vectorcall(method, all.data(), static_cast<size_t>(nargs + 1), kwnames);
}

// 1: use the standard library's method (debug mode); 0: native; -1: error
// (the loop is closed).
int check_loop(const LoopState& st, PyObject* self) {
  PyRef closed = PyRef::steal(PyObject_GetAttr(self, st.closed));
  int c = closed ? PyObject_IsTrue(closed.get()) : -1;
  if (c < 0) return -1;
  if (c) {
    PyErr_SetString(PyExc_RuntimeError, "Event loop is closed");
    return -1;
  }
  PyRef debug = PyRef::steal(PyObject_GetAttr(self, st.debug));
  return debug ? PyObject_IsTrue(debug.get()) : -1;
}

bool set(PyObject* o, PyObject* name, PyObject* value) {
  return PyObject_SetAttr(o, name, value) == 0;
}

// events.Handle(callback, args, loop, context) (or a TimerHandle without its
// _when), as Handle.__init__ makes it outside debug mode.
PyRef make_handle(const LoopState& st, PyObject* type, PyObject* self, const CallArgs& a,
                  Py_ssize_t first) {
  PyRef args = PyRef::steal(PyTuple_New(a.nargs - first - 1));
  if (!args) return {};
  for (Py_ssize_t i = first + 1; i < a.nargs; ++i) {
    PyTuple_SET_ITEM(args.get(), i - first - 1, Py_NewRef(a.args[i]));
  }
  PyRef context =
      a.context == Py_None ? PyRef::steal(PyContext_CopyCurrent()) : PyRef::borrow(a.context);
  PyRef empty = PyRef::steal(PyTuple_New(0));
  if (!context || !empty) return {};
  auto* t = reinterpret_cast<PyTypeObject*>(type);
  PyRef h = PyRef::steal(PyBaseObject_Type.tp_new(t, empty.get(), nullptr));
  if (!h || !set(h.get(), st.context, context.get()) || !set(h.get(), st.loop, self) ||
      !set(h.get(), st.callback, a.args[first]) || !set(h.get(), st.args, args.get()) ||
      !set(h.get(), st.cancelled, Py_False) || !set(h.get(), st.repr, Py_None) ||
      !set(h.get(), st.source_traceback, Py_None)) {
    return {};
  }
  return h;
}

PyObject* call_soon(PyObject* self, PyTypeObject* cls, PyObject* const* args, size_t nargsf,
                    PyObject* kwnames) {
  const LoopState& st = state_of(cls);
  CallArgs a;
  if (!parse("call_soon", args, nargsf, kwnames, 1, a)) return nullptr;
  int debug = check_loop(st, self);
  if (debug < 0) return nullptr;
  if (debug) return base(st.base_call_soon, self, args, nargsf, kwnames);
  PyRef h = make_handle(st, st.handle_type, self, a, 0);
  if (!h) return nullptr;
  PyRef ready = PyRef::steal(PyObject_GetAttr(self, st.ready));
  if (!ready || !PyRef::steal(PyObject_CallMethodOneArg(ready.get(), st.append, h.get()))) {
    return nullptr;
  }
  return h.release();
}

// TimerHandle(when, callback, args, loop, context) pushed on _scheduled.
PyObject* schedule(const LoopState& st, PyObject* self, PyObject* when, const CallArgs& a) {
  PyRef timer = make_handle(st, st.timer_handle_type, self, a, 1);
  if (!timer || !set(timer.get(), st.when, when) || !set(timer.get(), st.scheduled, Py_False)) {
    return nullptr;
  }
  PyRef scheduled = PyRef::steal(PyObject_GetAttr(self, st.scheduled));
  if (!scheduled) return nullptr;
  if (!st.timers.push(scheduled.get(), timer.get()) || !set(timer.get(), st.scheduled, Py_True)) {
    return nullptr;
  }
  return timer.release();
}

PyObject* call_at(PyObject* self, PyTypeObject* cls, PyObject* const* args, size_t nargsf,
                  PyObject* kwnames) {
  const LoopState& st = state_of(cls);
  CallArgs a;
  if (!parse("call_at", args, nargsf, kwnames, 2, a)) return nullptr;
  if (a.args[0] == Py_None) {
    PyErr_SetString(PyExc_TypeError, "when cannot be None");
    return nullptr;
  }
  int debug = check_loop(st, self);
  if (debug < 0) return nullptr;
  if (debug) return base(st.base_call_at, self, args, nargsf, kwnames);
  return schedule(st, self, a.args[0], a);
}

PyObject* call_later(PyObject* self, PyTypeObject* cls, PyObject* const* args, size_t nargsf,
                     PyObject* kwnames) {
  const LoopState& st = state_of(cls);
  CallArgs a;
  if (!parse("call_later", args, nargsf, kwnames, 2, a)) return nullptr;
  if (a.args[0] == Py_None) {
    PyErr_SetString(PyExc_TypeError, "delay must not be None");
    return nullptr;
  }
  int debug = check_loop(st, self);
  if (debug < 0) return nullptr;
  if (debug) return base(st.base_call_later, self, args, nargsf, kwnames);
  PyRef now = PyRef::steal(PyObject_CallMethodNoArgs(self, st.time));
  PyRef when = now ? PyRef::steal(PyNumber_Add(now.get(), a.args[0])) : PyRef();
  if (!when) return nullptr;
  return schedule(st, self, when.get(), a);
}

PyObject* run_once_method(PyObject* self, PyTypeObject* cls, PyObject* const*, size_t nargsf,
                          PyObject*) {
  if (PyVectorcall_NARGS(nargsf) != 0) {
    PyErr_SetString(PyExc_TypeError, "_run_once() takes no arguments");
    return nullptr;
  }
  return run_once(state_of(cls), self);
}

template <class F>
PyCFunction method(F f) {
  return reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(f));
}

constexpr int kFlags = METH_METHOD | METH_FASTCALL | METH_KEYWORDS;

PyMethodDef kMethods[] = {
    {"call_soon", method(call_soon), kFlags, "BaseEventLoop.call_soon, natively."},
    {"call_at", method(call_at), kFlags, "BaseEventLoop.call_at, natively."},
    {"call_later", method(call_later), kFlags, "BaseEventLoop.call_later, natively."},
    {"_run_once", method(run_once_method), kFlags, "BaseEventLoop._run_once, natively."},
    {nullptr, nullptr, 0, nullptr},
};

PyType_Slot kSlots[] = {
    {Py_tp_doc, const_cast<char*>("Native hot methods of ErlangEventLoop.")},
    {Py_tp_methods, kMethods},
    {0, nullptr},
};

PyType_Spec kSpec = {"_erlang_loop.LoopCore", sizeof(PyObject), 0,
                     Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE, kSlots};

}  // namespace

PyObject* make_loop_core_type(PyObject* module) {
  return PyType_FromModuleAndSpec(module, &kSpec, nullptr);
}

}  // namespace ep
