// Golden vectors (spec/vectors/*.mp): each file is the msgpack payload of one message.
#include <doctest/doctest.h>

#include <algorithm>
#include <bit>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <msgpack.hpp>
#include <string>
#include <system_error>
#include <vector>

#include "core/frame_reader.hpp"
#include "core/msgpack_reader.hpp"
#include "core/msgpack_writer.hpp"

namespace fs = std::filesystem;

namespace {

using Packer = msgpack::packer<msgpack::sbuffer>;

std::vector<fs::path> vector_files() {
  std::vector<fs::path> files;
  std::error_code ec;
  for (fs::directory_iterator it(fs::path(EP_SPEC_DIR) / "vectors", ec), end; !ec && it != end;
       it.increment(ec)) {
    if (it->is_regular_file() && it->path().extension() == ".mp") files.push_back(it->path());
  }
  std::sort(files.begin(), files.end());
  return files;
}

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  REQUIRE(in.good());
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void append_be(msgpack::sbuffer& sb, unsigned char tag, uint64_t bits, int bytes) {
  char buf[9];
  buf[0] = static_cast<char>(tag);
  for (int i = 0; i < bytes; ++i) buf[1 + i] = static_cast<char>(bits >> (8 * (bytes - 1 - i)));
  sb.write(buf, static_cast<size_t>(1 + bytes));
}

// Re-packs with msgpack-c's packer. Floats are written directly: msgpack-c 4.x's
// pack_double/pack_float encode integral values (1.0, -0.0) as integers.
void repack(msgpack::sbuffer& sb, Packer& pk, const msgpack::object& o) {
  switch (o.type) {
    case msgpack::type::FLOAT64:
      append_be(sb, 0xcb, std::bit_cast<uint64_t>(o.via.f64), 8);
      break;
    case msgpack::type::FLOAT32:
      append_be(sb, 0xca, std::bit_cast<uint32_t>(static_cast<float>(o.via.f64)), 4);
      break;
    case msgpack::type::ARRAY:
      pk.pack_array(o.via.array.size);
      for (uint32_t i = 0; i < o.via.array.size; ++i) repack(sb, pk, o.via.array.ptr[i]);
      break;
    case msgpack::type::MAP:
      pk.pack_map(o.via.map.size);
      for (uint32_t i = 0; i < o.via.map.size; ++i) {
        repack(sb, pk, o.via.map.ptr[i].key);
        repack(sb, pk, o.via.map.ptr[i].val);
      }
      break;
    default:
      pk.pack(o);
      break;
  }
}

// Decodes with the typed reads and re-encodes with MsgpackWriter (tuples through
// begin_ext/end_ext): canonical input comes back byte for byte.
void copy_object(ep::MsgpackReader& r, ep::MsgpackWriter& w) {
  switch (r.peek()) {
    case ep::MsgpackType::Nil:
      r.nil();
      w.nil();
      break;
    case ep::MsgpackType::Bool:
      w.boolean(r.boolean());
      break;
    case ep::MsgpackType::Int: {
      ep::MsgpackInt i = r.integer();
      if (i.negative) {
        w.int64(static_cast<int64_t>(uint64_t{0} - i.magnitude));
      } else {
        w.uint64(i.magnitude);
      }
      break;
    }
    case ep::MsgpackType::Float:
      w.float64(r.float_value());
      break;
    case ep::MsgpackType::Str:
      w.str(r.str());
      break;
    case ep::MsgpackType::Bin:
      w.bin(r.bin());
      break;
    case ep::MsgpackType::Array: {
      uint32_t n = r.array_header();
      w.array_header(n);
      for (uint32_t k = 0; k < n; ++k) copy_object(r, w);
      break;
    }
    case ep::MsgpackType::Map: {
      uint32_t n = r.map_header();
      w.map_header(n);
      for (uint32_t k = 0; k < 2 * n; ++k) copy_object(r, w);
      break;
    }
    case ep::MsgpackType::Ext: {
      ep::MsgpackExt e = r.ext();
      if (e.type == 2) {
        ep::MsgpackReader sub(e.payload);
        size_t mark = w.begin_ext(2);
        copy_object(sub, w);
        if (!sub.at_end()) throw ep::MsgpackError("trailing bytes in tuple payload");
        w.end_ext(mark);
      } else {
        w.ext(e.type, e.payload);
      }
      break;
    }
  }
}

}  // namespace

TEST_CASE("golden vectors") {
  std::vector<fs::path> files = vector_files();
  INFO("vector directory: " << (fs::path(EP_SPEC_DIR) / "vectors").string());
  CHECK(files.size() > 0);
  for (const fs::path& path : files) {
    CAPTURE(path.filename().string());
    std::string data = read_file(path);
    REQUIRE_FALSE(data.empty());

    // msgpack-c: unpack, re-pack, identical bytes.
    size_t off = 0;
    msgpack::object_handle oh = msgpack::unpack(data.data(), data.size(), off);
    CHECK(off == data.size());
    msgpack::sbuffer sb;
    Packer pk(&sb);
    repack(sb, pk, oh.get());
    CHECK(std::string(sb.data(), sb.size()) == data);
    // Every message is an array whose first element is a positive fixint.
    const msgpack::object& msg = oh.get();
    REQUIRE(msg.type == msgpack::type::ARRAY);
    REQUIRE(msg.via.array.size > 0);
    CHECK(msg.via.array.ptr[0].type == msgpack::type::POSITIVE_INTEGER);
    CHECK(msg.via.array.ptr[0].via.u64 <= 63);

    // MsgpackReader: raw_object consumes the whole file; a typed decode and MsgpackWriter
    // re-encode gives the same bytes.
    ep::MsgpackReader raw(data);
    CHECK(raw.raw_object().size() == data.size());
    CHECK(raw.at_end());
    std::string copy;
    ep::MsgpackWriter w(copy);
    ep::MsgpackReader typed(data);
    CHECK_NOTHROW(copy_object(typed, w));
    CHECK(typed.at_end());
    CHECK(copy == data);

    // FrameReader: the framed message split in two at every offset.
    std::string frame;
    ep::append_frame_header(frame, static_cast<uint32_t>(data.size()));
    frame += data;
    for (size_t cut = 0; cut <= frame.size(); ++cut) {
      ep::FrameReader reader;
      std::vector<std::string> got;
      size_t oversized = 0;
      auto on_frame = [&](std::string_view p) { got.emplace_back(p); };
      auto on_oversized = [&](std::string_view, uint64_t) { ++oversized; };
      reader.feed(std::string_view(frame).substr(0, cut), on_frame, on_oversized);
      reader.feed(std::string_view(frame).substr(cut), on_frame, on_oversized);
      if (got.size() != 1 || got[0] != data || oversized != 0 || reader.has_partial()) {
        CAPTURE(cut);
        FAIL("frame not delivered intact");
      }
    }
  }
  MESSAGE(files.size() << " golden vectors checked");
}
