#include "core/runtime.hpp"

#include <cstdio>

#include "core/channel_module.hpp"
#include "core/erlang_module.hpp"
#include "core/loop_host_module.hpp"
#include "core/loop_module.hpp"

namespace ep {
namespace {

PyRef attr(PyObject* module, const char* name) {
  return PyRef::steal(PyObject_GetAttrString(module, name));
}

bool check(PyStatus status) {
  if (!PyStatus_Exception(status)) return true;
  std::fprintf(stderr, "erlang_python: Python start failed: %s\n",
               status.err_msg ? status.err_msg : "unknown error");
  return false;
}

}  // namespace

Runtime& Runtime::instance() {
  static Runtime runtime;
  return runtime;
}

bool Runtime::start(const RuntimeOptions& options, MessageSink& sink) {
  sink_ = &sink;
  if (PyImport_AppendInittab("_erlang", &init_erlang_module) < 0) return false;
  if (PyImport_AppendInittab("_erlang_channel", &init_channel_module) < 0) return false;
  if (PyImport_AppendInittab("_erlang_loop_host", &init_loop_host_module) < 0) return false;
  if (PyImport_AppendInittab("_erlang_loop", &init_loop_module) < 0) return false;

  arenas_.install();
  PyConfig config;
  PyConfig_InitPythonConfig(&config);
  config.install_signal_handlers = 0;  // signals belong to the port program
  config.parse_argv = 0;
  config.buffered_stdio = 0;
  wchar_t* argv[] = {const_cast<wchar_t*>(L"erlang_python")};
  bool ok = check(PyConfig_SetArgv(&config, 1, argv)) &&
            check(PyConfig_SetBytesString(&config, &config.executable, EP_PYTHON_EXECUTABLE)) &&
            check(Py_InitializeFromConfig(&config));
  PyConfig_Clear(&config);
  if (!ok) return false;

  PyObject* sys_path = PySys_GetObject("path");  // borrowed
  for (auto it = options.python_path.rbegin(); it != options.python_path.rend(); ++it) {
    PyRef entry = PyRef::steal(PyUnicode_DecodeFSDefault(it->c_str()));
    if (!entry || PyList_Insert(sys_path, 0, entry.get()) < 0) return false;
  }
  python_version_ = Py_GetVersion();
  python_version_ = python_version_.substr(0, python_version_.find(' '));
  if (!load_package()) {
    if (PyErr_Occurred()) {
      PyErr_Print();
    } else {
      std::fprintf(stderr, "erlang_python: the Python package 'erlang' is incomplete\n");
    }
    PyRef path = PyRef::steal(PyObject_Repr(sys_path));
    const char* text = path ? PyUnicode_AsUTF8(path.get()) : nullptr;
    std::fprintf(stderr, "erlang_python: sys.path was %s\n", text ? text : "?");
    return false;
  }
  interp_ = PyInterpreterState_Get();
  PyEval_SaveThread();
  return true;
}

bool Runtime::load_package() {
  // Stop at the first import that fails, its exception still set for the
  // caller to print (a later import would run with it pending and lose it).
  erlang_module_ = PyRef::steal(PyImport_ImportModule("erlang"));
  if (!erlang_module_) return false;
  PyRef runtime = PyRef::steal(PyImport_ImportModule("erlang._runtime"));
  if (!runtime) return false;
  PyRef io = PyRef::steal(PyImport_ImportModule("erlang._io"));
  if (!io) return false;
  builtins_ = PyRef::steal(PyImport_ImportModule("builtins"));
  if (!builtins_) return false;
  types_.atom = attr(erlang_module_.get(), "Atom");
  types_.pid = attr(erlang_module_.get(), "Pid");
  types_.ref = attr(erlang_module_.get(), "Ref");
  types_.opaque = attr(erlang_module_.get(), "OpaqueTerm");
  types_.atom_cache = PyRef::steal(PyDict_New());
  compile_eval_ = attr(runtime.get(), "compile_eval");
  compile_exec_ = attr(runtime.get(), "compile_exec");
  format_exception_ = attr(runtime.get(), "format_exception");
  run_coroutine_ = attr(runtime.get(), "run_coroutine");
  if (!types_.atom || !types_.pid || !types_.ref || !types_.opaque || !types_.atom_cache ||
      !compile_eval_ || !compile_exec_ || !format_exception_ || !run_coroutine_) {
    return false;
  }
  // sys.stdout / sys.stderr become streams whose lines reach the Erlang logger.
  PyRef stream_cls = attr(io.get(), "OutputStream");
  if (!stream_cls) return false;
  PyRef out = PyRef::steal(PyObject_CallFunction(stream_cls.get(), "is", 1, "<stdout>"));
  PyRef err = PyRef::steal(PyObject_CallFunction(stream_cls.get(), "is", 2, "<stderr>"));
  return out && err && PySys_SetObject("stdout", out.get()) == 0 &&
         PySys_SetObject("stderr", err.get()) == 0;
}

int Runtime::raise_memory_error() {
  if (!interp_) return 0;
  PyGILState_STATE gil = PyGILState_Ensure();
  PyThreadState* self = PyThreadState_Get();
  int raised = 0;
  for (PyThreadState* ts = PyInterpreterState_ThreadHead(interp_); ts != nullptr;
       ts = PyThreadState_Next(ts)) {
    if (ts == self) continue;
    PyFrameObject* frame = PyThreadState_GetFrame(ts);
    if (frame == nullptr) continue;  // idle: waiting for a request, not running Python
    Py_DECREF(frame);
    // SetAsyncExc matches the OS thread id (thread_id), not PyThreadState_GetID.
    raised += PyThreadState_SetAsyncExc(ts->thread_id, PyExc_MemoryError);
  }
  PyGILState_Release(gil);
  return raised;
}

}  // namespace ep
