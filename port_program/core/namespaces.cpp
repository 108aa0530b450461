#include "core/namespaces.hpp"

namespace ep {
namespace {

// The dict's modification counter (CPython 3.11's ma_version_tag: it changes
// on every change of the dict). The one private field read here.
uint64_t dict_version(PyObject* dict) {
  return reinterpret_cast<PyDictObject*>(dict)->ma_version_tag;
}

}  // namespace

Namespaces::Namespaces(PyRef shared) {
  shared_.globals = std::move(shared);
  PyRef module = PyRef::steal(PyImport_ImportModule("builtins"));
  if (module) real_builtins_ = PyRef::borrow(PyModule_GetDict(module.get()));
  builtins_ = PyRef::steal(PyDict_New());
  if (!real_builtins_ || !builtins_) {
    PyErr_Clear();
    return;
  }
  shared_version_ = dict_version(shared_.globals.get()) - 1;  // forces the first sync
  sync();
}

void Namespaces::sync() {
  if (!builtins_ || !real_builtins_) return;
  PyObject* shared = shared_.globals.get();
  uint64_t version = dict_version(shared);
  if (version == shared_version_) return;
  shared_version_ = version;
  // Rebuilt in place: every process namespace holds this dict.
  PyDict_Clear(builtins_.get());
  if (PyDict_Update(builtins_.get(), real_builtins_.get()) < 0 ||
      PyDict_Update(builtins_.get(), shared) < 0) {
    PyErr_Clear();
  }
}

Namespaces::Namespace* Namespaces::get(std::string_view key) {
  if (key.empty()) return &shared_;
  if (auto it = by_key_.find(key); it != by_key_.end()) return &it->second;
  Namespace ns;
  ns.globals = PyRef::steal(PyDict_New());
  if (!ns.globals) return nullptr;
  PyObject* g = ns.globals.get();
  PyObject* shared = shared_.globals.get();
  PyObject* builtins = builtins_ ? builtins_.get() : PyDict_GetItemString(shared, "__builtins__");
  if (PyDict_SetItemString(g, "__builtins__", builtins) < 0 ||
      PyDict_SetItemString(g, "__name__", PyDict_GetItemString(shared, "__name__")) < 0 ||
      PyDict_SetItemString(g, "erlang", PyDict_GetItemString(shared, "erlang")) < 0) {
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
