#include "core/context.hpp"

#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>

#include "core/messages.hpp"
#include "core/msgpack_reader.hpp"
#include "core/msgpack_writer.hpp"
#include "core/output.hpp"
#include "core/protocol.hpp"
#include "core/runtime.hpp"
#include "core/term_codec.hpp"

namespace ep {
namespace {

constexpr size_t kCodeCacheLimit = 512;

PyRef py_str(std::string_view s) {
  return PyRef::steal(PyUnicode_DecodeUTF8(s.data(), s.size(), "strict"));
}

}  // namespace

Context::Context(int id) : id_(id) {
  Runtime& rt = Runtime::instance();
  {
    GilEnsure gil;
    PyRef globals = PyRef::steal(PyDict_New());
    PyDict_SetItemString(globals.get(), "__builtins__", rt.builtins());
    PyDict_SetItemString(globals.get(), "__name__",
                         PyRef::steal(PyUnicode_FromString("__main__")).get());
    PyDict_SetItemString(globals.get(), "erlang", rt.erlang_module());
    namespaces_ = std::make_unique<Namespaces>(std::move(globals));
  }
  thread_ = std::make_unique<NativeThread>([this] { run(); });
}

Context::~Context() {
  {
    std::lock_guard lk(mu_);
    stop_ = true;
  }
  parker_.unpark();
  thread_.reset();
  if (nested_fd_ >= 0) ::close(nested_fd_);
  // The linked-in driver closes contexts while Python lives on: their Python
  // objects go with the GIL held.
  GilEnsure gil;
  namespaces_.reset();
  modules_.clear();
  eval_cache_.clear();
  exec_cache_.clear();
}

namespace {
thread_local Context* tl_current = nullptr;
}

Context* Context::current() {
  return tl_current;
}

namespace {
void signal_fd(int fd) {
  uint64_t one = 1;
  ssize_t n = ::write(fd, &one, sizeof one);
  (void)n;  // fails only on overflow, which a pending read clears
}
}  // namespace

void Context::post(Request&& request) {
  bool wake, loop;
  {
    std::lock_guard lk(mu_);
    queue_.push_back(std::move(request));
    pending_.fetch_add(1, std::memory_order_release);
    wake = sleeping_;
    // Only what may run nested wakes a loop that watches for it.
    loop = watch_nested_ && (!queue_.back().is_request() || queue_.back().has_nest);
  }
  if (wake) parker_.unpark();
  if (loop) signal_fd(nested_fd_);
}

int Context::nested_fd() {
  if (nested_fd_ < 0) nested_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  return nested_fd_;
}

void Context::watch_nested(bool on) {
  if (on && nested_fd() < 0) return;
  bool queued;
  {
    std::lock_guard lk(mu_);
    watch_nested_ = on;
    queued = find_nestable_locked() != queue_.end();
  }
  if (on && queued) signal_fd(nested_fd_);
}

void Context::stop_watching() {
  std::lock_guard lk(mu_);
  watch_nested_ = false;
}

void Context::run_nested() {
  // Stops at a cancellation of the running request: what follows it in the
  // queue runs after that request, not nested in it.
  Request item;
  while (!cancelled() && try_pop_nestable(item)) take(item);
}

bool Context::nestable(const Request& item) const {
  // A namespace drop keeps its place behind the requests (it may be of the
  // request waiting now).
  if (item.type == protocol::kDropNamespace) return false;
  // Replies, cancellations and wakes are what a wait waits for.
  if (!item.is_request()) return true;
  if (!item.has_nest) return false;
  if (std::find(waits_.begin(), waits_.end(), item.nest) != waits_.end()) return true;
  return (item.nest & CallbackRegistry::kAsyncBit) &&
         Runtime::instance().callbacks().async_pending_on(item.nest, this);
}

std::deque<Request>::iterator Context::find_nestable_locked() {
  return std::find_if(queue_.begin(), queue_.end(),
                      [this](const Request& item) { return nestable(item); });
}

bool Context::try_pop_nestable(Request& out) {
  std::lock_guard lk(mu_);
  auto it = find_nestable_locked();
  if (it == queue_.end()) return false;
  pop_locked(it, out);
  return true;
}

void Context::pop_locked(std::deque<Request>::iterator it, Request& out) {
  out = std::move(*it);
  queue_.erase(it);
  if (out.is_request()) running_.push_back(out.reqid());
}

void Context::post_callback_reply(uint64_t id, CallbackReply reply) {
  Request item;
  item.type =
      reply.kind == CallbackReply::Kind::kOk ? protocol::kCallbackOk : protocol::kCallbackError;
  item.callback_id = id;
  item.bytes = std::move(reply.payload);
  post(std::move(item));
}

bool Context::withdraw(std::string_view reqid) {
  {
    std::lock_guard lk(mu_);
    for (auto it = queue_.begin(); it != queue_.end(); ++it) {
      if (protocol::is_request(it->type) && it->reqid() == reqid) {
        queue_.erase(it);
        pending_.fetch_sub(1, std::memory_order_release);
        return true;
      }
    }
  }
  Request item;
  item.type = protocol::kCancel;
  item.bytes.assign(reqid);
  post(std::move(item));
  return false;
}

bool Context::try_pop(Request& out) {
  std::lock_guard lk(mu_);
  if (queue_.empty()) return false;
  pop_locked(queue_.begin(), out);
  return true;
}

bool Context::wait_pop(Request& out, bool nested) {
  std::unique_lock lk(mu_);
  auto next = [this, nested]()
                  REQUIRES(mu_) { return nested ? find_nestable_locked() : queue_.begin(); };
  auto ready = [&]() REQUIRES(mu_) { return stop_ || next() != queue_.end(); };
  if (!ready()) {
    sleeping_ = true;
    // Awaiting a callback's reply, the executor is sure to get input soon.
    auto expect = waits_.empty() ? InputGate::Expect::kInput : InputGate::Expect::kReply;
    Runtime::instance().input().wait(lk, parker_, ready, expect);
    sleeping_ = false;
  }
  auto it = next();
  if (it == queue_.end()) return false;
  pop_locked(it, out);
  return true;
}

void Context::run() {
  tl_current = this;
  thread_state_ = PyThreadState_New(Runtime::instance().interpreter());
  thread_ident_ = PyThread_get_thread_ident();
  output::set_current_context(id_);
  Request item;
  while (wait_pop(item, false)) {
    GilHold gil(thread_state_);
    do {
      take(item);
    } while (try_pop(item));
    // A loop that watched for nested requests is gone with its request.
    if (nested_fd_ >= 0) stop_watching();
    output::flush_all();
  }
  {
    GilHold gil(thread_state_);
    PyThreadState_Clear(thread_state_);
  }
  PyThreadState_Delete(thread_state_);
  thread_state_ = nullptr;
}

void Context::take(Request& item) {
  switch (item.type) {
    case protocol::kCall:
    case protocol::kEval:
    case protocol::kExec:
    case protocol::kRefOp: {
      active_.push_back({item.reqid()});
      std::string outer = set_interruptible(item.reqid());
      execute(item);
      leave_request(outer);
      clear_interrupt();
      namespaces_->sync();
      active_.pop_back();
      break;
    }
    case protocol::kDropNamespace:
      namespaces_->drop(item.ns());
      break;
    case protocol::kCallbackOk:
    case protocol::kCallbackError:
      // Kept only while its wait is on the stack; otherwise the reply of a wait
      // that is over (cancelled, or a duplicate): dropped.
      if (std::find(waits_.begin(), waits_.end(), item.callback_id) != waits_.end()) {
        auto kind = item.type == protocol::kCallbackOk ? CallbackReply::Kind::kOk
                                                       : CallbackReply::Kind::kError;
        parked_.insert_or_assign(item.callback_id, CallbackReply{kind, std::move(item.bytes)});
      }
      break;
    case protocol::kCancel:
      // Only the request it names, innermost first (IDs are unique anyway).
      for (auto it = active_.rbegin(); it != active_.rend(); ++it) {
        if (it->reqid == item.bytes) {
          it->cancelled = true;
          break;
        }
      }
      break;
    default:
      break;
  }
  pending_.fetch_sub(1, std::memory_order_release);
}

void Context::wake() {
  Request item;
  item.type = protocol::kWake;
  post(std::move(item));
}

namespace {
// While the executor waits for Erlang, the request is not running Python: an
// interrupt would land in whatever Python runs next.
struct NotInterruptible {
  explicit NotInterruptible(Context* ctx, std::string (Context::*set)(std::string_view))
      : ctx_(ctx), set_(set), saved_((ctx->*set)({})) {}
  ~NotInterruptible() { (ctx_->*set_)(saved_); }
  NotInterruptible(const NotInterruptible&) = delete;
  NotInterruptible& operator=(const NotInterruptible&) = delete;
  Context* ctx_;
  std::string (Context::*set_)(std::string_view);
  std::string saved_;
};
}  // namespace

Context::WaitResult Context::wait_event() {
  if (cancelled()) return WaitResult::kCancelled;
  NotInterruptible quiet(this, &Context::set_interruptible);
  Request item;
  if (!try_pop_nestable(item)) {
    GilRelease nogil;
    if (!wait_pop(item, true)) return WaitResult::kStopped;
  }
  take(item);  // a wake, a nested request, a reply or a cancellation
  return cancelled() ? WaitResult::kCancelled : WaitResult::kWoken;
}

CallbackReply Context::wait_callback(uint64_t id) {
  // The request this wait belongs to: the innermost one running.
  const Frame* frame = nullptr;
  size_t depth = active_.size();
  NotInterruptible quiet(this, &Context::set_interruptible);
  waits_.push_back(id);
  struct Unwind {
    Context* ctx;
    uint64_t id;
    ~Unwind() {
      ctx->waits_.pop_back();
      ctx->parked_.erase(id);
    }
  } unwind{this, id};
  Request item;
  while (true) {
    if (auto it = parked_.find(id); it != parked_.end()) {
      CallbackReply reply = std::move(it->second);
      return reply;
    }
    // active_ may have grown (and moved) while nested requests ran.
    frame = depth > 0 ? &active_[depth - 1] : nullptr;
    if (frame && frame->cancelled) return {CallbackReply::Kind::kCancelled, {}};
    if (!try_pop_nestable(item)) {
      GilRelease nogil;
      if (!wait_pop(item, true)) return {CallbackReply::Kind::kStopped, {}};
    }
    take(item);  // the awaited reply (parked), another reply, a cancellation, a nested request
  }
}

void Context::execute(const Request& request) {
  MsgpackReader in(request.body());
  PyRef result;
  try {
    if (request.type == protocol::kRefOp) {
      result = ref_op(in, request.ns());
    } else {
      Namespaces::Namespace* ns = namespaces_->get(request.ns());
      // Held for the request: a nested one may drop the namespace meanwhile.
      PyRef globals = ns ? PyRef::borrow(ns->globals.get()) : PyRef();
      if (globals) {
        switch (request.type) {
          case protocol::kCall:
            result = call(in, globals.get());
            break;
          case protocol::kEval:
            result = eval(in, globals.get());
            break;
          default:
            result = exec(in, globals.get());
            break;
        }
      }
    }
  } catch (const MsgpackError& e) {
    PyErr_Clear();
    reply_error(request, "ProtocolError", e.what(), "");
    return;
  }
  if (result && PyCoro_CheckExact(result.get())) {
    result = PyRef::steal(PyObject_CallOneArg(Runtime::instance().run_coroutine(), result.get()));
  }
  if (!result) {
    reply_python_error(request);
    return;
  }
  if (!request.wants_reply()) return;
  if (request.want_ref) {
    if (!reply_ref(request, std::move(result))) reply_python_error(request);
    return;
  }
  begin_message(reply_);
  MsgpackWriter w = messages::reply_ok(reply_, request.reqid());
  if (!encode_term(w, result.get(), Runtime::instance().types())) {
    result = PyRef();
    reply_python_error(request);
    return;
  }
  Runtime::instance().sink().send(reply_);
}

PyObject* Context::module(std::string_view name) {
  if (auto it = modules_.find(name); it != modules_.end()) return it->second.get();
  PyRef py_name = py_str(name);
  if (!py_name) return nullptr;
  PyRef mod = PyRef::steal(PyImport_Import(py_name.get()));
  if (!mod) return nullptr;
  PyObject* borrowed = mod.get();
  modules_.emplace(std::string(name), std::move(mod));
  return borrowed;
}

PyRef Context::call(MsgpackReader& in, PyObject* globals) {
  const TermTypes& types = Runtime::instance().types();
  std::string_view mod_name = in.str();
  std::string_view fn_name = in.str();
  PyRef target;
  size_t dot = fn_name.find('.');
  std::string_view first = fn_name.substr(0, dot);
  if (mod_name == "__main__") {
    PyRef key = py_str(first);
    if (!key) return {};
    PyObject* found = PyDict_GetItemWithError(globals, key.get());
    // Not defined by this process: the context's shared namespace (preload
    // code, py_context:exec(Ctx, Code, shared)) is the documented way to share.
    if (!found && !PyErr_Occurred() && globals != namespaces_->shared()) {
      found = PyDict_GetItemWithError(namespaces_->shared(), key.get());
    }
    if (!found) {
      if (!PyErr_Occurred()) {
        PyErr_Format(PyExc_NameError, "name '%U' is not defined", key.get());
      }
      return {};
    }
    target = PyRef::borrow(found);
  } else {
    PyObject* mod = module(mod_name);
    if (!mod) return {};
    PyRef key = py_str(first);
    if (!key) return {};
    target = PyRef::steal(PyObject_GetAttr(mod, key.get()));
  }
  // A dotted function name walks attributes: ("os", "path.join").
  while (target && dot != std::string_view::npos) {
    fn_name.remove_prefix(dot + 1);
    dot = fn_name.find('.');
    PyRef key = py_str(fn_name.substr(0, dot));
    if (!key) return {};
    target = PyRef::steal(PyObject_GetAttr(target.get(), key.get()));
  }
  if (!target) return {};
  PyRef args = decode_args(in, types);
  if (!args) return {};
  PyRef kwargs = decode_kwargs(in, types);
  if (!kwargs) return {};
  return PyRef::steal(
      PyObject_Call(target.get(), args.get(), kwargs.get() == Py_None ? nullptr : kwargs.get()));
}

const Context::Compiled* Context::compiled(std::string_view code, bool eval_mode) {
  StringMap<Compiled>& cache = eval_mode ? eval_cache_ : exec_cache_;
  if (auto it = cache.find(code); it != cache.end()) return &it->second;
  PyRef source = py_str(code);
  if (!source) return nullptr;
  Compiled entry;
  Runtime& rt = Runtime::instance();
  if (eval_mode) {
    PyRef pair = PyRef::steal(PyObject_CallOneArg(rt.compile_eval(), source.get()));
    if (!pair) return nullptr;
    PyObject* head = PyTuple_GET_ITEM(pair.get(), 0);
    PyObject* tail = PyTuple_GET_ITEM(pair.get(), 1);
    if (head != Py_None) entry.head = PyRef::borrow(head);
    if (tail != Py_None) entry.tail = PyRef::borrow(tail);
  } else {
    entry.head = PyRef::steal(PyObject_CallOneArg(rt.compile_exec(), source.get()));
    if (!entry.head) return nullptr;
  }
  if (cache.size() >= kCodeCacheLimit) cache.clear();
  return &cache.emplace(std::string(code), std::move(entry)).first->second;
}

PyRef Context::eval(MsgpackReader& in, PyObject* globals) {
  std::string_view code = in.str();
  const Compiled* c = compiled(code, true);
  if (!c) return {};
  // With no locals the code runs in the context's namespace (state persists);
  // with locals they form a scope of their own, as in Python's eval().
  PyRef locals = decode_kwargs(in, Runtime::instance().types());
  if (!locals) return {};
  PyObject* scope = locals.get() == Py_None ? globals : locals.get();
  if (c->head) {
    PyRef r = PyRef::steal(PyEval_EvalCode(c->head.get(), globals, scope));
    if (!r) return {};
  }
  if (!c->tail) return PyRef::borrow(Py_None);
  return PyRef::steal(PyEval_EvalCode(c->tail.get(), globals, scope));
}

PyRef Context::exec(MsgpackReader& in, PyObject* globals) {
  std::string_view code = in.str();
  const Compiled* c = compiled(code, false);
  if (!c) return {};
  return PyRef::steal(PyEval_EvalCode(c->head.get(), globals, globals));
}

void Context::reply_error(const Request& request, std::string_view cls, std::string_view message,
                          std::string_view traceback) {
  if (!request.wants_reply()) {
    std::string text =
        std::string(cls) + ": " + std::string(message) + "\n" + std::string(traceback);
    output::write(protocol::kStderr, text);
    output::flush(protocol::kStderr);
    return;
  }
  begin_message(reply_);
  messages::reply_error(reply_, request.reqid(), cls, message, traceback);
  Runtime::instance().sink().send(reply_);
}

void Context::reply_python_error(const Request& request) {
  PyObject *type = nullptr, *value = nullptr, *tb = nullptr;
  PyErr_Fetch(&type, &value, &tb);
  PyErr_NormalizeException(&type, &value, &tb);
  PyRef t = PyRef::steal(type), v = PyRef::steal(value), trace = PyRef::steal(tb);
  if (!t) {
    reply_error(request, "SystemError", "error return without exception set", "");
    return;
  }
  if (v && trace) PyException_SetTraceback(v.get(), trace.get());
  auto utf8 = [](PyObject* o) -> std::string {
    if (!o) return {};
    Py_ssize_t n = 0;
    const char* s = PyUnicode_AsUTF8AndSize(o, &n);
    if (!s) {
      PyErr_Clear();
      return {};
    }
    return std::string(s, n);
  };
  PyRef name = PyRef::steal(PyType_GetName(reinterpret_cast<PyTypeObject*>(t.get())));
  PyRef message = PyRef::steal(v ? PyObject_Str(v.get()) : PyUnicode_FromString(""));
  PyRef formatted =
      v ? PyRef::steal(PyObject_CallOneArg(Runtime::instance().format_exception(), v.get()))
        : PyRef();
  PyErr_Clear();
  reply_error(request, utf8(name.get()), utf8(message.get()), utf8(formatted.get()));
}

}  // namespace ep
