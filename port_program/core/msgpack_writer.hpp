// Canonical msgpack encoder (see spec/PROTOCOL.md, "Encoding rules").
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <string_view>

namespace ep {

// Appends canonical (shortest-form) msgpack to a std::string owned by the caller.
// Lengths above 2^32 - 1 cannot be encoded and throw std::length_error.
class MsgpackWriter {
 public:
  explicit MsgpackWriter(std::string& out) : out_(out) {}

  void nil() { out_.push_back(static_cast<char>(0xc0)); }

  void boolean(bool v) { out_.push_back(static_cast<char>(v ? 0xc3 : 0xc2)); }

  // Non-negative values use positive fixint / uint8..64, negatives fixint / int8..64.
  void int64(int64_t v) {
    if (v >= 0) {
      uint64(static_cast<uint64_t>(v));
    } else if (v >= -32) {
      out_.push_back(static_cast<char>(static_cast<uint8_t>(v)));  // negative fixint
    } else if (v >= INT8_MIN) {
      put_header(0xd0, static_cast<uint8_t>(v));
    } else if (v >= INT16_MIN) {
      put_header(0xd1, static_cast<uint16_t>(v));
    } else if (v >= INT32_MIN) {
      put_header(0xd2, static_cast<uint32_t>(v));
    } else {
      put_header(0xd3, static_cast<uint64_t>(v));
    }
  }

  void uint64(uint64_t v) {
    if (v < 0x80) {
      out_.push_back(static_cast<char>(v));  // positive fixint
    } else if (v <= UINT8_MAX) {
      put_header(0xcc, static_cast<uint8_t>(v));
    } else if (v <= UINT16_MAX) {
      put_header(0xcd, static_cast<uint16_t>(v));
    } else if (v <= UINT32_MAX) {
      put_header(0xce, static_cast<uint32_t>(v));
    } else {
      put_header(0xcf, v);
    }
  }

  // Always float64 (the canonical form); NaN payloads and the sign of zero are kept.
  void float64(double v) { put_header(0xcb, std::bit_cast<uint64_t>(v)); }

  void str(std::string_view s) {
    size_t n = s.size();
    if (n < 32) {
      out_.push_back(static_cast<char>(0xa0 | n));
    } else {
      sized_header(n, 0xd9, 0xda, 0xdb);
    }
    out_.append(s);
  }

  void bin(std::string_view b) {
    sized_header(b.size(), 0xc4, 0xc5, 0xc6);
    out_.append(b);
  }

  void array_header(uint32_t n) {
    if (n < 16) {
      out_.push_back(static_cast<char>(0x90 | n));
    } else if (n <= UINT16_MAX) {
      put_header(0xdc, static_cast<uint16_t>(n));
    } else {
      put_header(0xdd, n);
    }
  }

  void map_header(uint32_t n) {
    if (n < 16) {
      out_.push_back(static_cast<char>(0x80 | n));
    } else if (n <= UINT16_MAX) {
      put_header(0xde, static_cast<uint16_t>(n));
    } else {
      put_header(0xdf, n);
    }
  }

  // fixext when the payload size is 1, 2, 4, 8 or 16.
  void ext(int8_t type, std::string_view payload) {
    char hdr[kMaxExtHeader];
    size_t len = ext_header(hdr, payload.size(), type);
    out_.append(hdr, len);
    out_.append(payload);
  }

  // Already-encoded bytes, appended verbatim.
  void raw(std::string_view bytes) { out_.append(bytes); }

  // Nested ext whose payload is written with this same writer (used for tuples).
  // begin_ext reserves room for the largest header (ext32) and returns a mark;
  // end_ext(mark) rewrites the header in the shortest form and moves the payload
  // down, so the output stays canonical. Calls may nest (end them in LIFO order).
  size_t begin_ext(int8_t type) {
    size_t mark = out_.size();
    char hdr[kMaxExtHeader] = {static_cast<char>(0xc9), 0, 0, 0, 0, static_cast<char>(type)};
    out_.append(hdr, kMaxExtHeader);
    return mark;
  }

  void end_ext(size_t mark) {
    if (mark > out_.size() || out_.size() - mark < kMaxExtHeader) {
      throw std::logic_error("MsgpackWriter::end_ext: bad mark");
    }
    size_t payload = out_.size() - mark - kMaxExtHeader;
    auto type = static_cast<int8_t>(out_[mark + kMaxExtHeader - 1]);
    char hdr[kMaxExtHeader];
    size_t len = ext_header(hdr, payload, type);
    if (len != kMaxExtHeader) {
      char* base = out_.data() + mark;
      std::memmove(base + len, base + kMaxExtHeader, payload);
      out_.resize(mark + len + payload);
    }
    std::memcpy(out_.data() + mark, hdr, len);
  }

  std::string& buffer() { return out_; }

 private:
  static constexpr size_t kMaxExtHeader = 6;  // 0xc9, 4 length bytes, type

  // Stores v big-endian at p, using sizeof(T) bytes.
  template <class T>
  static void store_be(char* p, T v) {
    for (size_t i = 0; i < sizeof(T); ++i) {
      p[i] = static_cast<char>(static_cast<uint8_t>(v >> (8 * (sizeof(T) - 1 - i))));
    }
  }

  template <class T>
  void put_header(uint8_t tag, T v) {
    char buf[1 + sizeof(T)];
    buf[0] = static_cast<char>(tag);
    store_be(buf + 1, v);
    out_.append(buf, sizeof(buf));
  }

  // 8/16/32-bit length header (str8.., bin8.., ext8..).
  void sized_header(size_t n, uint8_t tag8, uint8_t tag16, uint8_t tag32) {
    if (n <= UINT8_MAX) {
      put_header(tag8, static_cast<uint8_t>(n));
    } else if (n <= UINT16_MAX) {
      put_header(tag16, static_cast<uint16_t>(n));
    } else if (n <= UINT32_MAX) {
      put_header(tag32, static_cast<uint32_t>(n));
    } else {
      throw std::length_error("msgpack: object larger than 4 GiB");
    }
  }

  // Writes the shortest ext header for a payload of n bytes into hdr; returns its size.
  static size_t ext_header(char* hdr, size_t n, int8_t type) {
    size_t len;
    switch (n) {
      case 1:
        hdr[0] = static_cast<char>(0xd4);
        len = 1;
        break;
      case 2:
        hdr[0] = static_cast<char>(0xd5);
        len = 1;
        break;
      case 4:
        hdr[0] = static_cast<char>(0xd6);
        len = 1;
        break;
      case 8:
        hdr[0] = static_cast<char>(0xd7);
        len = 1;
        break;
      case 16:
        hdr[0] = static_cast<char>(0xd8);
        len = 1;
        break;
      default:
        if (n <= UINT8_MAX) {
          hdr[0] = static_cast<char>(0xc7);
          store_be(hdr + 1, static_cast<uint8_t>(n));
          len = 2;
        } else if (n <= UINT16_MAX) {
          hdr[0] = static_cast<char>(0xc8);
          store_be(hdr + 1, static_cast<uint16_t>(n));
          len = 3;
        } else if (n <= UINT32_MAX) {
          hdr[0] = static_cast<char>(0xc9);
          store_be(hdr + 1, static_cast<uint32_t>(n));
          len = 5;
        } else {
          throw std::length_error("msgpack: ext larger than 4 GiB");
        }
    }
    hdr[len] = static_cast<char>(type);
    return len + 1;
  }

  std::string& out_;
};

}  // namespace ep
