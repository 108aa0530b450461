// Clang thread-safety annotations (-Wthread-safety): which mutex guards which
// member, which functions must hold it. No-ops under other compilers (gcc).
// `make check-threads` compiles the core with clang and libc++, whose std::mutex
// and std::lock_guard carry the matching capability annotations.
#pragma once

#if defined(__clang__)
#define EP_TSA(x) __attribute__((x))
#else
#define EP_TSA(x)
#endif

// Member `m' is read and written only with mutex `mu' held.
#define GUARDED_BY(mu) EP_TSA(guarded_by(mu))
// What member `p' points to is guarded by `mu'.
#define PT_GUARDED_BY(mu) EP_TSA(pt_guarded_by(mu))
// The function must be called with `mu' held.
#define REQUIRES(...) EP_TSA(requires_capability(__VA_ARGS__))
// The function must be called without `mu' held (it takes it).
#define EXCLUDES(...) EP_TSA(locks_excluded(__VA_ARGS__))
// The function is not checked: it holds the mutex through a std::unique_lock
// (passed in, or handed to a condition variable), which libc++ leaves
// unannotated, so the analysis cannot follow it.
#define NO_THREAD_SAFETY_ANALYSIS EP_TSA(no_thread_safety_analysis)
