#include <climits>
#include <cmath>
#include <memory>

#include "core/loop_state.hpp"
#include "core/py_ref.hpp"
#include "core/uv_selector_pool.hpp"

namespace ep {
namespace {

PyObject* uv_error(int rc) {
  errno = -rc;
  return PyErr_SetFromErrno(PyExc_OSError);
}

SelectorObject* open_selector(PyObject* self) {
  auto* s = reinterpret_cast<SelectorObject*>(self);
  if (!s->sel) {
    PyErr_SetString(PyExc_RuntimeError, "the selector is closed");
    return nullptr;
  }
  if (s->selecting) {
    PyErr_SetString(PyExc_RuntimeError, "the selector is in use by its loop's thread");
    return nullptr;
  }
  return s;
}

PyObject* selector_new(PyTypeObject* type, PyObject*, PyObject*) {
  PyRef self = PyRef::steal(type->tp_alloc(type, 0));
  if (!self) return nullptr;
  auto* s = reinterpret_cast<SelectorObject*>(self.get());
  new (&s->sel) std::unique_ptr<UvSelector>();
  s->selecting = false;
  s->poll_first = true;
  s->polled_last = false;
  s->reply_fd = -1;
  new (&s->spin_policy) SpinPolicy();
  s->spins = 0;
  s->spins_caught = 0;
  s->io_polled_ns = 0;
  if (int rc = take_selector(s->sel); rc < 0) return uv_error(rc);
  return self.release();
}

void selector_dealloc(PyObject* self) {
  auto* s = reinterpret_cast<SelectorObject*>(self);
  give_back_selector(std::move(s->sel));
  s->sel.~unique_ptr<UvSelector>();
  PyTypeObject* type = Py_TYPE(self);
  type->tp_free(self);
  Py_DECREF(type);  // a heap type: each instance holds a reference
}

// watch(fd, events): events is a mask of 1 (read) and 2 (write); 0 stops.
PyObject* selector_watch(PyObject* self, PyObject* const* args, Py_ssize_t nargs) {
  SelectorObject* s = open_selector(self);
  if (!s) return nullptr;
  int fd, events;
  if (nargs != 2 || (fd = PyLong_AsLong(args[0])) == -1 ||
      ((events = PyLong_AsLong(args[1])) == -1 && PyErr_Occurred())) {
    if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "watch(fd, events): fd >= 0");
    return nullptr;
  }
  if (fd < 0 || events < 0 || events > (UV_READABLE | UV_WRITABLE)) {
    PyErr_SetString(PyExc_ValueError, "watch(fd, events): fd >= 0, events in 0..3");
    return nullptr;
  }
  if (int rc = s->sel->watch(fd, events); rc < 0) return uv_error(rc);
  Py_RETURN_NONE;
}

// select(timeout): timeout in seconds (None: until an event); a list of (fd, events).
PyObject* selector_select(PyObject* self, PyObject* arg) {
  SelectorObject* s = open_selector(self);
  if (!s) return nullptr;
  double timeout = -1;
  if (arg != Py_None) {
    timeout = PyFloat_AsDouble(arg);
    if (timeout == -1.0 && PyErr_Occurred()) return nullptr;
    if (timeout < 0) timeout = 0;
  }
  if (!selector_wait(s, timeout)) return nullptr;
  const auto& ready = s->sel->ready_list();
  PyRef out = PyRef::steal(PyList_New(static_cast<Py_ssize_t>(ready.size())));
  if (!out) return nullptr;
  for (size_t i = 0; i < ready.size(); ++i) {
    PyObject* pair = Py_BuildValue("(ii)", ready[i].first, ready[i].second);
    if (!pair) return nullptr;
    PyList_SET_ITEM(out.get(), static_cast<Py_ssize_t>(i), pair);
  }
  return out.release();
}

// set_reply_fd(fd): the eventfd that erlang.async_call replies for this
// loop signal (-1: none); a wait reads the input itself while they are due.
PyObject* selector_set_reply_fd(PyObject* self, PyObject* arg) {
  SelectorObject* s = open_selector(self);
  if (!s) return nullptr;
  long fd = PyLong_AsLong(arg);
  if (fd == -1 && PyErr_Occurred()) return nullptr;
  if (fd < -1 || fd > INT_MAX) {
    PyErr_SetString(PyExc_ValueError, "set_reply_fd(fd): fd >= 0, or -1");
    return nullptr;
  }
  s->reply_fd = static_cast<int>(fd);
  Py_RETURN_NONE;
}

// spin_stats() -> (spins, caught): the waits that read the input first
// (spin_for_replies), and those that found their loop ready meanwhile.
PyObject* selector_spin_stats(PyObject* self, PyObject*) {
  auto* s = reinterpret_cast<SelectorObject*>(self);
  return Py_BuildValue("(KK)", s->spins, s->spins_caught);
}

PyObject* selector_wakeup(PyObject* self, PyObject*) {
  auto* s = reinterpret_cast<SelectorObject*>(self);
  if (s->sel) s->sel->wakeup();  // the GIL orders this against close()
  Py_RETURN_NONE;
}

// signal(signum, on): watch a signal number (through libuv) or stop.
PyObject* selector_signal(PyObject* self, PyObject* const* args, Py_ssize_t nargs) {
  SelectorObject* s = open_selector(self);
  if (!s) return nullptr;
  int signum, on;
  if (nargs != 2 || ((signum = PyLong_AsLong(args[0])) == -1 && PyErr_Occurred()) ||
      (on = PyObject_IsTrue(args[1])) < 0) {
    if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "signal(signum, on)");
    return nullptr;
  }
  if (int rc = s->sel->signal_watch(signum, on != 0); rc < 0) return uv_error(rc);
  Py_RETURN_NONE;
}

// signals(): the signal numbers received since the last call, in order.
PyObject* selector_signals(PyObject* self, PyObject*) {
  SelectorObject* s = open_selector(self);
  if (!s) return nullptr;
  std::vector<int> got = s->sel->take_signals();
  PyRef out = PyRef::steal(PyList_New(static_cast<Py_ssize_t>(got.size())));
  if (!out) return nullptr;
  for (size_t i = 0; i < got.size(); ++i) {
    PyObject* n = PyLong_FromLong(got[i]);
    if (!n) return nullptr;
    PyList_SET_ITEM(out.get(), static_cast<Py_ssize_t>(i), n);
  }
  return out.release();
}

PyObject* selector_close(PyObject* self, PyObject*) {
  auto* s = reinterpret_cast<SelectorObject*>(self);
  if (s->selecting) {
    PyErr_SetString(PyExc_RuntimeError, "the selector is in use by its loop's thread");
    return nullptr;
  }
  give_back_selector(std::move(s->sel));
  Py_RETURN_NONE;
}

PyObject* selector_closed(PyObject* self, void*) {
  return PyBool_FromLong(!reinterpret_cast<SelectorObject*>(self)->sel);
}

PyMethodDef kSelectorMethods[] = {
    {"watch", fastcall(selector_watch), METH_FASTCALL, "watch(fd, events): 0 stops watching."},
    {"select", selector_select, METH_O, "select(timeout or None): [(fd, events)]"},
    {"set_reply_fd", selector_set_reply_fd, METH_O,
     "set_reply_fd(fd): the eventfd erlang.async_call replies signal (-1: none)."},
    {"spin_stats", selector_spin_stats, METH_NOARGS,
     "(spins, caught): waits that read the input first, and those that found events."},
    {"wakeup", selector_wakeup, METH_NOARGS, "Ends a select() in progress; any thread."},
    {"signal", fastcall(selector_signal), METH_FASTCALL, "signal(signum, on)"},
    {"signals", selector_signals, METH_NOARGS, "The signals received since the last call."},
    {"close", selector_close, METH_NOARGS, "Closes the libuv loop and every handle."},
    {nullptr, nullptr, 0, nullptr},
};

PyGetSetDef kSelectorGetSet[] = {
    {"closed", selector_closed, nullptr, "True once closed.", nullptr},
    {nullptr, nullptr, nullptr, nullptr, nullptr},
};

PyType_Slot kSelectorSlots[] = {
    {Py_tp_doc,
     const_cast<char*>(
         "I/O readiness, wake-ups and signals of one event loop, on its own libuv loop.")},
    {Py_tp_new, reinterpret_cast<void*>(selector_new)},
    {Py_tp_dealloc, reinterpret_cast<void*>(selector_dealloc)},
    {Py_tp_methods, kSelectorMethods},
    {Py_tp_getset, kSelectorGetSet},
    {0, nullptr},
};

PyType_Spec kSpec = {"_erlang_loop.Selector", sizeof(SelectorObject), 0, Py_TPFLAGS_DEFAULT,
                     kSelectorSlots};

}  // namespace

namespace {
// A wait shorter than this found its events at once (it did not sleep).
constexpr uint64_t kSleptNs = 20'000;
}  // namespace

bool selector_wait(SelectorObject* s, double timeout) {
  long timeout_ms =
      timeout < 0 ? -1 : static_cast<long>(std::ceil(std::min(timeout, 86400.0) * 1e3));
  // What is ready already is taken without giving up the GIL (a busy loop
  // skips a GIL hand-over per iteration); only a wait releases it. When
  // waits sleep (a loop waiting for replies), that first turn is one system
  // call too many, and is skipped until a wait finds events at once again.
  if (timeout_ms == 0) {
    if (s->reply_fd >= 0) s->io_polled_ns = uv_hrtime();
    s->sel->poll_now();
    return true;
  }
  uint64_t start = uv_hrtime();
  if (s->poll_first) {
    s->io_polled_ns = start;
    if (s->sel->poll_now()) return true;
  }
  if (spin_for_replies(s, timeout_ms)) {
    s->poll_first = uv_hrtime() - start < kSleptNs;
    return true;
  }
  int rc;
  s->selecting = true;
  start = uv_hrtime();
  {
    GilRelease nogil;
    rc = s->sel->select(timeout_ms);
  }
  s->io_polled_ns = uv_hrtime();
  s->poll_first = uv_hrtime() - start < kSleptNs;
  s->selecting = false;
  if (rc < 0) {
    uv_error(rc);
    return false;
  }
  return true;
}

PyObject* make_selector_type() {
  return PyType_FromSpec(&kSpec);
}

}  // namespace ep
