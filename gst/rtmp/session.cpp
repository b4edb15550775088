/* costream
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "session.h"

#include "bytes.h"

#include <algorithm>

namespace costream::rtmp {

using amf0::Property;
using amf0::Value;

namespace {

std::string strip_query(const std::string &s) {
  const size_t q = s.find('?');
  return q == std::string::npos ? s : s.substr(0, q);
}

Value status(const char *level, const char *code, const char *description) {
  return Value::make_object({{"level", Value::make_string(level)},
                             {"code", Value::make_string(code)},
                             {"description", Value::make_string(description)}});
}

} // namespace

Session::Session(SessionConfig config, SessionRoutes routes)
    : config_(std::move(config)), routes_(std::move(routes)), reader_(config_.limits) {
  if (!routes_.has_application)
    routes_.has_application = [this](const std::string &app) {
      return app == trim_slashes(config_.application);
    };
  if (!routes_.may_publish)
    routes_.may_publish = [this](const std::string &, const std::string &key, std::string *why) {
      if (config_.stream_key.empty() || keys_equal(key, config_.stream_key))
        return true;
      *why = "wrong stream key";
      return false;
    };
}

bool Session::keys_equal(const std::string &a, const std::string &b) {
  /* Time depends on the lengths only, never on where the keys differ. */
  const size_t n = std::max(a.size(), b.size());
  unsigned diff = a.size() != b.size();
  for (size_t i = 0; i < n; i++) {
    const unsigned char ca = i < a.size() ? a[i] : 0;
    const unsigned char cb = i < b.size() ? b[i] : 0;
    diff |= ca ^ cb;
  }
  return diff == 0;
}

bool Session::feed(const uint8_t *data, size_t size, std::vector<uint8_t> *out,
                   std::vector<SessionEvent> *events, std::string *why) {
  if (!handshake_.done()) {
    const size_t used = handshake_.feed(data, size, out, why);
    handshake_bytes_ += used;
    if (handshake_.state() == ServerHandshake::State::Failed)
      return false;
    data += used;
    size -= used;
    if (!handshake_.done() || size == 0)
      return true;
  }
  std::vector<Message> msgs;
  const bool ok = reader_.feed(data, size, &msgs, why);
  for (auto &m : msgs) {
    messages_++;
    if (!on_message(m, out, events, why))
      return false;
  }
  if (!ok)
    return false;
  /* Acknowledge what we received, as the peer's window asks. */
  const uint64_t in = reader_.bytes_in();
  if (peer_window_ > 0 && in - last_ack_ >= peer_window_) {
    std::vector<uint8_t> p;
    ByteWriter(&p).be32(static_cast<uint32_t>(in));
    send(2, kAcknowledgement, 0, p, out);
    last_ack_ = in;
  }
  return true;
}

void Session::send(uint32_t csid, uint8_t type, uint32_t stream_id,
                   const std::vector<uint8_t> &payload, std::vector<uint8_t> *out) {
  writer_.write(csid, type, stream_id, 0, payload, out);
}

void Session::send_command(uint32_t stream_id, const std::vector<Value> &values,
                           std::vector<uint8_t> *out) {
  std::vector<uint8_t> p;
  for (const auto &v : values)
    amf0::encode(v, &p);
  send(3, kCommandAmf0, stream_id, p, out);
}

void Session::unpublish(std::vector<SessionEvent> *events) {
  if (!publishing_)
    return;
  publishing_ = false;
  events->push_back({SessionEvent::Unpublished});
}

bool Session::on_message(Message &m, std::vector<uint8_t> *out, std::vector<SessionEvent> *events,
                         std::string *why) {
  ByteReader r(m.payload);
  switch (m.type) {
  case kSetChunkSize:
  case kAbort:
  case kAcknowledgement:
  case kSetPeerBandwidth:
    return true; /* applied by the reader, or nothing to do */
  case kWindowAckSize: {
    uint32_t w;
    if (r.be32(&w))
      peer_window_ = w;
    return true;
  }
  case kUserControl: {
    uint16_t event;
    uint32_t value;
    if (r.be16(&event) && event == 6 && r.be32(&value)) { /* ping request -> ping response */
      std::vector<uint8_t> p;
      ByteWriter w(&p);
      w.be16(7);
      w.be32(value);
      send(2, kUserControl, 0, p, out);
    }
    return true;
  }
  case kCommandAmf0:
    return on_command(m, 0, out, events, why);
  case kCommandAmf3:
    return on_command(m, 1, out, events, why); /* a format byte, then AMF0 */
  case kDataAmf0:
    on_data(m, 0, events);
    return true;
  case kDataAmf3:
    on_data(m, 1, events);
    return true;
  case kAudio:
  case kVideo:
    if (!publishing_) {
      events->push_back({SessionEvent::Warning, 0, "media before publish: ignored"});
      return true;
    }
    if (m.payload.empty())
      return true;
    {
      SessionEvent e{m.type == kAudio ? SessionEvent::Audio : SessionEvent::Video, m.timestamp};
      e.payload = std::move(m.payload); /* the message is done with */
      events->push_back(std::move(e));
    }
    return true;
  case kAggregate:
    if (publishing_)
      on_aggregate(m, events);
    return true;
  default:
    events->push_back(
        {SessionEvent::Warning, 0, "message type " + std::to_string(m.type) + " ignored"});
    return true;
  }
}

bool Session::on_command(const Message &m, size_t skip, std::vector<uint8_t> *out,
                         std::vector<SessionEvent> *events, std::string *why) {
  if (m.payload.size() < skip)
    return true;
  std::vector<Value> args;
  std::string err;
  if (!amf0::decode_all(m.payload.data() + skip, m.payload.size() - skip, &args, &err)) {
    *why = "unreadable command: " + err;
    return false;
  }
  if (args.empty() || !args[0].is_string())
    return true;
  const std::string &name = args[0].string;
  const double txid = args.size() > 1 && args[1].type == amf0::Type::Number ? args[1].number : 0;

  if (name == "connect") {
    std::string app;
    double encoding = 0;
    if (args.size() > 2) {
      args[2].get_string("app", &app);
      args[2].get_number("objectEncoding", &encoding);
      args[2].get_string("tcUrl", &tc_url_);
      args[2].get_string("flashVer", &flash_ver_);
      /* Told to an authorization service, never logged; bounded like everything we keep. */
      tc_url_.resize(std::min<size_t>(tc_url_.size(), 1024));
      flash_ver_.resize(std::min<size_t>(flash_ver_.size(), 256));
    }
    app = trim_slashes(strip_query(app));
    if (!routes_.has_application(app)) {
      send_command(0,
                   {Value::make_string("_error"), Value::make_number(txid), Value::make_null(),
                    status("error", "NetConnection.Connect.Rejected", "Unknown application")},
                   out);
      events->push_back(
          {SessionEvent::Refused, 0, "unknown application \"" + app.substr(0, 64) + "\""});
      close_ = true;
      return true;
    }
    std::vector<uint8_t> p;
    ByteWriter(&p).be32(config_.window_ack_size);
    send(2, kWindowAckSize, 0, p, out);
    p.clear();
    ByteWriter w(&p);
    w.be32(config_.window_ack_size);
    w.u8(2); /* dynamic */
    send(2, kSetPeerBandwidth, 0, p, out);
    p.clear();
    ByteWriter(&p).be32(config_.out_chunk_size);
    send(2, kSetChunkSize, 0, p, out);
    writer_.set_chunk_size(config_.out_chunk_size);
    Value info = status("status", "NetConnection.Connect.Success", "Connection succeeded.");
    info.props.push_back({"objectEncoding", Value::make_number(encoding)});
    send_command(0,
                 {Value::make_string("_result"), Value::make_number(txid),
                  Value::make_object({{"fmsVer", Value::make_string("FMS/3,0,1,123")},
                                      {"capabilities", Value::make_number(31)}}),
                  info},
                 out);
    connected_ = true;
    app_ = app;
    events->push_back({SessionEvent::Connected, 0, app});
    return true;
  }
  if (!connected_) {
    *why = "command \"" + name.substr(0, 32) + "\" before connect";
    return false;
  }
  if (name == "releaseStream" || name == "FCPublish") {
    send_command(0, {Value::make_string("_result"), Value::make_number(txid), Value::make_null()},
                 out);
    return true;
  }
  if (name == "createStream") {
    send_command(0,
                 {Value::make_string("_result"), Value::make_number(txid), Value::make_null(),
                  Value::make_number(1)},
                 out);
    return true;
  }
  if (name == "publish") {
    std::string key;
    if (args.size() > 3 && args[3].is_string())
      key = strip_query(args[3].string);
    const uint32_t sid = m.stream_id ? m.stream_id : 1;
    std::string refusal;
    if (publishing_ || asking_) {
      refuse_publish(sid, "already publishing", out, events);
    } else if (!routes_.may_publish(app_, key, &refusal)) {
      refuse_publish(sid, refusal, out, events);
    } else if (routes_.ask && routes_.ask(app_, key)) {
      asking_ = true;
      publish_stream_ = sid;
      events->push_back({SessionEvent::Asking});
    } else {
      start_publish(sid, out, events);
    }
    return true;
  }
  if (name == "FCUnpublish" || name == "deleteStream" || name == "closeStream") {
    unpublish(events);
    return true;
  }
  /* getStreamLength, checkBandwidth, _checkbw, ...: nothing to do for a publisher */
  return true;
}

void Session::refuse_publish(uint32_t sid, const std::string &why, std::vector<uint8_t> *out,
                             std::vector<SessionEvent> *events) {
  send_command(sid,
               {Value::make_string("onStatus"), Value::make_number(0), Value::make_null(),
                status("error", "NetStream.Publish.BadName", "Publishing refused")},
               out);
  events->push_back({SessionEvent::Refused, 0, why});
  close_ = true;
}

void Session::start_publish(uint32_t sid, std::vector<uint8_t> *out,
                            std::vector<SessionEvent> *events) {
  std::vector<uint8_t> p;
  ByteWriter w(&p);
  w.be16(0); /* Stream Begin */
  w.be32(sid);
  send(2, kUserControl, 0, p, out);
  send_command(sid,
               {Value::make_string("onStatus"), Value::make_number(0), Value::make_null(),
                status("status", "NetStream.Publish.Start", "Publishing")},
               out);
  publishing_ = true;
  publish_stream_ = sid;
  events->push_back({SessionEvent::Publishing});
}

void Session::authorized(bool allowed, const std::string &why, std::vector<uint8_t> *out,
                         std::vector<SessionEvent> *events) {
  if (!asking_)
    return;
  asking_ = false;
  if (allowed)
    start_publish(publish_stream_, out, events);
  else
    refuse_publish(publish_stream_, why, out, events);
}

void Session::on_data(const Message &m, size_t skip, std::vector<SessionEvent> *events) {
  if (m.payload.size() < skip)
    return;
  std::vector<Value> args;
  std::string err;
  if (!amf0::decode_all(m.payload.data() + skip, m.payload.size() - skip, &args, &err)) {
    events->push_back({SessionEvent::Warning, 0, "unreadable data message: " + err});
    return;
  }
  size_t i = 0;
  if (i < args.size() && args[i].is_string() && args[i].string == "@setDataFrame")
    i++;
  if (i + 1 < args.size() && args[i].is_string() && args[i].string == "onMetaData" &&
      (args[i + 1].type == amf0::Type::Object || args[i + 1].type == amf0::Type::EcmaArray)) {
    SessionEvent e{SessionEvent::Metadata, m.timestamp};
    e.value = args[i + 1];
    /* as FLV script data: "onMetaData" and the object */
    amf0::encode(args[i], &e.payload);
    amf0::encode(args[i + 1], &e.payload);
    events->push_back(std::move(e));
  }
}

void Session::on_aggregate(const Message &m, std::vector<SessionEvent> *events) {
  /* FLV-tag-like sub-messages: type(1) size(3) timestamp(3+1) stream id(3) data back-pointer(4) */
  ByteReader r(m.payload);
  bool first = true;
  uint32_t base = 0;
  while (!r.empty()) {
    uint8_t type, ts_hi;
    uint32_t size, ts, sid, back;
    if (!r.u8(&type) || !r.be24(&size) || !r.be24(&ts) || !r.u8(&ts_hi) || !r.be24(&sid) ||
        size > r.remaining()) {
      events->push_back({SessionEvent::Warning, 0, "truncated aggregate message"});
      return;
    }
    ts |= static_cast<uint32_t>(ts_hi) << 24;
    if (first) {
      base = ts;
      first = false;
    }
    SessionEvent e{type == kAudio ? SessionEvent::Audio : SessionEvent::Video,
                   m.timestamp + (ts - base)};
    e.payload.assign(r.cursor(), r.cursor() + size);
    r.skip(size);
    if ((type == kAudio || type == kVideo) && !e.payload.empty())
      events->push_back(std::move(e));
    if (!r.be32(&back))
      break;
  }
}

std::string trim_slashes(std::string s) {
  while (!s.empty() && s.back() == '/')
    s.pop_back();
  while (!s.empty() && s.front() == '/')
    s.erase(0, 1);
  return s;
}

} // namespace costream::rtmp
