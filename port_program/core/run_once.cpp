// run_once(loop): one iteration of an ErlangEventLoop, as
// asyncio.BaseEventLoop._run_once does it, on the same Python structures (the
// _ready deque, the _scheduled heap of TimerHandles, the selector's keys), so
// everything that reaches into them keeps working. Natively: the timeout, the
// wait on the libuv selector, dispatching readiness to the readers/writers,
// moving due timers and running plain Handles (their context entered here).
// Debug mode is the standard library's own (it times each callback).
#include <algorithm>
#include <utility>
#include <vector>

#include "core/loop_state.hpp"
#include "core/py_ref.hpp"

namespace ep {
namespace {

constexpr Py_ssize_t kMinScheduledTimerHandles = 100;  // asyncio.base_events'
constexpr double kMinCancelledTimerHandlesFraction = 0.5;
constexpr double kMaximumSelectTimeout = 24 * 3600;

PyRef get(PyObject* o, PyObject* name) {
  return PyRef::steal(PyObject_GetAttr(o, name));
}

// An attribute's truth: 1, 0, or -1 with an error set.
int truth(PyObject* o, PyObject* name) {
  PyRef v = get(o, name);
  return v ? PyObject_IsTrue(v.get()) : -1;
}

// The truth of loop.<a>.
int truth(const LoopState& st, PyObject* loop, LoopAttr a) {
  PyRef v = loop_attr(st, loop, a);
  if (!v) return -1;
  if (v.get() == Py_False) return 0;
  if (v.get() == Py_True) return 1;
  return PyObject_IsTrue(v.get());
}

// A TimerHandle's when(): its _when slot when it is an exact TimerHandle
// holding a float.
bool when_of(const LoopState& st, PyObject* h, double& out) {
  if (st.handle_offsets_known &&
      Py_TYPE(h) == reinterpret_cast<PyTypeObject*>(st.timer_handle_type)) {
    PyObject* w = slot_value(h, st.handle_offsets[kWhen]);
    if (w && PyFloat_CheckExact(w)) {
      out = PyFloat_AS_DOUBLE(w);
      return true;
    }
  }
  PyRef v = get(h, st.when);
  if (!v) return false;
  out = PyFloat_AsDouble(v.get());
  return !(out == -1.0 && PyErr_Occurred());
}

bool number(const LoopState& st, PyObject* loop, LoopAttr a, double& out) {
  PyRef v = loop_attr(st, loop, a);
  if (!v) return false;
  out = PyFloat_AsDouble(v.get());
  return !(out == -1.0 && PyErr_Occurred());
}

bool now(const LoopState& st, PyObject* loop, double& out) {
  return loop_now(st, loop, out);
}

bool append(const LoopState& st, PyObject* ready, PyObject* handle) {
  return ready_append(st, ready, handle);
}

// Pops the heap's head and marks it unscheduled; the handle, or null.
PyRef pop_timer(const LoopState& st, PyObject* heap) {
  PyRef h = st.timers.pop(heap);
  if (!h) return {};
  if (st.handle_offsets_known &&
      Py_TYPE(h.get()) == reinterpret_cast<PyTypeObject*>(st.timer_handle_type)) {
    Py_SETREF(*slot_ptr(h.get(), st.handle_offsets[kSched]), Py_NewRef(Py_False));
  } else if (PyObject_SetAttr(h.get(), st.scheduled, Py_False) < 0) {
    return {};
  }
  return h;
}

// Drops cancelled timers: all at once when they are many (a Python method of
// the loop, as rare as in the standard library), else from the heap's head.
bool drop_cancelled_timers(const LoopState& st, PyObject* loop) {
  PyRef scheduled = loop_attr(st, loop, kScheduledAttr);
  PyRef count_obj = loop_attr(st, loop, kCancelledCountAttr);
  if (!scheduled || !count_obj) return false;
  long count = PyLong_AsLong(count_obj.get());
  if (count == -1 && PyErr_Occurred()) return false;
  Py_ssize_t n = fast_len(st, scheduled.get());
  if (n < 0) return false;
  if (n > kMinScheduledTimerHandles &&
      static_cast<double>(count) / static_cast<double>(n) > kMinCancelledTimerHandlesFraction) {
    return PyRef::steal(PyObject_CallMethodNoArgs(loop, st.purge_timers)).operator bool();
  }
  long dropped = 0;
  while (PyList_Check(scheduled.get()) && PyList_GET_SIZE(scheduled.get()) > 0) {
    PyRef head = PyRef::borrow(PyList_GET_ITEM(scheduled.get(), 0));
    int c = truth(head.get(), st.cancelled);
    if (c < 0) return false;
    if (!c) break;
    if (!pop_timer(st, scheduled.get())) return false;
    ++dropped;
  }
  if (dropped == 0) return true;
  PyRef left = PyRef::steal(PyLong_FromLong(count - dropped));
  return left && PyObject_SetAttr(loop, st.timer_cancelled_count, left.get()) == 0;
}

// The wait's timeout in seconds; negative: until an event. `stopping`:
// the loop is stopping (poll() then never skips the wait).
bool wait_timeout(const LoopState& st, PyObject* loop, PyObject* ready, PyObject* due,
                  double& timeout, bool& stopping) {
  Py_ssize_t nready = fast_len(st, ready);
  if (nready < 0) return false;
  int stop = truth(st, loop, kStoppingAttr);
  if (stop < 0) return false;
  timeout = -1;
  stopping = stop != 0;
  if (nready > 0 || stopping || PyList_GET_SIZE(due) > 0) {
    timeout = 0;
    return true;
  }
  PyRef scheduled = loop_attr(st, loop, kScheduledAttr);
  if (!scheduled) return false;
  if (!PyList_Check(scheduled.get()) || PyList_GET_SIZE(scheduled.get()) == 0) return true;
  PyRef head = PyRef::borrow(PyList_GET_ITEM(scheduled.get(), 0));
  double when, t;
  if (!when_of(st, head.get(), when) || !now(st, loop, t)) return false;
  timeout = std::min(std::max(0.0, when - t), kMaximumSelectTimeout);
  return true;
}

// handle._cancelled, read from its slot when it is a plain Handle/TimerHandle.
int is_cancelled(const LoopState& st, PyObject* h) {
  PyTypeObject* type = Py_TYPE(h);
  if (st.cancelled_offset >= 0 && (type == reinterpret_cast<PyTypeObject*>(st.handle_type) ||
                                   type == reinterpret_cast<PyTypeObject*>(st.timer_handle_type))) {
    PyObject* v = slot_value(h, st.cancelled_offset);
    if (v == Py_False) return 0;
    if (v == Py_True) return 1;
  }
  return truth(h, st.cancelled);
}

// One ready handle of a selector key: queued, or its descriptor's watch
// removed when it was cancelled (BaseSelectorEventLoop._process_events).
bool dispatch(const LoopState& st, PyObject* loop, PyObject* ready, PyObject* fileobj,
              PyObject* handle, PyObject* remove) {
  if (handle == Py_None) return true;
  int c = is_cancelled(st, handle);
  if (c < 0) return false;
  if (c) return PyRef::steal(PyObject_CallMethodOneArg(loop, remove, fileobj)).operator bool();
  return append(st, ready, handle);
}

// The wait on the libuv selector and the dispatch of what it found, natively;
// the generic path (selector.select, loop._process_events) when the loop's
// selector or _process_events is not ours, or signal handlers are set.
// The one rule for skipping a wait: a zero-timeout wait (callbacks or due
// timers are ready) right after the previous iteration's wait is skipped,
// as uvloop runs what its I/O callbacks made ready in the same libuv turn:
// a task woken by I/O (a stream's read, an Erlang reply) would otherwise
// cost an epoll_wait that finds nothing (2 of 4 per stream echo round
// trip). I/O is still polled at least every other iteration, always when
// stopping, and in the first iteration of run_forever (run_forever_loop).
bool poll(const LoopState& st, PyObject* loop, PyObject* ready, double timeout, bool stopping) {
  PyRef selector = loop_attr(st, loop, kSelectorAttr);
  if (!selector) return false;
  PyRef uv = selector_attr(st, selector.get(), kUvAttr);
  PyRef on_signal = uv ? selector_attr(st, selector.get(), kOnSignalAttr) : PyRef();
  if (!uv || !on_signal) PyErr_Clear();
  // The class's _process_events (borrowed; an instance attribute would be odd).
  PyObject* process = _PyType_Lookup(Py_TYPE(loop), st.process_events);
  bool native = uv && Py_TYPE(uv.get()) == reinterpret_cast<PyTypeObject*>(st.selector_type) &&
                on_signal.get() == Py_None && process == st.base_process_events;
  if (!native) {
    PyRef arg = timeout < 0 ? PyRef::borrow(Py_None) : PyRef::steal(PyFloat_FromDouble(timeout));
    if (!arg) return false;
    PyRef events = PyRef::steal(PyObject_CallMethodOneArg(selector.get(), st.select, arg.get()));
    if (!events) return false;
    return PyRef::steal(PyObject_CallMethodOneArg(loop, st.process_events, events.get()))
        .
        operator bool();
  }
  auto* s = reinterpret_cast<SelectorObject*>(uv.get());
  if (!s->sel || s->selecting) {
    PyErr_SetString(PyExc_RuntimeError, s->sel ? "the selector is in use by its loop's thread"
                                               : "the selector is closed");
    return false;
  }
  if (timeout == 0 && !stopping && s->polled_last) {
    s->polled_last = false;
    return true;
  }
  s->polled_last = true;
  if (!selector_wait(s, timeout)) return false;
  if (s->sel->ready_list().empty()) return true;
  std::vector<std::pair<int, int>> found = s->sel->ready_list();
  PyRef fd_to_key = selector_attr(st, selector.get(), kFdToKeyAttr);
  if (!fd_to_key) return false;
  for (auto [fd, events] : found) {
    PyRef fd_obj = PyRef::steal(PyLong_FromLong(fd));
    if (!fd_obj) return false;
    PyRef key = PyRef::borrow(PyDict_GetItemWithError(fd_to_key.get(), fd_obj.get()));
    if (!key) {
      if (PyErr_Occurred()) return false;
      continue;  // unregistered meanwhile
    }
    // SelectorKey(fileobj, fd, events, data); data is (reader, writer).
    PyObject* data = PyTuple_Check(key.get()) && PyTuple_GET_SIZE(key.get()) == 4
                         ? PyTuple_GET_ITEM(key.get(), 3)
                         : nullptr;
    if (!data || !PyTuple_Check(data) || PyTuple_GET_SIZE(data) != 2) {
      PyErr_SetString(PyExc_RuntimeError, "unexpected selector key");
      return false;
    }
    long mask = PyLong_AsLong(PyTuple_GET_ITEM(key.get(), 2));
    if (mask == -1 && PyErr_Occurred()) return false;
    mask &= events;
    PyObject* fileobj = PyTuple_GET_ITEM(key.get(), 0);
    if ((mask & 1) &&
        !dispatch(st, loop, ready, fileobj, PyTuple_GET_ITEM(data, 0), st.remove_reader)) {
      return false;
    }
    if ((mask & 2) &&
        !dispatch(st, loop, ready, fileobj, PyTuple_GET_ITEM(data, 1), st.remove_writer)) {
      return false;
    }
  }
  return true;
}

// The due heap timers and the loop's due list (all due: they were due when
// made) to _ready, merged by their `when` as popping one heap would.
bool move_due_timers(const LoopState& st, PyObject* loop, PyObject* ready, PyObject* due) {
  PyRef scheduled = loop_attr(st, loop, kScheduledAttr);
  if (!scheduled) return false;
  bool heap = PyList_Check(scheduled.get()) && PyList_GET_SIZE(scheduled.get()) > 0;
  Py_ssize_t ndue = PyList_GET_SIZE(due);
  if (!heap && ndue == 0) return true;
  double end_time = 0;
  if (heap) {
    double t, resolution;
    if (!now(st, loop, t) || !number(st, loop, kClockResolutionAttr, resolution)) return false;
    end_time = t + resolution;
  }
  Py_ssize_t next = 0;  // into due
  while (true) {
    if (heap && PyList_GET_SIZE(scheduled.get()) == 0) heap = false;
    double when = 0;
    if (heap) {
      PyRef head = PyRef::borrow(PyList_GET_ITEM(scheduled.get(), 0));
      if (!when_of(st, head.get(), when)) return false;
      if (when >= end_time) heap = false;
    }
    if (next < PyList_GET_SIZE(due)) {
      PyRef first = PyRef::borrow(PyList_GET_ITEM(due, next));
      double due_when = 0;
      if (heap && !when_of(st, first.get(), due_when)) return false;
      if (!heap || due_when < when) {
        ++next;
        if (!append(st, ready, first.get())) return false;
        continue;
      }
    }
    if (!heap) break;
    PyRef h = pop_timer(st, scheduled.get());
    if (!h || !append(st, ready, h.get())) return false;
  }
  return PyList_SetSlice(due, 0, std::min(next, PyList_GET_SIZE(due)), nullptr) == 0;
}

// The loop's due list (a new list when it has none, e.g. a subclass that
// replaced __init__), or null with an error set.
PyRef due_list(const LoopState& st, PyObject* loop) {
  PyRef due = loop_attr(st, loop, kDueTimersAttr);
  if (due && PyList_CheckExact(due.get())) return due;
  if (!due && !PyErr_ExceptionMatches(PyExc_AttributeError)) return {};
  PyErr_Clear();
  return PyRef::steal(PyList_New(0));
}

// Debug mode runs the standard library's _run_once: the due timers join the
// heap first.
bool due_to_heap(const LoopState& st, PyObject* loop) {
  PyRef due = get(loop, st.due_timers);
  if (!due || !PyList_CheckExact(due.get())) {
    PyErr_Clear();
    return true;
  }
  if (PyList_GET_SIZE(due.get()) == 0) return true;
  PyRef scheduled = get(loop, st.scheduled);
  if (!scheduled) return false;
  for (Py_ssize_t i = 0; i < PyList_GET_SIZE(due.get()); ++i) {
    PyRef h = PyRef::borrow(PyList_GET_ITEM(due.get(), i));
    if (!st.timers.push(scheduled.get(), h.get()) ||
        PyObject_SetAttr(h.get(), st.scheduled, Py_True) < 0) {
      return false;
    }
  }
  return PyList_SetSlice(due.get(), 0, PyList_GET_SIZE(due.get()), nullptr) == 0;
}

// Handle._run: the callback in the handle's context; an exception goes to
// the loop's exception handler (through erlang._loop's reporter), except
// SystemExit and KeyboardInterrupt, which end run_once.
bool run_handle(const LoopState& st, PyObject* h) {
  PyTypeObject* type = Py_TYPE(h);
  bool plain = type == reinterpret_cast<PyTypeObject*>(st.handle_type) ||
               type == reinterpret_cast<PyTypeObject*>(st.timer_handle_type);
  if (!plain || !st.handle_offsets_known || !st.callback_failed) {
    return PyRef::steal(PyObject_CallMethodNoArgs(h, st.run)).operator bool();
  }
  PyRef ctx = PyRef::borrow(slot_value(h, st.handle_offsets[kContext]));
  PyRef callback = PyRef::borrow(slot_value(h, st.handle_offsets[kCallback]));
  PyRef args = PyRef::borrow(slot_value(h, st.handle_offsets[kArgs]));
  if (!ctx || !PyContext_CheckExact(ctx.get()) || !callback) {
    return PyRef::steal(PyObject_CallMethodNoArgs(h, st.run)).operator bool();
  }
  if (!callback || !args || !PyTuple_Check(args.get())) {
    PyErr_Clear();
    return PyRef::steal(PyObject_CallMethodNoArgs(h, st.run)).operator bool();
  }
  PyRef result;
  if (PyContext_Enter(ctx.get()) == 0) {
    result = PyRef::steal(PyObject_Vectorcall(callback.get(), &PyTuple_GET_ITEM(args.get(), 0),
                                              static_cast<size_t>(PyTuple_GET_SIZE(args.get())),
                                              nullptr));
    PyObject *type_, *value, *tb;
    PyErr_Fetch(&type_, &value, &tb);
    if (PyContext_Exit(ctx.get()) < 0) PyErr_Clear();
    PyErr_Restore(type_, value, tb);
  }
  if (result) return true;
  if (PyErr_ExceptionMatches(PyExc_SystemExit) || PyErr_ExceptionMatches(PyExc_KeyboardInterrupt)) {
    return false;
  }
  PyObject *type_, *value, *tb;
  PyErr_Fetch(&type_, &value, &tb);
  PyErr_NormalizeException(&type_, &value, &tb);
  if (tb) PyException_SetTraceback(value, tb);
  PyRef exc = PyRef::steal(value);
  Py_XDECREF(type_);
  Py_XDECREF(tb);
  return PyRef::steal(PyObject_CallFunctionObjArgs(st.callback_failed, h, exc.get(), nullptr))
      .
      operator bool();
}

bool run_ready(const LoopState& st, PyObject* ready) {
  Py_ssize_t ntodo = fast_len(st, ready);
  if (ntodo < 0) return false;
  for (Py_ssize_t i = 0; i < ntodo; ++i) {
    PyRef h = ready_popleft(st, ready);
    if (!h) return false;
    int c = is_cancelled(st, h.get());
    if (c < 0) return false;
    if (!c && !run_handle(st, h.get())) return false;
  }
  return true;
}

}  // namespace

PyObject* run_once(const LoopState& st, PyObject* loop) {
  int debug = truth(st, loop, kDebugAttr);
  if (debug < 0) return nullptr;
  if (debug) {
    if (!due_to_heap(st, loop)) return nullptr;
    return PyObject_CallOneArg(st.base_run_once, loop);
  }
  if (!drop_cancelled_timers(st, loop)) return nullptr;
  PyRef ready = loop_attr(st, loop, kReadyAttr);
  PyRef due = ready ? due_list(st, loop) : PyRef();
  double timeout;
  bool stopping;
  if (!ready || !due || !wait_timeout(st, loop, ready.get(), due.get(), timeout, stopping) ||
      !poll(st, loop, ready.get(), timeout, stopping) ||
      !move_due_timers(st, loop, ready.get(), due.get()) || !run_ready(st, ready.get())) {
    return nullptr;
  }
  Py_RETURN_NONE;
}

}  // namespace ep
