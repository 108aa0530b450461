// The namespaces of one context (spec/PROTOCOL.md, "Namespaces"): the shared
// one (preload code runs there) and one per key a request names, made on
// first use. A process namespace's `__builtins__` is a dict of Python's
// builtins plus the shared namespace's names, rebuilt whenever the shared
// namespace changed (checked after each request), so what the shared
// namespace defines is visible to every process unless it defines its own,
// while lookups keep CPython's fast path for exact dicts.
// Each namespace holds the Python objects of its references
// (`#{return => ref}`), which live as long as the namespace.
// Executor thread only, GIL held.
#pragma once

#include <Python.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>

#include "core/py_ref.hpp"

namespace ep {

class Namespaces {
 public:
  struct Namespace {
    PyRef globals;
    std::unordered_map<uint64_t, PyRef> refs;
    uint64_t next_ref = 1;
  };

  // `shared` is the context's own namespace, the base of the others.
  explicit Namespaces(PyRef shared);

  PyObject* shared() const { return shared_.globals.get(); }
  // The namespace of `key` (the msgpack bytes of the request's key; empty:
  // the shared one), created on first use; null with a Python error set if
  // it could not be made.
  Namespace* get(std::string_view key);
  // The namespace of `key` if it exists.
  Namespace* find(std::string_view key);
  // Frees the namespace of `key` and its references (a no-op if absent).
  void drop(std::string_view key);
  // After a request: the shared namespace's names, again, if it changed.
  void sync();

 private:
  struct StringHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  Namespace shared_;
  PyRef builtins_;       // the process namespaces' __builtins__ (one dict)
  PyRef real_builtins_;  // Python's builtins module dict
  uint64_t shared_version_ = 0;
  std::unordered_map<std::string, Namespace, StringHash, std::equal_to<>> by_key_;
};

}  // namespace ep
