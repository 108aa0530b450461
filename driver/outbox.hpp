// What the driver's own threads send, on its way to a scheduler thread.
//
// Nothing is sent to an Erlang process from an executor (a thread the VM
// does not manage): erl_drv_send_term there makes the VM's thread progress
// wait for that thread and wake its auxiliary thread and a scheduler, on
// every call (measured: 2-3 more scheduler wake-ups per call than the port
// program's pipe). Instead, each port has an outbox and an eventfd the VM
// polls (driver_select): a thread queues a message and, if the box was
// empty, writes the eventfd; the port's ready_input callback, on a
// scheduler thread, takes the box and sends. A scheduler asleep in its
// poll set wakes on the eventfd as it does on a port program's pipe.
#pragma once

#include <erl_driver.h>

#include <atomic>
#include <mutex>
#include <string>
#include <vector>

#include "core/thread_annotations.hpp"

namespace ep::drv {

class Outbox {
 public:
  struct Entry {
    enum class Kind {
      kReply,  // to the process that wrote the request, else to the owner
      kOwner,  // {Port, {data, Frame}} to the owner
      kExit,   // {Port, {exit_status, Status}} to the owner
    };
    Kind kind;
    std::string payload;
    int status = 0;
  };

  Outbox();   // the eventfd (fd() < 0 if none could be made)
  ~Outbox();  // closes the eventfd unless the VM has it (watch())
  Outbox(const Outbox&) = delete;
  Outbox& operator=(const Outbox&) = delete;

  // drv_start, the port locked: the VM polls the eventfd for the port.
  bool watch(ErlDrvPort port);
  // drv_stop, the port locked: nothing more is queued or signalled; the VM
  // closes the eventfd (close_event) once it no longer polls it.
  void unwatch(ErlDrvPort port);
  // stop_select: the VM is done with the eventfd.
  static void close_event(ErlDrvEvent event);

  // Any thread: queued in order; dropped once the port stopped. True when
  // the caller must then call signal() (the box was empty): after it let go
  // of its locks, so that the scheduler it wakes finds them free.
  bool push(Entry entry);
  void signal();
  // ready_input, the port locked: `into` gets what was queued, oldest first
  // (its old content is dropped, its room reused).
  void take(std::vector<Entry>& into);

 private:
  std::mutex mu_;
  std::vector<Entry> queue_ GUARDED_BY(mu_);
  bool stopped_ GUARDED_BY(mu_) = false;
  std::atomic<int> signalling_{0};  // push() said signal(), which has not written yet
  int fd_ = -1;
  bool watched_ = false;  // the VM closes fd_
};

}  // namespace ep::drv
