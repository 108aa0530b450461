// FrameReader: {packet,4} framing under every split.
#include "core/frame_reader.hpp"

#include <doctest/doctest.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

using ep::append_frame_header;
using ep::FrameReader;

namespace {

struct Oversized {
  std::string head;
  uint64_t declared;
  bool operator==(const Oversized&) const = default;
};

struct Collector {
  std::vector<std::string> frames;
  std::vector<Oversized> oversized;
  std::vector<std::string> events;  // "F" + payload or "O" + head, in delivery order

  void feed(FrameReader& r, std::string_view bytes) {
    r.feed(
        bytes,
        [&](std::string_view payload) {
          frames.emplace_back(payload);
          events.push_back("F" + std::string(payload));
        },
        [&](std::string_view head, uint64_t declared) {
          oversized.push_back({std::string(head), declared});
          events.push_back("O" + std::string(head));
        });
  }
};

std::string payload(size_t n, char seed) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>(seed + i % 29);
  return s;
}

std::string framed(std::string_view p) {
  std::string out;
  append_frame_header(out, static_cast<uint32_t>(p.size()));
  out.append(p);
  return out;
}

std::vector<std::string> sample_payloads() {
  return {payload(10, 'a'),
          "",
          payload(1, 'b'),
          payload(300, 'c'),
          "",
          payload(4, 'd'),
          payload(70000, 'e'),
          payload(3, 'f')};
}

std::string concat_frames(const std::vector<std::string>& payloads) {
  std::string out;
  for (const auto& p : payloads) out += framed(p);
  return out;
}

}  // namespace

TEST_CASE("append_frame_header writes a 4-byte big-endian length") {
  std::string out = "x";
  append_frame_header(out, 0x01020304u);
  CHECK(out == std::string("x\x01\x02\x03\x04", 5));
  out.clear();
  append_frame_header(out, 0);
  CHECK(out == std::string(4, '\0'));
  out.clear();
  append_frame_header(out, 0xffffffffu);
  CHECK(out == std::string(4, '\xff'));
}

TEST_CASE("many frames in one feed are delivered in order without copying") {
  auto payloads = sample_payloads();
  std::string stream = concat_frames(payloads);
  FrameReader r;
  CHECK(r.max_frame() == (64u << 20));
  std::vector<std::string> got;
  bool all_views = true;
  r.feed(
      stream,
      [&](std::string_view p) {
        got.emplace_back(p);
        if (!p.empty() &&
            (p.data() < stream.data() || p.data() + p.size() > stream.data() + stream.size())) {
          all_views = false;
        }
      },
      [](std::string_view, uint64_t) { FAIL("unexpected oversized frame"); });
  CHECK(got == payloads);
  CHECK(all_views);
  CHECK_FALSE(r.has_partial());
}

TEST_CASE("a stream split at every byte position delivers the same frames") {
  auto payloads =
      std::vector<std::string>{payload(10, 'a'), "", payload(300, 'c'), payload(1, 'b'), ""};
  std::string stream = concat_frames(payloads);
  for (size_t cut = 0; cut <= stream.size(); ++cut) {
    CAPTURE(cut);
    FrameReader r;
    Collector c;
    c.feed(r, std::string_view(stream).substr(0, cut));
    c.feed(r, std::string_view(stream).substr(cut));
    CHECK(c.frames == payloads);
    CHECK(c.oversized.empty());
    CHECK_FALSE(r.has_partial());
  }
  // Every pair of cut points (three pieces) over a shorter stream.
  std::string small = concat_frames({payload(5, 'x'), "", payload(2, 'y')});
  for (size_t a = 0; a <= small.size(); ++a) {
    for (size_t b = a; b <= small.size(); ++b) {
      FrameReader r;
      Collector c;
      c.feed(r, std::string_view(small).substr(0, a));
      c.feed(r, std::string_view(small).substr(a, b - a));
      c.feed(r, std::string_view(small).substr(b));
      CHECK(c.frames == std::vector<std::string>{payload(5, 'x'), "", payload(2, 'y')});
    }
  }
}

TEST_CASE("one byte at a time") {
  auto payloads = sample_payloads();
  std::string stream = concat_frames(payloads);
  FrameReader r;
  Collector c;
  for (char ch : stream) c.feed(r, std::string_view(&ch, 1));
  CHECK(c.frames == payloads);
  CHECK(c.oversized.empty());
  CHECK_FALSE(r.has_partial());
}

TEST_CASE("zero-length frames") {
  FrameReader r;
  Collector c;
  c.feed(r, std::string(4, '\0'));
  REQUIRE(c.frames.size() == 1);
  CHECK(c.frames[0].empty());
  CHECK_FALSE(r.has_partial());
  c.feed(r, std::string(12, '\0'));
  CHECK(c.frames.size() == 4);
  c.feed(r, std::string(2, '\0'));
  CHECK(r.has_partial());
  CHECK(c.frames.size() == 4);
  c.feed(r, std::string(2, '\0'));
  CHECK(c.frames.size() == 5);
  CHECK_FALSE(r.has_partial());
  c.feed(r, std::string_view());
  CHECK(c.frames.size() == 5);
}

TEST_CASE("an oversized frame is reported once with its head, and the next frame is delivered") {
  const size_t max = 100;
  std::string before = payload(10, 'a');
  std::string big = payload(1000, 'B');
  std::string after = payload(5, 'z');
  std::string stream = framed(before) + framed(big) + framed(after) + framed(payload(100, 'm'));
  const std::vector<std::string> expected_events = {"F" + before, "O" + big.substr(0, 256),
                                                    "F" + after, "F" + payload(100, 'm')};
  auto check = [&](const Collector& c, const FrameReader& r) {
    CHECK(c.events == expected_events);
    REQUIRE(c.oversized.size() == 1);
    CHECK(c.oversized[0].head == big.substr(0, 256));
    CHECK(c.oversized[0].declared == 1000);
    CHECK_FALSE(r.has_partial());
  };
  SUBCASE("whole") {
    FrameReader r(max);
    CHECK(r.max_frame() == max);
    Collector c;
    c.feed(r, stream);
    check(c, r);
  }
  SUBCASE("split at every position") {
    for (size_t cut = 0; cut <= stream.size(); ++cut) {
      CAPTURE(cut);
      FrameReader r(max);
      Collector c;
      c.feed(r, std::string_view(stream).substr(0, cut));
      c.feed(r, std::string_view(stream).substr(cut));
      check(c, r);
    }
  }
  SUBCASE("one byte at a time") {
    FrameReader r(max);
    Collector c;
    for (char ch : stream) c.feed(r, std::string_view(&ch, 1));
    check(c, r);
  }
}

TEST_CASE("an oversized frame shorter than 256 bytes reports its whole payload") {
  std::string big = payload(50, 'q');
  std::string stream = framed(big) + framed("ok");
  for (size_t cut = 0; cut <= stream.size(); ++cut) {
    CAPTURE(cut);
    FrameReader r(10);
    Collector c;
    c.feed(r, std::string_view(stream).substr(0, cut));
    c.feed(r, std::string_view(stream).substr(cut));
    CHECK(c.oversized == std::vector<Oversized>{{big, 50}});
    CHECK(c.frames == std::vector<std::string>{"ok"});
  }
  // A frame of exactly max_frame bytes is not oversized.
  FrameReader r(10);
  Collector c;
  c.feed(r, framed(payload(10, 'e')));
  CHECK(c.frames.size() == 1);
  CHECK(c.oversized.empty());
}

TEST_CASE("an oversized frame's tail is discarded, not buffered") {
  // Declares 4 GiB - 1 but only a part ever arrives: the reader keeps discarding.
  FrameReader r(1000);
  Collector c;
  std::string hdr;
  append_frame_header(hdr, 0xffffffffu);
  c.feed(r, hdr + payload(100, 'h'));
  CHECK(c.oversized.empty());  // head incomplete
  CHECK(r.has_partial());
  c.feed(r, payload(200, 'i'));
  REQUIRE(c.oversized.size() == 1);
  CHECK(c.oversized[0].declared == 0xffffffffu);
  CHECK(c.oversized[0].head == payload(100, 'h') + payload(156, 'i'));
  std::string chunk(1 << 20, 'j');
  for (int i = 0; i < 8; ++i) c.feed(r, chunk);
  CHECK(r.has_partial());
  CHECK(c.oversized.size() == 1);
  CHECK(c.frames.empty());
}

TEST_CASE("has_partial reports an unfinished frame at every truncation point") {
  std::string stream = framed(payload(20, 'p'));
  for (size_t cut = 0; cut <= stream.size(); ++cut) {
    CAPTURE(cut);
    FrameReader r;
    Collector c;
    c.feed(r, std::string_view(stream).substr(0, cut));
    bool complete = cut == stream.size();
    CHECK(r.has_partial() == (cut != 0 && !complete));
    CHECK(c.frames.size() == (complete ? 1u : 0u));
  }
  // Also while discarding an oversized frame.
  std::string big = framed(payload(300, 'o'));
  FrameReader r(4);
  Collector c;
  c.feed(r, std::string_view(big).substr(0, big.size() - 1));
  CHECK(c.oversized.size() == 1);
  CHECK(r.has_partial());
  c.feed(r, std::string_view(big).substr(big.size() - 1));
  CHECK_FALSE(r.has_partial());
  CHECK(c.oversized.size() == 1);
  CHECK(c.frames.empty());
}

TEST_CASE("partial frames are assembled in a reused buffer") {
  FrameReader r;
  std::vector<const char*> where;
  auto feed = [&](std::string_view bytes) {
    r.feed(
        bytes, [&](std::string_view p) { where.push_back(p.data()); },
        [](std::string_view, uint64_t) {});
  };
  std::string first = framed(payload(4096, 'a'));
  std::string second = framed(payload(1000, 'b'));
  feed(std::string_view(first).substr(0, 100));
  feed(std::string_view(first).substr(100));
  feed(std::string_view(second).substr(0, 10));
  feed(std::string_view(second).substr(10));
  REQUIRE(where.size() == 2);
  CHECK(where[0] == where[1]);
}
