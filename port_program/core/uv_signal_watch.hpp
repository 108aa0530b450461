// One signal number watched by a loop (uv_signal_t): libuv's process-wide
// handler forwards it to every loop watching it, on any thread.
#pragma once

#include <uv.h>

#include "core/uv_handle.hpp"

namespace ep {

class UvSelector;

struct SignalSlot {
  uv_signal_t signal;  // first: the slot is its uv handle
  UvSelector* owner;
};

class SignalWatch {
 public:
  static int open(uv_loop_t* loop, UvSelector* owner, int signum, SignalWatch& out);

 private:
  static void on_signal(uv_signal_t* signal, int signum);
  UvHandle<SignalSlot> slot_;
};

}  // namespace ep
