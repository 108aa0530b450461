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
  PyRef closed = loop_attr(st, self, kClosedAttr);
  int c = closed ? PyObject_IsTrue(closed.get()) : -1;
  if (c < 0) return -1;
  if (c) {
    PyErr_SetString(PyExc_RuntimeError, "Event loop is closed");
    return -1;
  }
  PyRef debug = loop_attr(st, self, kDebugAttr);
  return debug ? PyObject_IsTrue(debug.get()) : -1;
}

bool set(PyObject* o, PyObject* name, PyObject* value) {
  return PyObject_SetAttr(o, name, value) == 0;
}

// Stores a new reference to `value` in the empty slot `offset` of `o`.
void fill(PyObject* o, Py_ssize_t offset, PyObject* value) {
  *reinterpret_cast<PyObject**>(reinterpret_cast<char*>(o) + offset) = Py_NewRef(value);
}

// events.Handle(callback, args, loop, context), or a TimerHandle with its
// _when and _scheduled=False, as their __init__ make them outside debug mode.
// The slots of the fresh object are filled directly when their offsets are
// known (asyncio's Handles are __slots__ classes), else set by name.
PyRef make_handle(const LoopState& st, PyObject* type, PyObject* self, const CallArgs& a,
                  PyObject* when) {
  Py_ssize_t first = when ? 1 : 0;
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
  if (!h) return {};
  PyObject* values[] = {context.get(), self,    a.args[first], args.get(), Py_False,
                        Py_None,       Py_None, when,          Py_False};
  size_t n = when ? 9 : 7;
  if (st.handle_offsets_known) {
    for (size_t i = 0; i < n; ++i) fill(h.get(), st.handle_offsets[i], values[i]);
    return h;
  }
  PyObject* names[] = {st.context,          st.loop, st.callback, st.args, st.cancelled, st.repr,
                       st.source_traceback, st.when, st.scheduled};
  for (size_t i = 0; i < n; ++i) {
    if (!set(h.get(), names[i], values[i])) return {};
  }
  return h;
}

// A Handle queued on _ready; null with an error set.
PyRef queue_handle(const LoopState& st, PyObject* self, const CallArgs& a) {
  PyRef h = make_handle(st, st.handle_type, self, a, nullptr);
  if (!h) return {};
  PyRef ready = loop_attr(st, self, kReadyAttr);
  if (!ready || !ready_append(st, ready.get(), h.get())) return {};
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
  return queue_handle(st, self, a).release();
}

// Ends the loop's wait (the selector's uv_async); any thread.
bool write_to_self(const LoopState& st, PyObject* self) {
  PyRef selector = loop_attr(st, self, kSelectorAttr);
  if (!selector) return false;
  if (selector.get() == Py_None) return true;  // closed
  PyRef uv = selector_attr(st, selector.get(), kUvAttr);
  if (uv && Py_TYPE(uv.get()) == reinterpret_cast<PyTypeObject*>(st.selector_type)) {
    auto* s = reinterpret_cast<SelectorObject*>(uv.get());
    if (s->sel) s->sel->wakeup();  // the GIL orders this against close()
    return true;
  }
  PyErr_Clear();
  return PyRef::steal(PyObject_CallMethodNoArgs(selector.get(), st.wakeup)).operator bool();
}

PyObject* call_soon_threadsafe(PyObject* self, PyTypeObject* cls, PyObject* const* args,
                               size_t nargsf, PyObject* kwnames) {
  const LoopState& st = state_of(cls);
  CallArgs a;
  if (!parse("call_soon_threadsafe", args, nargsf, kwnames, 1, a)) return nullptr;
  int debug = check_loop(st, self);
  if (debug < 0) return nullptr;
  if (debug) return base(st.base_call_soon_threadsafe, self, args, nargsf, kwnames);
  PyRef h = queue_handle(st, self, a);
  if (!h || !write_to_self(st, self)) return nullptr;
  return h.release();
}

PyObject* write_to_self_method(PyObject* self, PyTypeObject* cls, PyObject* const*, size_t,
                               PyObject*) {
  if (!write_to_self(state_of(cls), self)) return nullptr;
  Py_RETURN_NONE;
}

// TimerHandle(when, callback, args, loop, context) pushed on _scheduled.
PyObject* schedule(const LoopState& st, PyObject* self, PyObject* when, const CallArgs& a) {
  PyRef timer = make_handle(st, st.timer_handle_type, self, a, when);
  if (!timer) return nullptr;
  PyRef scheduled = loop_attr(st, self, kScheduledAttr);
  if (!scheduled || !st.timers.push(scheduled.get(), timer.get())) return nullptr;
  if (st.handle_offsets_known) {
    Py_SETREF(*slot_ptr(timer.get(), st.handle_offsets[kSched]), Py_NewRef(Py_True));
  } else if (!set(timer.get(), st.scheduled, Py_True)) {
    return nullptr;
  }
  return timer.release();
}

// 1: `delay` is an int or float <= 0; 0: anything else.
int not_positive(PyObject* delay) {
  if (PyFloat_CheckExact(delay)) return PyFloat_AS_DOUBLE(delay) <= 0.0;
  if (PyLong_CheckExact(delay)) {
    int overflow = 0;
    long v = PyLong_AsLongAndOverflow(delay, &overflow);
    return overflow < 0 || (overflow == 0 && v <= 0);
  }
  return 0;
}

// A TimerHandle due now, appended to the loop's _due_timers (see
// loop_state.hpp); null without an error set when the loop has none.
PyRef schedule_due(const LoopState& st, PyObject* self, PyObject* when, const CallArgs& a) {
  if (!st.handle_offsets_known) return {};
  PyRef due = loop_attr(st, self, kDueTimersAttr);
  if (!due || !PyList_CheckExact(due.get())) {
    PyErr_Clear();
    return {};
  }
  Py_ssize_t n = PyList_GET_SIZE(due.get());
  if (n > 0) {  // kept in time order: an earlier one (a negative delay) goes to the heap
    PyObject* item = PyList_GET_ITEM(due.get(), n - 1);
    if (Py_TYPE(item) != reinterpret_cast<PyTypeObject*>(st.timer_handle_type)) return {};
    PyObject* last = slot_value(item, st.handle_offsets[kWhen]);
    int later = last ? PyObject_RichCompareBool(when, last, Py_GE) : 0;
    if (later <= 0) return {};
  }
  PyRef timer = make_handle(st, st.timer_handle_type, self, a, when);
  if (!timer || PyList_Append(due.get(), timer.get()) < 0) return {};
  return timer;
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
  bool native = false;
  PyRef now = loop_time(st, self, native);
  PyRef when = now ? PyRef::steal(PyNumber_Add(now.get(), a.args[0])) : PyRef();
  if (!when) return nullptr;
  if (native && not_positive(a.args[0])) {
    PyRef timer = schedule_due(st, self, when.get(), a);
    if (timer || PyErr_Occurred()) return timer.release();
  }
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

// run_forever's `while True: self._run_once(); if self._stopping: break`,
// natively. self._run_once is looked up once per call: when it is this
// class's, run_once.cpp is called directly, else what it is (test_asyncio
// counts iterations by setting an instance's _run_once before running it).
// Signals are checked each turn, as the eval loop does between iterations.
PyObject* run_forever_loop(PyObject* self, PyTypeObject* cls, PyObject* const*, size_t nargsf,
                           PyObject* kwnames) {
  if (PyVectorcall_NARGS(nargsf) != 0 || kwnames) {
    PyErr_SetString(PyExc_TypeError, "_run_forever_loop() takes no arguments");
    return nullptr;
  }
  const LoopState& st = state_of(cls);
  PyRef method = PyRef::steal(PyObject_GetAttr(self, st.run_once_name));
  if (!method) return nullptr;
  bool native = PyCFunction_Check(method.get()) && PyCFunction_GET_SELF(method.get()) == self &&
                reinterpret_cast<PyCFunctionObject*>(method.get())->m_ml->ml_meth ==
                    reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(run_once_method));
  // The first iteration polls, as the standard library's does (run_once.cpp).
  PyRef selector = loop_attr(st, self, kSelectorAttr);
  PyRef uv =
      selector && selector.get() != Py_None ? selector_attr(st, selector.get(), kUvAttr) : PyRef();
  if (uv && Py_TYPE(uv.get()) == reinterpret_cast<PyTypeObject*>(st.selector_type)) {
    reinterpret_cast<SelectorObject*>(uv.get())->polled_last = false;
  }
  PyErr_Clear();
  while (true) {
    PyRef done =
        native ? PyRef::steal(run_once(st, self)) : PyRef::steal(PyObject_CallNoArgs(method.get()));
    if (!done || PyErr_CheckSignals() < 0) return nullptr;
    PyRef stopping = loop_attr(st, self, kStoppingAttr);
    int stop = stopping ? PyObject_IsTrue(stopping.get()) : -1;
    if (stop < 0) return nullptr;
    if (stop) Py_RETURN_NONE;
  }
}

// BaseEventLoop.get_debug: self._debug (asyncio's Future asks at creation).
PyObject* get_debug(PyObject* self, PyTypeObject* cls, PyObject* const*, size_t nargsf,
                    PyObject* kwnames) {
  if (PyVectorcall_NARGS(nargsf) != 0 || kwnames) {
    PyErr_SetString(PyExc_TypeError, "get_debug() takes no arguments");
    return nullptr;
  }
  return loop_attr(state_of(cls), self, kDebugAttr).release();
}

// BaseEventLoop.create_future: asyncio.futures.Future(loop=self).
PyObject* create_future(PyObject* self, PyTypeObject* cls, PyObject* const*, size_t nargsf,
                        PyObject* kwnames) {
  if (PyVectorcall_NARGS(nargsf) != 0 || kwnames) {
    PyErr_SetString(PyExc_TypeError, "create_future() takes no arguments");
    return nullptr;
  }
  const LoopState& st = state_of(cls);
  PyObject* args[] = {nullptr, self};
  return PyObject_Vectorcall(st.future_type, args + 1, 0 | PY_VECTORCALL_ARGUMENTS_OFFSET,
                             st.loop_kwnames);
}

template <class F>
PyCFunction method(F f) {
  return reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(f));
}

constexpr int kFlags = METH_METHOD | METH_FASTCALL | METH_KEYWORDS;

// BaseEventLoop.create_task: tasks.Task(coro, loop=self, name=name,
// context=context) when the loop has no task factory; the standard
// library's method in debug mode (it trims the source traceback) and for a
// task factory.
PyObject* create_task(PyObject* self, PyTypeObject* cls, PyObject* const* args, size_t nargsf,
                      PyObject* kwnames) {
  const LoopState& st = state_of(cls);
  if (PyVectorcall_NARGS(nargsf) != 1) {
    PyErr_SetString(PyExc_TypeError, "create_task() takes exactly one positional argument");
    return nullptr;
  }
  PyObject* name = Py_None;
  PyObject* context = Py_None;
  for (Py_ssize_t i = 0, n = kwnames ? PyTuple_GET_SIZE(kwnames) : 0; i < n; ++i) {
    PyObject* key = PyTuple_GET_ITEM(kwnames, i);
    if (PyUnicode_CompareWithASCIIString(key, "name") == 0) {
      name = args[1 + i];
    } else if (PyUnicode_CompareWithASCIIString(key, "context") == 0) {
      context = args[1 + i];
    } else {
      PyErr_Format(PyExc_TypeError, "create_task() got an unexpected keyword argument '%U'", key);
      return nullptr;
    }
  }
  int debug = check_loop(st, self);
  if (debug < 0) return nullptr;
  if (debug) return base(st.base_create_task, self, args, nargsf, kwnames);
  PyRef factory = PyRef::steal(PyObject_GetAttr(self, st.task_factory));
  if (!factory) return nullptr;
  if (factory.get() != Py_None) return base(st.base_create_task, self, args, nargsf, kwnames);
  PyRef task_type = PyRef::steal(PyObject_GetAttr(st.tasks_module, st.task_type_name));
  if (!task_type) return nullptr;
  PyObject* call[] = {args[0], self, name, context};  // as the standard library passes them
  return PyObject_Vectorcall(task_type.get(), call, 1, st.task_kwnames);
}

PyMethodDef kMethods[] = {
    {"call_soon", method(call_soon), kFlags, "BaseEventLoop.call_soon, natively."},
    {"call_soon_threadsafe", method(call_soon_threadsafe), kFlags,
     "BaseEventLoop.call_soon_threadsafe, natively."},
    {"_write_to_self", method(write_to_self_method), kFlags,
     "Ends the loop's wait (uv_async); any thread."},
    {"call_at", method(call_at), kFlags, "BaseEventLoop.call_at, natively."},
    {"call_later", method(call_later), kFlags, "BaseEventLoop.call_later, natively."},
    {"_run_once", method(run_once_method), kFlags, "BaseEventLoop._run_once, natively."},
    {"get_debug", method(get_debug), kFlags, "BaseEventLoop.get_debug, natively."},
    {"_run_forever_loop", method(run_forever_loop), kFlags,
     "run_forever's loop: _run_once until _stopping, natively."},
    {"create_future", method(create_future), kFlags, "BaseEventLoop.create_future, natively."},
    {"create_task", method(create_task), kFlags, "BaseEventLoop.create_task, natively."},
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
