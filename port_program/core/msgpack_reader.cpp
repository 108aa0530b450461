#include "core/msgpack_reader.hpp"

#include <bit>
#include <string>
#include <vector>

namespace ep {
namespace {

[[noreturn]] void truncated_at(size_t offset) {
  throw MsgpackError("msgpack: truncated input at offset " + std::to_string(offset));
}

[[noreturn]] void reserved_at(size_t offset) {
  throw MsgpackError("msgpack: reserved byte 0xc1 at offset " + std::to_string(offset));
}

const char* type_name(uint8_t b) {
  if (b <= 0x7f || b >= 0xe0) return "int";
  if (b <= 0x8f) return "map";
  if (b <= 0x9f) return "array";
  if (b <= 0xbf) return "str";
  switch (b) {
    case 0xc0:
      return "nil";
    case 0xc2:
    case 0xc3:
      return "bool";
    case 0xc4:
    case 0xc5:
    case 0xc6:
      return "bin";
    case 0xca:
    case 0xcb:
      return "float";
    case 0xd9:
    case 0xda:
    case 0xdb:
      return "str";
    case 0xdc:
    case 0xdd:
      return "array";
    case 0xde:
    case 0xdf:
      return "map";
    default:
      if (b >= 0xcc && b <= 0xd3) return "int";
      return "ext";
  }
}

// Big-endian unsigned of `width` bytes at data[pos], bounds-checked.
uint64_t be_at(std::string_view data, size_t pos, size_t width) {
  if (pos > data.size() || data.size() - pos < width) truncated_at(pos);
  uint64_t v = 0;
  for (size_t i = 0; i < width; ++i) v = (v << 8) | static_cast<uint8_t>(data[pos + i]);
  return v;
}

struct Head {
  uint64_t size;      // bytes of the object, or of the header alone for containers
  uint64_t children;  // objects that follow inside a container
  bool container;
};

// Decodes the head of the object at data[pos]; for non-containers `size` covers the whole
// object. Throws on truncation or 0xc1; the caller checks `size` against the data.
Head head_at(std::string_view data, size_t pos) {
  if (pos >= data.size()) truncated_at(pos);
  auto b = static_cast<uint8_t>(data[pos]);
  if (b <= 0x7f || b >= 0xe0) return {1, 0, false};
  if (b <= 0x8f) return {1, 2u * (b & 0x0f), true};
  if (b <= 0x9f) return {1, b & 0x0fu, true};
  if (b <= 0xbf) return {1u + (b & 0x1f), 0, false};
  switch (b) {
    case 0xc0:
    case 0xc2:
    case 0xc3:
      return {1, 0, false};
    case 0xc4:
      return {2 + be_at(data, pos + 1, 1), 0, false};
    case 0xc5:
      return {3 + be_at(data, pos + 1, 2), 0, false};
    case 0xc6:
      return {5 + be_at(data, pos + 1, 4), 0, false};
    case 0xc7:
      return {3 + be_at(data, pos + 1, 1), 0, false};
    case 0xc8:
      return {4 + be_at(data, pos + 1, 2), 0, false};
    case 0xc9:
      return {6 + be_at(data, pos + 1, 4), 0, false};
    case 0xca:
      return {5, 0, false};
    case 0xcb:
      return {9, 0, false};
    case 0xcc:
      return {2, 0, false};
    case 0xcd:
      return {3, 0, false};
    case 0xce:
      return {5, 0, false};
    case 0xcf:
      return {9, 0, false};
    case 0xd0:
      return {2, 0, false};
    case 0xd1:
      return {3, 0, false};
    case 0xd2:
      return {5, 0, false};
    case 0xd3:
      return {9, 0, false};
    case 0xd4:
      return {3, 0, false};
    case 0xd5:
      return {4, 0, false};
    case 0xd6:
      return {6, 0, false};
    case 0xd7:
      return {10, 0, false};
    case 0xd8:
      return {18, 0, false};
    case 0xd9:
      return {2 + be_at(data, pos + 1, 1), 0, false};
    case 0xda:
      return {3 + be_at(data, pos + 1, 2), 0, false};
    case 0xdb:
      return {5 + be_at(data, pos + 1, 4), 0, false};
    case 0xdc:
      return {3, be_at(data, pos + 1, 2), true};
    case 0xdd:
      return {5, be_at(data, pos + 1, 4), true};
    case 0xde:
      return {3, 2 * be_at(data, pos + 1, 2), true};
    case 0xdf:
      return {5, 2 * be_at(data, pos + 1, 4), true};
    default:
      reserved_at(pos);  // 0xc1
  }
}

}  // namespace

void MsgpackReader::throw_truncated() const {
  truncated_at(pos_);
}

void MsgpackReader::throw_reserved() const {
  reserved_at(pos_);
}

void MsgpackReader::throw_mismatch(const char* expected) const {
  auto b = static_cast<uint8_t>(data_[pos_]);
  if (b == 0xc1) reserved_at(pos_);
  throw MsgpackError(std::string("msgpack: expected ") + expected + ", got " + type_name(b) +
                     " at offset " + std::to_string(pos_));
}

double MsgpackReader::float_value() {
  switch (byte0()) {
    case 0xca:
      return static_cast<double>(std::bit_cast<float>(fixed<uint32_t>()));
    case 0xcb:
      return std::bit_cast<double>(fixed<uint64_t>());
    default:
      throw_mismatch("float");
  }
}

std::string_view MsgpackReader::bin() {
  switch (byte0()) {
    case 0xc4:
      return payload(2, len_at<uint8_t>());
    case 0xc5:
      return payload(3, len_at<uint16_t>());
    case 0xc6:
      return payload(5, len_at<uint32_t>());
    default:
      throw_mismatch("bin");
  }
}

uint32_t MsgpackReader::map_header() {
  uint8_t b = byte0();
  if ((b & 0xf0) == 0x80) return count(1, b & 0x0f, 2);  // fixmap
  switch (b) {
    case 0xde:
      return count(3, len_at<uint16_t>(), 2);
    case 0xdf:
      return count(5, len_at<uint32_t>(), 2);
    default:
      throw_mismatch("map");
  }
}

MsgpackExt MsgpackReader::ext() {
  size_t header;  // bytes before the type byte
  uint64_t n;
  switch (byte0()) {
    case 0xd4:
      header = 1, n = 1;
      break;
    case 0xd5:
      header = 1, n = 2;
      break;
    case 0xd6:
      header = 1, n = 4;
      break;
    case 0xd7:
      header = 1, n = 8;
      break;
    case 0xd8:
      header = 1, n = 16;
      break;
    case 0xc7:
      header = 2, n = len_at<uint8_t>();
      break;
    case 0xc8:
      header = 3, n = len_at<uint16_t>();
      break;
    case 0xc9:
      header = 5, n = len_at<uint32_t>();
      break;
    default:
      throw_mismatch("ext");
  }
  if (remaining() < header + 1) throw_truncated();
  auto type = static_cast<int8_t>(data_[pos_ + header]);
  return {type, payload(header + 1, n)};
}

std::string_view MsgpackReader::raw_object(size_t max_depth) {
  const size_t start = pos_;
  size_t p = pos_;
  std::vector<uint64_t> open;  // objects still to skip in each open container
  for (;;) {
    Head h = head_at(data_, p);
    if (h.size > data_.size() - p) truncated_at(p);
    if (h.container) {
      if (open.size() >= max_depth) {
        throw MsgpackError("msgpack: nesting deeper than " + std::to_string(max_depth) +
                           " levels at offset " + std::to_string(p));
      }
      // Every child takes at least one byte.
      if (h.children > data_.size() - p - h.size) truncated_at(p);
    }
    p += h.size;
    if (h.children > 0) {
      open.push_back(h.children);
      continue;
    }
    // One object is complete: close every container it completes.
    while (!open.empty() && --open.back() == 0) open.pop_back();
    if (open.empty()) break;
  }
  pos_ = p;
  return data_.substr(start, p - start);
}

}  // namespace ep
