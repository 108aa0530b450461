// One file descriptor watched for readability/writability (uv_poll_t).
#pragma once

#include <uv.h>

#include "core/uv_handle.hpp"

namespace ep {

class UvSelector;

struct PollSlot {
  uv_poll_t poll;  // first: the slot is its uv handle
  UvSelector* owner;
  int fd;
  int events;  // UV_READABLE | UV_WRITABLE
};

class PollWatch {
 public:
  // 0, or a libuv error (UV_EPERM for a regular file, UV_EEXIST ...).
  static int open(uv_loop_t* loop, UvSelector* owner, int fd, int events, PollWatch& out);
  int change(int events);  // 0 or a libuv error
  int events() const { return slot_->events; }

 private:
  static void on_ready(uv_poll_t* poll, int status, int events);
  UvHandle<PollSlot> slot_;
};

}  // namespace ep
