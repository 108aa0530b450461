// loop.time() for the native hot paths: when the loop's `time` is
// BaseEventLoop.time (time.monotonic()), the clock is read here with
// time.monotonic()'s exact arithmetic, skipping a Python frame; an
// overridden `time` (tests replace it) is called.
#include <time.h>

#include <cstdint>

#include "core/loop_state.hpp"
#include "core/py_ref.hpp"

namespace ep {
namespace {

// time.monotonic(): CLOCK_MONOTONIC in nanoseconds, as a double of seconds
// the way _PyTime_AsSecondsDouble converts it.
double monotonic() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  constexpr int64_t kNsPerSec = 1'000'000'000;
  int64_t ns = static_cast<int64_t>(ts.tv_sec) * kNsPerSec + ts.tv_nsec;
  if (ns % kNsPerSec == 0) return static_cast<double>(ns / kNsPerSec);
  return static_cast<double>(ns) / 1e9;
}

}  // namespace

PyRef loop_time(const LoopState& st, PyObject* loop, bool& native) {
  PyRef method = PyRef::steal(PyObject_GetAttr(loop, st.time));
  if (!method) return {};
  native = PyMethod_Check(method.get()) && PyMethod_GET_FUNCTION(method.get()) == st.base_time;
  if (native) return PyRef::steal(PyFloat_FromDouble(monotonic()));
  return PyRef::steal(PyObject_CallNoArgs(method.get()));
}

bool loop_now(const LoopState& st, PyObject* loop, double& out) {
  PyRef method = PyRef::steal(PyObject_GetAttr(loop, st.time));
  if (!method) return false;
  if (PyMethod_Check(method.get()) && PyMethod_GET_FUNCTION(method.get()) == st.base_time) {
    out = monotonic();
    return true;
  }
  PyRef t = PyRef::steal(PyObject_CallNoArgs(method.get()));
  if (!t) return false;
  out = PyFloat_AsDouble(t.get());
  return !(out == -1.0 && PyErr_Occurred());
}

}  // namespace ep
