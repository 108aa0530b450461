#include "driver/instance.hpp"

#include "core/frame_reader.hpp"
#include "core/msgpack_reader.hpp"
#include "core/output.hpp"
#include "core/protocol.hpp"
#include "core/runtime.hpp"
#include "driver/python_host.hpp"
#include "driver/router.hpp"
#include "driver/thread_affinity.hpp"

namespace ep::drv {
namespace {

// A frame's message type (`[Type, ...]`), or -1.
int frame_type(std::string_view frame) {
  // Every message has fewer than 16 elements: a fixarray.
  if (frame.size() < 3 || (static_cast<uint8_t>(frame[0]) & 0xf0) != 0x90) return -1;
  auto b1 = static_cast<uint8_t>(frame[1]);
  if (b1 <= 0x7f) return b1;
  return b1 == 0xcc ? static_cast<uint8_t>(frame[2]) : -1;
}

// A request whose reply its writer may wait for (py:call, py_event_loop tasks).
bool awaits_reply_type(int type) {
  switch (type) {
    case protocol::kCall:
    case protocol::kEval:
    case protocol::kExec:
    case protocol::kRefOp:
    case protocol::kLoopTask:
    case protocol::kLoopExec:
    case protocol::kLoopEval:
      return true;
    default:
      return false;
  }
}

// The request ID of `[Type, ReqId, ...]` when it is a reference, else empty.
std::string_view ref_reqid(std::string_view frame) {
  try {
    MsgpackReader in(frame);
    if (in.array_header() < 2) return {};
    in.integer();
    if (in.peek() != MsgpackType::Ext) return {};
    size_t at = in.offset();
    MsgpackExt ext = in.ext();
    if (ext.type != protocol::kExtRef) return {};
    return frame.substr(at, in.offset() - at);
  } catch (const MsgpackError&) {
    return {};
  }
}

}  // namespace

Instance::Instance(ErlDrvPort port)
    : port_(port), port_id_(driver_mk_port(port)), owner_(driver_connected(port)) {}

Instance::~Instance() {
  starter_.reset();
  dispatcher_.reset();
  contexts_.clear();  // each waits for its queued requests, then its executor ends
  // A start that finished after the port closed registered its contexts.
  Router::instance().disown(this);
}

void Instance::on_output(std::string_view frame, ErlDrvTermData caller) {
  if (!hello_seen_) {
    // The owner's hello carries what a port program gets as arguments.
    hello_seen_ = true;
    Config config;
    if (!parse_hello(frame, config)) {
      // As a port program given bad arguments (it exits with status 2).
      Router::instance().exit_status(this, 2);
      return;
    }
    max_frame_ = config.max_frame;
    call_spin_us_ = config.spin_us;
    {
      std::lock_guard lk(mu_);
      early_.emplace_back(frame);  // the dispatcher checks its version
    }
    starter_ = std::make_unique<NativeThread>([this, config] { start(config); });
    return;
  }
  record_caller(frame, caller);
  if (needs_gil(frame)) {
    // Stopping Python code takes the GIL for a moment: not on a scheduler
    // thread. The frame keeps its place after the ones before.
    Router::instance().run_slow(
        [self = shared_from_this(), copy = std::string(frame)] { self->dispatch(copy); });
    return;
  }
  dispatch(frame);
}

void Instance::on_ready() {
  outbox_.take(sending_);
  if (!sending_.empty()) Router::instance().deliver(this, sending_);
}

ErlDrvBinary* Instance::on_call(std::string_view frame, ErlDrvTermData caller) {
  ReplySlot slot;
  if (hello_seen_) slot.reqid = awaited_reqid(frame, caller);
  if (slot.reqid.empty() || !call_spin_.begin(call_spin_us_)) {
    on_output(frame, caller);
    return nullptr;
  }
  Router& router = Router::instance();
  bool poll = router.expect_reply(slot.reqid, this, caller, &slot);
  dispatch(frame);
  if (!poll) {
    call_spin_.end(false);
    return nullptr;
  }
  ReplySlot::State got = call_spin_.wait(slot);
  bool ran_out = got == ReplySlot::kWaiting;
  if (got != ReplySlot::kFilled && router.stop_polling(slot)) {
    got = ReplySlot::kFilled;
    ran_out = false;
  }
  call_spin_.end(ran_out);
  // Not sent as a message: the caller runs this very callback (its
  // port_control), and a message to it from here would wait to be seen.
  return got == ReplySlot::kFilled ? Router::control_reply(slot.payload) : nullptr;
}

std::string_view Instance::awaited_reqid(std::string_view frame, ErlDrvTermData caller) const {
  // A request the writer waits for (its ID is its own alias). The owner
  // writes only requests nobody waits for.
  return awaits_reply_type(frame_type(frame)) && caller != owner_ ? ref_reqid(frame)
                                                                  : std::string_view();
}

void Instance::record_caller(std::string_view frame, ErlDrvTermData caller) {
  int type = frame_type(frame);
  if (awaits_reply_type(type)) {
    // The reply goes straight to the writer that waits for it.
    std::string_view reqid = awaited_reqid(frame, caller);
    if (!reqid.empty()) Router::instance().expect_reply(reqid, this, caller);
    return;
  }
  switch (type) {
    case protocol::kBatch:
      // [53, [Message, ...]] (py_event_loop:create_tasks): each task's reply
      // goes straight to the writer too.
      try {
        MsgpackReader in(frame);
        if (in.array_header() != 2) return;
        in.integer();
        uint32_t n = in.array_header();
        for (uint32_t i = 0; i < n; ++i) {
          std::string_view message = in.raw_object();
          if (frame_type(message) != protocol::kBatch) record_caller(message, caller);
        }
      } catch (const MsgpackError&) {
        // the dispatcher answers a malformed batch
      }
      return;
    case protocol::kCancel:
    case protocol::kLoopCancel: {
      std::string_view reqid = ref_reqid(frame);
      if (!reqid.empty()) Router::instance().forget_reply(reqid);
      return;
    }
    default:
      return;
  }
}

bool Instance::needs_gil(std::string_view frame) {
  int type = frame_type(frame);
  // A cancel withdraws its request here and defers only the interrupt (the
  // dispatcher's GIL runner): it must not wait behind later frames.
  return type == protocol::kInterrupt;
}

void Instance::dispatch(std::string_view frame) {
  std::lock_guard lk(mu_);
  if (!started_) {
    early_.emplace_back(frame);
    return;
  }
  if (frame.size() > max_frame_) {
    dispatcher_->on_oversized(frame.substr(0, FrameReader::kOversizedHead), frame.size(),
                              max_frame_);
    return;
  }
  dispatcher_->on_frame(frame);
}

bool Instance::parse_hello(std::string_view frame, Config& config) {
  // [0, Version, #{<<"contexts">> => N, <<"python_path">> => [Dir], <<"max_frame">> => Bytes}]
  try {
    MsgpackReader in(frame);
    if (in.array_header() != 3) return false;
    if (in.integer().magnitude != protocol::kHello) return false;
    in.integer();
    uint32_t n = in.map_header();
    for (uint32_t i = 0; i < n; ++i) {
      std::string_view key = in.peek() == MsgpackType::Bin ? in.bin() : in.str();
      if (key == "contexts") {
        MsgpackInt v = in.integer();
        if (v.negative || v.magnitude < 1 || v.magnitude > 4096) return false;
        config.contexts = static_cast<int>(v.magnitude);
      } else if (key == "max_frame") {
        MsgpackInt v = in.integer();
        if (v.negative || v.magnitude < 64) return false;
        config.max_frame = v.magnitude;
      } else if (key == "read_spin_us") {
        MsgpackInt v = in.integer();
        if (v.negative || v.magnitude > 10000) return false;
        config.spin_us = static_cast<unsigned>(v.magnitude);
      } else if (key == "python_path") {
        uint32_t m = in.array_header();
        for (uint32_t j = 0; j < m; ++j) {
          config.python_path.emplace_back(in.peek() == MsgpackType::Bin ? in.bin() : in.str());
        }
      } else {
        in.raw_object();
      }
    }
    return true;
  } catch (const MsgpackError&) {
    return false;
  }
}

void Instance::start(Config config) {
  // Created on a scheduler thread: the contexts' executors it starts
  // inherit its CPUs, not that scheduler's one CPU.
  unbind_this_thread();
  Router::Home home(this);  // the hello and what this thread sends go to this port
  std::string error;
  if (!ensure_python(config.python_path, error)) {
    // As a port program that could not start Python: the owner logs it and stops.
    output::send_raw(protocol::kStderr, -1, error);
    Router::instance().exit_status(this, 1);
    return;
  }
  // VM-wide (one runtime): the last port's setting holds.
  Runtime::instance().input().set_idle_spin_us(config.spin_us);
  Runtime::instance().loops().set_spin_us(config.spin_us);
  std::vector<std::unique_ptr<Context>> contexts;
  for (int i = 0; i < config.contexts; ++i) {
    contexts.push_back(std::make_unique<Context>(i));
    Router::instance().adopt(contexts.back().get(), this);
  }
  std::lock_guard lk(mu_);
  contexts_ = std::move(contexts);
  dispatcher_ =
      std::make_unique<Dispatcher>(contexts_, [weak = weak_from_this()](std::function<void()> job) {
        // The instance (its contexts) lives until the job has run.
        Router::instance().run_slow([self = weak.lock(), job = std::move(job)] {
          if (self) job();
        });
      });
  send_hello(config.contexts);
  started_ = true;
  for (const std::string& frame : early_) {
    if (frame.size() > max_frame_) {
      dispatcher_->on_oversized(std::string_view(frame).substr(0, FrameReader::kOversizedHead),
                                frame.size(), max_frame_);
    } else {
      dispatcher_->on_frame(frame);
    }
  }
  early_.clear();
  early_.shrink_to_fit();
}

}  // namespace ep::drv
