// A context: one Python namespace and the executor thread that runs its requests
// in order. Requests arrive through post() from whichever thread reads the input
// (often the executor itself, see input_gate.hpp); replies go straight to the
// sink from the executor.
#pragma once

#include <Python.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/callbacks.hpp"
#include "core/native_thread.hpp"
#include "core/py_ref.hpp"
#include "core/request.hpp"

namespace ep {

class MsgpackReader;
class MsgpackWriter;

class Context {
 public:
  explicit Context(int id);
  ~Context();  // stops the executor after the queued requests
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

  int id() const { return id_; }
  // The context whose executor is the calling thread, or null.
  static Context* current();

  // Called from the thread that reads the input.
  void post(Request&& request);
  void post_callback_reply(uint64_t id, CallbackReply reply);
  // The caller of request `reqid` gave up: drop it if still queued, otherwise
  // interrupt its erlang.call waits.
  void cancel(std::string_view reqid);

  // On the executor thread, GIL held: waits for callback `id`'s reply, running
  // the requests that arrive meanwhile (Erlang calling back into this context).
  CallbackReply wait_callback(uint64_t id);
  // True when nothing is queued or running (used by an orderly shutdown).
  bool idle() const { return pending_.load(std::memory_order_acquire) == 0; }

 private:
  struct StringHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  struct Compiled {
    PyRef head;  // statements before the last expression (may be null)
    PyRef tail;  // the last expression (may be null)
  };
  template <class V>
  using StringMap = std::unordered_map<std::string, V, StringHash, std::equal_to<>>;

  void run();
  bool wait_pop(Request& out);  // blocks; false when stopping
  bool try_pop(Request& out);
  void dispatch(Request& item);
  void execute(const Request& request);
  PyRef call(MsgpackReader& in);
  PyRef eval(MsgpackReader& in);
  PyRef exec(MsgpackReader& in);
  PyObject* module(std::string_view name);
  const Compiled* compiled(std::string_view code, bool eval_mode);
  void reply_error(const Request& request, std::string_view cls, std::string_view message,
                   std::string_view traceback);
  void reply_python_error(const Request& request);

  const int id_;
  PyThreadState* thread_state_ = nullptr;
  PyRef globals_;
  StringMap<PyRef> modules_;
  StringMap<Compiled> eval_cache_, exec_cache_;
  std::string reply_;  // reused reply buffer
  std::vector<std::string_view> active_;  // IDs of the requests running, outermost first

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Request> queue_;
  bool sleeping_ = false;
  bool stop_ = false;
  std::atomic<uint32_t> pending_{0};
  std::unique_ptr<NativeThread> thread_;  // last: starts after every member exists
};

}  // namespace ep
