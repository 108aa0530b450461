#include "core/timer_heap.hpp"

#include <structmember.h>

namespace ep {

Py_ssize_t slot_offset(PyObject* type, PyObject* name) {
  PyRef descr = PyRef::steal(PyObject_GetAttr(type, name));
  if (!descr) {
    PyErr_Clear();
    return -1;
  }
  if (Py_TYPE(descr.get()) != &PyMemberDescr_Type) return -1;
  PyMemberDef* m = reinterpret_cast<PyMemberDescrObject*>(descr.get())->d_member;
  return m->type == T_OBJECT_EX ? m->offset : -1;
}

int TimerHeap::less(PyObject* a, PyObject* b) const {
  auto* t = reinterpret_cast<PyTypeObject*>(timer_type);
  if (Py_TYPE(a) == t && Py_TYPE(b) == t) {
    if (when_offset >= 0) {
      PyObject* wa = slot_value(a, when_offset);
      PyObject* wb = slot_value(b, when_offset);
      if (wa && wb && PyFloat_CheckExact(wa) && PyFloat_CheckExact(wb)) {
        return PyFloat_AS_DOUBLE(wa) < PyFloat_AS_DOUBLE(wb);
      }
    }
    PyRef wa = PyRef::steal(PyObject_GetAttr(a, when));
    PyRef wb = wa ? PyRef::steal(PyObject_GetAttr(b, when)) : PyRef();
    if (!wb) return -1;
    if (PyFloat_CheckExact(wa.get()) && PyFloat_CheckExact(wb.get())) {
      return PyFloat_AS_DOUBLE(wa.get()) < PyFloat_AS_DOUBLE(wb.get());
    }
    return PyObject_RichCompareBool(wa.get(), wb.get(), Py_LT);
  }
  return PyObject_RichCompareBool(a, b, Py_LT);
}

// heapq._siftdown: the item at `pos` moves up towards `start`.
bool TimerHeap::sift_down(PyObject* heap, Py_ssize_t start, Py_ssize_t pos) const {
  PyRef item = PyRef::borrow(PyList_GET_ITEM(heap, pos));
  while (pos > start) {
    Py_ssize_t parent_pos = (pos - 1) >> 1;
    PyRef parent = PyRef::borrow(PyList_GET_ITEM(heap, parent_pos));
    int lt = less(item.get(), parent.get());
    if (lt < 0) return false;
    if (!lt) break;
    if (PyList_GET_SIZE(heap) <= pos) {  // changed by a comparison
      PyErr_SetString(PyExc_RuntimeError, "list changed size during iteration");
      return false;
    }
    PyList_SetItem(heap, pos, parent.release());
    pos = parent_pos;
  }
  PyList_SetItem(heap, pos, item.release());
  return true;
}

// heapq._siftup: the item at `pos` goes down to a leaf, then up.
bool TimerHeap::sift_up(PyObject* heap, Py_ssize_t pos) const {
  Py_ssize_t end = PyList_GET_SIZE(heap);
  Py_ssize_t start = pos;
  PyRef item = PyRef::borrow(PyList_GET_ITEM(heap, pos));
  Py_ssize_t child = 2 * pos + 1;
  while (child < end) {
    Py_ssize_t right = child + 1;
    if (right < end) {
      PyRef a = PyRef::borrow(PyList_GET_ITEM(heap, child));
      PyRef b = PyRef::borrow(PyList_GET_ITEM(heap, right));
      int lt = less(a.get(), b.get());
      if (lt < 0) return false;
      if (PyList_GET_SIZE(heap) != end) {
        PyErr_SetString(PyExc_RuntimeError, "list changed size during iteration");
        return false;
      }
      if (!lt) child = right;
    }
    PyList_SetItem(heap, pos, Py_NewRef(PyList_GET_ITEM(heap, child)));
    pos = child;
    child = 2 * pos + 1;
  }
  PyList_SetItem(heap, pos, item.release());
  return sift_down(heap, start, pos);
}

bool TimerHeap::push(PyObject* heap, PyObject* item) const {
  if (!PyList_Check(heap)) {
    PyErr_SetString(PyExc_TypeError, "heap argument must be a list");
    return false;
  }
  if (PyList_Append(heap, item) < 0) return false;
  return sift_down(heap, 0, PyList_GET_SIZE(heap) - 1);
}

PyRef TimerHeap::pop(PyObject* heap) const {
  if (!PyList_Check(heap)) {
    PyErr_SetString(PyExc_TypeError, "heap argument must be a list");
    return {};
  }
  Py_ssize_t n = PyList_GET_SIZE(heap);
  if (n == 0) {
    PyErr_SetString(PyExc_IndexError, "index out of range");
    return {};
  }
  PyRef last = PyRef::borrow(PyList_GET_ITEM(heap, n - 1));
  if (PyList_SetSlice(heap, n - 1, n, nullptr) < 0) return {};
  if (n == 1) return last;
  PyRef top = PyRef::borrow(PyList_GET_ITEM(heap, 0));
  PyList_SetItem(heap, 0, last.release());
  if (!sift_up(heap, 0)) return {};
  return top;
}

}  // namespace ep
