/* costream tests
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * The RTMP wire codecs from hand-made byte vectors: AMF0 (every type, nesting and size limits,
 * truncation), the handshake, the chunk reader (every header form, extended timestamps,
 * chunk-size changes mid-stream, limits) and the publish session.
 */
#include "rtmp/amf0.h"
#include "rtmp/authhttp.h"
#include "rtmp/chunk.h"
#include "rtmp/session.h"
#include "rtmp/flvoutput.h"

#include <catch2/catch.hpp>

#include <random>

using namespace costream::rtmp;
using amf0::Type;
using amf0::Value;

namespace {

std::vector<uint8_t> bytes(std::initializer_list<int> v) {
  std::vector<uint8_t> out;
  for (int b : v)
    out.push_back(static_cast<uint8_t>(b));
  return out;
}

std::vector<Message> read_all(ChunkReader &r, const std::vector<uint8_t> &in, bool byte_by_byte) {
  std::vector<Message> out;
  std::string why;
  if (byte_by_byte) {
    for (uint8_t b : in)
      REQUIRE(r.feed(&b, 1, &out, &why));
  } else {
    REQUIRE(r.feed(in.data(), in.size(), &out, &why));
  }
  return out;
}

} // namespace

TEST_CASE("AMF0: every type round-trips", "[rtmp][amf0]") {
  Value obj = Value::make_object({{"app", Value::make_string("live")},
                                  {"n", Value::make_number(3.5)},
                                  {"b", Value::make_bool(true)},
                                  {"nul", Value::make_null()}});
  Value ecma;
  ecma.type = Type::EcmaArray;
  ecma.props = {{"duration", Value::make_number(0)}, {"width", Value::make_number(1280)}};
  Value strict;
  strict.type = Type::StrictArray;
  strict.items = {Value::make_number(1), Value::make_string("x"), obj};
  Value date;
  date.type = Type::Date;
  date.number = 1.7e12;
  date.timezone = -60;
  Value longstr = Value::make_string(std::string(70000, 'a'));
  Value undef;
  undef.type = Type::Undefined;
  Value typed;
  typed.type = Type::TypedObject;
  typed.string = "Cls";
  typed.props = {{"k", Value::make_number(2)}};
  Value ref;
  ref.type = Type::Reference;
  ref.reference = 7;

  std::vector<Value> all = {
      obj, ecma, strict, date, longstr, undef, typed, ref, Value::make_string("")};
  std::vector<uint8_t> enc;
  for (auto &v : all)
    amf0::encode(v, &enc);
  std::vector<Value> dec;
  std::string why;
  REQUIRE(amf0::decode_all(enc.data(), enc.size(), &dec, &why));
  REQUIRE(dec.size() == all.size());
  CHECK(dec[0].type == Type::Object);
  std::string app;
  CHECK(dec[0].get_string("app", &app));
  CHECK(app == "live");
  CHECK(dec[0].get("b")->boolean);
  CHECK(dec[1].type == Type::EcmaArray);
  double w = 0;
  CHECK(dec[1].get_number("width", &w));
  CHECK(w == 1280);
  CHECK(dec[2].items.size() == 3);
  CHECK(dec[2].items[2].get("n")->number == 3.5);
  CHECK(dec[3].number == 1.7e12);
  CHECK(dec[3].timezone == -60);
  CHECK(dec[4].type == Type::LongString);
  CHECK(dec[4].string.size() == 70000);
  CHECK(dec[5].type == Type::Undefined);
  CHECK(dec[6].string == "Cls");
  CHECK(dec[7].reference == 7);
  CHECK(dec[8].string.empty());
  /* re-encoding gives the same bytes */
  std::vector<uint8_t> again;
  for (auto &v : dec)
    amf0::encode(v, &again);
  CHECK(again == enc);
}

TEST_CASE("AMF0: a hand-made connect command decodes", "[rtmp][amf0]") {
  auto b = bytes({0x02, 0x00, 0x07, 'c', 'o', 'n',  'n',  'e',  'c', 't',           /* "connect" */
                  0x00, 0x3f, 0xf0, 0,   0,   0,    0,    0,    0,                  /* 1.0 */
                  0x03,                                                             /* { */
                  0x00, 0x03, 'a',  'p', 'p', 0x02, 0x00, 0x04, 'l', 'i', 'v', 'e', /* app */
                  0x00, 0x00, 0x09});                                               /* } */
  std::vector<Value> v;
  std::string why;
  REQUIRE(amf0::decode_all(b.data(), b.size(), &v, &why));
  REQUIRE(v.size() == 3);
  CHECK(v[0].string == "connect");
  CHECK(v[1].number == 1.0);
  CHECK(v[2].get("app")->string == "live");
}

TEST_CASE("AMF0: truncation, nesting and bogus sizes are refused", "[rtmp][amf0]") {
  Value inner = Value::make_object({{"k", Value::make_string("value")}});
  for (int i = 0; i < 20; i++)
    inner = Value::make_object({{"o", inner}});
  std::vector<uint8_t> deep;
  amf0::encode(inner, &deep);
  Value out;
  std::string why;
  ByteReader r(deep);
  CHECK_FALSE(amf0::decode(r, &out, &why)); /* 21 levels > 16 */
  CHECK(why.find("deep") != std::string::npos);
  amf0::Limits loose;
  loose.max_depth = 32;
  ByteReader r2(deep);
  CHECK(amf0::decode(r2, &out, &why, loose));

  /* every proper prefix of a valid value fails cleanly */
  std::vector<uint8_t> enc;
  Value ecma;
  ecma.type = Type::EcmaArray;
  ecma.props = {{"a", Value::make_string("xyz")}, {"b", Value::make_number(1)}};
  amf0::encode(ecma, &enc);
  for (size_t n = 0; n < enc.size(); n++) {
    std::vector<Value> v;
    std::string w;
    INFO("prefix " << n);
    if (n > 0)
      CHECK_FALSE(amf0::decode_all(enc.data(), n, &v, &w));
    ByteReader pr(enc.data(), n);
    Value pv;
    CHECK_FALSE(amf0::decode(pr, &pv, &w));
  }
  /* a strict array claiming more items than bytes */
  auto b = bytes({0x0a, 0x7f, 0xff, 0xff, 0xff, 0x05});
  ByteReader r3(b);
  CHECK_FALSE(amf0::decode(r3, &out, &why));
  /* a long string longer than the data */
  auto s = bytes({0x0c, 0x00, 0x10, 0x00, 0x00, 'a'});
  ByteReader r4(s);
  CHECK_FALSE(amf0::decode(r4, &out, &why));
  /* unknown marker */
  auto u = bytes({0x11});
  ByteReader r5(u);
  CHECK_FALSE(amf0::decode(r5, &out, &why));
}

TEST_CASE("Handshake: S1 bytes 4-7 zero, S2 echoes C1, fed byte by byte", "[rtmp][handshake]") {
  std::vector<uint8_t> c0c1(1 + kHandshakeSize);
  c0c1[0] = 3;
  std::mt19937 rng(5);
  for (size_t i = 1; i < c0c1.size(); i++)
    c0c1[i] = static_cast<uint8_t>(rng());
  ServerHandshake hs;
  std::vector<uint8_t> out;
  std::string why;
  for (size_t i = 0; i < c0c1.size(); i++)
    REQUIRE(hs.feed(&c0c1[i], 1, &out, &why) == 1);
  REQUIRE(out.size() == 1 + 2 * kHandshakeSize);
  CHECK(out[0] == 3);
  CHECK(out[5] == 0);
  CHECK(out[6] == 0);
  CHECK(out[7] == 0);
  CHECK(out[8] == 0);
  CHECK(std::equal(out.begin() + 1 + kHandshakeSize, out.end(), c0c1.begin() + 1));
  CHECK(hs.state() == ServerHandshake::State::WaitC2);
  std::vector<uint8_t> c2(kHandshakeSize + 10, 0x55);
  CHECK(hs.feed(c2.data(), c2.size(), &out, &why) == kHandshakeSize); /* not one byte more */
  CHECK(hs.done());

  ServerHandshake bad;
  uint8_t v6 = 6;
  std::vector<uint8_t> o;
  bad.feed(&v6, 1, &o, &why);
  std::vector<uint8_t> rest(kHandshakeSize);
  bad.feed(rest.data(), rest.size(), &o, &why);
  CHECK(bad.state() == ServerHandshake::State::Failed);
  CHECK(o.empty());
}

TEST_CASE("Chunks: every header form and basic header size", "[rtmp][chunk]") {
  for (bool bytewise : {false, true}) {
    ChunkReader r;
    std::vector<uint8_t> in;
    /* csid 3, fmt 0: ts 1000, len 4, type 20, stream 0 */
    auto a =
        bytes({0x03, 0x00, 0x03, 0xe8, 0x00, 0x00, 0x04, 0x14, 0, 0, 0, 0, 'a', 'b', 'c', 'd'});
    /* csid 3, fmt 1: delta 40, len 2, type 9 */
    auto b = bytes({0x43, 0x00, 0x00, 0x28, 0x00, 0x00, 0x02, 0x09, 'x', 'y'});
    /* csid 3, fmt 2: delta 20 (same length and type) */
    auto c = bytes({0x83, 0x00, 0x00, 0x14, 'p', 'q'});
    /* csid 3, fmt 3: a new message with the same delta */
    auto d = bytes({0xc3, 'r', 's'});
    /* csid 100 (2-byte basic header), fmt 0, stream id 1 (little endian) */
    auto e = bytes({0x00, 100 - 64, 0, 0, 5, 0, 0, 1, 8, 1, 0, 0, 0, 'A'});
    /* csid 400 (3-byte basic header) */
    auto f =
        bytes({0x01, (400 - 64) & 0xff, (400 - 64) >> 8, 0, 0, 6, 0, 0, 1, 8, 1, 0, 0, 0, 'B'});
    for (auto *v : {&a, &b, &c, &d, &e, &f})
      in.insert(in.end(), v->begin(), v->end());
    auto msgs = read_all(r, in, bytewise);
    REQUIRE(msgs.size() == 6);
    CHECK(msgs[0].timestamp == 1000);
    CHECK(msgs[0].type == 20);
    CHECK(std::string(msgs[0].payload.begin(), msgs[0].payload.end()) == "abcd");
    CHECK(msgs[1].timestamp == 1040);
    CHECK(msgs[1].type == 9);
    CHECK(msgs[2].timestamp == 1060);
    CHECK(msgs[3].timestamp == 1080);
    CHECK(std::string(msgs[3].payload.begin(), msgs[3].payload.end()) == "rs");
    CHECK(msgs[4].csid == 100);
    CHECK(msgs[4].stream_id == 1);
    CHECK(msgs[4].timestamp == 5);
    CHECK(msgs[5].csid == 400);
    CHECK(msgs[5].timestamp == 6);
  }
}

TEST_CASE("Chunks: extended timestamps, repeated in type 3 chunks or not", "[rtmp][chunk]") {
  const uint32_t ts = 0x01234567; /* past 0xffffff: ~5 h 10 min */
  for (bool repeat : {true, false}) {
    INFO("type 3 chunks repeat the extended timestamp: " << repeat);
    ChunkReader r;
    std::vector<uint8_t> in =
        bytes({0x04, 0xff, 0xff, 0xff, 0x00, 0x00, 200, 0x09, 1, 0, 0, 0, 0x01, 0x23, 0x45, 0x67});
    std::vector<uint8_t> payload(200);
    for (size_t i = 0; i < payload.size(); i++)
      payload[i] = static_cast<uint8_t>(i);
    in.insert(in.end(), payload.begin(), payload.begin() + 128);
    in.push_back(0xc4);
    if (repeat)
      in.insert(in.end(), {0x01, 0x23, 0x45, 0x67});
    in.insert(in.end(), payload.begin() + 128, payload.end());
    auto msgs = read_all(r, in, false);
    REQUIRE(msgs.size() == 1);
    CHECK(msgs[0].timestamp == ts);
    CHECK(msgs[0].payload == payload);
  }
  /* the 32-bit clock wraps through deltas */
  ChunkReader r;
  auto in = bytes({0x05, 0xff, 0xff, 0xff, 0,    0,    1,    8,    1, 0, 0, 0, 0xff,
                   0xff, 0xff, 0xf0, 'a',  0x45, 0x00, 0x00, 0x20, 0, 0, 1, 8, 'b'});
  auto msgs = read_all(r, in, true);
  REQUIRE(msgs.size() == 2);
  CHECK(msgs[0].timestamp == 0xfffffff0u);
  CHECK(msgs[1].timestamp == 0x10u);
}

TEST_CASE("Chunks: Set Chunk Size takes effect mid-stream; Abort drops a partial message",
          "[rtmp][chunk]") {
  ChunkWriter w;
  std::vector<uint8_t> in;
  std::vector<uint8_t> big(5000, 0xab);
  w.write(4, kVideo, 1, 10, big, &in); /* in 128-byte chunks */
  std::vector<uint8_t> cs;
  ByteWriter(&cs).be32(4096);
  w.write(2, kSetChunkSize, 0, 0, cs, &in);
  w.set_chunk_size(4096);
  w.write(4, kVideo, 1, 20, big, &in); /* in 4096-byte chunks */
  for (bool bytewise : {false, true}) {
    ChunkReader r;
    auto msgs = read_all(r, in, bytewise);
    REQUIRE(msgs.size() == 3);
    CHECK(msgs[0].payload == big);
    CHECK(msgs[1].type == kSetChunkSize);
    CHECK(r.chunk_size() == 4096);
    CHECK(msgs[2].payload == big);
    CHECK(msgs[2].timestamp == 20);
  }
  /* Abort: the first chunk of a 300-byte message, then Abort(csid 6), then a whole message */
  ChunkReader r;
  std::vector<uint8_t> part;
  w.set_chunk_size(128);
  std::vector<uint8_t> p300(300, 1);
  w.write(6, kAudio, 1, 0, p300, &part);
  std::vector<uint8_t> in2(part.begin(), part.begin() + 12 + 128);
  std::vector<uint8_t> ab;
  ByteWriter(&ab).be32(6);
  w.write(2, kAbort, 0, 0, ab, &in2);
  std::vector<uint8_t> p10(10, 2);
  w.write(6, kAudio, 1, 30, p10, &in2);
  auto msgs = read_all(r, in2, false);
  REQUIRE(msgs.size() == 2);
  CHECK(msgs[0].type == kAbort);
  CHECK(msgs[1].payload == p10);
}

TEST_CASE("Chunks: limits and malformed streams are errors, never reads out of bounds",
          "[rtmp][chunk]") {
  std::string why;
  std::vector<Message> out;
  {
    ChunkReader::Limits l;
    l.max_message_size = 1000;
    ChunkReader r(l);
    auto in = bytes({0x04, 0, 0, 0, 0x00, 0x10, 0x00, 9, 1, 0, 0, 0}); /* 4096 bytes */
    CHECK_FALSE(r.feed(in.data(), in.size(), &out, &why));
    CHECK(why.find("limit") != std::string::npos);
  }
  {
    ChunkReader r;
    auto in = bytes({0xc4, 'x'}); /* type 3 on a new chunk stream */
    CHECK_FALSE(r.feed(in.data(), in.size(), &out, &why));
  }
  {
    ChunkReader::Limits l;
    l.max_chunk_size = 65536;
    ChunkReader r(l);
    ChunkWriter w;
    std::vector<uint8_t> cs, in;
    ByteWriter(&cs).be32(0x7fffffff);
    w.write(2, kSetChunkSize, 0, 0, cs, &in);
    CHECK_FALSE(r.feed(in.data(), in.size(), &out, &why));
  }
  {
    ChunkReader::Limits l;
    l.max_chunk_streams = 4;
    ChunkReader r(l);
    ChunkWriter w;
    std::vector<uint8_t> in, p(1, 0);
    for (uint32_t cs = 3; cs < 10; cs++)
      w.write(cs, kAudio, 1, 0, p, &in);
    CHECK_FALSE(r.feed(in.data(), in.size(), &out, &why));
  }
  {
    /* a header in the middle of a message */
    ChunkReader r;
    ChunkWriter w;
    std::vector<uint8_t> in, p(300, 0);
    w.write(4, kVideo, 1, 0, p, &in);
    in.resize(12 + 128);
    auto hdr = bytes({0x44, 0, 0, 1, 0, 0, 1, 9, 'z'});
    in.insert(in.end(), hdr.begin(), hdr.end());
    CHECK_FALSE(r.feed(in.data(), in.size(), &out, &why));
  }
}

TEST_CASE("Chunks: writer and reader agree on random messages", "[rtmp][chunk]") {
  std::mt19937 rng(11);
  ChunkWriter w;
  ChunkReader r;
  std::vector<uint8_t> stream;
  std::vector<Message> sent;
  uint32_t chunk = 128;
  for (int i = 0; i < 300; i++) {
    if (i % 50 == 25) {
      chunk = 1 + rng() % 8192;
      std::vector<uint8_t> cs;
      ByteWriter(&cs).be32(chunk);
      w.write(2, kSetChunkSize, 0, 0, cs, &stream);
      w.set_chunk_size(chunk);
      Message m;
      m.csid = 2;
      m.type = kSetChunkSize;
      m.payload = cs;
      sent.push_back(m);
    }
    Message m;
    m.csid = 3 + rng() % 60; /* within the 64 chunk streams allowed */
    m.type = rng() % 2 ? kAudio : kVideo;
    m.stream_id = 1;
    m.timestamp = rng() % 4 == 0 ? 0x1000000u + rng() % 1000000 : rng() % 0xffffff;
    m.payload.resize(rng() % 3000);
    for (auto &b : m.payload)
      b = static_cast<uint8_t>(rng());
    w.write(m.csid, m.type, m.stream_id, m.timestamp, m.payload, &stream);
    sent.push_back(m);
  }
  std::vector<Message> got;
  std::string why;
  size_t off = 0;
  while (off < stream.size()) { /* random cuts */
    const size_t n = std::min<size_t>(1 + rng() % 5000, stream.size() - off);
    INFO(why);
    REQUIRE(r.feed(stream.data() + off, n, &got, &why));
    off += n;
  }
  REQUIRE(got.size() == sent.size());
  for (size_t i = 0; i < sent.size(); i++) {
    INFO("message " << i);
    CHECK(got[i].csid == sent[i].csid);
    CHECK(got[i].type == sent[i].type);
    CHECK(got[i].timestamp == sent[i].timestamp);
    CHECK(got[i].payload == sent[i].payload);
  }
}

/* ---- session ---------------------------------------------------------------------------- */

namespace {

/* A scripted publisher built from our own writer (the real clients are in the interop tests). */
struct Client {
  ChunkWriter w;
  std::vector<uint8_t> bytes;
  void handshake() {
    bytes.push_back(3);
    bytes.resize(1 + 2 * kHandshakeSize, 0x42); /* C1 then C2 */
  }
  void command(uint32_t sid, std::vector<Value> args) {
    std::vector<uint8_t> p;
    for (auto &a : args)
      amf0::encode(a, &p);
    w.write(3, kCommandAmf0, sid, 0, p, &bytes);
  }
  void media(uint8_t type, uint32_t ts, std::vector<uint8_t> p) {
    w.write(type == kAudio ? 4 : 6, type, 1, ts, p, &bytes);
  }
};

Value S(const char *s) {
  return Value::make_string(s);
}
Value N(double d) {
  return Value::make_number(d);
}

struct Run {
  std::vector<uint8_t> out;
  std::vector<SessionEvent> events;
  bool ok;
  std::string why;
  bool has(SessionEvent::Kind k) const {
    for (auto &e : events)
      if (e.kind == k)
        return true;
    return false;
  }
  bool out_contains(const std::string &s) const {
    return std::search(out.begin(), out.end(), s.begin(), s.end()) != out.end();
  }
};

Run run(Session &s, const std::vector<uint8_t> &in) {
  Run r;
  r.ok = s.feed(in.data(), in.size(), &r.out, &r.events, &r.why);
  return r;
}

Client publisher(const char *app, const char *key) {
  Client c;
  c.handshake();
  c.command(0,
            {S("connect"), N(1), Value::make_object({{"app", S(app)}, {"objectEncoding", N(0)}})});
  c.command(0, {S("releaseStream"), N(2), Value::make_null(), S(key)});
  c.command(0, {S("FCPublish"), N(3), Value::make_null(), S(key)});
  c.command(0, {S("createStream"), N(4), Value::make_null()});
  c.command(1, {S("publish"), N(5), Value::make_null(), S(key), S("live")});
  return c;
}

} // namespace

TEST_CASE("Session: a publish goes through; media and metadata come out", "[rtmp][session]") {
  SessionConfig cfg;
  cfg.stream_key = "s3cret";
  Session s(cfg);
  Client c = publisher("live", "s3cret?token=1");
  std::vector<uint8_t> meta;
  amf0::encode(S("@setDataFrame"), &meta);
  amf0::encode(S("onMetaData"), &meta);
  Value ecma;
  ecma.type = Type::EcmaArray;
  ecma.props = {{"width", N(1280)}, {"audiocodecid", N(10)}};
  amf0::encode(ecma, &meta);
  c.w.write(4, kDataAmf0, 1, 0, meta, &c.bytes);
  c.media(kVideo, 0, {0x17, 0x00, 0, 0, 0, 1, 2, 3});
  c.media(kAudio, 23, {0xaf, 0x01, 9, 9});
  c.command(1, {S("FCUnpublish"), N(6), Value::make_null(), S("s3cret")});
  auto r = run(s, c.bytes);
  REQUIRE(r.ok);
  CHECK(r.out.size() > 1 + 2 * kHandshakeSize);
  CHECK(r.out_contains("NetConnection.Connect.Success"));
  CHECK(r.out_contains("NetStream.Publish.Start"));
  CHECK(r.has(SessionEvent::Connected));
  CHECK(r.has(SessionEvent::Publishing));
  CHECK(r.has(SessionEvent::Unpublished));
  int audio = 0, video = 0;
  for (auto &e : r.events) {
    audio += e.kind == SessionEvent::Audio;
    video += e.kind == SessionEvent::Video;
    if (e.kind == SessionEvent::Audio)
      CHECK(e.timestamp == 23);
    if (e.kind == SessionEvent::Metadata) {
      double w = 0;
      CHECK(e.value.get_number("width", &w));
      CHECK(w == 1280);
    }
    CHECK(e.text.find("s3cret") == std::string::npos); /* the key never leaves the session */
  }
  CHECK(audio == 1);
  CHECK(video == 1);
  CHECK_FALSE(s.should_close());
}

TEST_CASE("Session: a wrong key is refused before any media is read", "[rtmp][session]") {
  SessionConfig cfg;
  cfg.stream_key = "s3cret";
  Session s(cfg);
  Client c = publisher("live", "s3cre7");
  c.media(kVideo, 0, {0x17, 0x00, 0, 0, 0});
  auto r = run(s, c.bytes);
  REQUIRE(r.ok);
  CHECK(r.out_contains("NetStream.Publish.BadName"));
  CHECK_FALSE(r.out_contains("NetStream.Publish.Start"));
  CHECK(r.has(SessionEvent::Refused));
  CHECK_FALSE(r.has(SessionEvent::Video));
  CHECK(s.should_close());
}

TEST_CASE("Session: the application must match; another publisher can be refused",
          "[rtmp][session]") {
  {
    Session s{SessionConfig()};
    auto r = run(s, publisher("other", "k").bytes);
    CHECK(r.out_contains("NetConnection.Connect.Rejected"));
    CHECK(s.should_close());
  }
  {
    SessionRoutes routes;
    routes.may_publish = [](const std::string &, const std::string &, std::string *why) {
      *why = "already live";
      return false;
    };
    Session s(SessionConfig(), routes);
    auto r = run(s, publisher("live", "k").bytes);
    CHECK(r.out_contains("NetStream.Publish.BadName"));
    CHECK(r.has(SessionEvent::Refused));
  }
  {
    /* Routes decide instead of the config: two applications, keys looked up by the router. */
    std::string asked_app, asked_key;
    SessionRoutes routes;
    routes.has_application = [](const std::string &app) { return app == "a" || app == "b"; };
    routes.may_publish = [&](const std::string &app, const std::string &key, std::string *why) {
      asked_app = app;
      asked_key = key;
      if (Session::keys_equal(key, "k2"))
        return true;
      *why = "no element serves this stream key";
      return false;
    };
    Session ok(SessionConfig(), routes);
    auto r = run(ok, publisher("b", "k2?x=1").bytes);
    CHECK(r.out_contains("NetStream.Publish.Start"));
    CHECK(ok.application() == "b");
    CHECK(asked_app == "b");
    CHECK(asked_key == "k2");
    Session refused(SessionConfig(), routes);
    r = run(refused, publisher("a", "k3").bytes);
    CHECK(r.out_contains("NetStream.Publish.BadName"));
    for (auto &e : r.events)
      CHECK(e.text.find("k3") == std::string::npos);
    Session unknown(SessionConfig(), routes);
    r = run(unknown, publisher("c", "k2").bytes);
    CHECK(r.out_contains("NetConnection.Connect.Rejected"));
  }
}

TEST_CASE("Session: ping is answered; keys compare in constant time", "[rtmp][session]") {
  Session s{SessionConfig()};
  Client c;
  c.handshake();
  std::vector<uint8_t> ping;
  ByteWriter pw(&ping);
  pw.be16(6);
  pw.be32(0xdeadbeef);
  c.w.write(2, kUserControl, 0, 0, ping, &c.bytes);
  auto r = run(s, c.bytes);
  REQUIRE(r.ok);
  const std::vector<uint8_t> pong = {0x00, 0x07, 0xde, 0xad, 0xbe, 0xef};
  CHECK(std::search(r.out.begin(), r.out.end(), pong.begin(), pong.end()) != r.out.end());
  CHECK(Session::keys_equal("abc", "abc"));
  CHECK_FALSE(Session::keys_equal("abc", "abd"));
  CHECK_FALSE(Session::keys_equal("abc", "abcd"));
  CHECK_FALSE(Session::keys_equal("", "a"));
  CHECK(Session::keys_equal("", ""));
}

/* ---- FlvOutput ---------------------------------------------------------------------------- */

namespace {

SessionEvent media_event(SessionEvent::Kind kind, uint32_t ts, std::vector<uint8_t> payload) {
  SessionEvent e{kind, ts};
  e.payload = std::move(payload);
  return e;
}
const std::vector<uint8_t> kKey = {0x17, 0x01, 0, 0, 0, 0, 0, 0, 1, 0x65};
const std::vector<uint8_t> kInter = {0x27, 0x01, 0, 0, 0, 0, 0, 0, 1, 0x41};
const std::vector<uint8_t> kBframe = {0x27, 0x01, 0, 0, 40, 0, 0, 0, 1, 0x01};
const std::vector<uint8_t> kAac = {0xaf, 0x01, 1, 2, 3};
constexpr uint64_t kMsNs = 1000000;

} // namespace

TEST_CASE("FlvOutput: header once, one timeline across publishes, discont after each",
          "[rtmp][flvoutput]") {
  costream::rtmp::FlvOutput o;
  std::vector<costream::rtmp::FlvOutput::Item> items;
  costream::rtmp::FlvOutput::Notes notes;
  uint64_t now = 5000 * kMsNs;
  auto clock = [&] { return now; };
  o.start_publish();
  o.message(media_event(SessionEvent::Video, 1000, kKey), clock, &items, &notes);
  o.message(media_event(SessionEvent::Audio, 1023, kAac), clock, &items, &notes);
  o.message(media_event(SessionEvent::Video, 1040, kInter), clock, &items, &notes);
  REQUIRE(items.size() == 4);
  CHECK(items[0].header);
  CHECK(items[0].discont);
  CHECK(items[0].bytes.size() == 13); /* FLV header + PreviousTagSize0 */
  CHECK(items[1].pts == now);         /* the first message maps to running time now */
  CHECK_FALSE(items[1].discont);
  CHECK_FALSE(items[1].delta);
  CHECK(items[2].pts == now + 23 * kMsNs);
  CHECK(items[3].pts == now + 40 * kMsNs);
  CHECK(items[3].delta);
  /* the tag's own timestamp is the mapped time, in ms */
  const auto &tag = items[3].bytes;
  const uint32_t tag_ms = (tag[4] << 16 | tag[5] << 8 | tag[6]) | tag[7] << 24;
  CHECK(tag_ms == 5040);
  o.end_publish();
  /* republished at once: the clock is earlier than where the timeline got to */
  items.clear();
  now = 5010 * kMsNs;
  o.start_publish();
  o.message(media_event(SessionEvent::Audio, 0, kAac), clock, &items, &notes);
  REQUIRE(items.size() == 1);
  CHECK_FALSE(items[0].header);
  CHECK(items[0].discont);
  CHECK(items[0].pts == 5040 * kMsNs);
  o.reset();
  items.clear();
  o.message(media_event(SessionEvent::Audio, 0, kAac), clock, &items, &notes);
  CHECK(items.size() == 2); /* the header again */
}

TEST_CASE("FlvOutput: the 32-bit wrap and audio/video reordering", "[rtmp][flvoutput]") {
  costream::rtmp::FlvOutput o;
  std::vector<costream::rtmp::FlvOutput::Item> items;
  costream::rtmp::FlvOutput::Notes notes;
  auto clock = [] { return uint64_t{0}; };
  o.start_publish();
  o.message(media_event(SessionEvent::Audio, 0xFFFFFF00u, kAac), clock, &items, &notes);
  o.message(media_event(SessionEvent::Audio, 0x00000100u, kAac), clock, &items, &notes);
  o.message(media_event(SessionEvent::Video, 0x000000F0u, kKey), clock, &items, &notes);
  REQUIRE(items.size() == 4);
  CHECK(items[1].pts == 0);
  CHECK(items[2].pts == 512 * kMsNs); /* across the wrap */
  CHECK(items[3].pts == 496 * kMsNs); /* a little behind: kept, not jumped */
}

TEST_CASE("FlvOutput: keyframe intervals and B-frames are noticed", "[rtmp][flvoutput]") {
  costream::rtmp::FlvOutput o;
  std::vector<costream::rtmp::FlvOutput::Item> items;
  costream::rtmp::FlvOutput::Notes notes;
  auto clock = [] { return uint64_t{0}; };
  o.start_publish();
  o.message(media_event(SessionEvent::Video, 0, kKey), clock, &items, &notes);
  CHECK(notes.keyframe_interval == 0); /* the first: nothing to measure */
  o.message(media_event(SessionEvent::Video, 40, kBframe), clock, &items, &notes);
  CHECK(notes.bframes);
  o.message(media_event(SessionEvent::Video, 80, kInter), clock, &items, &notes);
  CHECK_FALSE(notes.bframes);
  o.message(media_event(SessionEvent::Video, 3000, kKey), clock, &items, &notes);
  CHECK(notes.keyframe_interval == 3000 * kMsNs);
  o.end_publish(); /* a new publish measures from its own first keyframe */
  o.start_publish();
  o.message(media_event(SessionEvent::Video, 0, kKey), clock, &items, &notes);
  CHECK(notes.keyframe_interval == 0);
}

TEST_CASE("Session: a publish waits for an authorization; allowed, then refused",
          "[rtmp][session][auth]") {
  for (bool allow : {true, false}) {
    INFO("allowed: " << allow);
    std::string asked_key;
    SessionRoutes routes;
    routes.ask = [&](const std::string &, const std::string &key) {
      asked_key = key;
      return true;
    };
    Session s(SessionConfig(), routes);
    Client c;
    c.handshake();
    c.command(0, {S("connect"), N(1),
                  Value::make_object({{"app", S("live")},
                                      {"tcUrl", S("rtmp://127.0.0.1:1935/live")},
                                      {"flashVer", S("FMLE/3.0 (compatible; FMSc/1.0)")}})});
    c.command(0, {S("createStream"), N(4), Value::make_null()});
    c.command(1, {S("publish"), N(5), Value::make_null(), S("k3y?x=1"), S("live")});
    c.media(kVideo, 0, {0x17, 0x00, 0, 0, 0}); /* sent before the answer: not taken */
    auto r = run(s, c.bytes);
    REQUIRE(r.ok);
    CHECK(r.has(SessionEvent::Asking));
    CHECK(s.asking());
    CHECK(asked_key == "k3y");
    CHECK(s.tc_url() == "rtmp://127.0.0.1:1935/live");
    CHECK(s.flash_ver() == "FMLE/3.0 (compatible; FMSc/1.0)");
    CHECK_FALSE(r.out_contains("NetStream.Publish.Start"));
    CHECK_FALSE(r.out_contains("NetStream.Publish.BadName"));
    CHECK_FALSE(r.has(SessionEvent::Video));
    CHECK_FALSE(s.publishing());

    std::vector<uint8_t> out;
    std::vector<SessionEvent> events;
    s.authorized(allow, "refused by the service", &out, &events);
    CHECK_FALSE(s.asking());
    const std::string text(out.begin(), out.end());
    CHECK((text.find("NetStream.Publish.Start") != std::string::npos) == allow);
    CHECK((text.find("NetStream.Publish.BadName") != std::string::npos) == !allow);
    REQUIRE(events.size() == 1);
    CHECK(events[0].kind == (allow ? SessionEvent::Publishing : SessionEvent::Refused));
    CHECK(s.publishing() == allow);
    CHECK(s.should_close() == !allow);
    /* a second answer does nothing */
    out.clear();
    events.clear();
    s.authorized(!allow, "", &out, &events);
    CHECK(out.empty());
    CHECK(events.empty());
    if (allow) {
      Client more;
      more.media(kVideo, 40, {0x27, 0x01, 0, 0, 0});
      auto r2 = run(s, more.bytes);
      CHECK(r2.has(SessionEvent::Video));
    }
  }
}

TEST_CASE("Auth HTTP: URLs, the request, status lines, JSON strings", "[rtmp][auth]") {
  using namespace costream::rtmp;
  HttpTarget t;
  std::string why;
  REQUIRE(parse_http_url("http://127.0.0.1:8080/auth?x=1", &t, &why));
  CHECK(t.host == "127.0.0.1");
  CHECK(t.port == 8080);
  CHECK(t.path == "/auth?x=1");
  REQUIRE(parse_http_url("http://auth.example", &t, &why));
  CHECK(t.port == 80);
  CHECK(t.path == "/");
  REQUIRE(parse_http_url("http://[::1]:81?q", &t, &why));
  CHECK(t.host == "::1");
  CHECK(t.port == 81);
  CHECK(t.path == "/?q");
  for (const char *bad :
       {"https://a/", "ftp://a", "http://", "http://:80/", "http://a:0/", "http://a:65536/",
        "http://a:x/", "http://u:p@a/", "http://[::1/", "http://a/b c", "http://a:/"}) {
    INFO(bad);
    CHECK_FALSE(parse_http_url(bad, &t, &why));
    CHECK_FALSE(why.empty());
  }
  REQUIRE(parse_http_url("http://[::1]:81/a", &t, &why));
  const std::string req = http_post(t, "{}");
  CHECK(req.rfind("POST /a HTTP/1.1\r\nHost: [::1]:81\r\n", 0) == 0);
  CHECK(req.find("Content-Length: 2\r\n") != std::string::npos);
  CHECK(req.substr(req.size() - 6) == "\r\n\r\n{}");

  CHECK(http_status("HTTP/1.1 200 OK\r\n") == 200);
  CHECK(http_status("HTTP/1.0 403\r\n") == 403);
  CHECK(http_status("HTTP/1.1 204 No Content\r\nX: y\r\n\r\n") == 204);
  CHECK(http_status("HTTP/1.1 20") == 0);  /* not complete yet */
  CHECK(http_status("HTTP/1.1 200") == 0); /* the next byte must be SP or CR */
  CHECK(http_status("HTTP/1.1 200 ") == 200);
  CHECK(http_status("HTTP/1.1\r\n") == -1);
  CHECK(http_status("HTT") == 0);            /* not complete yet */
  CHECK(http_status("SSH-2.0-x\r\n") == -1); /* not HTTP */
  CHECK(http_status("HTTP/1.1 2000 OK\r\n") == -1);
  CHECK(http_status("HTTP/1.1 099 x\r\n") == -1);
  CHECK(http_status("HTTP/2.0 200 OK\r\n") == -1);
  CHECK(http_status(std::string("HTTP/1.1 ") + std::string(100, '2')) == -1);

  CHECK(json_quote("a\"b\\c\n\x01") == "\"a\\\"b\\\\c\\u000a\\u0001\"");
  CHECK(json_quote("caf\xc3\xa9") == "\"caf\xc3\xa9\"");
}
