// erlang_python_drv: the linked-in driver's entry points. Loaded with erl_ddll
// (py_driver.erl); every port opened with open_port({spawn_driver, ...}) is an
// Instance hosting its own contexts in the VM's one CPython. See README.md,
// "The linked-in driver backend".
#include <erl_driver.h>

#include <cstdio>
#include <cstdlib>
#include <memory>

#include "core/runtime.hpp"
#include "driver/instance.hpp"
#include "driver/router.hpp"
#include "driver/thread_affinity.hpp"

namespace ep::drv {
namespace {

// CPython is never finalised (as in a port program, which ends with _Exit):
// executors may be running Python when the VM halts. When the VM ends with
// exit(), this handler (registered after the driver's statics exist, so it
// runs before their destructors) ends the process at once, with the status
// the VM asked for, after flushing stdio.
void end_now(int status, void*) {
  std::fflush(nullptr);
  std::_Exit(status);
}

int drv_init() {
  remember_vm_cpus();
  Router::instance().init_atoms();
  (void)Runtime::instance();
  on_exit(&end_now, nullptr);
  return 0;
}

ErlDrvData drv_start(ErlDrvPort port, char*) {
  // The VM keeps the driver loaded for good: CPython cannot be unloaded.
  driver_lock_driver(port);
  auto inst = std::make_shared<Instance>(port);
  if (!inst->outbox().watch(port)) return ERL_DRV_ERROR_ERRNO;
  set_port_control_flags(port, PORT_CONTROL_FLAG_BINARY);
  ErlDrvData data = reinterpret_cast<ErlDrvData>(inst.get());
  Router::instance().opened(std::move(inst));
  return data;
}

void drv_stop(ErlDrvData data) {
  auto* inst = reinterpret_cast<Instance*>(data);
  inst->outbox().unwatch(inst->port());
  Router::instance().closed(inst);
}

// The outbox's eventfd: what the driver's threads queued is sent from here.
void drv_ready_input(ErlDrvData data, ErlDrvEvent) {
  reinterpret_cast<Instance*>(data)->on_ready();
}

void drv_stop_select(ErlDrvEvent event, void*) {
  Outbox::close_event(event);
}

void drv_output(ErlDrvData data, char* buf, ErlDrvSizeT len) {
  auto* inst = reinterpret_cast<Instance*>(data);
  inst->on_output(std::string_view(buf, len), driver_caller(inst->port()));
}

// port_control(Port, 1, Frame): as port_command(Port, Frame), but when it
// returns, the frame has been taken: after a cancellation no reply can reach
// the caller any more (py_request flushes what came before).
// port_control(Port, 2, ReqId): the caller of ReqId (its msgpack) gave up
// waiting; a reply that comes later goes to the owner.
// port_control(Port, 3, Frame): as port_command(Port, Frame), but the
// caller's scheduler may poll for the reply a moment (call_spin.hpp) and
// return it: <<1 (ok) | 2 (error), Payload/binary>>; else the reply comes
// as a message. Every command returns a binary (empty: nothing).
ErlDrvSSizeT drv_control(ErlDrvData data, unsigned int command, char* buf, ErlDrvSizeT len,
                         char** rbuf, ErlDrvSizeT) {
  *rbuf = nullptr;
  switch (command) {
    case 1:
      drv_output(data, buf, len);
      return 0;
    case 2:
      Router::instance().forget_reply(std::string_view(buf, len));
      return 0;
    case 3: {
      auto* inst = reinterpret_cast<Instance*>(data);
      ErlDrvBinary* reply = inst->on_call(std::string_view(buf, len), driver_caller(inst->port()));
      if (!reply) return 0;
      *rbuf = reinterpret_cast<char*>(reply);
      return static_cast<ErlDrvSSizeT>(reply->orig_size);
    }
    default:
      return -1;
  }
}

ErlDrvEntry make_entry() {
  ErlDrvEntry e{};
  e.init = &drv_init;
  e.start = &drv_start;
  e.stop = &drv_stop;
  e.output = &drv_output;
  e.driver_name = const_cast<char*>("erlang_python_drv");
  e.control = &drv_control;
  e.ready_input = &drv_ready_input;
  e.stop_select = &drv_stop_select;
  e.extended_marker = ERL_DRV_EXTENDED_MARKER;
  e.major_version = ERL_DRV_EXTENDED_MAJOR_VERSION;
  e.minor_version = ERL_DRV_EXTENDED_MINOR_VERSION;
  e.driver_flags = ERL_DRV_FLAG_USE_PORT_LOCKING;
  return e;
}

}  // namespace
}  // namespace ep::drv

extern "C" DRIVER_INIT(erlang_python_drv) {
  static ErlDrvEntry entry = ep::drv::make_entry();
  return &entry;
}
