// A context: one Python namespace and the executor thread that runs its requests
// in order. Requests arrive through post() from whichever thread reads the input
// (often the executor itself, see input_gate.hpp); replies go straight to the
// sink from the executor.
#pragma once

#include <Python.h>

#include <atomic>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/callbacks.hpp"
#include "core/namespaces.hpp"
#include "core/native_thread.hpp"
#include "core/parker.hpp"
#include "core/py_ref.hpp"
#include "core/request.hpp"
#include "core/thread_annotations.hpp"

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
  // The caller of request `reqid` gave up: drop it if still queued (true),
  // otherwise queue the end of its erlang.call waits (false); then the Python
  // code it runs is to be stopped with interrupt(reqid), which takes the GIL.
  bool withdraw(std::string_view reqid);
  // Any thread, GIL not held: raises KeyboardInterrupt in the Python code the
  // executor runs now for request `reqid` (any request if empty); false if it
  // runs none (idle, or waiting for Erlang).
  bool interrupt(std::string_view reqid);
  // Called from the thread that reads the input: replies `[4, WatchId, true]`
  // once request `target` is neither queued nor running (at once if it is
  // neither now). The port owner's watch of a request whose caller timed out:
  // no reply within its grace means the executor is stuck.
  void watch_end(std::string_view watch_id, std::string_view target);

  // On the executor thread, GIL held: waits for callback `id`'s reply, running
  // meanwhile the requests of the chain of a callback this thread waits for
  // (Erlang calling back into this context: nestable()); the other requests
  // stay queued and run in their turn.
  // A reply for an outer wait that arrives meanwhile is kept until that wait
  // resumes; a cancellation affects only the request it names (an outer one
  // sees it when its wait resumes).
  CallbackReply wait_callback(uint64_t id);
  // On the executor thread, GIL held: waits until wake() is called, the running
  // request is cancelled, or a nested request ran (the caller re-checks what it
  // waits for in every case).
  enum class WaitResult { kWoken, kCancelled, kStopped };
  WaitResult wait_event();
  // Any thread: ends a wait_event() (or the next one).
  void wake();
  // On the executor thread: the caller of the innermost running request gave up.
  bool cancelled() const { return !active_.empty() && active_.back().cancelled; }

  // An asyncio loop running on the executor thread waits in its selector, not
  // in wait_callback: while it waits for an erlang.async_call it watches this
  // eventfd (signalled by post() while watched) and runs the queued requests
  // of its chain with run_nested(), so Erlang can call back into this context.
  int nested_fd();  // executor thread; -1 if no eventfd could be made
  void watch_nested(bool on);
  void run_nested();  // executor thread, GIL held: runs what is nestable, never blocks
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
  // Blocks; false when stopping. `nested`: only what may run nested in the
  // waits on the stack (nestable()), the rest stays queued, in order.
  bool wait_pop(Request& out, bool nested) NO_THREAD_SAFETY_ANALYSIS;
  bool try_pop(Request& out);
  bool try_pop_nestable(Request& out);
  // Executor thread: a callback reply, cancellation or wake, or a request of the
  // chain of a callback this thread waits for (its marker names one of waits_,
  // or an erlang.async_call of this executor that is pending).
  bool nestable(const Request& item) const;
  std::deque<Request>::iterator find_nestable_locked() REQUIRES(mu_);
  // Moves *it to out. A request counts as running from here, under the lock
  // that took it off the queue: watch_end() always finds it queued or running.
  void pop_locked(std::deque<Request>::iterator it, Request& out) REQUIRES(mu_);
  void take(Request& item);  // a request, a callback reply or a cancellation
  void stop_watching();
  void execute(const Request& request);
  PyRef call(MsgpackReader& in, PyObject* globals);
  PyRef eval(MsgpackReader& in, PyObject* globals);
  PyRef exec(MsgpackReader& in, PyObject* globals);
  PyRef ref_op(MsgpackReader& in, std::string_view ns);
  bool reply_ref(const Request& request, PyRef result);
  // The request whose Python code runs now (interrupt()); returns the previous.
  std::string set_interruptible(std::string_view reqid);
  // Executor thread: a request ends (`outer`, the one it ran in, is
  // interruptible again; its watches are replied).
  void leave_request(std::string_view outer);
  void clear_interrupt();  // GIL held: an interrupt that came too late is dropped
  PyObject* module(std::string_view name);
  const Compiled* compiled(std::string_view code, bool eval_mode);
  void reply_error(const Request& request, std::string_view cls, std::string_view message,
                   std::string_view traceback);
  void reply_python_error(const Request& request);

  const int id_;
  PyThreadState* thread_state_ = nullptr;
  std::unique_ptr<Namespaces> namespaces_;
  StringMap<PyRef> modules_;
  StringMap<Compiled> eval_cache_, exec_cache_;
  std::string reply_;  // reused reply buffer
  struct Frame {
    std::string_view reqid;
    bool cancelled = false;
  };
  std::vector<Frame> active_;                           // the requests running, outermost first
  std::vector<uint64_t> waits_;                         // callback IDs waited for, outermost first
  std::unordered_map<uint64_t, CallbackReply> parked_;  // replies for an outer wait
  int nested_fd_ = -1;

  std::mutex mu_;
  Parker parker_;  // the executor's
  std::deque<Request> queue_ GUARDED_BY(mu_);
  bool sleeping_ GUARDED_BY(mu_) = false;
  bool watch_nested_ GUARDED_BY(mu_) = false;  // post() signals nested_fd_
  bool stop_ GUARDED_BY(mu_) = false;
  std::string interruptible_ GUARDED_BY(mu_);
  // The requests running (active_'s IDs, seen by the reading thread) and the
  // watches waiting for one of them to end.
  struct Watch {
    std::string target, id;
  };
  std::vector<std::string_view> running_ GUARDED_BY(mu_);
  std::vector<Watch> watches_ GUARDED_BY(mu_);
  unsigned long thread_ident_ = 0;  // the executor's, for PyThreadState_SetAsyncExc
  bool interrupt_pending_ = false;  // GIL held
  std::atomic<uint32_t> pending_{0};
  std::unique_ptr<NativeThread> thread_;  // last: starts after every member exists
};

}  // namespace ep
