#include "driver/thread_affinity.hpp"

#include <sched.h>
#include <unistd.h>

#include <mutex>

namespace ep::drv {
namespace {

// Written once at driver init, read by the driver's threads afterwards.
struct VmCpus {
  std::once_flag once;
  cpu_set_t set{};
  bool known = false;
};

VmCpus& vm_cpus() {
  static VmCpus cpus;
  return cpus;
}

}  // namespace

void remember_vm_cpus() {
  VmCpus& c = vm_cpus();
  std::call_once(c.once, [&c] {
    CPU_ZERO(&c.set);
    // The main thread's ID is the process ID; the VM never binds it.
    c.known = sched_getaffinity(getpid(), sizeof c.set, &c.set) == 0;
  });
}

void unbind_this_thread() {
  remember_vm_cpus();
  const VmCpus& c = vm_cpus();
  if (c.known) (void)sched_setaffinity(0, sizeof c.set, &c.set);
}

}  // namespace ep::drv
