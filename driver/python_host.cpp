#include "driver/python_host.hpp"

#include <Python.h>
#include <dlfcn.h>

#include <csignal>
#include <mutex>

#include "core/py_ref.hpp"
#include "core/runtime.hpp"
#include "driver/router.hpp"

namespace ep::drv {
namespace {

// erl_ddll loads the driver with RTLD_LOCAL, so libpython (a dependency of
// the driver) is not searched when a C extension module (numpy, _ssl ...)
// is loaded and needs its symbols: load it again, RTLD_GLOBAL, before any
// import. The handle is kept for the life of the VM.
void promote_libpython() {
  Dl_info info;
  if (dladdr(reinterpret_cast<void*>(&Py_InitializeFromConfig), &info) == 0 || !info.dli_fname) {
    return;
  }
  (void)dlopen(info.dli_fname, RTLD_NOW | RTLD_GLOBAL | RTLD_NOLOAD);
}

void add_paths(const std::vector<std::string>& paths) {
  GilEnsure gil;
  PyObject* sys_path = PySys_GetObject("path");  // borrowed
  for (auto it = paths.rbegin(); it != paths.rend(); ++it) {
    PyRef entry = PyRef::steal(PyUnicode_DecodeFSDefault(it->c_str()));
    if (!entry) {
      PyErr_Clear();
      continue;
    }
    int present = PySequence_Contains(sys_path, entry.get());
    if (present == 0) present = PyList_Insert(sys_path, 0, entry.get());
    if (present < 0) PyErr_Clear();
  }
  // An active venv's site-packages stays first (erlang/_venv.py).
  PyRef venv = PyRef::steal(PyImport_ImportModule("erlang._venv"));
  PyRef done =
      venv ? PyRef::steal(PyObject_CallMethod(venv.get(), "keep_first", nullptr)) : PyRef();
  if (!done) PyErr_Clear();
}

}  // namespace

bool ensure_python(const std::vector<std::string>& python_path, std::string& error) {
  enum class State { kNotStarted, kRunning, kFailed };
  static std::mutex mu;
  static State state = State::kNotStarted;
  std::lock_guard lk(mu);
  switch (state) {
    case State::kNotStarted: {
      promote_libpython();
      // The VM ignores SIGCHLD, so the kernel reaps every child at once and
      // Python's subprocess never learns an exit status (returncode 255):
      // back to the default. The VM's own children are erl_child_setup's.
      std::signal(SIGCHLD, SIG_DFL);
      RuntimeOptions options;
      options.python_path = python_path;
      // Signals stay the VM's: Runtime::start sets install_signal_handlers = 0.
      bool ok = Runtime::instance().start(options, Router::instance());
      state = ok ? State::kRunning : State::kFailed;
      if (!ok) break;
      return true;
    }
    case State::kRunning:
      add_paths(python_path);
      return true;
    case State::kFailed:
      break;
  }
  error = "Python could not start in this VM (its error is on the VM's standard error)";
  return false;
}

}  // namespace ep::drv
