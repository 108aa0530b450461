#include "core/namespaces.hpp"

namespace ep {

Namespaces::Namespaces(PyRef shared) {
  shared_.globals = std::move(shared);
  PyRef runtime = PyRef::steal(PyImport_ImportModule("erlang._runtime"));
  PyRef make =
      runtime ? PyRef::steal(PyObject_GetAttrString(runtime.get(), "shared_builtins")) : PyRef();
  if (make) builtins_ = PyRef::steal(PyObject_CallOneArg(make.get(), shared_.globals.get()));
  if (!builtins_) {
    // Without it a process namespace sees Python's builtins only.
    PyErr_Clear();
    builtins_ = PyRef::borrow(PyDict_GetItemString(shared_.globals.get(), "__builtins__"));
  }
}

Namespaces::Namespace* Namespaces::get(std::string_view key) {
  if (key.empty()) return &shared_;
  if (auto it = by_key_.find(key); it != by_key_.end()) return &it->second;
  Namespace ns;
  ns.globals = PyRef::steal(PyDict_New());
  if (!ns.globals) return nullptr;
  PyObject* g = ns.globals.get();
  if (PyDict_SetItemString(g, "__builtins__", builtins_.get()) < 0 ||
      PyDict_SetItemString(g, "__name__", PyDict_GetItemString(shared_.globals.get(), "__name__")) <
          0 ||
      PyDict_SetItemString(g, "erlang", PyDict_GetItemString(shared_.globals.get(), "erlang")) <
          0) {
    return nullptr;
  }
  return &by_key_.emplace(std::string(key), std::move(ns)).first->second;
}

Namespaces::Namespace* Namespaces::find(std::string_view key) {
  if (key.empty()) return &shared_;
  auto it = by_key_.find(key);
  return it == by_key_.end() ? nullptr : &it->second;
}

void Namespaces::drop(std::string_view key) {
  auto it = by_key_.find(key);
  if (it == by_key_.end()) return;
  Namespace gone = std::move(it->second);
  by_key_.erase(it);
  gone.refs.clear();
  // Functions defined there refer to the dict (their __globals__): clearing
  // it breaks those cycles, so what only the namespace held goes now, not at
  // the next cyclic collection (like a module at interpreter exit).
  PyDict_Clear(gone.globals.get());
}

}  // namespace ep
