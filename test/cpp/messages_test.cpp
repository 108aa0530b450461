// core/messages: the exact bytes of every message the core sends (spec/PROTOCOL.md,
// "Messages, port program -> Erlang"). py_port.erl matches the first two bytes of
// replies and callback requests without decoding (0x93 0x04, 0x95 0x05, 0x95 0x10).
#include "core/messages.hpp"

#include <doctest/doctest.h>

#include <string>

namespace messages = ep::messages;
using namespace std::string_literals;

namespace {

// A fake pid and reference, already encoded, as Channels::Handle holds them.
const std::string kServer = "\xd4\x03\x01"s;
const std::string kCounters = "\xd4\x04\x02"s;
const messages::ChannelRef kChannel{7, kServer, kCounters};

}  // namespace

TEST_CASE("hello") {
  std::string out;
  messages::hello(out, "3.11", 42, 2);
  CHECK(out ==
        "\x93\x00\x01\x83\xa6python\xa4"
        "3.11\xa3pid\x2a\xa8"
        "contexts\x02"s);
}

TEST_CASE("replies") {
  std::string out;
  messages::reply_ok(out, "\x07").boolean(true);
  CHECK(out == "\x93\x04\x07\xc3"s);
  out.clear();
  messages::reply_ok(out, "\xa2id").uint64(300);
  CHECK(out == "\x93\x04\xa2id\xcd\x01\x2c"s);
  out.clear();
  messages::reply_error(out, "\x07", "ProtocolError", "bad", "");
  CHECK(out ==
        "\x95\x05\x07\xadProtocolError\xa3"
        "bad\xa0"s);
}

TEST_CASE("a message is appended behind what the buffer holds") {
  std::string out(4, '\0');
  messages::reply_error(out, "\x01", "E", "m", "t");
  CHECK(out ==
        "\0\0\0\0\x95\x05\x01\xa1"
        "E\xa1m\xa1t"s);
}

TEST_CASE("output, log, protocol error") {
  std::string out;
  messages::output(out, 2, -1, "x");
  CHECK(out == "\x94\x06\x02\xc0\xc4\x01x"s);
  out.clear();
  messages::output(out, 1, 3, "");
  CHECK(out == "\x94\x06\x01\x03\xc4\x00"s);
  out.clear();
  ep::MsgpackWriter w = messages::log(out);
  w.int64(20);
  w.str("l");
  w.str("m");
  w.map_header(0);
  CHECK(out == "\x95\x07\x14\xa1l\xa1m\x80"s);
  out.clear();
  messages::protocol_error(out, "why");
  CHECK(out == "\x92\x0e\xa3why"s);
}

TEST_CASE("callback requests and sends") {
  std::string out;
  ep::MsgpackWriter w = messages::callback(out, 300, (3u << 24) | 5, "f", 2);
  w.int64(1);
  w.int64(-1);
  CHECK(out ==
        "\x95\x10\xcd\x01\x2c\xce\x03\x00\x00\x05\xa1"
        "f\x92\x01\xff"s);
  out.clear();
  messages::callback(out, 1, std::nullopt, "_py.send", 0);
  CHECK(out == "\x95\x10\x01\xc0\xa8_py.send\x90"s);
  out.clear();
  messages::send(out).raw(kServer + "\xc3"s);
  CHECK(out == "\x93\x11" + kServer + "\xc3"s);
}

TEST_CASE("channel frames") {
  std::string out;
  messages::channel_ack(out, kChannel, 3, 200, true);
  CHECK(out == "\x97\x1e\x07" + kServer + kCounters + "\x03\xcc\xc8\xc3"s);
  out.clear();
  messages::channel_close(out, kChannel);
  CHECK(out == "\x94\x20\x07" + kServer + kCounters);
  out.clear();
  messages::channel_bytes(out, kChannel, "hi");
  CHECK(out == "\x94\x22\x07" + kServer + "\xc4\x02hi"s);
  out.clear();
  messages::channel_probe(out, kChannel, 0, 0);
  CHECK(out == "\x96\x23\x07" + kServer + kCounters + "\x00\x00"s);
  out.clear();
  messages::channel_return(out, kChannel, 1, 70000);
  CHECK(out == "\x96\x24\x07" + kServer + kCounters + "\x01\xce\x00\x01\x11\x70"s);
}
