#include "core/loop_module.hpp"

#include <cstring>
#include <iterator>
#include <string>

#include "core/loop_state.hpp"
#include "core/py_ref.hpp"
#include "core/socket_transport.hpp"

namespace ep {

LoopState& loop_state(PyObject* module) {
  return *static_cast<LoopState*>(PyModule_GetState(module));
}

namespace {

// set_callback_failed(fn): fn(handle, exc) reports a callback's exception as
// Handle._run does (erlang._loop sets it at import).
PyObject* set_callback_failed(PyObject* module, PyObject* fn) {
  Py_XSETREF(loop_state(module).callback_failed, Py_NewRef(fn));
  Py_RETURN_NONE;
}

PyMethodDef kMethods[] = {
    {"set_callback_failed", set_callback_failed, METH_O, "set_callback_failed(fn)"},
    {"set_socket_transport", set_socket_transport, METH_O, "set_socket_transport(cls)"},
    {"set_loop_classes", fastcall(set_loop_classes), METH_FASTCALL,
     "set_loop_classes(loop_class, selector_class)"},
    {nullptr, nullptr, 0, nullptr},
};

PyObject* attr_of(const char* module, const char* qualname) {
  PyRef obj = PyRef::steal(PyImport_ImportModule(module));
  const char* name = qualname;
  while (obj && name) {
    const char* dot = std::strchr(name, '.');
    std::string part = dot ? std::string(name, dot) : std::string(name);
    obj = PyRef::steal(PyObject_GetAttrString(obj.get(), part.c_str()));
    name = dot ? dot + 1 : nullptr;
  }
  return obj.release();
}

int exec_module(PyObject* module) {
  LoopState& st = loop_state(module);
  st.selector_type = make_selector_type();
  if (!st.selector_type || PyModule_AddObjectRef(module, "Selector", st.selector_type) < 0) {
    return -1;
  }
  if (!(st.base_call_soon = attr_of("asyncio.base_events", "BaseEventLoop.call_soon")) ||
      !(st.base_call_at = attr_of("asyncio.base_events", "BaseEventLoop.call_at")) ||
      !(st.base_call_soon_threadsafe =
            attr_of("asyncio.base_events", "BaseEventLoop.call_soon_threadsafe")) ||
      !(st.base_call_later = attr_of("asyncio.base_events", "BaseEventLoop.call_later")) ||
      !(st.handle_type = attr_of("asyncio.events", "Handle")) ||
      !(st.timer_handle_type = attr_of("asyncio.events", "TimerHandle")) ||
      !(st.base_time = attr_of("asyncio.base_events", "BaseEventLoop.time")) ||
      !(st.future_type = attr_of("asyncio.futures", "Future")) ||
      !(st.loop_kwnames = Py_BuildValue("(s)", "loop")) ||
      !(st.tasks_module = PyImport_ImportModule("asyncio.tasks")) ||
      !(st.base_create_task = attr_of("asyncio.base_events", "BaseEventLoop.create_task")) ||
      !(st.task_kwnames = Py_BuildValue("(sss)", "loop", "name", "context")) ||
      !(st.base_run_once = attr_of("asyncio.base_events", "BaseEventLoop._run_once")) ||
      !(st.base_process_events =
            attr_of("asyncio.selector_events", "BaseSelectorEventLoop._process_events"))) {
    return -1;
  }
  struct Name {
    PyObject** slot;
    const char* text;
  };
  const Name names[] = {
      {&st.scheduled, "_scheduled"},
      {&st.ready, "_ready"},
      {&st.stopping, "_stopping"},
      {&st.timer_cancelled_count, "_timer_cancelled_count"},
      {&st.cancelled, "_cancelled"},
      {&st.when, "_when"},
      {&st.time, "time"},
      {&st.clock_resolution, "_clock_resolution"},
      {&st.selector, "_selector"},
      {&st.uv, "_uv"},
      {&st.fd_to_key, "_fd_to_key"},
      {&st.on_signal, "on_signal"},
      {&st.select, "select"},
      {&st.process_events, "_process_events"},
      {&st.remove_reader, "_remove_reader"},
      {&st.remove_writer, "_remove_writer"},
      {&st.run, "_run"},
      {&st.context, "_context"},
      {&st.callback, "_callback"},
      {&st.args, "_args"},
      {&st.popleft, "popleft"},
      {&st.append, "append"},
      {&st.debug, "_debug"},
      {&st.purge_timers, "_purge_cancelled_timers"},
      {&st.closed, "_closed"},
      {&st.loop, "_loop"},
      {&st.repr, "_repr"},
      {&st.source_traceback, "_source_traceback"},
      {&st.write_to_self, "_write_to_self"},
      {&st.wakeup, "wakeup"},
      {&st.due_timers, "_due_timers"},
      {&st.run_once_name, "_run_once"},
      {&st.task_factory, "_task_factory"},
      {&st.task_type_name, "Task"},
  };
  for (const Name& n : names) {
    if (!(*n.slot = PyUnicode_InternFromString(n.text))) return -1;
  }
  if (!init_loop_attrs(st)) return -1;
  st.timers = TimerHeap{st.timer_handle_type, st.when, slot_offset(st.timer_handle_type, st.when)};
  st.cancelled_offset = slot_offset(st.handle_type, st.cancelled);
  PyObject* slots[] = {st.context,          st.loop, st.callback, st.args, st.cancelled, st.repr,
                       st.source_traceback, st.when, st.scheduled};
  st.handle_offsets_known = true;
  for (size_t i = 0; i < std::size(slots); ++i) {
    st.handle_offsets[i] = slot_offset(st.timer_handle_type, slots[i]);
    st.handle_offsets_known = st.handle_offsets_known && st.handle_offsets[i] >= 0;
  }
  PyRef core = PyRef::steal(make_loop_core_type(module));
  if (!core || PyModule_AddObjectRef(module, "LoopCore", core.get()) < 0) return -1;
  PyRef transport =
      init_transport_names(st) ? PyRef::steal(make_socket_transport_core_type(module)) : PyRef();
  return transport ? PyModule_AddObjectRef(module, "SocketTransportCore", transport.get()) : -1;
}

PyModuleDef_Slot kSlots[] = {{Py_mod_exec, reinterpret_cast<void*>(exec_module)}, {0, nullptr}};

void free_module(void* module) {
  LoopState& st = loop_state(static_cast<PyObject*>(module));
  PyObject** all[] = {
      &st.selector_type,
      &st.handle_type,
      &st.timer_handle_type,
      &st.base_process_events,
      &st.base_run_once,
      &st.base_call_soon,
      &st.base_call_at,
      &st.base_call_later,
      &st.base_call_soon_threadsafe,
      &st.callback_failed,
      &st.base_time,
      &st.future_type,
      &st.loop_kwnames,
      &st.tasks_module,
      &st.base_create_task,
      &st.due_timers,
      &st.scheduled,
      &st.ready,
      &st.stopping,
      &st.timer_cancelled_count,
      &st.cancelled,
      &st.when,
      &st.time,
      &st.clock_resolution,
      &st.selector,
      &st.uv,
      &st.fd_to_key,
      &st.on_signal,
      &st.select,
      &st.process_events,
      &st.remove_reader,
      &st.remove_writer,
      &st.run,
      &st.context,
      &st.callback,
      &st.args,
      &st.popleft,
      &st.append,
      &st.debug,
      &st.purge_timers,
      &st.closed,
      &st.loop,
      &st.repr,
      &st.source_traceback,
      &st.write_to_self,
      &st.wakeup,
      &st.run_once_name,
      &st.task_factory,
      &st.task_kwnames,
      &st.task_type_name,
  };
  for (PyObject** p : all) Py_CLEAR(*p);
  free_transport_names(st);
  free_loop_attrs(st);
}

PyModuleDef kModule = {PyModuleDef_HEAD_INIT,
                       "_erlang_loop",
                       "erlang_python's native event loop layer (libuv).",
                       sizeof(LoopState),
                       kMethods,
                       kSlots,
                       nullptr,
                       nullptr,
                       free_module};

}  // namespace

PyObject* init_loop_module() {
  return PyModuleDef_Init(&kModule);
}

}  // namespace ep
