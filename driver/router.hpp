// The driver's process-wide state, in one place: which ports are open, who
// waits for which reply, and the driver's own threads. Every message the core
// sends (runtime.hpp's sink) is routed here:
//  - a reply whose request was written by a process with port_command/2 goes
//    straight to that process with erl_drv_send_term, as the message the port
//    owner would have forwarded ({ReqId, ok | error, Payload});
//    Unless the replying thread sent that port's owner something since its
//    last reply: then the reply follows through the owner, in order;
//  - everything else goes to the owner of the port the sending thread belongs
//    to (a context's executor: its context's port; another thread: the port
//    that started it, else the oldest open port; channel traffic: the oldest
//    open port) as {Port, {data, Frame}},
//    the bytes a port program writes, so py_port handles both alike.
// Where a message goes is decided on the sending thread; it is sent from the
// port's outbox on a scheduler thread (outbox.hpp).
#pragma once

#include <erl_driver.h>

#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/message_sink.hpp"
#include "core/thread_annotations.hpp"
#include "driver/outbox.hpp"
#include "driver/reply_slot.hpp"
#include "driver/worker.hpp"

namespace ep {
class Context;
}

namespace ep::drv {

class Instance;

class Router : public MessageSink {
 public:
  static Router& instance();

  void send(std::string& message) override;
  void send_framed(std::string_view frames) override;

  // Driver init (a scheduler thread): the atoms of the messages sent.
  void init_atoms();

  void opened(std::shared_ptr<Instance> inst);
  // `context`, of `inst`, now exists: what its executor sends goes to `inst`.
  void adopt(const Context* context, Instance* inst);
  // `inst` is being destroyed: forget its contexts.
  void disown(const Instance* inst);
  // The port closed (stop callback): nothing more is sent to it; its
  // contexts are stopped on the reaper thread.
  void closed(Instance* inst);

  // As a port program's exit: {Port, {exit_status, Status}} to the owner
  // (after what was queued before).
  void exit_status(Instance* inst, int status);

  // ready_input of `inst`'s port (a scheduler thread, the port locked):
  // sends what its outbox held.
  void deliver(Instance* inst, const std::vector<Outbox::Entry>& entries);

  // A request that `caller` wrote: its reply goes straight to `caller`.
  // With a `slot`, the reply fills it instead (the caller's scheduler polls
  // for it, call_spin.hpp) until stop_polling(); unless other replies are
  // awaited (then false: no poll).
  bool expect_reply(std::string_view reqid, Instance* inst, ErlDrvTermData caller,
                    ReplySlot* slot = nullptr);
  // The poll of `slot` ended (ran out, or stopped: anything else queued for
  // its port stops it): a reply that comes later goes the usual way. True if
  // it was filled meanwhile.
  bool stop_polling(ReplySlot& slot);
  // A reply as port_control(Port, 3, Frame) returns it to its caller:
  // <<1 (ok) | 2 (error), Payload/binary>>, or null if it is none.
  static ErlDrvBinary* control_reply(std::string_view payload);
  // The caller gave up (a cancellation): its reply, if any comes, goes to the owner.
  void forget_reply(std::string_view reqid);

  // Jobs that may wait for the GIL, in order.
  void run_slow(std::function<void()> job) { slow_.push(std::move(job)); }

  // While alive, messages of the calling thread that no context claims go to `inst`.
  class Home {
   public:
    explicit Home(Instance* inst);
    ~Home();
    Home(const Home&) = delete;
    Home& operator=(const Home&) = delete;

   private:
    Instance* previous_;
  };

 private:
  Router() = default;
  // Queues `payload` where it goes; the instance to signal(), if any.
  std::shared_ptr<Instance> route(std::string_view payload) REQUIRES(mu_);
  std::shared_ptr<Instance> queue(Instance* inst, Outbox::Entry entry) REQUIRES(mu_);
  Instance* home_locked(std::string_view payload) REQUIRES(mu_);
  bool open_locked(const Instance* inst) const REQUIRES(mu_);
  void to_owner(const Instance* to, std::string_view payload) REQUIRES(mu_);
  // A reply whose caller still waits for it: sent to the caller; else false.
  bool to_caller(const Instance* inst, std::string_view payload) REQUIRES(mu_);
  void send_reply(const Instance* inst, ErlDrvTermData caller, std::string_view payload)
      REQUIRES(mu_);

  struct StringHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  struct Waiter {
    Instance* inst;
    ErlDrvTermData caller;
    ReplySlot* slot;  // while the caller's scheduler polls for the reply
  };
  std::mutex mu_;
  std::unordered_map<std::string, Waiter, StringHash, std::equal_to<>> waiters_ GUARDED_BY(mu_);
  std::vector<std::shared_ptr<Instance>> open_ GUARDED_BY(mu_);  // oldest first
  std::unordered_map<const Context*, Instance*> contexts_ GUARDED_BY(mu_);
  std::string ref_buf_ GUARDED_BY(mu_);  // a reply's reference in external format
  // The slot a scheduler polls (one at a time, call_spin.hpp), of this port.
  ReplySlot* polling_ GUARDED_BY(mu_) = nullptr;
  const Instance* polling_inst_ GUARDED_BY(mu_) = nullptr;
  Worker slow_;
  Worker reaper_;
};

}  // namespace ep::drv
