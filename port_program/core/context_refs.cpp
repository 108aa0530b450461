// Context: references (`#{return => ref}`, request 12), interrupts
// (request 10, and a cancel of a running request) and watches of a request's
// end (request 11). The interrupt is one of the few places that touch
// CPython's thread-state API.
#include <algorithm>

#include "core/context.hpp"
#include "core/messages.hpp"
#include "core/msgpack_reader.hpp"
#include "core/msgpack_writer.hpp"
#include "core/output.hpp"
#include "core/protocol.hpp"
#include "core/runtime.hpp"
#include "core/term_codec.hpp"

namespace ep {
namespace {

PyRef py_str(std::string_view s) {
  return PyRef::steal(PyUnicode_DecodeUTF8(s.data(), s.size(), "strict"));
}

// `[4, WatchId, true]`: the watched request is over.
void reply_watch(std::string_view id) {
  std::string msg;
  begin_message(msg);
  MsgpackWriter w(msg);
  w.array_header(3);
  w.int64(protocol::kReplyOk);
  w.raw(id);
  w.boolean(true);
  Runtime::instance().sink().send(msg);
}

}  // namespace

std::string Context::set_interruptible(std::string_view reqid) {
  std::lock_guard lk(mu_);
  std::string previous = std::move(interruptible_);
  interruptible_.assign(reqid);
  return previous;
}

void Context::leave_request(std::string_view outer) {
  std::vector<std::string> ended;
  {
    std::lock_guard lk(mu_);
    std::string_view reqid = running_.back();
    running_.pop_back();
    interruptible_.assign(outer);
    if (!watches_.empty()) {
      auto done = [&](const Watch& w) { return w.target == reqid; };
      for (const Watch& w : watches_) {
        if (done(w)) ended.push_back(w.id);
      }
      std::erase_if(watches_, done);
    }
  }
  for (const std::string& id : ended) reply_watch(id);
}

void Context::watch_end(std::string_view watch_id, std::string_view target) {
  {
    std::lock_guard lk(mu_);
    bool live = std::find(running_.begin(), running_.end(), target) != running_.end() ||
                std::any_of(queue_.begin(), queue_.end(), [target](const Request& r) {
                  return r.is_request() && r.reqid() == target;
                });
    if (live) {
      watches_.push_back({std::string(target), std::string(watch_id)});
      return;
    }
  }
  reply_watch(watch_id);
}

bool Context::interrupt(std::string_view reqid) {
  // Under the GIL the executor cannot leave the request meanwhile: it changes
  // interruptible_ only with the GIL held.
  GilEnsure gil;
  {
    std::lock_guard lk(mu_);
    if (interruptible_.empty() || (!reqid.empty() && interruptible_ != reqid)) return false;
    // An asyncio loop waiting for Erlang (erlang.async_call) is not running
    // the request's code: its cancellation raises in the await instead.
    if (watch_nested_) return false;
  }
  PyThreadState_SetAsyncExc(thread_ident_, PyExc_KeyboardInterrupt);
  interrupt_pending_ = true;
  return true;
}

void Context::clear_interrupt() {
  if (!interrupt_pending_) return;
  interrupt_pending_ = false;
  PyThreadState_SetAsyncExc(thread_ident_, nullptr);
}

// Keeps `result` in the request's namespace and replies with its number.
bool Context::reply_ref(const Request& request, PyRef result) {
  Namespaces::Namespace* ns = namespaces_->find(request.ns());
  if (!ns) {
    PyErr_SetString(PyExc_ReferenceError, "the namespace of this reference is gone");
    return false;
  }
  uint64_t id = ns->next_ref++;
  ns->refs.insert_or_assign(id, std::move(result));
  begin_message(reply_);
  messages::reply_ok(reply_, request.reqid()).uint64(id);
  Runtime::instance().sink().send(reply_);
  return true;
}

// [Op, RefId, Name, Args, Kwargs] on a reference of namespace `ns`.
PyRef Context::ref_op(MsgpackReader& in, std::string_view ns_key) {
  MsgpackInt op = in.integer();
  MsgpackInt id = in.integer();
  std::string_view name = in.str();
  Namespaces::Namespace* ns = namespaces_->find(ns_key);
  auto it = ns ? ns->refs.find(id.magnitude) : decltype(ns->refs.end()){};
  if (!ns || it == ns->refs.end()) {
    PyErr_SetString(PyExc_ReferenceError,
                    "reference released (its owner exited, or it was released)");
    return {};
  }
  PyRef obj = PyRef::borrow(it->second.get());
  switch (op.magnitude) {
    case protocol::kRefCallMethod: {
      PyRef key = py_str(name);
      if (!key) return {};
      PyRef method = PyRef::steal(PyObject_GetAttr(obj.get(), key.get()));
      if (!method) return {};
      const TermTypes& types = Runtime::instance().types();
      PyRef args = decode_args(in, types);
      if (!args) return {};
      PyRef kwargs = decode_kwargs(in, types);
      if (!kwargs) return {};
      return PyRef::steal(PyObject_Call(method.get(), args.get(),
                                        kwargs.get() == Py_None ? nullptr : kwargs.get()));
    }
    case protocol::kRefGetattr: {
      PyRef key = py_str(name);
      if (!key) return {};
      return PyRef::steal(PyObject_GetAttr(obj.get(), key.get()));
    }
    case protocol::kRefToTerm:
      return obj;
    case protocol::kRefRelease:
      ns->refs.erase(it);
      return PyRef::borrow(Py_None);
    default:
      PyErr_SetString(PyExc_ValueError, "unknown reference operation");
      return {};
  }
}

}  // namespace ep
