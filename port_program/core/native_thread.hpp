// A joinable thread with an explicit stack size: term conversion recurses up to
// protocol::kMaxDepth levels, more than a default 8 MiB stack holds under ASan.
#pragma once

#include <pthread.h>

#include <functional>
#include <stdexcept>

namespace ep {

class NativeThread {
 public:
  static constexpr size_t kStackSize = 64u << 20;

  explicit NativeThread(std::function<void()> body) : body_(std::move(body)) {
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, kStackSize);
    int rc = pthread_create(&thread_, &attr, &NativeThread::trampoline, this);
    pthread_attr_destroy(&attr);
    if (rc != 0) throw std::runtime_error("pthread_create failed");
  }
  ~NativeThread() { pthread_join(thread_, nullptr); }
  NativeThread(const NativeThread&) = delete;
  NativeThread& operator=(const NativeThread&) = delete;

 private:
  static void* trampoline(void* self) {
    static_cast<NativeThread*>(self)->body_();
    return nullptr;
  }
  std::function<void()> body_;
  pthread_t thread_{};
};

}  // namespace ep
