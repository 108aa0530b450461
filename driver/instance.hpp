// One open port of the driver: what one port program is for the port backend.
// It hosts its own contexts (numbered from 0, as in a port program) and its
// own dispatcher, in the one CPython of the VM (runtime.hpp). Frames come from
// the output callback on a scheduler thread and are handed to the contexts'
// executors; nothing here runs Python on a scheduler thread.
#pragma once

#include <erl_driver.h>

#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "core/context.hpp"
#include "core/dispatcher.hpp"
#include "core/native_thread.hpp"
#include "core/thread_annotations.hpp"
#include "driver/call_spin.hpp"
#include "driver/outbox.hpp"

namespace ep::drv {

class Instance : public std::enable_shared_from_this<Instance> {
 public:
  explicit Instance(ErlDrvPort port);
  ~Instance();  // joins the starter, then stops the contexts (their queues drain first)
  Instance(const Instance&) = delete;
  Instance& operator=(const Instance&) = delete;

  ErlDrvPort port() const { return port_; }
  ErlDrvTermData port_id() const { return port_id_; }
  ErlDrvTermData owner() const { return owner_; }

  // Scheduler thread, port locked: one frame from port_command/2. `caller`
  // is the process that wrote it.
  void on_output(std::string_view frame, ErlDrvTermData caller);

  // Scheduler thread, port locked: port_control(Port, 3, Frame), a request
  // whose reply the caller's scheduler may poll for (call_spin.hpp): the
  // reply, if it came meanwhile, for port_control to return (else null).
  ErlDrvBinary* on_call(std::string_view frame, ErlDrvTermData caller);

  // What this port sends, queued by any thread (Router::route).
  Outbox& outbox() { return outbox_; }
  // ready_input (scheduler thread, port locked): sends what is queued.
  void on_ready();

 private:
  struct Config {
    int contexts = 1;
    size_t max_frame = 64u << 20;
    unsigned spin_us = 0;
    std::vector<std::string> python_path;
  };
  static bool parse_hello(std::string_view frame, Config& config);
  void start(Config config);  // the starter thread
  void dispatch(std::string_view frame);
  // Frames whose handling may wait for the GIL go to the driver's worker thread.
  static bool needs_gil(std::string_view frame);
  void record_caller(std::string_view frame, ErlDrvTermData caller);
  // The ID of a request written by `caller` that waits for its reply, or empty.
  std::string_view awaited_reqid(std::string_view frame, ErlDrvTermData caller) const;

  const ErlDrvPort port_;
  const ErlDrvTermData port_id_;
  const ErlDrvTermData owner_;
  Outbox outbox_;
  std::vector<Outbox::Entry> sending_;  // on_ready's, its room reused
  bool hello_seen_ = false;             // scheduler thread only
  unsigned call_spin_us_ = 0;           // the same
  CallSpin call_spin_;                  // the same (the port lock)
  size_t max_frame_ = 64u << 20;

  std::mutex mu_;  // guards what follows, and serialises dispatch
  bool started_ GUARDED_BY(mu_) = false;
  std::vector<std::string> early_ GUARDED_BY(mu_);  // frames that came before the contexts
  std::vector<std::unique_ptr<Context>> contexts_;
  std::unique_ptr<Dispatcher> dispatcher_;
  std::unique_ptr<NativeThread> starter_;
};

}  // namespace ep::drv
