// An owned libuv handle: allocated on the heap (libuv needs a stable address
// until its close callback), closed through uv_close and freed in that
// callback, so it is freed by the next turn of its loop, never behind its back.
#pragma once

#include <uv.h>

#include <memory>
#include <utility>

namespace ep {

// `Slot` is a standard-layout struct whose first member is the uv handle.
template <class Slot>
class UvHandle {
 public:
  UvHandle() = default;
  explicit UvHandle(std::unique_ptr<Slot> slot) : slot_(std::move(slot)) {}
  UvHandle(UvHandle&& o) noexcept = default;
  UvHandle& operator=(UvHandle&& o) noexcept {
    if (this != &o) {
      close();
      slot_ = std::move(o.slot_);
    }
    return *this;
  }
  UvHandle(const UvHandle&) = delete;
  UvHandle& operator=(const UvHandle&) = delete;
  ~UvHandle() { close(); }

  Slot* get() const { return slot_.get(); }
  Slot* operator->() const { return slot_.get(); }
  explicit operator bool() const { return slot_ != nullptr; }
  uv_handle_t* handle() const { return reinterpret_cast<uv_handle_t*>(slot_.get()); }

  // Starts closing an initialised handle; the memory goes in the close callback.
  void close() {
    if (!slot_) return;
    uv_close(reinterpret_cast<uv_handle_t*>(slot_.release()),
             [](uv_handle_t* h) { std::unique_ptr<Slot> owned(reinterpret_cast<Slot*>(h)); });
  }

 private:
  std::unique_ptr<Slot> slot_;
};

}  // namespace ep
