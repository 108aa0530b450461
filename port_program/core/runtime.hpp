// The one place for process-wide state: the embedded interpreter, the Python
// helpers the core calls, and the sink every outgoing message goes to.
#pragma once

#include <Python.h>

#include <string>
#include <vector>

#include "core/arena_cache.hpp"
#include "core/callbacks.hpp"
#include "core/channels.hpp"
#include "core/input_gate.hpp"
#include "core/loop_inbox.hpp"
#include "core/message_sink.hpp"
#include "core/py_ref.hpp"
#include "core/term_codec.hpp"

namespace ep {

struct RuntimeOptions {
  std::vector<std::string> python_path;  // prepended to sys.path
};

class Runtime {
 public:
  static Runtime& instance();

  // Starts CPython on the calling thread and releases the GIL. Returns false (after
  // printing the Python error to stderr) when the interpreter or the `erlang`
  // package cannot start.
  bool start(const RuntimeOptions& options, MessageSink& sink);

  MessageSink& sink() { return *sink_; }
  CallbackRegistry& callbacks() { return callbacks_; }
  Channels& channels() { return channels_; }
  Loops& loops() { return loops_; }  // py_event_loop's event loops
  // Who reads the input: the threads waiting for it (leader/follower).
  InputGate& input() { return input_; }
  const TermTypes& types() const { return types_; }
  PyInterpreterState* interpreter() const { return interp_; }
  const std::string& python_version() const { return python_version_; }

  // erlang._runtime helpers (borrowed by callers; need the GIL).
  PyObject* compile_eval() const { return compile_eval_.get(); }
  PyObject* compile_exec() const { return compile_exec_.get(); }
  PyObject* format_exception() const { return format_exception_.get(); }
  PyObject* run_coroutine() const { return run_coroutine_.get(); }
  PyObject* builtins() const { return builtins_.get(); }
  PyObject* erlang_module() const { return erlang_module_.get(); }

  // The memory cap was crossed: raises MemoryError in every thread that is
  // running Python code now (at its next bytecode boundary); idle threads are
  // left alone, so the next request runs normally. Takes the GIL; returns how
  // many threads were interrupted.
  int raise_memory_error();

 private:
  Runtime() = default;
  bool load_package();

  MessageSink* sink_ = nullptr;
  // Freed Python arenas kept mapped (at most this much; it never raises the peak).
  ArenaCache arenas_{32u << 20};
  CallbackRegistry callbacks_;
  Channels channels_;
  Loops loops_;
  InputGate input_;
  PyInterpreterState* interp_ = nullptr;
  std::string python_version_;
  TermTypes types_;
  PyRef compile_eval_, compile_exec_, format_exception_, run_coroutine_, builtins_, erlang_module_;
};

}  // namespace ep
