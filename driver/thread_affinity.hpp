// The CPUs the driver's own threads may run on.
//
// A thread inherits the CPU affinity of the thread that creates it, and the
// driver's threads are first created on an Erlang scheduler thread, which
// the VM binds to one CPU when started with scheduler binding (`+sbt db`,
// as `make bench` runs it). An executor so created shares its scheduler's
// only CPU: the caller's scheduler and the executor it waits for take turns
// on one core while the other core idles (measured: every call paid a
// scheduler→executor hand-off of ~19 µs, of ~2 µs once unbound).
#pragma once

namespace ep::drv {

// Driver init, any thread: remembers the VM's own CPU set (its main
// thread's, unbound by the VM: what the user gave the VM, e.g. with taskset).
void remember_vm_cpus();

// On a thread of the driver's own, first thing: run on any CPU of the VM's
// set; the threads it creates inherit that.
void unbind_this_thread();

}  // namespace ep::drv
