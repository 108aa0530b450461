// libFuzzer target for the {packet,4} frame reader (core/frame_reader.hpp):
// the input's first byte picks a max_frame, the next 8 bytes pick how the rest
// (the byte stream from Erlang) is split into reads. Whatever the split, the
// reader must report the same frames and oversized heads as when the whole
// stream arrives in one read (merged frames), and the same as a plain
// reference parse of the stream. Run with `make fuzz`.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "core/frame_reader.hpp"

namespace {

struct Event {
  bool oversized;
  std::string bytes;  // the payload, or an oversized frame's head
  uint64_t declared;  // declared length of an oversized frame
  bool operator==(const Event&) const = default;
};

using Events = std::vector<Event>;

Events run(size_t max_frame, std::string_view stream, const std::vector<size_t>& cuts) {
  ep::FrameReader reader(max_frame);
  Events events;
  auto on_frame = [&](std::string_view payload) {
    events.push_back({false, std::string(payload), 0});
  };
  auto on_oversized = [&](std::string_view head, uint64_t declared) {
    events.push_back({true, std::string(head), declared});
  };
  size_t at = 0;
  for (size_t cut : cuts) {
    if (cut <= at || cut > stream.size()) continue;
    reader.feed(stream.substr(at, cut - at), on_frame, on_oversized);
    at = cut;
  }
  reader.feed(stream.substr(at), on_frame, on_oversized);
  return events;
}

// What the frames of `stream` are, read directly: the reference.
Events reference(size_t max_frame, std::string_view s, bool& partial) {
  Events events;
  partial = false;
  while (!s.empty()) {
    if (s.size() < 4) {
      partial = true;
      break;
    }
    uint64_t len = 0;
    for (int i = 0; i < 4; ++i) len = (len << 8) | static_cast<uint8_t>(s[i]);
    s.remove_prefix(4);
    if (len > max_frame) {
      size_t head = static_cast<size_t>(std::min<uint64_t>(len, ep::FrameReader::kOversizedHead));
      if (s.size() < head) {
        partial = true;
        break;
      }
      events.push_back({true, std::string(s.substr(0, head)), len});
      uint64_t skip = std::min<uint64_t>(len, s.size());
      partial = skip < len;
      s.remove_prefix(static_cast<size_t>(skip));
    } else {
      if (s.size() < len) {
        partial = true;
        break;
      }
      events.push_back({false, std::string(s.substr(0, static_cast<size_t>(len))), 0});
      s.remove_prefix(static_cast<size_t>(len));
    }
  }
  return events;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 9) return 0;
  static const size_t kMaxFrames[] = {0, 1, 4, 16, 255, 256, 257, 1024, 1u << 16};
  size_t max_frame = kMaxFrames[data[0] % (sizeof kMaxFrames / sizeof kMaxFrames[0])];
  std::string_view stream(reinterpret_cast<const char*>(data) + 9, size - 9);
  // split points: each of the 8 bytes is a gap to the next cut (0: every byte)
  std::vector<size_t> cuts;
  size_t at = 0;
  for (int i = 1; i < 9 && at < stream.size(); ++i) {
    at += data[i] == 0 ? 1 : data[i];
    cuts.push_back(at);
  }
  std::vector<size_t> bytewise;
  for (size_t i = 1; i < stream.size() && i < 512; ++i) bytewise.push_back(i);

  bool partial = false;
  Events expected = reference(max_frame, stream, partial);
  Events merged = run(max_frame, stream, {});
  Events split = run(max_frame, stream, cuts);
  Events bytes = run(max_frame, stream, bytewise);
  if (merged != expected || split != expected || (stream.size() < 512 && bytes != expected)) {
    std::fprintf(stderr, "frames differ: expected %zu, merged %zu, split %zu, bytewise %zu\n",
                 expected.size(), merged.size(), split.size(), bytes.size());
    std::abort();
  }
  // has_partial() agrees with the reference at the end of the stream
  ep::FrameReader reader(max_frame);
  reader.feed(stream, [](std::string_view) {}, [](std::string_view, uint64_t) {});
  if (reader.has_partial() != partial) {
    std::fprintf(stderr, "has_partial %d, expected %d\n", reader.has_partial(), partial);
    std::abort();
  }
  return 0;
}
