// heapq's push and pop on a loop's _scheduled list of TimerHandles, with
// heapq's exact algorithm (so the list is the same heap heapq would make),
// comparing two exact TimerHandles by their _when directly instead of calling
// TimerHandle.__lt__ (a Python frame per comparison); anything else is
// compared with `<`, as heapq does.
#pragma once

#include <Python.h>

#include "core/py_ref.hpp"

namespace ep {

// The offset of a __slots__ attribute of `type` holding an object, or -1:
// reading it directly skips the attribute lookup on the hot paths.
Py_ssize_t slot_offset(PyObject* type, PyObject* name);

// The value of that slot of `o` (borrowed; null when unset).
inline PyObject* slot_value(PyObject* o, Py_ssize_t offset) {
  return *reinterpret_cast<PyObject**>(reinterpret_cast<char*>(o) + offset);
}

// The address of that slot, to store into.
inline PyObject** slot_ptr(PyObject* o, Py_ssize_t offset) {
  return reinterpret_cast<PyObject**>(reinterpret_cast<char*>(o) + offset);
}

struct TimerHeap {
  PyObject* timer_type;    // asyncio.events.TimerHandle (borrowed)
  PyObject* when;          // the interned name "_when" (borrowed)
  Py_ssize_t when_offset;  // its slot in a TimerHandle, or -1

  bool push(PyObject* heap, PyObject* item) const;
  PyRef pop(PyObject* heap) const;  // null with IndexError when empty

 private:
  int less(PyObject* a, PyObject* b) const;  // 1, 0, -1 on error
  bool sift_down(PyObject* heap, Py_ssize_t start, Py_ssize_t pos) const;
  bool sift_up(PyObject* heap, Py_ssize_t pos) const;
};

}  // namespace ep
