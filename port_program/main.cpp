// erlang_python_port: the port program. Moves the protocol onto private
// descriptors, starts CPython and the contexts, then runs the I/O loop.
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "core/context.hpp"
#include "core/dispatcher.hpp"
#include "core/output.hpp"
#include "core/protocol.hpp"
#include "core/runtime.hpp"
#include "io/fd.hpp"
#include "io/pipe_source.hpp"
#include "io/pipe_writer.hpp"
#include "io/port_loop.hpp"

namespace {

struct Options {
  int contexts = 1;
  size_t max_frame = ep::protocol::kDefaultMaxFrame;
  size_t max_memory = 0;  // bytes of resident memory; 0: no cap
  unsigned read_spin_us = 0;
  bool sched_batch = false;
  ep::RuntimeOptions runtime;
};

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr,
               "erlang_python_port: %s\n"
               "usage: erlang_python_port [--contexts N] [--python-path DIR]... "
               "[--max-frame BYTES] [--max-memory BYTES] [--read-spin-us US] "
               "[--scheduling batch|normal]\n",
               why);
  std::exit(2);
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (i + 1 >= argc) usage(("missing value for " + arg).c_str());
    const char* value = argv[++i];
    if (arg == "--contexts") {
      o.contexts = std::atoi(value);
      if (o.contexts < 1 || o.contexts > 4096) usage("--contexts must be 1..4096");
    } else if (arg == "--python-path") {
      o.runtime.python_path.emplace_back(value);
    } else if (arg == "--max-frame") {
      o.max_frame = std::strtoull(value, nullptr, 10);
      if (o.max_frame < 64) usage("--max-frame too small");
    } else if (arg == "--max-memory") {
      o.max_memory = std::strtoull(value, nullptr, 10);
    } else if (arg == "--read-spin-us") {
      o.read_spin_us = static_cast<unsigned>(std::strtoul(value, nullptr, 10));
      if (o.read_spin_us > 10000) usage("--read-spin-us must be 0..10000");
    } else if (arg == "--scheduling") {
      std::string policy = value;
      if (policy != "batch" && policy != "normal") usage("--scheduling must be batch or normal");
      o.sched_batch = policy == "batch";
    } else {
      usage(("unknown option " + arg).c_str());
    }
  }
  return o;
}

// SCHED_BATCH: a thread of this program that wakes up does not preempt the
// thread running on that CPU (an Erlang scheduler writing the next request);
// it runs when that one blocks or its slice ends, or on an idle CPU. Every
// thread started later (executors, Python's threads) inherits the policy.
// Best effort: the default policy stays if the system refuses.
void apply_scheduling(bool batch) {
  if (!batch) return;
  sched_param param{};
  (void)sched_setscheduler(0, SCHED_BATCH, &param);
}

ep::Fd dup_private(int fd) {
  return ep::Fd(fcntl(fd, F_DUPFD_CLOEXEC, 3));
}

// A large message crosses a pipe in one wake-up of each side per pipe-full:
// 1 MiB (Linux's default pipe-max-size) instead of 64 KiB. Best effort.
void widen_pipe(const ep::Fd& fd) {
  constexpr int kPipeSize = 1 << 20;
  (void)fcntl(fd.get(), F_SETPIPE_SZ, kPipeSize);
}

// Points `target` (1 or 2) at a new pipe and returns the pipe's read end.
ep::Fd capture(int target) {
  int p[2];
  if (pipe2(p, O_CLOEXEC) != 0) return ep::Fd();
  dup2(p[1], target);
  close(p[1]);
  return ep::Fd(p[0]);
}

}  // namespace

int main(int argc, char** argv) {
  Options options = parse(argc, argv);
  apply_scheduling(options.sched_batch);
  signal(SIGPIPE, SIG_IGN);

  ep::Fd protocol_in = dup_private(0);
  ep::Fd protocol_out = dup_private(1);
  if (!protocol_in || !protocol_out) usage("cannot move the protocol descriptors");
  widen_pipe(protocol_in);
  widen_pipe(protocol_out);
  ep::Fd stdout_read = capture(1);
  ep::Fd stderr_read = capture(2);
  int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (devnull >= 0) {
    dup2(devnull, 0);
    close(devnull);
  }
  setvbuf(stdout, nullptr, _IOLBF, 0);

  ep::PipeWriter writer(std::move(protocol_out));
  ep::Runtime& runtime = ep::Runtime::instance();
  if (!runtime.start(options.runtime, writer)) {
    // Forward the Python error that start() printed, then give up: the owner
    // sees the port exit with status 1 and logs the text.
    std::fflush(nullptr);
    fcntl(stderr_read.get(), F_SETFL, O_NONBLOCK);
    char buf[65536];
    ssize_t n = read(stderr_read.get(), buf, sizeof buf);
    if (n > 0) ep::output::send_raw(2, -1, std::string_view(buf, static_cast<size_t>(n)));
    return 1;
  }

  runtime.loops().set_spin_us(options.read_spin_us);  // py_event_loop's loops spin as readers do
  std::vector<std::unique_ptr<ep::Context>> contexts;
  for (int i = 0; i < options.contexts; ++i) {
    contexts.push_back(std::make_unique<ep::Context>(i));
  }
  ep::send_hello(options.contexts);
  ep::PortLoop loop(std::move(stdout_read), std::move(stderr_read), contexts);
  if (options.max_memory > 0) loop.cap_memory(options.max_memory);
  ep::Dispatcher dispatcher(contexts);
  ep::PipeSource source(std::move(protocol_in), options.max_frame, options.read_spin_us, dispatcher,
                        [&loop] { loop.request_shutdown(); });
  runtime.input().start(source);  // from here on, the waiting threads read the protocol
  loop.run();
}
