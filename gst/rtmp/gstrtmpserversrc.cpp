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
 * Several elements in one process (rtmpserversrc or rtmpbridge) with the same address and port
 * share one listening socket, and each receives the publishes for its `application` and
 * `stream-key`: point any number of OBS instances at `rtmp://host/live/<key>` and run one
 * element per key. An element without `stream-key` takes any key no other element of its
 * application serves. A publish for a key nobody serves is refused with
 * `NetStream.Publish.BadName` and the connection closed before any media is read; two elements
 * serving the same application and key fail to start, with an error naming both. Keys are
 * compared in constant time and never logged. Elements may start and stop while the others'
 * publishers stream. One publisher per element at a time: a second concurrent publish for the
 * same element is refused. When the publisher
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
 * Who may publish: besides `stream-key`, `publish-auth-url` (an http:// service that gets a JSON
 * POST per publish and allows it with a 2xx answer within `publish-auth-timeout`) and the
 * `authorize-publish` signal (for applications); any refusal, timeout or unreachable service
 * refuses the publish before any media is read (docs/security.md).
 *
 * Limits: `max-message-size`, `max-chunk-size`, `handshake-timeout`, `idle-timeout`,
 * `max-pending-connections` (connections that have not started publishing; the oldest is closed
 * to make room, so a flood of half-open connections cannot lock a publisher out). On a shared
 * port, a connection that has not published yet gets the strictest of the elements' limits (and
 * the sum of their max-pending-connections); once it publishes, its element's.
 *
 * ## Example launch line
 * |[
 * gst-launch-1.0 rtmpserversrc port=1935 stream-key=s3cret ! flvdemux name=d \
 *   d.video ! queue ! h264parse ! avdec_h264 ! videoconvert ! autovideosink \
 *   d.audio ! queue ! aacparse ! avdec_aac ! audioconvert ! autoaudiosink
 * ]| Then point OBS at `rtmp://this-machine/live` with stream key `s3cret`, or
 * `ffmpeg -re -i file.flv -c copy -f flv rtmp://127.0.0.1/live/s3cret`.
 *
 * |[
 * gst-launch-1.0 rtmpserversrc stream-key=alice ! filesink location=alice.flv \
 *   rtmpserversrc stream-key=bob ! filesink location=bob.flv
 * ]| Two publishers on port 1935, `rtmp://host/live/alice` and `rtmp://host/live/bob`.
 */

#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "gstrtmpserversrcprivate.h"

#include "gstflv.h"
#include "netutil.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

GST_DEBUG_CATEGORY(gst_rtmp_server_src_debug);
#define GST_CAT_DEFAULT gst_rtmp_server_src_debug

using costream::rtmp::SessionEvent;
namespace amf0 = costream::rtmp::amf0;
using namespace costream::rtmp::serversrc;

/* A keyframe interval above this posts a warning (a late viewer waits that long for a picture). */
#define MAX_KEYFRAME_INTERVAL (2 * GST_SECOND)

/* Output queue bound: past this the publisher's socket is not read (TCP pushes back). */
#define MAX_QUEUED_BYTES (64u << 20)

static guint signals[N_SIGNALS];

static GstStaticPadTemplate src_template =
    GST_STATIC_PAD_TEMPLATE("src", GST_PAD_SRC, GST_PAD_ALWAYS, GST_STATIC_CAPS("video/x-flv"));

G_DEFINE_TYPE(GstRtmpServerSrc, gst_rtmp_server_src, GST_TYPE_PUSH_SRC);
GST_ELEMENT_REGISTER_DEFINE(rtmpserversrc, "rtmpserversrc", GST_RANK_NONE,
                            GST_TYPE_RTMP_SERVER_SRC);

/* (listener) This round's buffers (media() holds them in `round`) to create(), which is woken
 * once per round: the queue's lock is taken once per round, not once per tag while create() is
 * running. */
void GstRtmpServerSrcPrivate::flush_round(bool wake) {
  Lock lk(lock);
  for (auto *b : round) {
    if (flushing) {
      gst_buffer_unref(b);
      continue;
    }
    queued_bytes += gst_buffer_get_size(b);
    queue.push_back(b);
  }
  round.clear();
  behind.store(queued_bytes > MAX_QUEUED_BYTES, std::memory_order_relaxed);
  if (wake) {
    reads++;
    cond.notify_one();
  }
}

namespace {

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

} // namespace

void GstRtmpServerSrcPrivate::publish_started(const std::string &remote) {
  GST_INFO_OBJECT(self, "%s is publishing", remote.c_str());
  pub = Publish();
  pub.active = true;
  pub.remote = remote;
  pub.started_at = g_get_monotonic_time();
  out.start_publish();
  Lock lk(lock);
  publishing = true;
  publisher = remote;
  publishes++;
  publish_started_at = pub.started_at;
  publish_bytes_start = bytes;
}

/* (listener) The first media of a publish announces it, with the metadata when that came first. */
static void post_start(GstRtmpServerSrc *self, const amf0::Value *metadata) {
  auto *priv = self->priv;
  if (priv->pub.announced)
    return;
  priv->pub.announced = true;
  const std::string app = settings_of(self).application;
  GstStructure *meta = metadata ? costream::rtmp::metadata_structure(*metadata)
                                : gst_structure_new_empty("metadata");
  GstStructure *s = gst_structure_new("rtmp-publish-start", "remote-address", G_TYPE_STRING,
                                      priv->pub.remote.c_str(), "application", G_TYPE_STRING,
                                      app.c_str(), "metadata", GST_TYPE_STRUCTURE, meta, nullptr);
  gst_structure_free(meta);
  gst_element_post_message(GST_ELEMENT(self), gst_message_new_element(GST_OBJECT(self), s));
}

void GstRtmpServerSrcPrivate::publish_stopped(const std::string &reason, uint64_t sent) {
  if (!pub.active)
    return;
  const GstClockTime duration = (g_get_monotonic_time() - pub.started_at) * GST_USECOND;
  GST_INFO_OBJECT(
      self, "publisher %s stopped: %s (%" G_GUINT64_FORMAT " bytes, %" GST_TIME_FORMAT ")",
      pub.remote.c_str(), reason.c_str(), static_cast<guint64>(sent), GST_TIME_ARGS(duration));
  if (pub.announced)
    gst_element_post_message(
        GST_ELEMENT(self),
        gst_message_new_element(GST_OBJECT(self),
                                gst_structure_new("rtmp-publish-stop", "reason", G_TYPE_STRING,
                                                  reason.c_str(), "bytes", G_TYPE_UINT64,
                                                  static_cast<guint64>(sent), "duration",
                                                  G_TYPE_UINT64, duration, nullptr)));
  pub = Publish();
  out.end_publish();
  const bool end = settings_of(self).eos_on_disconnect;
  flush_round(false); /* (before the EOS) */
  Lock lk(lock);
  publishing = false;
  publisher.clear();
  if (end) {
    eos = true;
    cond.notify_all();
  }
}

void GstRtmpServerSrcPrivate::count(uint64_t conns, uint64_t refusals, uint64_t n, uint64_t msgs) {
  Lock lk(lock);
  connections += conns;
  refused += refusals;
  bytes += n;
  messages += msgs;
}

/* (listener) The interval between the last two keyframes: in the stats, and a warning once when
 * it is long enough that a late viewer waits for a picture. */
void GstRtmpServerSrcPrivate::keyframe_interval_measured(GstClockTime interval) {
  {
    Lock lk(lock);
    keyframe_interval = interval;
  }
  if (interval > MAX_KEYFRAME_INTERVAL && !gop_warned) {
    gop_warned = true;
    GST_ELEMENT_WARNING(
        self, STREAM, FORMAT,
        ("The publisher sends a keyframe only every %.1f s: a viewer who joins late (a new "
         "WebRTC viewer, a player after a loss) sees no picture until the next one. In OBS set "
         "Settings > Output > Keyframe Interval to 1 or 2 s (its \"0 s (auto)\" default is 250 "
         "frames, about 8 s at 30 fps).",
         static_cast<double>(interval) / GST_SECOND),
        ("keyframe interval %" GST_TIME_FORMAT, GST_TIME_ARGS(interval)));
  }
}

void GstRtmpServerSrcPrivate::media(SessionEvent &e) {
  if (!pub.active)
    return;
  post_start(self, e.kind == SessionEvent::Metadata ? &e.value : nullptr);
  costream::rtmp::FlvOutput::Notes notes;
  items.clear();
  out.message(
      e, [this] { return running_time_now(self); }, &items, &notes);
  if (notes.bframes && !bframes_warned) {
    bframes_warned = true;
    GST_ELEMENT_WARNING(self, STREAM, FORMAT,
                        ("The publisher sends H.264 with B-frames: WebRTC players stutter on "
                         "them. In OBS set the x264 option \"bframes=0\" (or B-frames to 0)."),
                        ("non-zero composition time in a video tag"));
  }
  if (notes.keyframe_interval)
    keyframe_interval_measured(notes.keyframe_interval);
  for (auto &item : items) {
    GstBuffer *b = costream::rtmp::make_buffer(std::move(item.bytes), item.pts);
    if (item.header)
      GST_BUFFER_FLAG_SET(b, GST_BUFFER_FLAG_HEADER);
    if (item.discont)
      GST_BUFFER_FLAG_SET(b, GST_BUFFER_FLAG_DISCONT);
    if (item.delta)
      GST_BUFFER_FLAG_SET(b, GST_BUFFER_FLAG_DELTA_UNIT);
    round.push_back(b); /* queued by flush_round() */
  }
}

static gboolean gst_rtmp_server_src_start(GstBaseSrc *src) {
  auto *self = GST_RTMP_SERVER_SRC(src);
  auto *priv = self->priv;
  const Settings s = settings_of(self);
  std::string error;
  priv->certificate = s.tls_certificate;
  if (!priv->certificate && !s.tls_cert_file.empty()) {
    priv->certificate = costream::rtmp::load_certificate(s.tls_cert_file, s.tls_key_file, &error);
    if (!priv->certificate) {
      GST_ELEMENT_ERROR(self, RESOURCE, OPEN_READ, ("%s", error.c_str()), (nullptr));
      return FALSE;
    }
  } else if (!priv->certificate && !s.tls_key_file.empty()) {
    GST_ELEMENT_ERROR(self, RESOURCE, SETTINGS,
                      ("tls-key-file is set without tls-cert-file: set both for RTMPS."),
                      (nullptr));
    return FALSE;
  }
  if (!costream::rtmp::PublishAuthorizer::check_url(s.auth_url, &error)) {
    GST_ELEMENT_ERROR(self, RESOURCE, SETTINGS, ("publish-auth-url: %s.", error.c_str()),
                      (nullptr));
    return FALSE;
  }
  auto listener = costream::rtmp::Listener::acquire(s.address, s.port, &error);
  if (!listener) {
    GST_ELEMENT_ERROR(self, RESOURCE, OPEN_READ, ("%s", error.c_str()), (nullptr));
    return FALSE;
  }
  /* Publishes wait for a decision when there is a service or a handler (connected before
   * start); the authorizer's thread decides, never the listener's. */
  const bool handler =
      g_signal_has_handler_pending(self, signals[SIGNAL_AUTHORIZE_PUBLISH], 0, FALSE);
  if (!s.auth_url.empty() || handler) {
    costream::rtmp::PublishAuthorizer::Config ac;
    gchar *path = gst_object_get_path_string(GST_OBJECT(self));
    ac.element = path;
    g_free(path);
    ac.url = s.auth_url;
    ac.timeout_ms = s.auth_timeout;
    if (handler)
      ac.decide = [self](const costream::rtmp::AuthRequest &r) {
        gboolean allowed = FALSE;
        g_signal_emit(self, signals[SIGNAL_AUTHORIZE_PUBLISH], 0, r.application.c_str(),
                      r.stream_key.c_str(), r.remote.c_str(), r.tc_url.c_str(), r.flash_ver.c_str(),
                      &allowed);
        return allowed ? 1 : 0;
      };
    priv->authorizer = std::make_unique<costream::rtmp::PublishAuthorizer>(
        ac, [listener](uint64_t ticket, bool allowed, const std::string &why) {
          listener->authorized(ticket, allowed, why);
        });
  }
  priv->pub = Publish();
  priv->out.reset();
  priv->bframes_warned = priv->gop_warned = false;
  {
    Lock lk(priv->lock);
    priv->flushing = false;
    priv->eos = false;
    priv->gap_sent = false;
    priv->keyframe_interval = 0;
    priv->behind.store(false);
    priv->bytes = priv->messages = priv->publishes = priv->refused = priv->connections =
        priv->reads = 0;
  }
  if (!listener->attach(priv, point_config(self), &error)) {
    GST_ELEMENT_ERROR(self, RESOURCE, BUSY,
                      ("This element cannot share port %u: %s.", listener->port(), error.c_str()),
                      (nullptr));
    priv->authorizer.reset();
    return FALSE;
  }
  {
    costream::ObjectLock lk(self);
    priv->bound_port = listener->port();
  }
  GST_INFO_OBJECT(self, "serving application \"%s\" on port %u (%s, %s)", s.application.c_str(),
                  listener->port(), s.stream_key.empty() ? "any key" : "key=***",
                  priv->certificate ? "RTMPS" : "RTMP");
  g_object_notify(G_OBJECT(self), "bound-port");
  priv->listener = std::move(listener);
  return TRUE;
}

static gboolean gst_rtmp_server_src_stop(GstBaseSrc *src) {
  auto *self = GST_RTMP_SERVER_SRC(src);
  auto *priv = self->priv;
  if (priv->listener) {
    priv->listener->detach(priv); /* ends a publish in progress */
    priv->authorizer.reset();     /* (after: no more authorize() calls) */
    priv->listener.reset();
  }
  for (auto *b : priv->round) /* (detached: no listener call can be running) */
    gst_buffer_unref(b);
  priv->round.clear();
  priv->certificate.reset();
  Lock lk(priv->lock);
  for (auto *b : priv->queue)
    gst_buffer_unref(b);
  priv->queue.clear();
  priv->queued_bytes = 0;
  priv->behind.store(false);
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

/* (streaming thread) Nothing published yet: a GAP, so that the sinks downstream preroll now.
 * Otherwise a sink waiting for its first buffer holds the whole pipeline in PAUSED (GstBin
 * completes PLAYING only when every sink has prerolled), and with several rtmpserversrc in one
 * pipeline the publishers who did come would not flow until every element had one. */
static void announce_gap(GstRtmpServerSrc *self) {
  GstPad *pad = GST_BASE_SRC_PAD(self);
  GstSegment segment;
  {
    costream::ObjectLock lk(self);
    segment = GST_BASE_SRC(self)->segment;
  }
  gst_pad_push_event(pad, gst_event_new_segment(&segment)); /* basesrc sends it with buffers */
  gst_pad_push_event(pad, gst_event_new_gap(running_time_now(self), GST_CLOCK_TIME_NONE));
}

static GstFlowReturn gst_rtmp_server_src_create(GstPushSrc *src, GstBuffer **buf) {
  auto *self = GST_RTMP_SERVER_SRC(src);
  auto *priv = self->priv;
  Lock lk(priv->lock);
  if (!priv->gap_sent) {
    priv->gap_sent = true;
    if (priv->queue.empty() && !priv->flushing) {
      lk.unlock();
      announce_gap(self);
      lk.lock();
    }
  }
  priv->cond.wait(lk, [priv] { return priv->flushing || !priv->queue.empty() || priv->eos; });
  if (priv->flushing)
    return GST_FLOW_FLUSHING;
  if (priv->queue.empty())
    return GST_FLOW_EOS;
  /* One buffer per call; the next calls take the rest of the round without waiting (woken once
   * per round: see round_done). */
  *buf = priv->queue.front();
  priv->queue.pop_front();
  priv->queued_bytes -= gst_buffer_get_size(*buf);
  priv->behind.store(priv->queued_bytes > MAX_QUEUED_BYTES, std::memory_order_relaxed);
  return GST_FLOW_OK;
}

/* Live, and late by up to the read interval: a message waits in its socket until the next read
 * (then up to one interval after its running time, which came from the first message's read). */
static gboolean gst_rtmp_server_src_query(GstBaseSrc *src, GstQuery *query) {
  if (GST_QUERY_TYPE(query) != GST_QUERY_LATENCY)
    return GST_BASE_SRC_CLASS(gst_rtmp_server_src_parent_class)->query(src, query);
  const GstClockTime latency =
      static_cast<GstClockTime>(settings_of(GST_RTMP_SERVER_SRC(src)).read_interval) * GST_MSECOND;
  gst_query_set_latency(query, TRUE, latency, GST_CLOCK_TIME_NONE);
  return TRUE;
}

static void gst_rtmp_server_src_finalize(GObject *object) {
  auto *self = GST_RTMP_SERVER_SRC(object);
  delete self->priv;
  self->priv = nullptr;
  G_OBJECT_CLASS(gst_rtmp_server_src_parent_class)->finalize(object);
}

static void gst_rtmp_server_src_class_init(GstRtmpServerSrcClass *klass) {
  auto *gobject_class = G_OBJECT_CLASS(klass);
  auto *element_class = GST_ELEMENT_CLASS(klass);
  auto *basesrc_class = GST_BASE_SRC_CLASS(klass);
  auto *pushsrc_class = GST_PUSH_SRC_CLASS(klass);

  GST_DEBUG_CATEGORY_INIT(gst_rtmp_server_src_debug, "rtmpserversrc", 0, "costream RTMP server");

  gobject_class->finalize = gst_rtmp_server_src_finalize;

  gst_rtmp_server_src_install_properties(klass, signals);

  gst_element_class_add_static_pad_template(element_class, &src_template);
  gst_element_class_set_static_metadata(
      element_class, "RTMP server source", "Source/Network",
      "Accepts an RTMP publish (OBS, ffmpeg, rtmp2sink) and outputs it as FLV",
      "costream developers");

  basesrc_class->start = GST_DEBUG_FUNCPTR(gst_rtmp_server_src_start);
  basesrc_class->stop = GST_DEBUG_FUNCPTR(gst_rtmp_server_src_stop);
  basesrc_class->unlock = GST_DEBUG_FUNCPTR(gst_rtmp_server_src_unlock);
  basesrc_class->unlock_stop = GST_DEBUG_FUNCPTR(gst_rtmp_server_src_unlock_stop);
  basesrc_class->query = GST_DEBUG_FUNCPTR(gst_rtmp_server_src_query);
  pushsrc_class->create = GST_DEBUG_FUNCPTR(gst_rtmp_server_src_create);
}

static void gst_rtmp_server_src_init(GstRtmpServerSrc *self) {
  self->priv = new GstRtmpServerSrcPrivate();
  self->priv->self = self;
  gst_base_src_set_live(GST_BASE_SRC(self), TRUE);
  gst_base_src_set_format(GST_BASE_SRC(self), GST_FORMAT_TIME);
  gst_base_src_set_do_timestamp(GST_BASE_SRC(self), FALSE);
}
