// Bounds-checked msgpack decoder (see spec/PROTOCOL.md).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string_view>

namespace ep {

struct MsgpackError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

enum class MsgpackType { Nil, Bool, Int, Float, Str, Bin, Array, Map, Ext };

// value = negative ? -magnitude : magnitude
struct MsgpackInt {
  bool negative;
  uint64_t magnitude;
};

struct MsgpackExt {
  int8_t type;
  std::string_view payload;  // points into the reader's buffer
};

namespace msgpack_detail {

inline constexpr uint8_t kReserved = 0xff;  // kind of the reserved byte 0xc1

constexpr uint8_t kind_of(unsigned b) {
  if (b <= 0x7f || b >= 0xe0) return static_cast<uint8_t>(MsgpackType::Int);
  if (b <= 0x8f) return static_cast<uint8_t>(MsgpackType::Map);
  if (b <= 0x9f) return static_cast<uint8_t>(MsgpackType::Array);
  if (b <= 0xbf) return static_cast<uint8_t>(MsgpackType::Str);
  switch (b) {
    case 0xc0:
      return static_cast<uint8_t>(MsgpackType::Nil);
    case 0xc2:
    case 0xc3:
      return static_cast<uint8_t>(MsgpackType::Bool);
    case 0xc4:
    case 0xc5:
    case 0xc6:
      return static_cast<uint8_t>(MsgpackType::Bin);
    case 0xc7:
    case 0xc8:
    case 0xc9:
    case 0xd4:
    case 0xd5:
    case 0xd6:
    case 0xd7:
    case 0xd8:
      return static_cast<uint8_t>(MsgpackType::Ext);
    case 0xca:
    case 0xcb:
      return static_cast<uint8_t>(MsgpackType::Float);
    case 0xcc:
    case 0xcd:
    case 0xce:
    case 0xcf:
    case 0xd0:
    case 0xd1:
    case 0xd2:
    case 0xd3:
      return static_cast<uint8_t>(MsgpackType::Int);
    case 0xd9:
    case 0xda:
    case 0xdb:
      return static_cast<uint8_t>(MsgpackType::Str);
    case 0xdc:
    case 0xdd:
      return static_cast<uint8_t>(MsgpackType::Array);
    case 0xde:
    case 0xdf:
      return static_cast<uint8_t>(MsgpackType::Map);
    default:
      return kReserved;  // 0xc1
  }
}

constexpr std::array<uint8_t, 256> make_kinds() {
  std::array<uint8_t, 256> t{};
  for (unsigned b = 0; b < 256; ++b) t[b] = kind_of(b);
  return t;
}

// MsgpackType of each first byte, or kReserved.
inline constexpr std::array<uint8_t, 256> kKinds = make_kinds();

}  // namespace msgpack_detail

// Bounds-checked cursor over one buffer. Every read throws MsgpackError on truncation,
// on the reserved byte 0xc1, or on a type mismatch; it never reads out of bounds. A read
// that throws leaves the cursor where it was. Returned views point into the buffer.
//
// Beyond plain truncation, array_header() and map_header() also throw when the declared
// element count cannot possibly fit in the remaining bytes (each element takes at least
// one byte), so callers may reserve() the returned count safely.
class MsgpackReader {
 public:
  explicit MsgpackReader(std::string_view data) : data_(data) {}

  MsgpackType peek() const {
    if (pos_ >= data_.size()) throw_truncated();
    uint8_t kind = msgpack_detail::kKinds[static_cast<uint8_t>(data_[pos_])];
    if (kind == msgpack_detail::kReserved) throw_reserved();
    return static_cast<MsgpackType>(kind);
  }

  void nil() {
    if (byte0() != 0xc0) throw_mismatch("nil");
    ++pos_;
  }

  bool boolean() {
    uint8_t b = byte0();
    if (b != 0xc2 && b != 0xc3) throw_mismatch("bool");
    ++pos_;
    return b == 0xc3;
  }

  MsgpackInt integer() {
    uint8_t b = byte0();
    if (b <= 0x7f) {  // positive fixint
      ++pos_;
      return {false, b};
    }
    if (b >= 0xe0) {  // negative fixint
      ++pos_;
      return {true, static_cast<uint64_t>(0x100 - b)};
    }
    switch (b) {
      case 0xcc:
        return {false, fixed<uint8_t>()};
      case 0xcd:
        return {false, fixed<uint16_t>()};
      case 0xce:
        return {false, fixed<uint32_t>()};
      case 0xcf:
        return {false, fixed<uint64_t>()};
      case 0xd0:
        return signed_int(static_cast<int8_t>(fixed<uint8_t>()));
      case 0xd1:
        return signed_int(static_cast<int16_t>(fixed<uint16_t>()));
      case 0xd2:
        return signed_int(static_cast<int32_t>(fixed<uint32_t>()));
      case 0xd3:
        return signed_int(static_cast<int64_t>(fixed<uint64_t>()));
      default:
        throw_mismatch("int");
    }
  }

  double float_value();  // float32 or float64

  std::string_view str() {
    uint8_t b = byte0();
    if ((b & 0xe0) == 0xa0) return payload(1, b & 0x1f);  // fixstr
    switch (b) {
      case 0xd9:
        return payload(2, len_at<uint8_t>());
      case 0xda:
        return payload(3, len_at<uint16_t>());
      case 0xdb:
        return payload(5, len_at<uint32_t>());
      default:
        throw_mismatch("str");
    }
  }

  std::string_view bin();

  uint32_t array_header() {
    uint8_t b = byte0();
    if ((b & 0xf0) == 0x90) return count(1, b & 0x0f, 1);  // fixarray
    switch (b) {
      case 0xdc:
        return count(3, len_at<uint16_t>(), 1);
      case 0xdd:
        return count(5, len_at<uint32_t>(), 1);
      default:
        throw_mismatch("array");
    }
  }

  uint32_t map_header();
  MsgpackExt ext();

  // Skips one whole object and returns its bytes. Containers nested more than max_depth
  // levels deep throw (a scalar is depth 0, [] is depth 1, [[]] depth 2). Ext payloads are
  // opaque here: nesting inside them is not counted. Iterative, no deep recursion.
  std::string_view raw_object(size_t max_depth = 10000);

  size_t offset() const { return pos_; }
  size_t remaining() const { return data_.size() - pos_; }
  bool at_end() const { return pos_ == data_.size(); }
  std::string_view rest() const { return data_.substr(pos_); }

 private:
  // First byte of the next object; throws at end of input.
  uint8_t byte0() const {
    if (pos_ >= data_.size()) throw_truncated();
    return static_cast<uint8_t>(data_[pos_]);
  }

  // Big-endian unsigned T stored right after the first byte, bounds-checked. Does not move.
  template <class T>
  T len_at() const {
    if (data_.size() - pos_ < 1 + sizeof(T)) throw_truncated();
    const auto* p = reinterpret_cast<const unsigned char*>(data_.data() + pos_ + 1);
    T v = 0;
    for (size_t i = 0; i < sizeof(T); ++i) v = static_cast<T>((v << 8) | p[i]);
    return v;
  }

  // A fixed-width value after the first byte: reads it and moves past it.
  template <class T>
  T fixed() {
    T v = len_at<T>();
    pos_ += 1 + sizeof(T);
    return v;
  }

  static MsgpackInt signed_int(int64_t v) {
    if (v >= 0) return {false, static_cast<uint64_t>(v)};
    return {true, uint64_t{0} - static_cast<uint64_t>(v)};
  }

  // header bytes, then n payload bytes: returns the payload and moves past it.
  std::string_view payload(size_t header, uint64_t n) {
    size_t avail = data_.size() - pos_;
    if (avail < header || avail - header < n) throw_truncated();
    std::string_view v = data_.substr(pos_ + header, static_cast<size_t>(n));
    pos_ += header + static_cast<size_t>(n);
    return v;
  }

  // Container header of `header` bytes declaring n entries of `per` objects each.
  uint32_t count(size_t header, uint32_t n, unsigned per) {
    size_t avail = data_.size() - pos_;
    if (avail < header || (avail - header) / per < n) throw_truncated();
    pos_ += header;
    return n;
  }

  [[noreturn]] void throw_truncated() const;
  [[noreturn]] void throw_reserved() const;
  [[noreturn]] void throw_mismatch(const char* expected) const;

  std::string_view data_;
  size_t pos_ = 0;
};

}  // namespace ep
