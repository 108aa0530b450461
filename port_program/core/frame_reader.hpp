// {packet,4} frame splitter: 4-byte big-endian payload length, then the payload.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/protocol.hpp"

namespace ep {

class FrameReader {
 public:
  // Bytes of an oversized frame's payload passed to on_oversized.
  static constexpr size_t kOversizedHead = 256;

  explicit FrameReader(size_t max_frame = protocol::kDefaultMaxFrame) : max_frame_(max_frame) {}

  // Feed bytes as they arrive (any split). For each complete frame calls
  // on_frame(std::string_view payload). For a frame whose declared length exceeds
  // max_frame, calls on_oversized(std::string_view head, uint64_t declared_len) once,
  // where head is the first up-to-256 bytes of its payload, then discards the rest of
  // that frame's bytes as they arrive, without buffering them.
  //
  // Complete frames inside one feed() are delivered as views into `bytes`; a frame split
  // across feeds is assembled in a buffer that is reused from frame to frame. Views are
  // valid only during the callback. A callback may not call feed() on the same reader; if
  // it throws, the exception propagates, that frame counts as consumed and the rest of
  // `bytes` is not processed.
  template <class OnFrame, class OnOversized>
  void feed(std::string_view bytes, OnFrame&& on_frame, OnOversized&& on_oversized) {
    while (!bytes.empty()) {
      switch (state_) {
        case State::Header: {
          if (header_have_ == 0 && bytes.size() >= 4) {
            len_ = decode_header(bytes.data());
            bytes.remove_prefix(4);
          } else {
            size_t take = std::min(bytes.size(), size_t{4} - header_have_);
            std::copy_n(bytes.data(), take, header_ + header_have_);
            header_have_ += take;
            bytes.remove_prefix(take);
            if (header_have_ < 4) return;
            header_have_ = 0;
            len_ = decode_header(header_);
          }
          if (len_ > max_frame_) {
            head_len_ = static_cast<size_t>(std::min<uint64_t>(len_, kOversizedHead));
            if (bytes.size() >= head_len_) {
              // The whole head is here: report it without copying.
              std::string_view head = bytes.substr(0, head_len_);
              bytes.remove_prefix(head_len_);
              start_discard();
              on_oversized(head, len_);
            } else {
              head_.assign(bytes);
              bytes = {};
              state_ = State::OversizedHead;
            }
          } else if (bytes.size() >= len_) {
            std::string_view frame = bytes.substr(0, static_cast<size_t>(len_));
            bytes.remove_prefix(static_cast<size_t>(len_));
            on_frame(frame);
          } else {
            buf_.clear();  // keeps its capacity
            buf_.reserve(static_cast<size_t>(len_));
            buf_.append(bytes);
            bytes = {};
            state_ = State::Payload;
          }
          break;
        }
        case State::Payload: {
          size_t take = std::min(bytes.size(), static_cast<size_t>(len_) - buf_.size());
          buf_.append(bytes.data(), take);
          bytes.remove_prefix(take);
          if (buf_.size() == len_) {
            state_ = State::Header;
            on_frame(std::string_view(buf_));
          }
          break;
        }
        case State::OversizedHead: {
          size_t take = std::min(bytes.size(), head_len_ - head_.size());
          head_.append(bytes.data(), take);
          bytes.remove_prefix(take);
          if (head_.size() == head_len_) {
            start_discard();
            on_oversized(std::string_view(head_), len_);
          }
          break;
        }
        case State::Discard: {
          size_t take = static_cast<size_t>(std::min<uint64_t>(bytes.size(), discard_));
          discard_ -= take;
          bytes.remove_prefix(take);
          if (discard_ == 0) state_ = State::Header;
          break;
        }
      }
    }
  }

  // Bytes of an unfinished frame are pending (used at EOF to report a truncated frame).
  bool has_partial() const { return state_ != State::Header || header_have_ != 0; }

  size_t max_frame() const { return max_frame_; }

 private:
  enum class State { Header, Payload, OversizedHead, Discard };

  static uint64_t decode_header(const char* p) {
    uint64_t v = 0;
    for (int i = 0; i < 4; ++i) v = (v << 8) | static_cast<uint8_t>(p[i]);
    return v;
  }

  // The oversized frame's head has been taken; skip the rest of its payload.
  void start_discard() {
    discard_ = len_ - head_len_;
    state_ = discard_ == 0 ? State::Header : State::Discard;
  }

  size_t max_frame_;
  State state_ = State::Header;
  char header_[4] = {};
  size_t header_have_ = 0;
  uint64_t len_ = 0;      // declared payload length of the current frame
  std::string buf_;       // partial frame payload (reused)
  std::string head_;      // partial head of an oversized frame
  size_t head_len_ = 0;   // bytes of head to report
  uint64_t discard_ = 0;  // payload bytes of an oversized frame still to drop
};

// Encodes the 4-byte big-endian length prefix.
inline void append_frame_header(std::string& out, uint32_t payload_len) {
  const char hdr[4] = {static_cast<char>(payload_len >> 24), static_cast<char>(payload_len >> 16),
                       static_cast<char>(payload_len >> 8), static_cast<char>(payload_len)};
  out.append(hdr, 4);
}

}  // namespace ep
