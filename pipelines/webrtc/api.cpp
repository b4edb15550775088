/* costream-webrtc: the stream API and webhooks
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * GET /api/streams: per stream, its producer, its consumers (viewers) and its mixer, from the
 * elements' `stats` and the server's own packet counters (see docs/camera.md for the format).
 * No credential or stream key is ever written: a camera's address is rtspcamera's redacted
 * `location`, an RTMP producer is its port.
 *
 * Webhooks: every event is POSTed as JSON to each --webhook URL, one request at a time per URL
 * (so a receiver sees them in order), from the main loop: the media never waits for it. A failed
 * delivery (no answer in 5 s, or a status outside 2xx) is tried again after 1, 2 and 4 s, then
 * given up and counted; at most kMaxQueued events wait per URL, beyond that the oldest is dropped
 * and counted.
 */
#include "server.h"

#include <cmath>
#include <deque>

namespace cw {

namespace {

constexpr size_t kMaxQueued = 256;
constexpr int kMaxAttempts = 4;

std::string u64(guint64 v) {
  return std::to_string(v);
}

guint64 stat_u64(const GstStructure *s, const char *field) {
  guint64 v = 0;
  gst_structure_get_uint64(s, field, &v);
  return v;
}

std::string stat_str(const GstStructure *s, const char *field) {
  const gchar *v = gst_structure_get_string(s, field);
  return v ? v : "";
}

std::string codecs_json(const std::vector<std::string> &codecs) {
  std::string out = "[";
  for (const auto &c : codecs) {
    if (c.empty())
      continue;
    out += (out.size() > 1 ? ", " : "") + json_string(c);
  }
  return out + "]";
}

std::string producer_json(Stream *s) {
  std::string out = "{\"kind\": ";
  guint64 packets = s->video_in.packets + s->audio_in.packets;
  guint64 bytes = s->video_in.bytes + s->audio_in.bytes;
  std::string state = s->state;
  if (s->kind == Stream::Kind::Camera) {
    gchar *location = nullptr;
    GstStructure *st = nullptr;
    g_object_get(s->producer, "location", &location, "stats", &st, nullptr);
    out += "\"rtsp\", \"url\": " + json_string(location ? location : "");
    g_free(location);
    if (st) {
      state = stat_str(st, "state");
      if (gst_structure_has_field(st, "rtp-packets")) {
        packets = stat_u64(st, "rtp-packets");
        bytes = stat_u64(st, "rtp-bytes");
      }
      out += ", \"codecs\": " +
             codecs_json({stat_str(st, "video-codec"), stat_str(st, "audio-codec")}) +
             ", \"audio_output\": " + json_string(stat_str(st, "audio-output")) +
             ", \"backchannel\": {\"codec\": " + json_string(stat_str(st, "backchannel-codec")) +
             ", \"bytes\": " + u64(stat_u64(st, "backchannel-bytes")) +
             ", \"packets\": " + u64(stat_u64(st, "backchannel-packets")) +
             "}, \"connects\": " + u64(stat_u64(st, "connects")) +
             ", \"losses\": " + u64(stat_u64(st, "losses"));
      gst_structure_free(st);
    }
  } else if (s->kind == Stream::Kind::Rtmp) {
    guint port = 0;
    g_object_get(s->producer, "port", &port, nullptr);
    out += "\"rtmp\", \"url\": " + json_string("rtmp://:" + std::to_string(port) + "/") +
           ", \"codecs\": " + codecs_json({"H264", "OPUS/48000/2"});
  } else {
    out += "\"test\", \"url\": \"\", \"codecs\": " + codecs_json({"H264", "OPUS/48000/2"});
  }
  out += ", \"state\": " + json_string(state) + ", \"bytes\": " + u64(bytes) +
         ", \"packets\": " + u64(packets) + ", \"back_channel\": " + json_string(s->back_channel);
  return out + "}";
}

std::string consumers_json(Stream *s) {
  std::string out = "[";
  for (auto &kv : app.viewers) {
    Viewer *v = kv.second;
    if (v->stream != s)
      continue;
    auto it = s->talkers.find(v->id);
    out += std::string(out.size() > 1 ? ", " : "") + "{\"id\": " + std::to_string(v->id) +
           ", \"user\": " + json_string(v->user) +
           ", \"may_talk\": " + (v->may_talk ? "true" : "false") +
           ", \"user_agent\": " + json_string(v->user_agent) +
           ", \"codecs\": " + codecs_json({"H264", "OPUS/48000/2"}) +
           ", \"send\": {\"bytes\": " + u64(v->video_out.bytes + v->audio_out.bytes) +
           ", \"packets\": " + u64(v->video_out.packets + v->audio_out.packets) +
           "}, \"recv\": {\"bytes\": " + u64(v->talk_in.bytes) +
           ", \"packets\": " + u64(v->talk_in.packets) +
           "}, \"talking\": " + (it != s->talkers.end() && it->second ? "true" : "false") + "}";
  }
  return out + "]";
}

std::string mixer_json(Stream *s) {
  if (!s->mixer)
    return "null";
  GstStructure *st = nullptr;
  g_object_get(s->mixer, "stats", &st, nullptr);
  if (!st)
    return "null";
  guint talkers = 0, active = 0;
  gst_structure_get_uint(st, "talkers", &talkers);
  gst_structure_get_uint(st, "active-talkers", &active);
  /* the loudest talker heard now */
  double level = -127.0;
  if (const GValue *pads = gst_structure_get_value(st, "pads")) {
    for (guint i = 0; i < gst_value_array_get_size(pads); i++) {
      const GstStructure *ps = gst_value_get_structure(gst_value_array_get_value(pads, i));
      gboolean on = FALSE;
      double l = -127.0;
      gst_structure_get_boolean(ps, "active", &on);
      gst_structure_get_double(ps, "level", &l);
      if (on && l > level)
        level = l;
    }
  }
  gst_structure_free(st);
  char lv[32];
  g_ascii_formatd(lv, sizeof lv, "%.1f", level);
  return "{\"talkers\": " + std::to_string(talkers) + ", \"active\": " + std::to_string(active) +
         ", \"level\": " + lv + "}";
}

} // namespace

std::string json_string(const std::string &s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
    case '"':
      out += "\\\"";
      break;
    case '\\':
      out += "\\\\";
      break;
    case '\n':
      out += "\\n";
      break;
    case '\r':
      out += "\\r";
      break;
    case '\t':
      out += "\\t";
      break;
    default:
      if (c < 0x20) {
        char esc[8];
        std::snprintf(esc, sizeof esc, "\\u%04x", c);
        out += esc;
      } else {
        out += static_cast<char>(c);
      }
    }
  }
  return out + "\"";
}

std::string streams_json(const std::string &user) {
  std::string out = "{";
  for (auto &s : app.streams) {
    if (!user_permissions(user, s->name).watch)
      continue;
    out += std::string(out.size() > 1 ? ",\n " : "\n ") + json_string(s->name) +
           ": {\"producers\": [" + producer_json(s.get()) +
           "], \"consumers\": " + consumers_json(s.get()) + ", \"mixer\": " + mixer_json(s.get()) +
           "}";
  }
  return out + "\n}\n";
}

/* ---- webhooks ---------------------------------------------------------------------------- */

class Webhooks {
public:
  explicit Webhooks(const std::vector<std::string> &urls) {
    session_ = soup_session_new_with_options("timeout", 5, "idle-timeout", 30, nullptr);
    for (const auto &u : urls)
      targets_.push_back(std::make_unique<Target>(this, u));
  }
  ~Webhooks() {
    for (auto &t : targets_)
      t->cancel();
    g_object_unref(session_);
  }
  void post(const std::string &body) {
    for (auto &t : targets_)
      t->queue(body);
  }

private:
  struct Target {
    Webhooks *owner;
    std::string url;
    std::deque<std::string> pending;
    int attempts = 0;
    bool busy = false;
    guint retry_source = 0;
    GCancellable *cancellable = g_cancellable_new();
    guint64 delivered = 0, failed = 0, dropped = 0;

    Target(Webhooks *o, std::string u) : owner(o), url(std::move(u)) {}
    ~Target() { g_object_unref(cancellable); }

    void queue(const std::string &body) {
      if (pending.size() >= kMaxQueued) {
        pending.pop_front();
        if (dropped++ == 0)
          say("webhook: a receiver is behind by %zu events; dropping the oldest", kMaxQueued);
      }
      pending.push_back(body);
      if (!busy && !retry_source)
        send();
    }
    void send() {
      if (pending.empty())
        return;
      SoupMessage *msg = soup_message_new("POST", url.c_str());
      if (!msg) { /* checked at start: cannot happen */
        pending.clear();
        return;
      }
      GBytes *body = g_bytes_new(pending.front().data(), pending.front().size());
      soup_message_set_request_body_from_bytes(msg, "application/json", body);
      g_bytes_unref(body);
      busy = true;
      attempts++;
      soup_session_send_and_read_async(owner->session_, msg, G_PRIORITY_DEFAULT, cancellable,
                                       on_sent, this);
      g_object_unref(msg); /* the session holds it while sending */
    }
    static void on_sent(GObject *source, GAsyncResult *res, gpointer data) {
      GError *err = nullptr;
      GBytes *reply = soup_session_send_and_read_finish(SOUP_SESSION(source), res, &err);
      if (g_error_matches(err, G_IO_ERROR, G_IO_ERROR_CANCELLED)) {
        g_error_free(err);
        return; /* shutting down: `data` may be gone */
      }
      auto *t = static_cast<Target *>(data);
      SoupMessage *msg = soup_session_get_async_result_message(SOUP_SESSION(source), res);
      const guint status = msg ? soup_message_get_status(msg) : 0;
      if (reply)
        g_bytes_unref(reply);
      t->busy = false;
      const bool ok = !err && status >= 200 && status < 300;
      if (ok || t->attempts >= kMaxAttempts) {
        if (ok)
          t->delivered++;
        else {
          t->failed++;
          say("webhook: an event was not delivered after %d attempts (%s)", kMaxAttempts,
              err ? err->message : ("HTTP " + std::to_string(status)).c_str());
        }
        t->attempts = 0;
        t->pending.pop_front();
        g_clear_error(&err);
        t->send();
        return;
      }
      g_clear_error(&err);
      const guint delay_ms = 1000u << (t->attempts - 1); /* 1, 2, 4 s */
      t->retry_source = g_timeout_add(
          delay_ms,
          [](gpointer d) -> gboolean {
            auto *target = static_cast<Target *>(d);
            target->retry_source = 0;
            target->send();
            return G_SOURCE_REMOVE;
          },
          t);
    }
    void cancel() {
      g_cancellable_cancel(cancellable);
      if (retry_source)
        g_source_remove(retry_source);
      retry_source = 0;
    }
  };

  SoupSession *session_ = nullptr;
  std::vector<std::unique_ptr<Target>> targets_;
};

Webhooks *webhooks_new(const std::vector<std::string> &urls) {
  return urls.empty() ? nullptr : new Webhooks(urls);
}

void webhooks_free(Webhooks *w) {
  delete w;
}

void event(const char *kind, const Stream *stream, const std::string &fields) {
  if (!app.webhooks)
    return;
  static guint64 seq = 0;
  char time[40];
  g_ascii_formatd(time, sizeof time, "%.3f", static_cast<double>(g_get_real_time()) / 1e6);
  std::string body = "{\"event\": " + json_string(kind) + ", \"seq\": " + std::to_string(++seq) +
                     ", \"time\": " + time +
                     ", \"stream\": " + (stream ? json_string(stream->name) : "null");
  if (!fields.empty())
    body += ", " + fields;
  app.webhooks->post(body + "}");
}

} // namespace cw
