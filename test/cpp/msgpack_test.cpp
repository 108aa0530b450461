// MsgpackWriter / MsgpackReader: canonical forms against msgpack-c, round trips and
// malformed input.
#include <doctest/doctest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <msgpack.hpp>
#include <string>
#include <vector>

#include "core/msgpack_reader.hpp"
#include "core/msgpack_writer.hpp"

using ep::MsgpackError;
using ep::MsgpackExt;
using ep::MsgpackInt;
using ep::MsgpackReader;
using ep::MsgpackType;
using ep::MsgpackWriter;

namespace {

using Packer = msgpack::packer<msgpack::sbuffer>;

// Bytes produced by msgpack-c's packer.
template <class F>
std::string ref(F&& f) {
  msgpack::sbuffer sbuf;
  Packer pk(&sbuf);
  f(pk);
  return std::string(sbuf.data(), sbuf.size());
}

// Bytes produced by MsgpackWriter.
template <class F>
std::string ours(F&& f) {
  std::string out;
  MsgpackWriter w(out);
  f(w);
  return out;
}

std::string filler(size_t n, char seed = 'a') {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>(seed + i % 23);
  return s;
}

std::string float64_bytes(double d) {
  uint64_t bits = std::bit_cast<uint64_t>(d);
  std::string s(1, static_cast<char>(0xcb));
  for (int i = 7; i >= 0; --i) s.push_back(static_cast<char>(bits >> (8 * i)));
  return s;
}

int64_t to_int64(MsgpackInt i) {
  return i.negative ? static_cast<int64_t>(uint64_t{0} - i.magnitude)
                    : static_cast<int64_t>(i.magnitude);
}

// Decodes one object with the typed reads and re-encodes it; tuple (ext 2) payloads are
// decoded and re-encoded through begin_ext/end_ext.
void copy_object(MsgpackReader& r, MsgpackWriter& w) {
  switch (r.peek()) {
    case MsgpackType::Nil:
      r.nil();
      w.nil();
      break;
    case MsgpackType::Bool:
      w.boolean(r.boolean());
      break;
    case MsgpackType::Int: {
      MsgpackInt i = r.integer();
      if (i.negative) {
        w.int64(to_int64(i));
      } else {
        w.uint64(i.magnitude);
      }
      break;
    }
    case MsgpackType::Float:
      w.float64(r.float_value());
      break;
    case MsgpackType::Str:
      w.str(r.str());
      break;
    case MsgpackType::Bin:
      w.bin(r.bin());
      break;
    case MsgpackType::Array: {
      uint32_t n = r.array_header();
      w.array_header(n);
      for (uint32_t k = 0; k < n; ++k) copy_object(r, w);
      break;
    }
    case MsgpackType::Map: {
      uint32_t n = r.map_header();
      w.map_header(n);
      for (uint32_t k = 0; k < 2 * n; ++k) copy_object(r, w);
      break;
    }
    case MsgpackType::Ext: {
      MsgpackExt e = r.ext();
      if (e.type == 2) {
        MsgpackReader sub(e.payload);
        size_t mark = w.begin_ext(2);
        copy_object(sub, w);
        if (!sub.at_end()) throw MsgpackError("trailing bytes in tuple");
        w.end_ext(mark);
      } else {
        w.ext(e.type, e.payload);
      }
      break;
    }
  }
}

std::string copy_all(std::string_view data) {
  MsgpackReader r(data);
  std::string out;
  MsgpackWriter w(out);
  copy_object(r, w);
  if (!r.at_end()) throw MsgpackError("trailing bytes");
  return out;
}

// A request-like message touching every type and most header sizes.
std::string sample_message() {
  std::string out;
  MsgpackWriter w(out);
  w.array_header(8);
  w.uint64(1);
  w.ext(4, filler(22, 'r'));  // ReqId
  w.uint64(0);
  w.str("builtins");
  w.str("max");
  w.array_header(20);  // array16
  w.int64(1);
  w.int64(-200);
  w.int64(70000);
  w.int64(-70000);
  w.int64(int64_t{1} << 40);
  w.int64(-(int64_t{1} << 40));
  w.float64(3.5);
  w.str(filler(40));
  w.bin(filler(300));
  w.nil();
  w.boolean(true);
  w.boolean(false);
  w.map_header(1);
  w.str("k");
  w.array_header(2);
  w.uint64(1);
  w.uint64(2);
  {
    size_t t = w.begin_ext(2);
    w.array_header(2);
    w.ext(1, "ok");
    size_t inner = w.begin_ext(2);
    w.array_header(0);
    w.end_ext(inner);
    w.end_ext(t);
  }
  w.ext(7, "x");
  w.ext(7, filler(300));
  w.str(filler(300));
  w.bin("");
  w.str("");
  w.float64(-0.0);
  w.map_header(17);  // map16
  for (int k = 0; k < 17; ++k) {
    w.str(std::string(1, static_cast<char>('a' + k)));
    w.int64(-k);
  }
  w.map_header(1);
  w.str("kw");
  w.uint64(UINT64_MAX);
  return out;
}

std::vector<uint64_t> uint_boundaries() {
  std::vector<uint64_t> v;
  for (uint64_t b : {uint64_t{0x7f}, uint64_t{0xff}, uint64_t{0xffff}, uint64_t{0xffffffff}}) {
    v.push_back(b - 1);
    v.push_back(b);
    v.push_back(b + 1);
  }
  v.push_back(0);
  v.push_back(UINT64_MAX - 1);
  v.push_back(UINT64_MAX);
  return v;
}

std::vector<int64_t> int_boundaries() {
  std::vector<int64_t> v;
  for (int64_t b : {int64_t{-32}, int64_t{INT8_MIN}, int64_t{INT16_MIN}, int64_t{INT32_MIN}}) {
    v.push_back(b - 1);
    v.push_back(b);
    v.push_back(b + 1);
  }
  for (uint64_t u : uint_boundaries()) {
    if (u <= static_cast<uint64_t>(INT64_MAX)) v.push_back(static_cast<int64_t>(u));
  }
  v.push_back(-1);
  v.push_back(INT64_MIN);
  v.push_back(INT64_MIN + 1);
  v.push_back(INT64_MAX);
  return v;
}

const std::vector<size_t> kLengths = {0,  1,  2,  3,  4,   5,   7,   8,     9,     15,   16,
                                      17, 31, 32, 33, 255, 256, 257, 65535, 65536, 65537};

// Copies data into an allocation of exactly its size, so ASan sees any overread.
std::unique_ptr<char[]> exact_copy(std::string_view data) {
  auto p = std::make_unique<char[]>(data.size());
  if (!data.empty()) std::memcpy(p.get(), data.data(), data.size());
  return p;
}

}  // namespace

TEST_CASE("writer: nil and booleans match msgpack-c") {
  CHECK(ours([](MsgpackWriter& w) { w.nil(); }) == ref([](Packer& p) { p.pack_nil(); }));
  CHECK(ours([](MsgpackWriter& w) { w.boolean(true); }) == ref([](Packer& p) { p.pack_true(); }));
  CHECK(ours([](MsgpackWriter& w) { w.boolean(false); }) == ref([](Packer& p) { p.pack_false(); }));
}

TEST_CASE("writer: uint64 uses the shortest form at every boundary") {
  for (uint64_t v : uint_boundaries()) {
    CAPTURE(v);
    std::string got = ours([&](MsgpackWriter& w) { w.uint64(v); });
    CHECK(got == ref([&](Packer& p) { p.pack_uint64(v); }));
    size_t expected = v < 0x80 ? 1 : v <= 0xff ? 2 : v <= 0xffff ? 3 : v <= 0xffffffff ? 5 : 9;
    CHECK(got.size() == expected);
  }
}

TEST_CASE("writer: int64 uses the shortest form at every boundary") {
  for (int64_t v : int_boundaries()) {
    CAPTURE(v);
    std::string got = ours([&](MsgpackWriter& w) { w.int64(v); });
    CHECK(got == ref([&](Packer& p) { p.pack_int64(v); }));
    if (v >= 0) {
      // Non-negative values are encoded exactly like uint64.
      CHECK(got == ours([&](MsgpackWriter& w) { w.uint64(static_cast<uint64_t>(v)); }));
    } else {
      size_t expected = v >= -32         ? 1
                        : v >= INT8_MIN  ? 2
                        : v >= INT16_MIN ? 3
                        : v >= INT32_MIN ? 5
                                         : 9;
      CHECK(got.size() == expected);
    }
  }
}

TEST_CASE("writer: float64 is always float64") {
  // msgpack-c's pack_double turns integral doubles into ints, so compare against the
  // expected bytes directly, and against msgpack-c only for non-integral values.
  for (double d :
       {0.0, -0.0, 1.0, -1.0, 1.5, -2.25, 1e300, -1e-300, 4294967296.0,
        std::numeric_limits<double>::max(), std::numeric_limits<double>::denorm_min(),
        std::numeric_limits<double>::infinity(), -std::numeric_limits<double>::infinity(),
        std::numeric_limits<double>::quiet_NaN()}) {
    CAPTURE(d);
    std::string got = ours([&](MsgpackWriter& w) { w.float64(d); });
    CHECK(got == float64_bytes(d));
    if (std::isfinite(d) && d != std::trunc(d)) {
      CHECK(got == ref([&](Packer& p) { p.pack_double(d); }));
    }
  }
  CHECK(ours([](MsgpackWriter& w) { w.float64(1.5); }) ==
        std::string("\xcb\x3f\xf8\x00\x00\x00\x00\x00\x00", 9));
}

TEST_CASE("writer: str, bin and ext headers match msgpack-c at every boundary") {
  for (size_t n : kLengths) {
    CAPTURE(n);
    std::string s = filler(n);
    auto len = static_cast<uint32_t>(n);
    CHECK(ours([&](MsgpackWriter& w) { w.str(s); }) == ref([&](Packer& p) {
            p.pack_str(len);
            p.pack_str_body(s.data(), len);
          }));
    CHECK(ours([&](MsgpackWriter& w) { w.bin(s); }) == ref([&](Packer& p) {
            p.pack_bin(len);
            p.pack_bin_body(s.data(), len);
          }));
    for (int8_t type : {int8_t{1}, int8_t{2}, int8_t{-1}, int8_t{127}, int8_t{-128}}) {
      CAPTURE(int{type});
      std::string expected = ref([&](Packer& p) {
        p.pack_ext(n, type);
        p.pack_ext_body(s.data(), len);
      });
      CHECK(ours([&](MsgpackWriter& w) { w.ext(type, s); }) == expected);
      // The same ext written in place with begin_ext/end_ext, after some leading bytes.
      std::string nested = ours([&](MsgpackWriter& w) {
        w.nil();
        size_t mark = w.begin_ext(type);
        w.raw(s);
        w.end_ext(mark);
        w.boolean(true);
      });
      CHECK(nested == "\xc0" + expected + "\xc3");
    }
  }
}

TEST_CASE("writer: fixext for payloads of 1, 2, 4, 8 and 16 bytes") {
  const std::pair<size_t, unsigned char> fixed[] = {
      {1, 0xd4}, {2, 0xd5}, {4, 0xd6}, {8, 0xd7}, {16, 0xd8}};
  for (const auto& entry : fixed) {
    size_t n = entry.first;
    unsigned char tag = entry.second;
    std::string got = ours([&](MsgpackWriter& w) { w.ext(5, filler(n)); });
    CHECK(static_cast<unsigned char>(got[0]) == tag);
    CHECK(got[1] == 5);
    CHECK(got.size() == 2 + n);
  }
  CHECK(static_cast<unsigned char>(ours([](MsgpackWriter& w) { w.ext(5, ""); })[0]) == 0xc7);
  CHECK(static_cast<unsigned char>(ours([](MsgpackWriter& w) { w.ext(5, "abc"); })[0]) == 0xc7);
}

TEST_CASE("writer: array and map headers match msgpack-c at every boundary") {
  for (uint32_t n : {0u, 1u, 15u, 16u, 17u, 255u, 256u, 65535u, 65536u, 0xffffffffu}) {
    CAPTURE(n);
    CHECK(ours([&](MsgpackWriter& w) { w.array_header(n); }) ==
          ref([&](Packer& p) { p.pack_array(n); }));
    CHECK(ours([&](MsgpackWriter& w) { w.map_header(n); }) ==
          ref([&](Packer& p) { p.pack_map(n); }));
  }
}

TEST_CASE("writer: nested begin_ext/end_ext produce canonical tuples") {
  // {{1, {}}, ok} as the protocol encodes it: ext 2 around an array.
  std::string got = ours([](MsgpackWriter& w) {
    size_t outer = w.begin_ext(2);
    w.array_header(2);
    size_t inner = w.begin_ext(2);
    w.array_header(2);
    w.uint64(1);
    size_t empty = w.begin_ext(2);
    w.array_header(0);
    w.end_ext(empty);
    w.end_ext(inner);
    w.ext(1, "ok");
    w.end_ext(outer);
  });
  std::string empty_tuple = ours([](MsgpackWriter& w) { w.ext(2, "\x90"); });
  std::string inner_payload = "\x92\x01" + empty_tuple;
  std::string inner = ours([&](MsgpackWriter& w) { w.ext(2, inner_payload); });
  std::string outer_payload = "\x92" + inner + ours([](MsgpackWriter& w) { w.ext(1, "ok"); });
  CHECK(got == ours([&](MsgpackWriter& w) { w.ext(2, outer_payload); }));
  CHECK(empty_tuple == std::string("\xd4\x02\x90", 3));

  // A large tuple whose payload needs ext16 / ext32.
  for (size_t n : {300u, 70000u}) {
    std::string big = ours([&](MsgpackWriter& w) {
      size_t mark = w.begin_ext(2);
      w.array_header(1);
      w.str(filler(n));
      w.end_ext(mark);
    });
    std::string payload = ours([&](MsgpackWriter& w) {
      w.array_header(1);
      w.str(filler(n));
    });
    CHECK(big == ours([&](MsgpackWriter& w) { w.ext(2, payload); }));
  }
  std::string s;
  MsgpackWriter w(s);
  CHECK_THROWS_AS(w.end_ext(0), std::logic_error);
  CHECK(&w.buffer() == &s);
}

TEST_CASE("writer: raw appends verbatim and the writer appends to existing content") {
  std::string out = "prefix";
  MsgpackWriter w(out);
  w.raw(std::string_view("\x93\x01\x02", 3));
  w.uint64(3);
  CHECK(out == std::string("prefix\x93\x01\x02\x03", 10));
}

TEST_CASE("reader: integers round trip at every boundary") {
  for (uint64_t v : uint_boundaries()) {
    CAPTURE(v);
    std::string buf = ours([&](MsgpackWriter& w) { w.uint64(v); });
    MsgpackReader r(buf);
    CHECK(r.peek() == MsgpackType::Int);
    MsgpackInt i = r.integer();
    CHECK_FALSE(i.negative);
    CHECK(i.magnitude == v);
    CHECK(r.at_end());
  }
  for (int64_t v : int_boundaries()) {
    CAPTURE(v);
    std::string buf = ours([&](MsgpackWriter& w) { w.int64(v); });
    MsgpackReader r(buf);
    MsgpackInt i = r.integer();
    CHECK(i.negative == (v < 0));
    CHECK(to_int64(i) == v);
    CHECK(r.at_end());
  }
  // Non-canonical encodings are accepted.
  std::string loose = ref([](Packer& p) {
    p.pack_fix_uint16(5);
    p.pack_fix_uint64(7);
    p.pack_fix_int8(3);
    p.pack_fix_int32(-2);
    p.pack_fix_int64(0);
  });
  MsgpackReader r(loose);
  CHECK(r.integer().magnitude == 5);
  CHECK(r.integer().magnitude == 7);
  MsgpackInt three = r.integer();
  CHECK((!three.negative && three.magnitude == 3));
  MsgpackInt minus_two = r.integer();
  CHECK((minus_two.negative && minus_two.magnitude == 2));
  MsgpackInt zero = r.integer();
  CHECK((!zero.negative && zero.magnitude == 0));
  CHECK(r.at_end());
  // INT64_MIN has magnitude 2^63.
  std::string min = ours([](MsgpackWriter& w) { w.int64(INT64_MIN); });
  MsgpackInt m = MsgpackReader(min).integer();
  CHECK((m.negative && m.magnitude == (uint64_t{1} << 63)));
}

TEST_CASE("reader: scalars, strings and containers round trip") {
  std::string buf = ours([](MsgpackWriter& w) {
    w.nil();
    w.boolean(true);
    w.boolean(false);
    w.float64(-2.5);
    w.str("héllo");
    w.bin(std::string("\0\1\2", 3));
    w.array_header(3);
    w.map_header(20);
    w.ext(-3, "abcd");
    w.ext(4, filler(100));
  });
  buf += ref([](Packer& p) { p.pack_float(1.25f); });
  std::string tail(100, '\0');  // 20 map entries need at least 40 bytes
  buf += tail;

  MsgpackReader r(buf);
  CHECK(r.peek() == MsgpackType::Nil);
  r.nil();
  CHECK(r.peek() == MsgpackType::Bool);
  CHECK(r.boolean() == true);
  CHECK(r.boolean() == false);
  CHECK(r.peek() == MsgpackType::Float);
  CHECK(r.float_value() == -2.5);
  CHECK(r.peek() == MsgpackType::Str);
  CHECK(r.str() == "héllo");
  CHECK(r.peek() == MsgpackType::Bin);
  CHECK(r.bin() == std::string_view("\0\1\2", 3));
  CHECK(r.peek() == MsgpackType::Array);
  CHECK(r.array_header() == 3);
  CHECK(r.peek() == MsgpackType::Map);
  CHECK(r.map_header() == 20);
  CHECK(r.peek() == MsgpackType::Ext);
  MsgpackExt e = r.ext();
  CHECK(e.type == -3);
  CHECK(e.payload == "abcd");
  e = r.ext();
  CHECK(e.type == 4);
  CHECK(e.payload == filler(100));
  CHECK(r.float_value() == 1.25);  // float32 on input
  CHECK(r.remaining() == 100);
  CHECK(r.rest() == tail);
  CHECK_FALSE(r.at_end());
}

TEST_CASE("reader: every str, bin, ext length round trips") {
  for (size_t n : kLengths) {
    CAPTURE(n);
    std::string s = filler(n);
    std::string buf = ours([&](MsgpackWriter& w) {
      w.str(s);
      w.bin(s);
      w.ext(9, s);
    });
    MsgpackReader r(buf);
    CHECK(r.str() == s);
    CHECK(r.bin() == s);
    MsgpackExt e = r.ext();
    CHECK(e.type == 9);
    CHECK(e.payload == s);
    CHECK(r.at_end());
    MsgpackReader raw(buf);
    CHECK(raw.raw_object() == ours([&](MsgpackWriter& w) { w.str(s); }));
    CHECK(raw.raw_object() == ours([&](MsgpackWriter& w) { w.bin(s); }));
    CHECK(raw.raw_object() == ours([&](MsgpackWriter& w) { w.ext(9, s); }));
    CHECK(raw.at_end());
  }
}

TEST_CASE("reader: type mismatch throws and leaves the cursor in place") {
  std::string buf = ours([](MsgpackWriter& w) {
    w.str("x");
    w.uint64(1);
  });
  MsgpackReader r(buf);
  CHECK_THROWS_AS(r.integer(), MsgpackError);
  CHECK_THROWS_AS(r.nil(), MsgpackError);
  CHECK_THROWS_AS(r.boolean(), MsgpackError);
  CHECK_THROWS_AS(r.float_value(), MsgpackError);
  CHECK_THROWS_AS(r.bin(), MsgpackError);
  CHECK_THROWS_AS(r.array_header(), MsgpackError);
  CHECK_THROWS_AS(r.map_header(), MsgpackError);
  CHECK_THROWS_AS(r.ext(), MsgpackError);
  CHECK(r.offset() == 0);
  CHECK(r.str() == "x");
  CHECK_THROWS_AS(r.str(), MsgpackError);
  CHECK(r.integer().magnitude == 1);
  CHECK(r.at_end());
  // Everything throws at the end of the input.
  CHECK_THROWS_AS(r.peek(), MsgpackError);
  CHECK_THROWS_AS(r.integer(), MsgpackError);
  CHECK_THROWS_AS(r.str(), MsgpackError);
  CHECK_THROWS_AS(r.array_header(), MsgpackError);
  CHECK_THROWS_AS(r.raw_object(), MsgpackError);
  MsgpackReader empty{std::string_view()};
  CHECK(empty.at_end());
  CHECK_THROWS_AS(empty.peek(), MsgpackError);
}

TEST_CASE("reader: the reserved byte 0xc1 is rejected") {
  const std::string c1("\xc1", 1);
  MsgpackReader r(c1);
  CHECK_THROWS_AS(r.peek(), MsgpackError);
  CHECK_THROWS_AS(r.nil(), MsgpackError);
  CHECK_THROWS_AS(r.integer(), MsgpackError);
  CHECK_THROWS_AS(r.str(), MsgpackError);
  CHECK_THROWS_AS(r.array_header(), MsgpackError);
  CHECK_THROWS_AS(r.ext(), MsgpackError);
  CHECK_THROWS_AS(r.raw_object(), MsgpackError);
  CHECK(r.offset() == 0);
  const std::string nested("\x93\x01\x91\xc1\x02", 5);
  MsgpackReader n(nested);
  CHECK_THROWS_AS(n.raw_object(), MsgpackError);
  CHECK(n.offset() == 0);
  CHECK_THROWS_AS(copy_all(nested), MsgpackError);
  try {
    MsgpackReader(c1).peek();
  } catch (const MsgpackError& e) {
    CHECK(std::string(e.what()).find("0xc1") != std::string::npos);
  }
}

TEST_CASE("reader: container counts that cannot fit in the input throw") {
  // array32 declaring 2^32-1 elements, map16 declaring 3 entries with 4 bytes left.
  const std::string big_array("\xdd\xff\xff\xff\xff\x01", 6);
  CHECK_THROWS_AS(MsgpackReader(big_array).array_header(), MsgpackError);
  CHECK_THROWS_AS(MsgpackReader(big_array).raw_object(), MsgpackError);
  const std::string map("\xde\x00\x03\x01\x02\x03\x04", 7);
  CHECK_THROWS_AS(MsgpackReader(map).map_header(), MsgpackError);
  const std::string map_ok("\xde\x00\x02\x01\x02\x03\x04", 7);
  MsgpackReader r(map_ok);
  CHECK(r.map_header() == 2);
  CHECK(r.offset() == 3);
  // A str32 whose length exceeds the input.
  const std::string s("\xdb\xff\xff\xff\xf0xx", 7);
  CHECK_THROWS_AS(MsgpackReader(s).str(), MsgpackError);
  CHECK_THROWS_AS(MsgpackReader(s).raw_object(), MsgpackError);
}

TEST_CASE("reader: the sample message round trips through reader and writer") {
  std::string msg = sample_message();
  CHECK(copy_all(msg) == msg);
  MsgpackReader r(msg);
  CHECK(r.raw_object() == msg);
  CHECK(r.at_end());
  // msgpack-c agrees it is one well-formed object.
  size_t off = 0;
  msgpack::object_handle oh = msgpack::unpack(msg.data(), msg.size(), off);
  CHECK(off == msg.size());
  CHECK(oh.get().type == msgpack::type::ARRAY);
}

TEST_CASE("reader: truncation at every byte offset throws and never reads out of bounds") {
  std::string msg = sample_message();
  for (size_t len = 0; len < msg.size(); ++len) {
    CAPTURE(len);
    auto buf = exact_copy(std::string_view(msg).substr(0, len));
    std::string_view view(buf.get(), len);
    MsgpackReader r(view);
    CHECK_THROWS_AS(r.raw_object(), MsgpackError);
    CHECK(r.offset() == 0);
    CHECK_THROWS_AS(copy_all(view), MsgpackError);
  }
  auto buf = exact_copy(msg);
  CHECK(copy_all(std::string_view(buf.get(), msg.size())) == msg);
}

TEST_CASE("reader: raw_object returns one object and advances past it") {
  std::string buf = ours([](MsgpackWriter& w) {
    w.array_header(2);
    w.map_header(1);
    w.str("a");
    w.array_header(0);
    w.ext(2, "\x90");
    w.int64(-5);
    w.array_header(0);
  });
  MsgpackReader r(buf);
  std::string_view first = r.raw_object();
  CHECK(first == buf.substr(0, buf.size() - 2));
  CHECK(r.raw_object() == "\xfb");
  CHECK(r.raw_object() == "\x90");
  CHECK(r.at_end());
}

TEST_CASE("reader: raw_object enforces the nesting limit iteratively") {
  auto nested_arrays = [](size_t depth) {
    std::string s(depth - 1, static_cast<char>(0x91));
    s.push_back(static_cast<char>(0x90));
    return s;
  };
  auto nested_maps = [](size_t depth) {
    std::string s;
    for (size_t i = 1; i < depth; ++i) s += "\x81\xc0";
    s.push_back(static_cast<char>(0x80));
    return s;
  };
  for (auto make : {+nested_arrays, +nested_maps}) {
    std::string ok = make(10000);
    MsgpackReader r(ok);
    CHECK(r.raw_object().size() == ok.size());
    CHECK(r.at_end());
    std::string deep = make(10001);
    MsgpackReader d(deep);
    CHECK_THROWS_AS(d.raw_object(), MsgpackError);
    CHECK(d.offset() == 0);
    CHECK(MsgpackReader(deep).raw_object(10001).size() == deep.size());
  }
  CHECK(MsgpackReader("\x01").raw_object(0) == "\x01");
  CHECK_THROWS_AS(MsgpackReader("\x90").raw_object(0), MsgpackError);
  CHECK(MsgpackReader("\x91\x90").raw_object(2) == "\x91\x90");
  CHECK_THROWS_AS(MsgpackReader("\x91\x90").raw_object(1), MsgpackError);
  // Ext payloads are opaque: nesting inside a tuple does not count.
  std::string tuple = ours([&](MsgpackWriter& w) { w.ext(2, nested_arrays(50)); });
  CHECK(MsgpackReader(tuple).raw_object(0) == tuple);

  // A million levels: no stack overflow, either way.
  std::string huge = nested_arrays(1000000);
  CHECK_THROWS_AS(MsgpackReader(huge).raw_object(), MsgpackError);
  CHECK(MsgpackReader(huge).raw_object(std::numeric_limits<size_t>::max()).size() == huge.size());
  // Truncated deep nesting.
  CHECK_THROWS_AS(MsgpackReader(std::string_view(huge).substr(0, 5000)).raw_object(), MsgpackError);
}
