// The state of the `_erlang_loop` module, shared by its files: the Selector
// type, what run_once needs from asyncio, and the attribute names it reads.
#pragma once

#include <Python.h>

#include <memory>

#include "core/py_ref.hpp"
#include "core/spin_policy.hpp"
#include "core/timer_heap.hpp"
#include "core/uv_selector.hpp"

namespace ep {

// An _erlang_loop.Selector: a UvSelector owned by a Python object. Only the
// loop's own thread uses it, except wakeup(), which any thread may call.
struct SelectorObject {
  PyObject_HEAD std::unique_ptr<UvSelector> sel;
  bool selecting;
  // A wait starts with a non-blocking turn holding the GIL (selector_wait)
  // while waits find events at once; a wait that slept turns it off, one
  // that did not sleep turns it back on.
  bool poll_first;
  // run_once's previous iteration waited: a zero-timeout wait is skipped
  // (run_once.cpp poll); reset when run_forever starts.
  bool polled_last;
  // The eventfd of the loop's erlang.async_call bridge (set_reply_fd), or -1,
  // and the state of spin_for_replies.
  int reply_fd;
  SpinPolicy spin_policy;  // constructed in selector_new
  // Spins so far, and those that caught what they waited for (spin_stats()).
  unsigned long long spins, spins_caught;
  // When the libuv loop was last polled (uv_hrtime): a spin that caught a
  // reply polls it too unless that was less than kIoPollEveryNs ago.
  uint64_t io_polled_ns;
};

struct LoopState {
  PyObject* selector_type;
  PyObject* handle_type;          // asyncio.events.Handle
  PyObject* timer_handle_type;    // asyncio.events.TimerHandle
  PyObject* base_process_events;  // BaseSelectorEventLoop._process_events
  PyObject* base_run_once;        // BaseEventLoop._run_once (debug mode)
  PyObject* base_call_soon;       // BaseEventLoop.call_soon, call_at, call_later
  PyObject* base_call_at;
  PyObject* base_call_soon_threadsafe;
  PyObject* base_call_later;
  PyObject* base_time;         // BaseEventLoop.time (time.monotonic())
  PyObject* future_type;       // asyncio.futures.Future
  PyObject* loop_kwnames;      // ("loop",)
  PyObject* tasks_module;      // asyncio.tasks (its Task, looked up per call as there)
  PyObject* base_create_task;  // BaseEventLoop.create_task (debug mode, task factories)
  PyObject* callback_failed;   // erlang._loop's (handle, exc) reporter
  // Interned attribute names.
  PyObject *scheduled, *ready, *stopping, *timer_cancelled_count, *cancelled, *when, *time,
      *clock_resolution, *selector, *uv, *fd_to_key, *on_signal, *select, *process_events,
      *remove_reader, *remove_writer, *run, *context, *callback, *args, *popleft, *append, *debug,
      *purge_timers, *closed, *loop, *repr, *source_traceback, *write_to_self, *wakeup, *due_timers,
      *run_once_name, *task_factory, *task_type_name;
  PyObject* task_kwnames;       // ("loop", "name", "context"): Task's keywords after coro
  TimerHeap timers;             // on a loop's _scheduled
  Py_ssize_t cancelled_offset;  // Handle's _cancelled slot, or -1
  // The slots a new Handle/TimerHandle gets, in make_handle's order; all
  // known (>= 0) or the attributes are set by name.
  Py_ssize_t handle_offsets[9];
  bool handle_offsets_known;
  // socket_transport.cpp: interned names, ErlangSocketTransport and the
  // offsets of its __slots__ (by name index, -1 when not a slot).
  PyObject* transport_names[24];
  PyObject* transport_type;
  Py_ssize_t transport_offsets[24];
  // ErlangEventLoop and UvSelector (set_loop_classes): the __slots__ the hot
  // paths read, by offset on an instance of exactly that class (see
  // loop_attr); the names borrowed from the interned ones above.
  PyObject* loop_class;
  PyObject* loop_attr_names[9];
  Py_ssize_t loop_offsets[9];
  PyObject* uv_selector_class;
  PyObject* selector_attr_names[3];
  Py_ssize_t selector_offsets[3];
  // collections.deque and its append/popleft descriptors (the _ready queue).
  PyObject *deque_type, *deque_append, *deque_popleft;
};

LoopState& loop_state(PyObject* module);

// Indexes into LoopState::loop_offsets and selector_offsets.
enum LoopAttr {
  kReadyAttr,
  kScheduledAttr,
  kStoppingAttr,
  kDebugAttr,
  kClosedAttr,
  kSelectorAttr,
  kDueTimersAttr,
  kCancelledCountAttr,
  kClockResolutionAttr,
};
enum SelectorAttr { kUvAttr, kOnSignalAttr, kFdToKeyAttr };

// loop.<a> (loop_attrs.cpp): the slot's value when loop is exactly the
// registered ErlangEventLoop, else by name; null with an error set.
PyRef loop_attr(const LoopState& st, PyObject* loop, LoopAttr a);
// The same for the loop's UvSelector.
PyRef selector_attr(const LoopState& st, PyObject* selector, SelectorAttr a);
// ready.append(h) / ready.popleft(): the deque's methods called directly when
// `ready` is a deque. append: false with an error set; popleft: null.
bool ready_append(const LoopState& st, PyObject* ready, PyObject* h);
PyRef ready_popleft(const LoopState& st, PyObject* ready);
// len(o) for the loop's deque and lists without a call; -1 with an error set.
inline Py_ssize_t fast_len(const LoopState& st, PyObject* o) {
  if (Py_TYPE(o) == reinterpret_cast<PyTypeObject*>(st.deque_type)) return Py_SIZE(o);
  if (PyList_CheckExact(o)) return PyList_GET_SIZE(o);
  return PyObject_Size(o);
}
// set_loop_classes(loop_class, selector_class) (loop_module.cpp's table).
PyObject* set_loop_classes(PyObject* module, PyObject* const* args, Py_ssize_t nargs);
bool init_loop_attrs(LoopState& st);
void free_loop_attrs(LoopState& st);

// Indexes into LoopState::handle_offsets.
enum HandleSlot { kContext, kLoop, kCallback, kArgs, kCancelled, kRepr, kSourceTb, kWhen, kSched };

// loop.time() into `out` (loop_clock.cpp).
bool loop_now(const LoopState& st, PyObject* loop, double& out);
// loop.time() as an object; `native`: the loop's time is BaseEventLoop.time
// and the clock was read natively. Null with an error set on failure.
PyRef loop_time(const LoopState& st, PyObject* loop, bool& native);

// Due timers (call_later with a delay <= 0 on a loop whose clock is
// time.monotonic()) wait in the loop's `_due_timers` list, in order, instead
// of the _scheduled heap; run_once moves them to _ready with the due heap
// timers, merged by their `when`, as the heap would have.

// The Selector type (selector_type.cpp).
PyObject* make_selector_type();
// Waits on `s` for up to `timeout` seconds (negative: until an event), the
// GIL released; false with a Python error set on failure.
bool selector_wait(SelectorObject* s, double timeout);

// Before a wait that would sleep (timeout_ms != 0), while async calls whose
// replies signal s->reply_fd are pending: the GIL released, the calling
// thread reads the port program's input itself (InputGate::read_for) for up
// to the port program's read_spin_us, until the libuv loop has something
// ready; true if it has: the selector's ready list is then what the wait
// would have found (the bridge's eventfd listed when replies came: they
// signal nothing while the loop spins). LoopInbox::spin's SpinPolicy
// (selector_spin.cpp).
bool spin_for_replies(SelectorObject* s, long timeout_ms);
constexpr uint64_t kIoPollEveryNs = 100'000;

// run_once(loop) (run_once.cpp).
PyObject* run_once(const LoopState& st, PyObject* loop);

// The LoopCore type (loop_core.cpp): a base of ErlangEventLoop with the
// native call_soon, call_at, call_later and _run_once.
PyObject* make_loop_core_type(PyObject* module);

}  // namespace ep
