// The attributes run_once and LoopCore read every iteration, without a
// dictionary lookup: ErlangEventLoop and UvSelector declare them as
// __slots__ (member descriptors, so Python code reads and sets them as
// before), registered with set_loop_classes, and an instance of exactly
// those classes has them read at their offsets. Any other object (a
// subclass, a test's mock selector) is read by name. The _ready deque's
// append/popleft are the deque type's method descriptors, called directly.
#include <iterator>

#include "core/loop_state.hpp"
#include "core/py_ref.hpp"
#include "core/timer_heap.hpp"

namespace ep {
namespace {

PyRef read(PyObject* o, PyObject* cls, const Py_ssize_t* offsets, PyObject* const* names, int a) {
  if (reinterpret_cast<PyObject*>(Py_TYPE(o)) == cls && offsets[a] >= 0) {
    if (PyObject* v = slot_value(o, offsets[a])) return PyRef::borrow(v);
  }
  return PyRef::steal(PyObject_GetAttr(o, names[a]));
}

}  // namespace

PyRef loop_attr(const LoopState& st, PyObject* loop, LoopAttr a) {
  return read(loop, st.loop_class, st.loop_offsets, st.loop_attr_names, a);
}

PyRef selector_attr(const LoopState& st, PyObject* selector, SelectorAttr a) {
  return read(selector, st.uv_selector_class, st.selector_offsets, st.selector_attr_names, a);
}

bool ready_append(const LoopState& st, PyObject* ready, PyObject* h) {
  if (Py_TYPE(ready) == reinterpret_cast<PyTypeObject*>(st.deque_type)) {
    PyObject* args[] = {ready, h};
    return PyRef::steal(PyObject_Vectorcall(st.deque_append, args, 2, nullptr)).operator bool();
  }
  return PyRef::steal(PyObject_CallMethodOneArg(ready, st.append, h)).operator bool();
}

PyRef ready_popleft(const LoopState& st, PyObject* ready) {
  if (Py_TYPE(ready) == reinterpret_cast<PyTypeObject*>(st.deque_type)) {
    return PyRef::steal(PyObject_Vectorcall(st.deque_popleft, &ready, 1, nullptr));
  }
  return PyRef::steal(PyObject_CallMethodNoArgs(ready, st.popleft));
}

bool init_loop_attrs(LoopState& st) {
  PyObject* loop_names[] = {
      st.ready,           st.scheduled, st.stopping,   st.debug,
      st.closed,          st.selector,  st.due_timers, st.timer_cancelled_count,
      st.clock_resolution};
  static_assert(std::size(loop_names) == sizeof(LoopState::loop_attr_names) / sizeof(PyObject*));
  for (size_t i = 0; i < std::size(loop_names); ++i) {
    st.loop_attr_names[i] = loop_names[i];
    st.loop_offsets[i] = -1;
  }
  PyObject* selector_names[] = {st.uv, st.on_signal, st.fd_to_key};
  for (size_t i = 0; i < std::size(selector_names); ++i) {
    st.selector_attr_names[i] = selector_names[i];
    st.selector_offsets[i] = -1;
  }
  PyRef collections = PyRef::steal(PyImport_ImportModule("collections"));
  if (!collections) return false;
  st.deque_type = PyObject_GetAttrString(collections.get(), "deque");
  if (!st.deque_type) return false;
  st.deque_append = PyObject_GetAttr(st.deque_type, st.append);
  st.deque_popleft = st.deque_append ? PyObject_GetAttr(st.deque_type, st.popleft) : nullptr;
  return st.deque_popleft != nullptr;
}

void free_loop_attrs(LoopState& st) {
  Py_CLEAR(st.loop_class);
  Py_CLEAR(st.uv_selector_class);
  Py_CLEAR(st.deque_type);
  Py_CLEAR(st.deque_append);
  Py_CLEAR(st.deque_popleft);
}

PyObject* set_loop_classes(PyObject* module, PyObject* const* args, Py_ssize_t nargs) {
  if (nargs != 2 || !PyType_Check(args[0]) || !PyType_Check(args[1])) {
    PyErr_SetString(PyExc_TypeError, "set_loop_classes(loop_class, selector_class): two classes");
    return nullptr;
  }
  LoopState& st = loop_state(module);
  for (size_t i = 0; i < std::size(st.loop_offsets); ++i) {
    st.loop_offsets[i] = slot_offset(args[0], st.loop_attr_names[i]);
  }
  for (size_t i = 0; i < std::size(st.selector_offsets); ++i) {
    st.selector_offsets[i] = slot_offset(args[1], st.selector_attr_names[i]);
  }
  Py_XSETREF(st.loop_class, Py_NewRef(args[0]));
  Py_XSETREF(st.uv_selector_class, Py_NewRef(args[1]));
  Py_RETURN_NONE;
}

}  // namespace ep
