#include "driver/router.hpp"

#include <algorithm>

#include "core/context.hpp"
#include "core/protocol.hpp"
#include "driver/instance.hpp"

namespace ep::drv {
namespace {

thread_local Instance* tl_home = nullptr;
// The owner this thread last sent something other than a reply or a
// callback request to, since its last reply.
thread_local Instance* tl_owner_first = nullptr;

// The request ID of a reply `[4, ReqId, Value]` or `[5, ReqId, Class, Message,
// Traceback]` when it is a reference (msgpack ext 4, as py_request makes them),
// with the reference's external-format body and the payload after it.
struct ReplyParts {
  std::string_view reqid;  // the whole msgpack object
  std::string_view body;   // term_to_binary(Ref) without its leading 131
  std::string_view rest;   // what the caller decodes
  bool ok;
};

bool reply_parts(std::string_view p, ReplyParts& out) {
  if (p.size() < 4) return false;
  auto b = [&p](size_t i) { return static_cast<uint8_t>(p[i]); };
  if (b(0) == 0x93 && b(1) == protocol::kReplyOk) {
    out.ok = true;
  } else if (b(0) == 0x95 && b(1) == protocol::kReplyError) {
    out.ok = false;
  } else {
    return false;
  }
  size_t len, head;    // head: the ext's bytes before its type byte
  if (b(2) == 0xc7) {  // ext 8: c7 Len Type Data
    len = b(3);
    head = 2;
  } else if (b(2) == 0xc8 && p.size() >= 5) {  // ext 16: c8 Len:16 Type Data
    len = (size_t{b(3)} << 8) | b(4);
    head = 3;
  } else {
    return false;
  }
  size_t type_at = 2 + head;
  if (p.size() < type_at + 1 + len || b(type_at) != protocol::kExtRef) return false;
  out.reqid = p.substr(2, head + 1 + len);
  out.body = p.substr(type_at + 1, len);
  out.rest = p.substr(type_at + 1 + len);
  return true;
}

ErlDrvTermData atom_ok, atom_error, atom_data, atom_exit_status;

}  // namespace

Router& Router::instance() {
  static Router router;
  return router;
}

void Router::init_atoms() {
  atom_ok = driver_mk_atom(const_cast<char*>("ok"));
  atom_error = driver_mk_atom(const_cast<char*>("error"));
  atom_data = driver_mk_atom(const_cast<char*>("data"));
  atom_exit_status = driver_mk_atom(const_cast<char*>("exit_status"));
}

Router::Home::Home(Instance* inst) : previous_(tl_home) {
  tl_home = inst;
}

Router::Home::~Home() {
  tl_home = previous_;
}

void Router::opened(std::shared_ptr<Instance> inst) {
  std::lock_guard lk(mu_);
  open_.push_back(std::move(inst));
}

void Router::adopt(const Context* context, Instance* inst) {
  std::lock_guard lk(mu_);
  contexts_[context] = inst;
}

void Router::disown(const Instance* inst) {
  std::lock_guard lk(mu_);
  std::erase_if(contexts_, [inst](auto& kv) { return kv.second == inst; });
}

void Router::closed(Instance* inst) {
  std::shared_ptr<Instance> last;
  {
    std::lock_guard lk(mu_);
    auto it = std::find_if(open_.begin(), open_.end(), [inst](auto& p) { return p.get() == inst; });
    if (it == open_.end()) return;
    last = std::move(*it);
    open_.erase(it);
    std::erase_if(waiters_, [inst](auto& kv) { return kv.second.inst == inst; });
    std::erase_if(contexts_, [inst](auto& kv) { return kv.second == inst; });
  }
  // Its executors may be busy: they are stopped and joined off the scheduler.
  reaper_.push([last = std::move(last)]() mutable { last.reset(); });
}

void Router::exit_status(Instance* inst, int status) {
  std::shared_ptr<Instance> wake;
  {
    std::lock_guard lk(mu_);
    if (!open_locked(inst)) return;
    wake = queue(inst, {Outbox::Entry::Kind::kExit, {}, status});
  }
  if (wake) wake->outbox().signal();
}

bool Router::expect_reply(std::string_view reqid, Instance* inst, ErlDrvTermData caller,
                          ReplySlot* slot) {
  std::lock_guard lk(mu_);
  // Other callers wait too: their executors need the CPUs more than this
  // caller needs a poll.
  if (!waiters_.empty()) slot = nullptr;
  waiters_.insert_or_assign(std::string(reqid), Waiter{inst, caller, slot});
  if (slot) {
    polling_ = slot;
    polling_inst_ = inst;
  }
  return slot != nullptr;
}

bool Router::stop_polling(ReplySlot& slot) {
  std::lock_guard lk(mu_);
  if (polling_ == &slot) polling_ = nullptr;
  if (slot.state.load(std::memory_order_relaxed) == ReplySlot::kFilled) return true;
  auto it = waiters_.find(slot.reqid);
  if (it != waiters_.end() && it->second.slot == &slot) it->second.slot = nullptr;
  return false;
}

ErlDrvBinary* Router::control_reply(std::string_view payload) {
  ReplyParts parts;
  if (!reply_parts(payload, parts)) return nullptr;
  ErlDrvBinary* bin = driver_alloc_binary(static_cast<ErlDrvSizeT>(1 + parts.rest.size()));
  if (!bin) return nullptr;
  bin->orig_bytes[0] = parts.ok ? 1 : 2;
  std::copy(parts.rest.begin(), parts.rest.end(), bin->orig_bytes + 1);
  return bin;
}

void Router::forget_reply(std::string_view reqid) {
  std::lock_guard lk(mu_);
  auto it = waiters_.find(reqid);
  if (it != waiters_.end()) waiters_.erase(it);
}

void Router::send(std::string& message) {
  std::shared_ptr<Instance> wake;
  {
    std::lock_guard lk(mu_);
    wake = route(std::string_view(message).substr(kHeaderRoom));
  }
  if (wake) wake->outbox().signal();
}

void Router::send_framed(std::string_view frames) {
  std::vector<std::shared_ptr<Instance>> wake;
  {
    std::lock_guard lk(mu_);
    while (frames.size() >= kHeaderRoom) {
      size_t len = (size_t(uint8_t(frames[0])) << 24) | (size_t(uint8_t(frames[1])) << 16) |
                   (size_t(uint8_t(frames[2])) << 8) | size_t(uint8_t(frames[3]));
      if (auto inst = route(frames.substr(kHeaderRoom, len))) wake.push_back(std::move(inst));
      frames.remove_prefix(std::min(frames.size(), kHeaderRoom + len));
    }
  }
  for (auto& inst : wake) inst->outbox().signal();
}

std::shared_ptr<Instance> Router::queue(Instance* inst, Outbox::Entry entry) {
  if (polling_ && inst == polling_inst_) {
    // The port's ready_input must run to send this (a callback request,
    // another caller's reply): the scheduler that holds the port stops
    // polling, and the polled reply comes through the outbox too.
    auto it = waiters_.find(polling_->reqid);
    if (it != waiters_.end() && it->second.slot == polling_) it->second.slot = nullptr;
    polling_->state.store(ReplySlot::kElsewhere, std::memory_order_release);
    polling_ = nullptr;
  }
  // Only open instances get here: open_ owns them.
  return inst->outbox().push(std::move(entry)) ? inst->shared_from_this() : nullptr;
}

std::shared_ptr<Instance> Router::route(std::string_view payload) {
  // Where it goes is decided here, from what the sending thread is; it is
  // sent from a scheduler thread (deliver()), see outbox.hpp.
  ReplyParts parts;
  bool reply = reply_parts(payload, parts);
  Instance* after = tl_owner_first;
  if (reply) {
    tl_owner_first = nullptr;
    auto it = waiters_.find(parts.reqid);
    if (it != waiters_.end()) {
      ReplySlot* slot = it->second.slot;
      if (slot && polling_ == slot) polling_ = nullptr;
      if (slot && !(after && open_locked(after))) {
        // The caller's scheduler polls for it: it sends it.
        slot->payload.assign(payload);
        slot->state.store(ReplySlot::kFilled, std::memory_order_release);
        waiters_.erase(it);
        return nullptr;
      }
      if (slot) slot->state.store(ReplySlot::kElsewhere, std::memory_order_release);
      if (after && open_locked(after)) {
        // This thread sent that owner something since its last reply (a
        // channel close, an erlang.send): the reply follows it through the
        // same owner, as one pipe keeps a port program's messages in order.
        waiters_.erase(it);
        return queue(after, {Outbox::Entry::Kind::kOwner, std::string(payload)});
      }
      if (open_locked(it->second.inst)) {
        return queue(it->second.inst, {Outbox::Entry::Kind::kReply, std::string(payload)});
      }
      waiters_.erase(it);
    }
  }
  Instance* to = home_locked(payload);
  if (!to) return nullptr;  // no port is open: nobody could read it
  // A callback request is answered before the thread goes on: no order to keep.
  auto type = payload.size() > 1 ? static_cast<uint8_t>(payload[1]) : 0;
  if (!reply && type != protocol::kCallback) tl_owner_first = to;
  return queue(to, {Outbox::Entry::Kind::kOwner, std::string(payload)});
}

void Router::deliver(Instance* inst, const std::vector<Outbox::Entry>& entries) {
  std::lock_guard lk(mu_);
  if (!open_locked(inst)) return;
  for (const Outbox::Entry& e : entries) {
    switch (e.kind) {
      case Outbox::Entry::Kind::kReply:
        if (!to_caller(inst, e.payload)) to_owner(inst, e.payload);
        break;
      case Outbox::Entry::Kind::kOwner:
        to_owner(inst, e.payload);
        break;
      case Outbox::Entry::Kind::kExit: {
        ErlDrvTermData spec[] = {ERL_DRV_PORT,  inst->port_id(),
                                 ERL_DRV_ATOM,  atom_exit_status,
                                 ERL_DRV_INT,   static_cast<ErlDrvTermData>(e.status),
                                 ERL_DRV_TUPLE, 2,
                                 ERL_DRV_TUPLE, 2};
        erl_drv_output_term(inst->port_id(), spec, sizeof spec / sizeof spec[0]);
        break;
      }
    }
  }
}

bool Router::to_caller(const Instance* inst, std::string_view payload) {
  ReplyParts parts;
  if (!reply_parts(payload, parts)) return false;
  auto it = waiters_.find(parts.reqid);
  // Forgotten since it was queued (the caller gave up): the owner drops it.
  if (it == waiters_.end() || it->second.inst != inst) return false;
  ErlDrvTermData caller = it->second.caller;
  waiters_.erase(it);
  send_reply(inst, caller, payload);
  return true;
}

void Router::send_reply(const Instance* inst, ErlDrvTermData caller, std::string_view payload) {
  ReplyParts parts;
  if (!reply_parts(payload, parts)) return;
  // {Ref, ok | error, Payload}: the reference is rebuilt from its external format.
  ref_buf_.assign(1, static_cast<char>(131));
  ref_buf_.append(parts.body);
  ErlDrvTermData spec[] = {ERL_DRV_EXT2TERM,
                           reinterpret_cast<ErlDrvTermData>(ref_buf_.data()),
                           ref_buf_.size(),
                           ERL_DRV_ATOM,
                           parts.ok ? atom_ok : atom_error,
                           ERL_DRV_BUF2BINARY,
                           reinterpret_cast<ErlDrvTermData>(parts.rest.data()),
                           parts.rest.size(),
                           ERL_DRV_TUPLE,
                           3};
  // Under mu_: a cancellation (forget_reply) that returns has seen the
  // message either sent or not sent, never half-way.
  erl_drv_send_term(inst->port_id(), caller, spec, sizeof spec / sizeof spec[0]);
}

void Router::to_owner(const Instance* to, std::string_view payload) {
  // {Port, {data, Frame}}: what a port program's frame is to its owner.
  ErlDrvTermData spec[] = {ERL_DRV_PORT,
                           to->port_id(),
                           ERL_DRV_ATOM,
                           atom_data,
                           ERL_DRV_BUF2BINARY,
                           reinterpret_cast<ErlDrvTermData>(payload.data()),
                           payload.size(),
                           ERL_DRV_TUPLE,
                           2,
                           ERL_DRV_TUPLE,
                           2};
  erl_drv_output_term(to->port_id(), spec, sizeof spec / sizeof spec[0]);
}

bool Router::open_locked(const Instance* inst) const {
  for (const auto& p : open_) {
    if (p.get() == inst) return true;
  }
  return false;
}

Instance* Router::home_locked(std::string_view payload) {
  // A channel's server keeps count per port of what it shipped and what was
  // taken: all channel traffic of the VM's one runtime goes through one port.
  auto type = payload.size() > 1 ? static_cast<uint8_t>(payload[1]) : 0;
  if (type >= protocol::kChannelAck && type <= protocol::kChannelReturn) {
    return open_.empty() ? nullptr : open_.front().get();
  }
  // A context's executor, or a port's starter: its port, or nobody once the
  // port closed (what it still says is for nobody).
  if (const Context* c = Context::current()) {
    auto it = contexts_.find(c);
    return it != contexts_.end() && open_locked(it->second) ? it->second : nullptr;
  }
  if (tl_home) return open_locked(tl_home) ? tl_home : nullptr;
  return open_.empty() ? nullptr : open_.front().get();
}

}  // namespace ep::drv
