/* costream
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
/**
 * SECTION:element-rtmpserversrc
 * @title: rtmpserversrc
 *
 * An RTMP server inside the pipeline: OBS, ffmpeg or `rtmp2sink` publish to
 * `rtmp://host:port/<application>/<stream-key>` and the stream comes out as `video/x-flv` (FLV
 * header, onMetaData, sequence headers and media tags), ready for `flvdemux` (or `rtmpbridge`).
 *
 * The element listens on `address` (default: every interface, IPv4 and IPv6) and `port` (1935).
 * With `stream-key` set, any other key is refused with `NetStream.Publish.BadName` and the
 * connection closed before any media is read; the key is compared in constant time and never
 * logged. One publisher at a time: a second concurrent publish is refused. When the publisher
 * leaves, the element keeps listening and the next publish continues the timeline (DISCONT, fresh
 * metadata and sequence headers), or, with `eos-on-disconnect`, the stream ends.
 *
 * Timestamps: the publisher's RTMP millisecond clock is mapped to running time at the first
 * message of each publish, so audio and video share one timeline; extended timestamps and the
 * 32-bit wrap are handled. The FLV tags carry the same (running time) timestamps.
 *
 * Element messages: `rtmp-publish-start` (`remote-address`, `application`, `metadata`: the
 * onMetaData values) and `rtmp-publish-stop` (`reason`, `bytes`, `duration`). H.264 with
 * B-frames posts a one-time warning: WebRTC players stutter on them (OBS: "bframes=0").
 *
 * Limits: `max-message-size`, `max-chunk-size`, `handshake-timeout`, `idle-timeout`,
 * `max-pending-connections` (connections that have not started publishing; the oldest is closed
 * to make room, so a flood of half-open connections cannot lock a publisher out).
 *
 * ## Example launch line
 * |[
 * gst-launch-1.0 rtmpserversrc port=1935 stream-key=s3cret ! flvdemux name=d \
 *   d.video ! queue ! h264parse ! avdec_h264 ! videoconvert ! autovideosink \
 *   d.audio ! queue ! aacparse ! avdec_aac ! audioconvert ! autoaudiosink
 * ]| Then point OBS at `rtmp://this-machine/live` with stream key `s3cret`, or
 * `ffmpeg -re -i file.flv -c copy -f flv rtmp://127.0.0.1/live/s3cret`.
 */

#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "gstrtmpserversrc.h"

#include "flv.h"
#include "session.h"

#include <gio/gio.h>

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <netinet/in.h>
#include <poll.h>
#include <string>
#include <vector>

GST_DEBUG_CATEGORY_STATIC(gst_rtmp_server_src_debug);
#define GST_CAT_DEFAULT gst_rtmp_server_src_debug

using costream::rtmp::Session;
using costream::rtmp::SessionConfig;
using costream::rtmp::SessionEvent;
namespace amf0 = costream::rtmp::amf0;

#define DEFAULT_ADDRESS nullptr
#define DEFAULT_PORT 1935
#define DEFAULT_APPLICATION "live"
#define DEFAULT_STREAM_KEY nullptr
#define DEFAULT_EOS_ON_DISCONNECT FALSE
#define DEFAULT_MAX_MESSAGE_SIZE (8u << 20)
#define DEFAULT_MAX_CHUNK_SIZE 65536u
#define DEFAULT_HANDSHAKE_TIMEOUT 5000u
#define DEFAULT_IDLE_TIMEOUT 10000u
#define DEFAULT_MAX_PENDING 8u

/* Output queue bound: past this the publisher's socket is not read (TCP pushes back). */
#define MAX_QUEUED_BYTES (64u << 20)

enum {
  PROP_0,
  PROP_ADDRESS,
  PROP_PORT,
  PROP_BOUND_PORT,
  PROP_APPLICATION,
  PROP_STREAM_KEY,
  PROP_EOS_ON_DISCONNECT,
  PROP_MAX_MESSAGE_SIZE,
  PROP_MAX_CHUNK_SIZE,
  PROP_HANDSHAKE_TIMEOUT,
  PROP_IDLE_TIMEOUT,
  PROP_MAX_PENDING,
  PROP_STATS,
};

static GstStaticPadTemplate src_template =
    GST_STATIC_PAD_TEMPLATE("src", GST_PAD_SRC, GST_PAD_ALWAYS, GST_STATIC_CAPS("video/x-flv"));

namespace {

struct Connection {
  GSocket *socket = nullptr;
  std::string remote;
  std::unique_ptr<Session> session;
  std::vector<uint8_t> out;
  size_t out_pos = 0;
  gint64 accepted_at = 0; /* monotonic, us */
  /* When the connection last started waiting for a publish: accepted, or its publish ended.
   * The handshake timeout counts from here (a publisher that unpublishes still gets to send
   * deleteStream and close by itself). */
  gint64 waiting_since = 0;
  bool was_publishing = false;
  gint64 last_rx = 0;
  bool closing = false; /* close once `out` is sent */
  std::string close_reason;
};

struct Publish {
  bool active = false;
  std::string remote;
  gint64 started_at = 0; /* monotonic, us */
  guint64 bytes_at_start = 0;
  bool announced = false; /* rtmp-publish-start posted */
  /* timeline */
  bool have_first = false;
  uint32_t last_ts = 0;
  int64_t ext_ms = 0; /* publisher clock, extended past 32 bits */
  GstClockTime base_rt = 0;
};

} // namespace

struct GstRtmpServerSrcPrivate {
  /* GST_OBJECT_LOCK: properties */
  gchar *address = nullptr;
  guint port = DEFAULT_PORT;
  gchar *application = g_strdup(DEFAULT_APPLICATION);
  gchar *stream_key = nullptr;
  gboolean eos_on_disconnect = DEFAULT_EOS_ON_DISCONNECT;
  guint max_message_size = DEFAULT_MAX_MESSAGE_SIZE;
  guint max_chunk_size = DEFAULT_MAX_CHUNK_SIZE;
  guint handshake_timeout = DEFAULT_HANDSHAKE_TIMEOUT;
  guint idle_timeout = DEFAULT_IDLE_TIMEOUT;
  guint max_pending = DEFAULT_MAX_PENDING;
  guint bound_port = 0;

  /* I/O thread */
  GThread *thread = nullptr;
  GCancellable *cancel = nullptr;
  GSocket *listener = nullptr;
  std::vector<std::unique_ptr<Connection>> conns;
  Publish pub;
  GstClockTime last_pts = 0; /* end of the timeline so far */
  bool header_sent = false;
  bool discont = true;
  bool bframes_warned = false;

  /* lock: the output queue and what the stats show */
  std::mutex lock;
  std::condition_variable cond;
  std::deque<GstBuffer *> queue;
  size_t queued_bytes = 0;
  bool flushing = false;
  bool eos = false;
  bool publishing = false;
  std::string publisher;
  guint64 bytes = 0;
  guint64 messages = 0;
  guint64 publishes = 0;
  guint64 refused = 0;
  guint64 connections = 0;
  gint64 publish_started = 0;
  guint64 publish_bytes_start = 0;
};

struct _GstRtmpServerSrc {
  GstPushSrc parent;
  GstRtmpServerSrcPrivate *priv;
};

G_DEFINE_TYPE(GstRtmpServerSrc, gst_rtmp_server_src, GST_TYPE_PUSH_SRC);
GST_ELEMENT_REGISTER_DEFINE(rtmpserversrc, "rtmpserversrc", GST_RANK_NONE,
                            GST_TYPE_RTMP_SERVER_SRC);

using Lock = std::unique_lock<std::mutex>;

namespace {

std::string address_string(GSocket *socket) {
  GSocketAddress *sa = g_socket_get_remote_address(socket, nullptr);
  if (!sa)
    return "?";
  std::string s = "?";
  if (G_IS_INET_SOCKET_ADDRESS(sa)) {
    gchar *ip =
        g_inet_address_to_string(g_inet_socket_address_get_address(G_INET_SOCKET_ADDRESS(sa)));
    s = std::string(ip) + ":" +
        std::to_string(g_inet_socket_address_get_port(G_INET_SOCKET_ADDRESS(sa)));
    g_free(ip);
  }
  g_object_unref(sa);
  return s;
}

/* (I/O thread) Queues a buffer for create(). */
void enqueue(GstRtmpServerSrc *self, GstBuffer *buf) {
  auto *priv = self->priv;
  Lock lk(priv->lock);
  if (priv->flushing) {
    gst_buffer_unref(buf);
    return;
  }
  priv->queued_bytes += gst_buffer_get_size(buf);
  priv->queue.push_back(buf);
  priv->cond.notify_one();
}

GstBuffer *make_buffer(std::vector<uint8_t> &&bytes, GstClockTime pts) {
  auto *v = new std::vector<uint8_t>(std::move(bytes));
  GstBuffer *b = gst_buffer_new_wrapped_full(
      GST_MEMORY_FLAG_READONLY, v->data(), v->size(), 0, v->size(), v,
      [](gpointer p) { delete static_cast<std::vector<uint8_t> *>(p); });
  GST_BUFFER_PTS(b) = pts;
  GST_BUFFER_DTS(b) = pts;
  return b;
}

/* (I/O thread) Running time now, for the first message of a publish. */
GstClockTime running_time_now(GstRtmpServerSrc *self) {
  GstClock *clock = gst_element_get_clock(GST_ELEMENT(self));
  if (!clock)
    return 0;
  const GstClockTime now = gst_clock_get_time(clock);
  gst_object_unref(clock);
  const GstClockTime base = gst_element_get_base_time(GST_ELEMENT(self));
  return now > base ? now - base : 0;
}

/* (I/O thread) The publisher's message time as running time. */
GstClockTime map_time(GstRtmpServerSrc *self, uint32_t ts) {
  auto *priv = self->priv;
  auto &p = priv->pub;
  if (!p.have_first) {
    p.have_first = true;
    p.last_ts = ts;
    p.ext_ms = 0;
    /* the next publish continues the timeline, never going back */
    p.base_rt = std::max(running_time_now(self), priv->last_pts);
    return p.base_rt;
  }
  /* 32-bit wrap and small reorderings between audio and video: signed difference */
  p.ext_ms += static_cast<int32_t>(ts - p.last_ts);
  p.last_ts = ts;
  const int64_t ms = std::max<int64_t>(p.ext_ms, -static_cast<int64_t>(p.base_rt / GST_MSECOND));
  return p.base_rt + ms * GST_MSECOND;
}

GstStructure *metadata_structure(const amf0::Value &v) {
  GstStructure *s = gst_structure_new_empty("metadata");
  for (const auto &prop : v.props) {
    if (prop.key.empty() || !g_utf8_validate(prop.key.c_str(), -1, nullptr))
      continue;
    gchar *name =
        g_strcanon(g_strdup(prop.key.c_str()),
                   "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_", '_');
    if (!g_ascii_isalpha(name[0])) {
      g_free(name);
      continue;
    }
    const auto &val = prop.value;
    if (val.type == amf0::Type::Number)
      gst_structure_set(s, name, G_TYPE_DOUBLE, val.number, nullptr);
    else if (val.type == amf0::Type::Boolean)
      gst_structure_set(s, name, G_TYPE_BOOLEAN, static_cast<gboolean>(val.boolean), nullptr);
    else if (val.is_string() && g_utf8_validate(val.string.c_str(), -1, nullptr))
      gst_structure_set(s, name, G_TYPE_STRING, val.string.c_str(), nullptr);
    g_free(name);
  }
  return s;
}

void post_start(GstRtmpServerSrc *self, const amf0::Value *metadata) {
  auto *priv = self->priv;
  if (priv->pub.announced)
    return;
  priv->pub.announced = true;
  GST_OBJECT_LOCK(self);
  const std::string app = priv->application ? priv->application : "";
  GST_OBJECT_UNLOCK(self);
  GstStructure *meta =
      metadata ? metadata_structure(*metadata) : gst_structure_new_empty("metadata");
  GstStructure *s = gst_structure_new("rtmp-publish-start", "remote-address", G_TYPE_STRING,
                                      priv->pub.remote.c_str(), "application", G_TYPE_STRING,
                                      app.c_str(), "metadata", GST_TYPE_STRUCTURE, meta, nullptr);
  gst_structure_free(meta);
  gst_element_post_message(GST_ELEMENT(self), gst_message_new_element(GST_OBJECT(self), s));
}

/* (I/O thread) The publisher is gone (or unpublished). */
void end_publish(GstRtmpServerSrc *self, Connection &c, const std::string &reason) {
  auto *priv = self->priv;
  if (!priv->pub.active)
    return;
  const gint64 now = g_get_monotonic_time();
  const guint64 bytes = c.session->bytes_in() - priv->pub.bytes_at_start;
  const GstClockTime duration = (now - priv->pub.started_at) * GST_USECOND;
  GST_INFO_OBJECT(self,
                  "publisher %s stopped: %s (%" G_GUINT64_FORMAT " bytes, %" GST_TIME_FORMAT ")",
                  c.remote.c_str(), reason.c_str(), bytes, GST_TIME_ARGS(duration));
  if (priv->pub.announced)
    gst_element_post_message(
        GST_ELEMENT(self),
        gst_message_new_element(GST_OBJECT(self),
                                gst_structure_new("rtmp-publish-stop", "reason", G_TYPE_STRING,
                                                  reason.c_str(), "bytes", G_TYPE_UINT64, bytes,
                                                  "duration", G_TYPE_UINT64, duration, nullptr)));
  priv->pub = Publish();
  priv->discont = true;
  GST_OBJECT_LOCK(self);
  const bool eos = priv->eos_on_disconnect;
  GST_OBJECT_UNLOCK(self);
  Lock lk(priv->lock);
  priv->publishing = false;
  priv->publisher.clear();
  if (eos) {
    priv->eos = true;
    priv->cond.notify_all();
  }
}

/* (I/O thread) One session event of connection `c`. */
void handle_event(GstRtmpServerSrc *self, Connection &c, SessionEvent &e) {
  auto *priv = self->priv;
  switch (e.kind) {
  case SessionEvent::Connected:
    GST_DEBUG_OBJECT(self, "%s connected to application \"%s\"", c.remote.c_str(), e.text.c_str());
    break;
  case SessionEvent::Refused: {
    GST_WARNING_OBJECT(self, "refused %s: %s", c.remote.c_str(), e.text.c_str());
    Lock lk(priv->lock);
    priv->refused++;
    break;
  }
  case SessionEvent::Publishing: {
    GST_INFO_OBJECT(self, "%s is publishing", c.remote.c_str());
    priv->pub = Publish();
    priv->pub.active = true;
    priv->pub.remote = c.remote;
    priv->pub.started_at = g_get_monotonic_time();
    priv->pub.bytes_at_start = c.session->bytes_in();
    Lock lk(priv->lock);
    priv->publishing = true;
    priv->publisher = c.remote;
    priv->publishes++;
    priv->publish_started = priv->pub.started_at;
    priv->publish_bytes_start = priv->pub.bytes_at_start;
    break;
  }
  case SessionEvent::Unpublished:
    end_publish(self, c, "unpublished");
    break;
  case SessionEvent::Warning:
    GST_DEBUG_OBJECT(self, "%s: %s", c.remote.c_str(), e.text.c_str());
    break;
  case SessionEvent::Metadata:
  case SessionEvent::Audio:
  case SessionEvent::Video: {
    if (!priv->pub.active)
      break;
    post_start(self, e.kind == SessionEvent::Metadata ? &e.value : nullptr);
    const GstClockTime pts = map_time(self, e.timestamp);
    if (!priv->header_sent) {
      /* the FLV header alone, so downstream can tell it from the tags */
      std::vector<uint8_t> header;
      costream::flv::write_header(true, true, &header);
      priv->header_sent = true;
      GstBuffer *hb = make_buffer(std::move(header), pts);
      GST_BUFFER_FLAG_SET(hb, GST_BUFFER_FLAG_HEADER);
      GST_BUFFER_FLAG_SET(hb, GST_BUFFER_FLAG_DISCONT);
      enqueue(self, hb);
      priv->discont = false;
    }
    std::vector<uint8_t> bytes;
    const uint8_t type = e.kind == SessionEvent::Metadata ? costream::flv::kScript
                         : e.kind == SessionEvent::Audio  ? costream::flv::kAudio
                                                          : costream::flv::kVideo;
    if (e.kind == SessionEvent::Video && !priv->bframes_warned &&
        costream::flv::avc_packet_type(e.payload) == 1 &&
        costream::flv::avc_composition_time(e.payload) != 0) {
      priv->bframes_warned = true;
      GST_ELEMENT_WARNING(self, STREAM, FORMAT,
                          ("The publisher sends H.264 with B-frames: WebRTC players stutter on "
                           "them. In OBS set the x264 option \"bframes=0\" (or B-frames to 0)."),
                          ("non-zero composition time in a video tag"));
    }
    costream::flv::write_tag(type, static_cast<uint32_t>(pts / GST_MSECOND), e.payload.data(),
                             e.payload.size(), &bytes);
    GstBuffer *b = make_buffer(std::move(bytes), pts);
    if (priv->discont) {
      GST_BUFFER_FLAG_SET(b, GST_BUFFER_FLAG_DISCONT);
      priv->discont = false;
    }
    if (type == costream::flv::kVideo && !costream::flv::is_keyframe(e.payload))
      GST_BUFFER_FLAG_SET(b, GST_BUFFER_FLAG_DELTA_UNIT);
    priv->last_pts = std::max(priv->last_pts, pts);
    enqueue(self, b);
    break;
  }
  }
}

void close_connection(GstRtmpServerSrc *self, size_t i, const std::string &reason) {
  auto *priv = self->priv;
  Connection &c = *priv->conns[i];
  if (priv->pub.active && c.session->publishing())
    end_publish(self, c, reason);
  GST_DEBUG_OBJECT(self, "closing %s: %s", c.remote.c_str(), reason.c_str());
  g_socket_close(c.socket, nullptr);
  g_object_unref(c.socket);
  priv->conns.erase(priv->conns.begin() + i);
}

/* (I/O thread) Sends what is queued for `c`; false if the socket failed. */
bool flush_out(Connection &c) {
  while (c.out_pos < c.out.size()) {
    GError *err = nullptr;
    const gssize n =
        g_socket_send(c.socket, reinterpret_cast<const gchar *>(c.out.data() + c.out_pos),
                      c.out.size() - c.out_pos, nullptr, &err);
    if (n < 0) {
      const bool again = g_error_matches(err, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK);
      g_error_free(err);
      return again;
    }
    c.out_pos += static_cast<size_t>(n);
  }
  c.out.clear();
  c.out_pos = 0;
  return true;
}

SessionConfig session_config(GstRtmpServerSrc *self) {
  auto *priv = self->priv;
  SessionConfig cfg;
  GST_OBJECT_LOCK(self);
  cfg.application = priv->application ? priv->application : "";
  cfg.stream_key = priv->stream_key ? priv->stream_key : "";
  cfg.limits.max_message_size = priv->max_message_size;
  cfg.limits.max_chunk_size = priv->max_chunk_size;
  GST_OBJECT_UNLOCK(self);
  return cfg;
}

void accept_connections(GstRtmpServerSrc *self) {
  auto *priv = self->priv;
  for (;;) {
    GError *err = nullptr;
    GSocket *s = g_socket_accept(priv->listener, nullptr, &err);
    if (!s) {
      g_clear_error(&err);
      return;
    }
    g_socket_set_blocking(s, FALSE);
    auto c = std::make_unique<Connection>();
    c->socket = s;
    c->remote = address_string(s);
    c->accepted_at = c->waiting_since = c->last_rx = g_get_monotonic_time();
    c->session = std::make_unique<Session>(session_config(self), [self](std::string *why) {
      if (self->priv->pub.active) {
        *why = "another publisher is live";
        return false;
      }
      return true;
    });
    GST_DEBUG_OBJECT(self, "connection from %s", c->remote.c_str());
    {
      Lock lk(priv->lock);
      priv->connections++;
    }
    /* Room for it: the oldest connection that is not publishing goes. */
    GST_OBJECT_LOCK(self);
    const guint max_pending = priv->max_pending;
    GST_OBJECT_UNLOCK(self);
    size_t pending = 0, oldest = SIZE_MAX;
    for (size_t i = 0; i < priv->conns.size(); i++) {
      if (priv->conns[i]->session->publishing())
        continue;
      pending++;
      if (oldest == SIZE_MAX || priv->conns[i]->accepted_at < priv->conns[oldest]->accepted_at)
        oldest = i;
    }
    if (pending >= max_pending && oldest != SIZE_MAX)
      close_connection(self, oldest, "too many pending connections");
    if (max_pending == 0) {
      g_socket_close(s, nullptr);
      g_object_unref(s);
      continue;
    }
    priv->conns.push_back(std::move(c));
  }
}

/* (I/O thread) Reads and handles what connection i sent. False: it was closed. */
bool service_connection(GstRtmpServerSrc *self, size_t i) {
  auto *priv = self->priv;
  Connection &c = *priv->conns[i];
  uint8_t buf[65536];
  for (int rounds = 0; rounds < 16; rounds++) {
    GError *err = nullptr;
    const gssize n =
        g_socket_receive(c.socket, reinterpret_cast<gchar *>(buf), sizeof(buf), nullptr, &err);
    if (n < 0) {
      const bool again = g_error_matches(err, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK);
      std::string msg = err->message;
      g_error_free(err);
      if (again)
        return true;
      close_connection(self, i, "socket error: " + msg);
      return false;
    }
    if (n == 0) {
      close_connection(self, i, "disconnected");
      return false;
    }
    c.last_rx = g_get_monotonic_time();
    std::vector<SessionEvent> events;
    std::string why;
    const bool ok = c.session->feed(buf, static_cast<size_t>(n), &c.out, &events, &why);
    {
      Lock lk(priv->lock);
      priv->bytes += static_cast<guint64>(n);
      priv->messages = c.session->messages();
    }
    for (auto &e : events)
      handle_event(self, c, e);
    if (!ok) {
      GST_WARNING_OBJECT(self, "dropping %s: %s", c.remote.c_str(), why.c_str());
      close_connection(self, i, "protocol error: " + why);
      return false;
    }
    if (!flush_out(c)) {
      close_connection(self, i, "socket error while sending");
      return false;
    }
    if (c.session->should_close()) {
      c.closing = true;
      if (c.out.empty()) {
        close_connection(self, i, "refused");
        return false;
      }
      return true;
    }
    Lock lk(priv->lock);
    if (priv->queued_bytes > MAX_QUEUED_BYTES)
      return true; /* downstream is behind: read later */
  }
  return true;
}

gpointer io_thread(gpointer data) {
  auto *self = GST_RTMP_SERVER_SRC(data);
  auto *priv = self->priv;
  GPollFD cancel_fd;
  g_cancellable_make_pollfd(priv->cancel, &cancel_fd);
  while (!g_cancellable_is_cancelled(priv->cancel)) {
    bool throttled;
    {
      Lock lk(priv->lock);
      throttled = priv->queued_bytes > MAX_QUEUED_BYTES;
    }
    std::vector<struct pollfd> fds;
    fds.push_back({cancel_fd.fd, POLLIN, 0});
    fds.push_back({g_socket_get_fd(priv->listener), POLLIN, 0});
    for (auto &c : priv->conns) {
      short ev = 0;
      if (!c->closing && !(throttled && c->session->publishing()))
        ev |= POLLIN;
      if (!c->out.empty())
        ev |= POLLOUT;
      fds.push_back({g_socket_get_fd(c->socket), ev, 0});
    }
    const int r = poll(fds.data(), fds.size(), throttled ? 20 : 100);
    if (r < 0 && errno != EINTR)
      break;
    if (g_cancellable_is_cancelled(priv->cancel))
      break;
    /* connections first (indices match fds[2 + i]); closing shifts them, so go backwards */
    for (size_t k = priv->conns.size(); k-- > 0;) {
      const short re = fds[2 + k].revents;
      if (!re)
        continue;
      if (re & POLLOUT) {
        if (!flush_out(*priv->conns[k])) {
          close_connection(self, k, "socket error while sending");
          continue;
        }
        if (priv->conns[k]->closing && priv->conns[k]->out.empty()) {
          close_connection(self, k, "refused");
          continue;
        }
      }
      if (re & (POLLIN | POLLHUP | POLLERR))
        service_connection(self, k);
    }
    if (fds[1].revents & POLLIN)
      accept_connections(self);
    /* timeouts */
    GST_OBJECT_LOCK(self);
    const gint64 hs = static_cast<gint64>(priv->handshake_timeout) * 1000;
    const gint64 idle = static_cast<gint64>(priv->idle_timeout) * 1000;
    GST_OBJECT_UNLOCK(self);
    const gint64 now = g_get_monotonic_time();
    for (size_t k = priv->conns.size(); k-- > 0;) {
      Connection &c = *priv->conns[k];
      if (c.session->publishing()) {
        c.was_publishing = true;
        if (idle > 0 && now - c.last_rx > idle)
          close_connection(self, k, "idle timeout");
        continue;
      }
      if (c.was_publishing) {
        c.was_publishing = false;
        c.waiting_since = now;
      }
      if (hs > 0 && now - c.waiting_since > hs)
        close_connection(self, k, "no publish within the handshake timeout");
    }
  }
  g_cancellable_release_fd(priv->cancel);
  return nullptr;
}

} // namespace

static gboolean gst_rtmp_server_src_start(GstBaseSrc *src) {
  auto *self = GST_RTMP_SERVER_SRC(src);
  auto *priv = self->priv;
  GST_OBJECT_LOCK(self);
  std::string address = priv->address ? priv->address : "";
  const guint port = priv->port;
  GST_OBJECT_UNLOCK(self);

  GError *err = nullptr;
  GInetAddress *ia = nullptr;
  GSocketFamily family = G_SOCKET_FAMILY_IPV6;
  if (address.empty()) {
    ia = g_inet_address_new_any(G_SOCKET_FAMILY_IPV6);
  } else {
    ia = g_inet_address_new_from_string(address.c_str());
    if (!ia) {
      GST_ELEMENT_ERROR(self, RESOURCE, SETTINGS,
                        ("\"%s\" is not an IP address to listen on.", address.c_str()), (nullptr));
      return FALSE;
    }
    family = g_inet_address_get_family(ia);
  }
  GSocket *sock = g_socket_new(family, G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_TCP, &err);
  if (!sock && address.empty()) { /* no IPv6 here: IPv4 only */
    g_clear_error(&err);
    g_object_unref(ia);
    ia = g_inet_address_new_any(G_SOCKET_FAMILY_IPV4);
    family = G_SOCKET_FAMILY_IPV4;
    sock = g_socket_new(family, G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_TCP, &err);
  }
  if (!sock) {
    GST_ELEMENT_ERROR(self, RESOURCE, OPEN_READ, ("Could not create a socket."),
                      ("%s", err->message));
    g_error_free(err);
    g_object_unref(ia);
    return FALSE;
  }
  if (family == G_SOCKET_FAMILY_IPV6 && address.empty())
    g_socket_set_option(sock, IPPROTO_IPV6, IPV6_V6ONLY, 0, nullptr); /* IPv4 too */
  GSocketAddress *sa = g_inet_socket_address_new(ia, static_cast<guint16>(port));
  g_object_unref(ia);
  const gboolean bound = g_socket_bind(sock, sa, TRUE, &err) && g_socket_listen(sock, &err);
  g_object_unref(sa);
  if (!bound) {
    GST_ELEMENT_ERROR(self, RESOURCE, OPEN_READ,
                      ("Could not listen on port %u: %s", port, err->message), (nullptr));
    g_error_free(err);
    g_object_unref(sock);
    return FALSE;
  }
  g_socket_set_blocking(sock, FALSE);
  GSocketAddress *local = g_socket_get_local_address(sock, nullptr);
  guint bound_port = port;
  if (local) {
    bound_port = g_inet_socket_address_get_port(G_INET_SOCKET_ADDRESS(local));
    g_object_unref(local);
  }
  GST_OBJECT_LOCK(self);
  priv->bound_port = bound_port;
  GST_OBJECT_UNLOCK(self);
  GST_INFO_OBJECT(self, "listening on port %u", bound_port);
  g_object_notify(G_OBJECT(self), "bound-port");

  priv->listener = sock;
  priv->cancel = g_cancellable_new();
  priv->pub = Publish();
  priv->last_pts = 0;
  priv->header_sent = false;
  priv->discont = true;
  {
    Lock lk(priv->lock);
    priv->flushing = false;
    priv->eos = false;
    priv->bytes = priv->messages = priv->publishes = priv->refused = priv->connections = 0;
  }
  priv->thread = g_thread_new("rtmpserversrc", io_thread, self);
  return TRUE;
}

static gboolean gst_rtmp_server_src_stop(GstBaseSrc *src) {
  auto *self = GST_RTMP_SERVER_SRC(src);
  auto *priv = self->priv;
  if (priv->thread) {
    g_cancellable_cancel(priv->cancel);
    g_thread_join(priv->thread);
    priv->thread = nullptr;
  }
  while (!priv->conns.empty())
    close_connection(self, priv->conns.size() - 1, "element stopped");
  if (priv->listener) {
    g_socket_close(priv->listener, nullptr);
    g_object_unref(priv->listener);
    priv->listener = nullptr;
  }
  g_clear_object(&priv->cancel);
  Lock lk(priv->lock);
  for (auto *b : priv->queue)
    gst_buffer_unref(b);
  priv->queue.clear();
  priv->queued_bytes = 0;
  priv->publishing = false;
  priv->publisher.clear();
  return TRUE;
}

static gboolean gst_rtmp_server_src_unlock(GstBaseSrc *src) {
  auto *priv = GST_RTMP_SERVER_SRC(src)->priv;
  Lock lk(priv->lock);
  priv->flushing = true;
  priv->cond.notify_all();
  return TRUE;
}

static gboolean gst_rtmp_server_src_unlock_stop(GstBaseSrc *src) {
  auto *priv = GST_RTMP_SERVER_SRC(src)->priv;
  Lock lk(priv->lock);
  priv->flushing = false;
  return TRUE;
}

static GstFlowReturn gst_rtmp_server_src_create(GstPushSrc *src, GstBuffer **buf) {
  auto *priv = GST_RTMP_SERVER_SRC(src)->priv;
  Lock lk(priv->lock);
  priv->cond.wait(lk, [priv] { return priv->flushing || !priv->queue.empty() || priv->eos; });
  if (priv->flushing)
    return GST_FLOW_FLUSHING;
  if (priv->queue.empty())
    return GST_FLOW_EOS;
  *buf = priv->queue.front();
  priv->queue.pop_front();
  priv->queued_bytes -= gst_buffer_get_size(*buf);
  return GST_FLOW_OK;
}

static GstStructure *gst_rtmp_server_src_stats(GstRtmpServerSrc *self) {
  auto *priv = self->priv;
  Lock lk(priv->lock);
  double bitrate = 0;
  if (priv->publishing) {
    const double secs = (g_get_monotonic_time() - priv->publish_started) / 1e6;
    if (secs > 0.1)
      bitrate = (priv->bytes - std::min(priv->bytes, priv->publish_bytes_start)) * 8.0 / secs;
  }
  return gst_structure_new(
      "rtmpserversrc-stats", "state", G_TYPE_STRING, priv->publishing ? "publishing" : "listening",
      "publisher", G_TYPE_STRING, priv->publisher.c_str(), "bytes", G_TYPE_UINT64, priv->bytes,
      "messages", G_TYPE_UINT64, priv->messages, "bitrate", G_TYPE_DOUBLE, bitrate, "publishes",
      G_TYPE_UINT64, priv->publishes, "refused", G_TYPE_UINT64, priv->refused, "connections",
      G_TYPE_UINT64, priv->connections, nullptr);
}

static void gst_rtmp_server_src_set_property(GObject *object, guint prop_id, const GValue *value,
                                             GParamSpec *pspec) {
  auto *self = GST_RTMP_SERVER_SRC(object);
  auto *priv = self->priv;
  GST_OBJECT_LOCK(self);
  switch (prop_id) {
  case PROP_ADDRESS:
    g_free(priv->address);
    priv->address = g_value_dup_string(value);
    break;
  case PROP_PORT:
    priv->port = g_value_get_uint(value);
    break;
  case PROP_APPLICATION:
    g_free(priv->application);
    priv->application = g_value_dup_string(value);
    break;
  case PROP_STREAM_KEY:
    g_free(priv->stream_key);
    priv->stream_key = g_value_dup_string(value);
    break;
  case PROP_EOS_ON_DISCONNECT:
    priv->eos_on_disconnect = g_value_get_boolean(value);
    break;
  case PROP_MAX_MESSAGE_SIZE:
    priv->max_message_size = g_value_get_uint(value);
    break;
  case PROP_MAX_CHUNK_SIZE:
    priv->max_chunk_size = g_value_get_uint(value);
    break;
  case PROP_HANDSHAKE_TIMEOUT:
    priv->handshake_timeout = g_value_get_uint(value);
    break;
  case PROP_IDLE_TIMEOUT:
    priv->idle_timeout = g_value_get_uint(value);
    break;
  case PROP_MAX_PENDING:
    priv->max_pending = g_value_get_uint(value);
    break;
  default:
    G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec);
    break;
  }
  GST_OBJECT_UNLOCK(self);
}

static void gst_rtmp_server_src_get_property(GObject *object, guint prop_id, GValue *value,
                                             GParamSpec *pspec) {
  auto *self = GST_RTMP_SERVER_SRC(object);
  auto *priv = self->priv;
  if (prop_id == PROP_STATS) {
    g_value_take_boxed(value, gst_rtmp_server_src_stats(self));
    return;
  }
  GST_OBJECT_LOCK(self);
  switch (prop_id) {
  case PROP_ADDRESS:
    g_value_set_string(value, priv->address);
    break;
  case PROP_PORT:
    g_value_set_uint(value, priv->port);
    break;
  case PROP_BOUND_PORT:
    g_value_set_uint(value, priv->bound_port);
    break;
  case PROP_APPLICATION:
    g_value_set_string(value, priv->application);
    break;
  case PROP_STREAM_KEY:
    g_value_set_string(value, priv->stream_key); /* write-only in spirit: never logged */
    break;
  case PROP_EOS_ON_DISCONNECT:
    g_value_set_boolean(value, priv->eos_on_disconnect);
    break;
  case PROP_MAX_MESSAGE_SIZE:
    g_value_set_uint(value, priv->max_message_size);
    break;
  case PROP_MAX_CHUNK_SIZE:
    g_value_set_uint(value, priv->max_chunk_size);
    break;
  case PROP_HANDSHAKE_TIMEOUT:
    g_value_set_uint(value, priv->handshake_timeout);
    break;
  case PROP_IDLE_TIMEOUT:
    g_value_set_uint(value, priv->idle_timeout);
    break;
  case PROP_MAX_PENDING:
    g_value_set_uint(value, priv->max_pending);
    break;
  default:
    G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec);
    break;
  }
  GST_OBJECT_UNLOCK(self);
}

static void gst_rtmp_server_src_finalize(GObject *object) {
  auto *self = GST_RTMP_SERVER_SRC(object);
  auto *priv = self->priv;
  g_free(priv->address);
  g_free(priv->application);
  g_free(priv->stream_key);
  delete priv;
  self->priv = nullptr;
  G_OBJECT_CLASS(gst_rtmp_server_src_parent_class)->finalize(object);
}

static void gst_rtmp_server_src_class_init(GstRtmpServerSrcClass *klass) {
  auto *gobject_class = G_OBJECT_CLASS(klass);
  auto *element_class = GST_ELEMENT_CLASS(klass);
  auto *basesrc_class = GST_BASE_SRC_CLASS(klass);
  auto *pushsrc_class = GST_PUSH_SRC_CLASS(klass);

  GST_DEBUG_CATEGORY_INIT(gst_rtmp_server_src_debug, "rtmpserversrc", 0, "costream RTMP server");

  gobject_class->set_property = gst_rtmp_server_src_set_property;
  gobject_class->get_property = gst_rtmp_server_src_get_property;
  gobject_class->finalize = gst_rtmp_server_src_finalize;

  const auto rw = static_cast<GParamFlags>(G_PARAM_READWRITE | GST_PARAM_MUTABLE_READY |
                                           G_PARAM_STATIC_STRINGS);
  const auto rw_playing = static_cast<GParamFlags>(G_PARAM_READWRITE | GST_PARAM_MUTABLE_PLAYING |
                                                   G_PARAM_STATIC_STRINGS);
  const auto ro = static_cast<GParamFlags>(G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);

  g_object_class_install_property(
      gobject_class, PROP_ADDRESS,
      g_param_spec_string("address", "Address",
                          "IP address to listen on (default: every interface, IPv4 and IPv6)",
                          DEFAULT_ADDRESS, rw));
  g_object_class_install_property(
      gobject_class, PROP_PORT,
      g_param_spec_uint("port", "Port", "TCP port to listen on (0: any free port, see bound-port)",
                        0, 65535, DEFAULT_PORT, rw));
  g_object_class_install_property(gobject_class, PROP_BOUND_PORT,
                                  g_param_spec_uint("bound-port", "Bound port",
                                                    "The port listened on (after start)", 0, 65535,
                                                    0, ro));
  g_object_class_install_property(
      gobject_class, PROP_APPLICATION,
      g_param_spec_string("application", "Application",
                          "RTMP application: the first path element of the publish URL",
                          DEFAULT_APPLICATION, rw));
  g_object_class_install_property(
      gobject_class, PROP_STREAM_KEY,
      g_param_spec_string("stream-key", "Stream key",
                          "Key a publisher must use (empty: any key is accepted). Compared in "
                          "constant time, never logged",
                          DEFAULT_STREAM_KEY, rw_playing));
  g_object_class_install_property(
      gobject_class, PROP_EOS_ON_DISCONNECT,
      g_param_spec_boolean("eos-on-disconnect", "EOS on disconnect",
                           "End the stream when the publisher leaves (default: wait for the next "
                           "publish and continue the timeline)",
                           DEFAULT_EOS_ON_DISCONNECT, rw_playing));
  g_object_class_install_property(
      gobject_class, PROP_MAX_MESSAGE_SIZE,
      g_param_spec_uint("max-message-size", "Max message size",
                        "Largest RTMP message accepted, in bytes (a bigger one drops the "
                        "connection)",
                        1024, 256u << 20, DEFAULT_MAX_MESSAGE_SIZE, rw));
  g_object_class_install_property(
      gobject_class, PROP_MAX_CHUNK_SIZE,
      g_param_spec_uint("max-chunk-size", "Max chunk size",
                        "Largest chunk size a publisher may set, in bytes", 128, 0x7fffffff,
                        DEFAULT_MAX_CHUNK_SIZE, rw));
  g_object_class_install_property(
      gobject_class, PROP_HANDSHAKE_TIMEOUT,
      g_param_spec_uint("handshake-timeout", "Handshake timeout",
                        "Milliseconds a connection may take from accept to publishing", 100, 600000,
                        DEFAULT_HANDSHAKE_TIMEOUT, rw_playing));
  g_object_class_install_property(
      gobject_class, PROP_IDLE_TIMEOUT,
      g_param_spec_uint("idle-timeout", "Idle timeout",
                        "Milliseconds a publisher may send nothing before it is dropped (0: "
                        "never)",
                        0, 3600000, DEFAULT_IDLE_TIMEOUT, rw_playing));
  g_object_class_install_property(
      gobject_class, PROP_MAX_PENDING,
      g_param_spec_uint("max-pending-connections", "Max pending connections",
                        "Connections not publishing (yet) kept at once; the oldest is closed to "
                        "make room",
                        1, 1024, DEFAULT_MAX_PENDING, rw_playing));
  g_object_class_install_property(
      gobject_class, PROP_STATS,
      g_param_spec_boxed("stats", "Statistics",
                         "state, publisher, bytes, messages, bitrate (bit/s), publishes, "
                         "refused, connections",
                         GST_TYPE_STRUCTURE, ro));

  gst_element_class_add_static_pad_template(element_class, &src_template);
  gst_element_class_set_static_metadata(
      element_class, "RTMP server source", "Source/Network",
      "Accepts an RTMP publish (OBS, ffmpeg, rtmp2sink) and outputs it as FLV",
      "costream developers");

  basesrc_class->start = GST_DEBUG_FUNCPTR(gst_rtmp_server_src_start);
  basesrc_class->stop = GST_DEBUG_FUNCPTR(gst_rtmp_server_src_stop);
  basesrc_class->unlock = GST_DEBUG_FUNCPTR(gst_rtmp_server_src_unlock);
  basesrc_class->unlock_stop = GST_DEBUG_FUNCPTR(gst_rtmp_server_src_unlock_stop);
  pushsrc_class->create = GST_DEBUG_FUNCPTR(gst_rtmp_server_src_create);
}

static void gst_rtmp_server_src_init(GstRtmpServerSrc *self) {
  self->priv = new GstRtmpServerSrcPrivate();
  gst_base_src_set_live(GST_BASE_SRC(self), TRUE);
  gst_base_src_set_format(GST_BASE_SRC(self), GST_FORMAT_TIME);
  gst_base_src_set_do_timestamp(GST_BASE_SRC(self), FALSE);
}
