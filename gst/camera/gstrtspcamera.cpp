/* costream
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
/**
 * SECTION:element-rtspcamera
 * @title: rtspcamera
 *
 * One IP camera session: the camera's RTSP stream in, its ONVIF audio back channel out. It opens
 * `location` with `rtspsrc` (back channel `onvif`), exposes the camera's H.264 video on the
 * `video` pad (byte-stream access units, SPS/PPS before every key frame) and its audio, decoded,
 * on the `audio` pad, and sends what arrives on the `backchannel` sink pad (raw audio) to the
 * camera's speaker: resampled and encoded to the codec and rate the camera's SDP offers for its
 * `sendonly` track (PCMA, PCMU, Opus, AAC or L16), payloaded and sent over the same RTSP session.
 *
 * A camera without a back channel: rtspcamera connects again without asking for one, warns once
 * naming the camera, and discards (and counts) what arrives on `backchannel`. A camera that goes
 * away (an error, the end of its stream, or no data for `timeout` ms): rtspcamera posts
 * `rtspcamera-lost`, tries again after `reconnect-delay` ms, doubling up to
 * `max-reconnect-delay`, and posts `rtspcamera-connected` when data flows again; the pads stay and
 * the rest of the pipeline keeps running. The element is live: it never prerolls.
 *
 * Credentials go in the URL (`rtsp://user:pass@host/path`) or in `user-id`/`user-pw`; they are
 * handed to rtspsrc apart from the address, and never appear in logs, messages or `stats`
 * (`location` reads back redacted).
 *
 * Bus messages (element messages):
 * - `rtspcamera-connected`: `location` (redacted), `video-codec`, `audio-codec`,
 *   `backchannel-codec` (`none` without one), `connects`, `outage` (ns without data before this
 *   connection, 0 for the first).
 * - `rtspcamera-lost`: `location`, `reason`, `retry-in` (ns), `losses`.
 *
 * ## Example launch line
 * |[
 * gst-launch-1.0 rtspcamera name=cam location=rtsp://admin:secret@192.168.1.20/stream1 \
 *   cam.video ! avdec_h264 ! autovideosink  cam.audio ! audioconvert ! autoaudiosink \
 *   backchannelmixer name=m ! cam.backchannel \
 *   audiotestsrc is-live=true freq=440 ! m.  pulsesrc ! m.
 * ]| Watches and hears the camera while a tone and a microphone talk through its speaker.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "gstrtspcamera.h"

#include "../common/objectlock.h"
#include "cameracodecs.h"
#include "rtspsrcbackchannel.h"
#include "rtspurl.h"

#include <gst/app/gstappsink.h>
#include <gst/app/gstappsrc.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

GST_DEBUG_CATEGORY_STATIC(gst_rtsp_camera_debug);
#define GST_CAT_DEFAULT gst_rtsp_camera_debug

/* Lock order: the object lock (settings) and Private::lock are never held together, and neither
 * is held while a state changes, an element is added or removed, a buffer or event is pushed or a
 * message is posted. */

enum Transport { TRANSPORT_TCP, TRANSPORT_UDP, TRANSPORT_AUTO };

#define DEFAULT_LOCATION nullptr
#define DEFAULT_TRANSPORT TRANSPORT_TCP
#define DEFAULT_LATENCY 200
#define DEFAULT_TIMEOUT 5000
#define DEFAULT_RECONNECT_DELAY 1000
#define DEFAULT_MAX_RECONNECT_DELAY 30000

enum {
  PROP_0,
  PROP_LOCATION,
  PROP_USER_ID,
  PROP_USER_PW,
  PROP_TRANSPORT,
  PROP_LATENCY,
  PROP_TIMEOUT,
  PROP_RECONNECT_DELAY,
  PROP_MAX_RECONNECT_DELAY,
  PROP_STATS,
};

static GstStaticPadTemplate video_template =
    GST_STATIC_PAD_TEMPLATE("video", GST_PAD_SRC, GST_PAD_ALWAYS,
                            GST_STATIC_CAPS("video/x-h264, stream-format = (string) byte-stream, "
                                            "alignment = (string) au"));
static GstStaticPadTemplate audio_template =
    GST_STATIC_PAD_TEMPLATE("audio", GST_PAD_SRC, GST_PAD_ALWAYS, GST_STATIC_CAPS("audio/x-raw"));
static GstStaticPadTemplate backchannel_template =
    GST_STATIC_PAD_TEMPLATE("backchannel", GST_PAD_SINK, GST_PAD_ALWAYS,
                            GST_STATIC_CAPS("audio/x-raw, layout = (string) interleaved"));

namespace {

struct Settings {
  std::string location;
  std::string user_id, user_pw;
  int transport = DEFAULT_TRANSPORT;
  guint latency = DEFAULT_LATENCY;
  guint timeout = DEFAULT_TIMEOUT;
  guint reconnect_delay = DEFAULT_RECONNECT_DELAY;
  guint max_reconnect_delay = DEFAULT_MAX_RECONNECT_DELAY;
};

/* One RTSP session to the camera and the elements made for it; replaced whole on reconnection. */
struct Connection {
  GstElement *rtspsrc = nullptr;
  std::vector<GstElement *> elements; /* everything else made for this session */
  bool described = false;             /* rtspsrc offered us a stream of the camera's SDP */
  gint64 first_data = 0;              /* monotonic µs; 0: no data yet */
  unsigned expected_pads = 0;         /* the streams rtspsrc will make a pad for */
  unsigned pads = 0;                  /* the pads it made */
  bool streaming = false;             /* the connection is announced (see post_connected()) */
  bool ended = false;                 /* lost: the supervisor will tear it down */
  std::string video_codec = "none", audio_codec = "none", backchannel_codec = "none";
  bool video_used = false, audio_used = false;
  /* The back channel, when the camera offers one we can encode. */
  GstElement *appsrc = nullptr;
  GstElement *appsink = nullptr;
  guint backchannel_stream = 0;
};

enum class Feed { Video, Audio };

} // namespace

struct GstRtspCameraPrivate {
  Settings settings; /* object lock */

  GstPad *video = nullptr, *audio = nullptr, *backchannel = nullptr;

  std::mutex lock;
  std::condition_variable wake;
  /* One per src pad, held while its target is set, and while an event is pushed on it without
   * a target: a camera stream starting on a pad never interleaves with those events. (One per
   * pad: a sink prerolling on a GAP holds its pad's push until the other pad's sink prerolled.) */
  std::mutex video_lock, audio_lock;
  std::mutex &pad_lock(GstPad *pad) { return pad == video ? video_lock : audio_lock; }
  Connection conn;                     /* lock */
  GstCaps *backchannel_caps = nullptr; /* lock: the caps on the backchannel pad */
  bool stop = false;                   /* lock */
  bool lost = false;                   /* lock: the current connection is over */
  bool no_sdp = false;                 /* lock: it failed as a camera without a back channel does */
  std::string lost_reason;             /* lock */
  std::string state = "stopped";       /* lock */
  gint64 lost_at = 0;        /* lock: monotonic µs when data stopped (0: never streamed) */
  gint64 playing_since = 0;  /* lock */
  bool playing = false;      /* lock */
  bool gaps_pending = false; /* lock: announce_gaps() is due (set on PAUSED->PLAYING) */
  bool warned_no_backchannel = false;    /* lock */
  bool warned_backchannel_codec = false; /* lock */
  guint64 connects = 0, losses = 0;      /* lock */
  std::thread supervisor;
  std::vector<std::thread> gap_threads; /* lock (to add); joined when the supervisor stops */

  std::atomic<gint64> last_data{0};
  std::atomic<bool> eos_requested{false};
  std::atomic<guint64> video_buffers{0}, video_bytes{0}, audio_buffers{0}, audio_bytes{0};
  std::atomic<guint64> unlinked_drops{0};
  std::atomic<guint64> backchannel_in{0}, backchannel_dropped{0};
  std::atomic<guint64> backchannel_packets{0}, backchannel_bytes{0};
};

struct _GstRtspCamera {
  GstBin parent;
  GstRtspCameraPrivate *priv;
};

G_DEFINE_TYPE(GstRtspCamera, gst_rtsp_camera, GST_TYPE_BIN);
GST_ELEMENT_REGISTER_DEFINE_WITH_CODE(rtspcamera, "rtspcamera", GST_RANK_NONE, GST_TYPE_RTSP_CAMERA,
                                      GST_DEBUG_CATEGORY_INIT(gst_rtsp_camera_debug, "rtspcamera",
                                                              0, "RTSP/ONVIF camera session"));

static GType transport_get_type() {
  static GType type = 0;
  if (g_once_init_enter(&type)) {
    static const GEnumValue values[] = {
        {TRANSPORT_TCP, "RTP interleaved in the RTSP connection (one TCP connection, through NAT)",
         "tcp"},
        {TRANSPORT_UDP, "RTP over UDP", "udp"},
        {TRANSPORT_AUTO, "rtspsrc's default: UDP, then TCP when nothing arrives", "auto"},
        {0, nullptr, nullptr}};
    g_once_init_leave(&type, g_enum_register_static("GstRtspCameraTransport", values));
  }
  return type;
}

static std::string redacted_location(GstRtspCamera *self) {
  return costream::redact_url(costream::locked_copy(self, self->priv->settings.location));
}

/* ---- elements made for a connection ---- */

/* Makes an element of `factory`; on a missing factory, a warning that names it and what to
 * install, and nullptr. */
static GstElement *make_element(GstRtspCamera *self, const costream::ElementSpec &spec) {
  GstElement *e = gst_element_factory_make(spec.factory.c_str(), nullptr);
  if (!e) {
    GST_ELEMENT_WARNING(self, CORE, MISSING_PLUGIN,
                        ("The GStreamer element '%s' is missing (gst-plugins-base/good/bad or "
                         "gst-libav): that stream of the camera is not used",
                         spec.factory.c_str()),
                        (nullptr));
    return nullptr;
  }
  for (const auto &prop : spec.properties)
    gst_util_set_object_arg(G_OBJECT(e), prop.first.c_str(), prop.second.c_str());
  return e;
}

/* Internal sinks neither hold the pipeline's preroll nor count for its EOS. */
static void make_internal_sink(GstElement *sink) {
  g_object_set(sink, "sync", FALSE, "async", FALSE, nullptr);
  GST_OBJECT_FLAG_UNSET(sink, GST_ELEMENT_FLAG_SINK);
}

/* Adds `chain` to the bin linked in order, each in the bin's state; false (and nothing added)
 * when it cannot be linked. */
static bool add_chain(GstRtspCamera *self, const std::vector<GstElement *> &chain) {
  for (GstElement *e : chain)
    gst_bin_add(GST_BIN(self), GST_ELEMENT(gst_object_ref(e)));
  for (size_t i = 1; i < chain.size(); i++) {
    if (!gst_element_link(chain[i - 1], chain[i])) {
      GST_WARNING_OBJECT(self, "cannot link %s to %s", GST_OBJECT_NAME(chain[i - 1]),
                         GST_OBJECT_NAME(chain[i]));
      for (GstElement *e : chain) {
        gst_element_set_state(e, GST_STATE_NULL);
        gst_bin_remove(GST_BIN(self), e);
      }
      return false;
    }
  }
  for (auto it = chain.rbegin(); it != chain.rend(); ++it)
    gst_element_sync_state_with_parent(*it);
  return true;
}

/* Keeps the connection's elements (one reference each) when the connection is still `rtspsrc`'s;
 * else the caller's elements are stale and are taken down. */
static bool keep_elements(GstRtspCamera *self, GstElement *rtspsrc,
                          const std::vector<GstElement *> &chain) {
  auto *p = self->priv;
  {
    std::lock_guard<std::mutex> lk(p->lock);
    if (p->conn.rtspsrc == rtspsrc && !p->stop) {
      p->conn.elements.insert(p->conn.elements.end(), chain.begin(), chain.end());
      return true;
    }
  }
  for (GstElement *e : chain) {
    gst_element_set_state(e, GST_STATE_NULL);
    gst_bin_remove(GST_BIN(self), e);
    gst_object_unref(e);
  }
  return false;
}

static void mark_lost(GstRtspCamera *self, GstElement *rtspsrc, const std::string &reason,
                      bool no_sdp = false) {
  auto *p = self->priv;
  std::lock_guard<std::mutex> lk(p->lock);
  if (rtspsrc && p->conn.rtspsrc != rtspsrc)
    return;
  if (p->lost || p->stop)
    return;
  p->lost = true;
  p->no_sdp = no_sdp;
  p->lost_reason = costream::redact_url(reason);
  p->conn.ended = true;
  p->wake.notify_all();
}

/* ---- data from the camera ---- */

struct FeedProbe {
  GstRtspCamera *self;
  GstElement *rtspsrc; /* not a reference: only compared */
  Feed feed;
};

static void post_connected(GstRtspCamera *self) {
  auto *p = self->priv;
  GstStructure *s;
  {
    std::unique_lock<std::mutex> lk(p->lock);
    /* Announced once every stream has its pad, or a second after the first data (a stream the
     * camera never sends, say): the message then names every codec. */
    const gint64 now = g_get_monotonic_time();
    if (p->conn.streaming || p->conn.ended || !p->conn.first_data ||
        (p->conn.pads < p->conn.expected_pads && now - p->conn.first_data < G_USEC_PER_SEC))
      return;
    p->conn.streaming = true;
    p->connects++;
    p->state = "streaming";
    const guint64 outage = p->lost_at ? (now - p->lost_at) * GST_USECOND : 0;
    p->lost_at = 0;
    s = gst_structure_new("rtspcamera-connected", "video-codec", G_TYPE_STRING,
                          p->conn.video_codec.c_str(), "audio-codec", G_TYPE_STRING,
                          p->conn.audio_codec.c_str(), "backchannel-codec", G_TYPE_STRING,
                          p->conn.backchannel_codec.c_str(), "connects", G_TYPE_UINT64, p->connects,
                          "outage", G_TYPE_UINT64, outage, nullptr);
  }
  const std::string where = redacted_location(self);
  gst_structure_set(s, "location", G_TYPE_STRING, where.c_str(), nullptr);
  GST_INFO_OBJECT(self, "camera %s streaming", where.c_str());
  gst_element_post_message(GST_ELEMENT(self), gst_message_new_element(GST_OBJECT(self), s));

  bool warn = false;
  {
    std::lock_guard<std::mutex> lk(p->lock);
    if (p->conn.backchannel_codec == "none" && !p->warned_no_backchannel) {
      p->warned_no_backchannel = true;
      warn = true;
    }
  }
  if (warn)
    GST_ELEMENT_WARNING(self, STREAM, FORMAT,
                        ("The camera at %s offers no audio back channel that rtspcamera can use: "
                         "what arrives on the backchannel pad is discarded",
                         where.c_str()),
                        (nullptr));
}

static GstPadProbeReturn on_camera_data(GstPad *pad, GstPadProbeInfo *info, gpointer data) {
  auto *fp = static_cast<FeedProbe *>(data);
  GstRtspCamera *self = fp->self;
  auto *p = self->priv;
  GstPad *ghost = fp->feed == Feed::Video ? p->video : p->audio;
  if (info->type & GST_PAD_PROBE_TYPE_BUFFER) {
    GstBuffer *buf = GST_PAD_PROBE_INFO_BUFFER(info);
    p->last_data.store(g_get_monotonic_time());
    auto &count = fp->feed == Feed::Video ? p->video_buffers : p->audio_buffers;
    auto &bytes = fp->feed == Feed::Video ? p->video_bytes : p->audio_bytes;
    count++;
    bytes += gst_buffer_get_size(buf);
    bool announce = false;
    {
      std::lock_guard<std::mutex> lk(p->lock);
      if (p->conn.rtspsrc == fp->rtspsrc && !p->conn.first_data) {
        p->conn.first_data = g_get_monotonic_time();
        announce = true;
      }
    }
    if (announce)
      post_connected(self);
    /* Nobody downstream of this pad: the camera's other stream must not stop because of it. */
    if (!gst_pad_is_linked(ghost)) {
      p->unlinked_drops++;
      return GST_PAD_PROBE_DROP;
    }
    return GST_PAD_PROBE_OK;
  }
  GstEvent *ev = GST_PAD_PROBE_INFO_EVENT(info);
  if (GST_EVENT_TYPE(ev) == GST_EVENT_EOS && !p->eos_requested.load()) {
    GST_INFO_OBJECT(self, "the camera ended its %s stream",
                    fp->feed == Feed::Video ? "video" : "audio");
    mark_lost(self, fp->rtspsrc, "the camera ended the stream");
    return GST_PAD_PROBE_DROP;
  }
  (void)pad;
  return GST_PAD_PROBE_OK;
}

static void free_feed_probe(gpointer data) {
  delete static_cast<FeedProbe *>(data);
}

static costream::RtpStreamInfo stream_info(const GstStructure *s) {
  costream::RtpStreamInfo info;
  if (const char *media = gst_structure_get_string(s, "media"))
    info.media = media;
  if (const char *enc = gst_structure_get_string(s, "encoding-name"))
    info.encoding_name = enc;
  gst_structure_get_int(s, "clock-rate", &info.clock_rate);
  gst_structure_get_int(s, "payload", &info.payload);
  if (const char *params = gst_structure_get_string(s, "encoding-params"))
    info.channels = atoi(params);
  return info;
}

static void discard_pad(GstRtspCamera *self, GstElement *rtspsrc, GstPad *pad) {
  GstElement *sink = gst_element_factory_make("fakesink", nullptr);
  make_internal_sink(sink);
  if (!add_chain(self, {sink})) {
    gst_object_unref(sink);
    return;
  }
  GstPad *sinkpad = gst_element_get_static_pad(sink, "sink");
  gst_pad_link(pad, sinkpad);
  gst_object_unref(sinkpad);
  keep_elements(self, rtspsrc, {sink});
}

static void on_pad_added(GstElement *rtspsrc, GstPad *pad, gpointer data) {
  auto *self = GST_RTSP_CAMERA(data);
  auto *p = self->priv;
  if (GST_PAD_DIRECTION(pad) != GST_PAD_SRC)
    return;
  GstCaps *caps = gst_pad_get_current_caps(pad);
  if (!caps)
    caps = gst_pad_query_caps(pad, nullptr);
  costream::RtpStreamInfo info;
  if (caps && !gst_caps_is_empty(caps))
    info = stream_info(gst_caps_get_structure(caps, 0));
  gst_clear_caps(&caps);

  const costream::ReceivePlan plan = costream::plan_receive(info);
  const bool video = info.media == "video";
  bool taken;
  {
    std::lock_guard<std::mutex> lk(p->lock);
    if (p->conn.rtspsrc != rtspsrc || p->stop)
      return;
    p->conn.pads++;
    bool &used = video ? p->conn.video_used : p->conn.audio_used;
    taken = used || !plan.supported || (info.media != "video" && info.media != "audio");
    if (!taken) {
      used = true;
      (video ? p->conn.video_codec : p->conn.audio_codec) = plan.codec;
    }
  }
  if (taken) {
    GST_INFO_OBJECT(self, "camera stream %s %s not exposed (%s)", info.media.c_str(),
                    info.encoding_name.c_str(), plan.supported ? "one per kind" : "not supported");
    discard_pad(self, rtspsrc, pad);
    return;
  }

  std::vector<GstElement *> chain;
  bool ok = true;
  for (const auto &spec : plan.chain) {
    GstElement *e = make_element(self, spec);
    if (!e) {
      ok = false;
      break;
    }
    chain.push_back(GST_ELEMENT(gst_object_ref_sink(e)));
  }
  if (ok && !plan.output_caps.empty()) {
    GstElement *filter = gst_element_factory_make("capsfilter", nullptr);
    GstCaps *out = gst_caps_from_string(plan.output_caps.c_str());
    g_object_set(filter, "caps", out, nullptr);
    gst_caps_unref(out);
    chain.push_back(GST_ELEMENT(gst_object_ref_sink(filter)));
  }
  if (!ok || !add_chain(self, chain)) {
    for (GstElement *e : chain)
      gst_object_unref(e);
    discard_pad(self, rtspsrc, pad);
    return;
  }
  if (!keep_elements(self, rtspsrc, chain))
    return;

  GstPad *first = gst_element_get_static_pad(chain.front(), "sink");
  GstPad *last = gst_element_get_static_pad(chain.back(), "src");
  gst_pad_add_probe(
      last,
      static_cast<GstPadProbeType>(GST_PAD_PROBE_TYPE_BUFFER | GST_PAD_PROBE_TYPE_EVENT_DOWNSTREAM),
      on_camera_data, new FeedProbe{self, rtspsrc, video ? Feed::Video : Feed::Audio},
      free_feed_probe);
  {
    GstPad *ghost = video ? p->video : p->audio;
    std::lock_guard<std::mutex> glk(p->pad_lock(ghost));
    gst_ghost_pad_set_target(GST_GHOST_PAD(ghost), last);
  }
  if (gst_pad_link(pad, first) != GST_PAD_LINK_OK)
    GST_WARNING_OBJECT(self, "cannot link the camera's %s stream", info.media.c_str());
  GST_DEBUG_OBJECT(self, "camera %s: %s", info.media.c_str(), plan.codec.c_str());
  gst_object_unref(first);
  gst_object_unref(last);
}

/* ---- the back channel ---- */

static GstFlowReturn on_backchannel_packet(GstAppSink *appsink, gpointer data) {
  auto *self = GST_RTSP_CAMERA(data);
  auto *p = self->priv;
  GstSample *sample = gst_app_sink_pull_sample(appsink);
  if (!sample)
    return GST_FLOW_EOS;
  GstElement *rtspsrc = nullptr;
  guint id = 0;
  {
    std::lock_guard<std::mutex> lk(p->lock);
    if (p->conn.appsink == GST_ELEMENT(appsink) && p->conn.rtspsrc && !p->conn.ended) {
      rtspsrc = GST_ELEMENT(gst_object_ref(p->conn.rtspsrc));
      id = p->conn.backchannel_stream;
    }
  }
  if (rtspsrc) {
    GstFlowReturn ret = costream::rtspsrc_push_backchannel(rtspsrc, id, sample);
    if (ret == GST_FLOW_OK) {
      p->backchannel_packets++;
      if (GstBuffer *b = gst_sample_get_buffer(sample))
        p->backchannel_bytes += gst_buffer_get_size(b);
    } else {
      GST_LOG_OBJECT(self, "back channel packet not sent: %s", gst_flow_get_name(ret));
    }
    gst_object_unref(rtspsrc);
  }
  gst_sample_unref(sample);
  return GST_FLOW_OK;
}

/* rtspsrc offers each stream of the camera's SDP here, before SETUP. The `sendonly` one is the
 * back channel: the encoder chain for its codec is made now. */
static gboolean on_select_stream(GstElement *rtspsrc, guint num, GstCaps *caps, gpointer data) {
  auto *self = GST_RTSP_CAMERA(data);
  auto *p = self->priv;
  const GstStructure *s = gst_caps_get_structure(caps, 0);
  const bool sendonly = gst_structure_has_field(s, "a-sendonly");
  {
    std::lock_guard<std::mutex> lk(p->lock);
    if (p->conn.rtspsrc != rtspsrc || p->stop)
      return FALSE;
    p->conn.described = true;
    if (!sendonly) {
      p->conn.expected_pads++;
      return TRUE;
    }
    if (p->conn.appsrc)
      return FALSE; /* one back channel */
  }
  const costream::RtpStreamInfo info = stream_info(s);
  const costream::BackchannelPlan plan = costream::plan_backchannel(info);
  const std::string where = redacted_location(self);
  if (!plan.supported) {
    bool warn;
    {
      std::lock_guard<std::mutex> lk(p->lock);
      warn = !p->warned_backchannel_codec;
      p->warned_backchannel_codec = true;
    }
    if (warn)
      GST_ELEMENT_WARNING(self, STREAM, CODEC_NOT_FOUND,
                          ("The camera at %s wants %s/%d on its back channel, which rtspcamera "
                           "cannot encode (PCMA, PCMU, OPUS, MPEG4-GENERIC, L16): what arrives "
                           "on the backchannel pad is discarded",
                           where.c_str(), info.encoding_name.c_str(), info.clock_rate),
                          (nullptr));
    return FALSE;
  }

  std::vector<GstElement *> chain;
  auto add = [&](GstElement *e) {
    if (e)
      chain.push_back(GST_ELEMENT(gst_object_ref_sink(e)));
    return e != nullptr;
  };
  GstElement *appsrc = gst_element_factory_make("appsrc", nullptr);
  bool ok = add(appsrc);
  if (ok) {
    g_object_set(appsrc, "format", GST_FORMAT_TIME, "is-live", TRUE, "do-timestamp", FALSE,
                 "max-time", (guint64)(200 * GST_MSECOND), "max-bytes", (guint64)0, "max-buffers",
                 (guint64)0, nullptr);
    /* A camera slower than the talkers loses the oldest audio, never holds up the mixer. */
    gst_util_set_object_arg(G_OBJECT(appsrc), "leaky-type", "downstream");
    ok = add(gst_element_factory_make("audioconvert", nullptr)) &&
         add(gst_element_factory_make("audioresample", nullptr));
  }
  if (ok) {
    GstElement *filter = gst_element_factory_make("capsfilter", nullptr);
    const char *format = info.encoding_name == "L16" ? "S16BE" : "S16LE";
    GstCaps *raw = gst_caps_new_simple("audio/x-raw", "format", G_TYPE_STRING, format, "rate",
                                       G_TYPE_INT, plan.rate, "channels", G_TYPE_INT, plan.channels,
                                       "layout", G_TYPE_STRING, "interleaved", nullptr);
    g_object_set(filter, "caps", raw, nullptr);
    gst_caps_unref(raw);
    ok = add(filter);
  }
  for (const auto &spec : plan.chain)
    ok = ok && add(make_element(self, spec));
  GstElement *appsink = nullptr;
  if (ok) {
    appsink = gst_element_factory_make("appsink", nullptr);
    make_internal_sink(appsink);
    g_object_set(appsink, "max-buffers", 0u, "drop", FALSE, nullptr);
    GstAppSinkCallbacks callbacks = {};
    callbacks.new_sample = on_backchannel_packet;
    gst_app_sink_set_callbacks(GST_APP_SINK(appsink), &callbacks, self, nullptr);
    ok = add(appsink);
  }
  if (!ok || !add_chain(self, chain)) {
    for (GstElement *e : chain)
      gst_object_unref(e);
    return FALSE;
  }
  if (!keep_elements(self, rtspsrc, chain))
    return FALSE;
  GstCaps *bc_caps = nullptr;
  {
    std::lock_guard<std::mutex> lk(p->lock);
    p->conn.appsrc = GST_ELEMENT(gst_object_ref(appsrc));
    p->conn.appsink = appsink;
    p->conn.backchannel_stream = num;
    p->conn.backchannel_codec = plan.codec;
    if (p->backchannel_caps)
      bc_caps = gst_caps_ref(p->backchannel_caps);
  }
  if (bc_caps) {
    g_object_set(appsrc, "caps", bc_caps, nullptr);
    gst_caps_unref(bc_caps);
  }
  GST_INFO_OBJECT(self, "back channel: stream %u, %s at %d Hz, %d channel(s)", num,
                  plan.codec.c_str(), plan.rate, plan.channels);
  return TRUE;
}

static GstFlowReturn gst_rtsp_camera_backchannel_chain(GstPad *pad, GstObject *parent,
                                                       GstBuffer *buf) {
  auto *self = GST_RTSP_CAMERA(parent);
  auto *p = self->priv;
  p->backchannel_in++;
  GstElement *appsrc = nullptr;
  {
    std::lock_guard<std::mutex> lk(p->lock);
    if (p->conn.appsrc && p->conn.streaming && !p->conn.ended && p->backchannel_caps)
      appsrc = GST_ELEMENT(gst_object_ref(p->conn.appsrc));
  }
  if (!appsrc) {
    p->backchannel_dropped++;
    GST_LOG_OBJECT(pad, "no back channel now: buffer discarded");
    gst_buffer_unref(buf);
    return GST_FLOW_OK;
  }
  GstFlowReturn ret = gst_app_src_push_buffer(GST_APP_SRC(appsrc), buf);
  if (ret != GST_FLOW_OK)
    p->backchannel_dropped++;
  gst_object_unref(appsrc);
  /* The camera's session coming and going is not the talkers' problem. */
  return GST_FLOW_OK;
}

static gboolean gst_rtsp_camera_backchannel_event(GstPad *pad, GstObject *parent, GstEvent *event) {
  auto *self = GST_RTSP_CAMERA(parent);
  auto *p = self->priv;
  if (GST_EVENT_TYPE(event) == GST_EVENT_CAPS) {
    GstCaps *caps;
    gst_event_parse_caps(event, &caps);
    GstElement *appsrc = nullptr;
    {
      std::lock_guard<std::mutex> lk(p->lock);
      gst_caps_replace(&p->backchannel_caps, caps);
      if (p->conn.appsrc)
        appsrc = GST_ELEMENT(gst_object_ref(p->conn.appsrc));
    }
    GST_DEBUG_OBJECT(pad, "back channel caps %" GST_PTR_FORMAT, caps);
    if (appsrc) {
      g_object_set(appsrc, "caps", caps, nullptr);
      gst_object_unref(appsrc);
    }
  }
  /* Nothing goes on from here: the camera's session has its own stream. (The default handler
   * would forward this stream's events out of the video and audio pads.) */
  gst_event_unref(event);
  return TRUE;
}

static gboolean gst_rtsp_camera_backchannel_query(GstPad *pad, GstObject *parent, GstQuery *query) {
  (void)parent;
  switch (GST_QUERY_TYPE(query)) {
  case GST_QUERY_CAPS: {
    GstCaps *filter, *templ = gst_pad_get_pad_template_caps(pad);
    gst_query_parse_caps(query, &filter);
    if (filter) {
      GstCaps *res = gst_caps_intersect_full(filter, templ, GST_CAPS_INTERSECT_FIRST);
      gst_query_set_caps_result(query, res);
      gst_caps_unref(res);
    } else {
      gst_query_set_caps_result(query, templ);
    }
    gst_caps_unref(templ);
    return TRUE;
  }
  case GST_QUERY_ACCEPT_CAPS: {
    GstCaps *caps, *templ = gst_pad_get_pad_template_caps(pad);
    gst_query_parse_accept_caps(query, &caps);
    gst_query_set_accept_caps_result(query, gst_caps_can_intersect(caps, templ));
    gst_caps_unref(templ);
    return TRUE;
  }
  default:
    return FALSE;
  }
}

/* ---- the supervisor: connect, watch, tear down, wait, again ---- */

static bool connect(GstRtspCamera *self, const Settings &s, bool with_backchannel) {
  auto *p = self->priv;
  GstElement *src = gst_element_factory_make("rtspsrc", nullptr);
  if (!src)
    return false;
  const costream::RtspUrl url = costream::split_rtsp_url(s.location);
  const std::string &user = s.user_id.empty() ? url.user : s.user_id;
  const std::string &pw = s.user_pw.empty() ? url.password : s.user_pw;
  g_object_set(src, "location", url.address.c_str(), "latency", s.latency, "tcp-timeout",
               (guint64)s.timeout * 1000, nullptr);
  if (!user.empty())
    g_object_set(src, "user-id", user.c_str(), "user-pw", pw.c_str(), nullptr);
  gst_util_set_object_arg(G_OBJECT(src), "backchannel", with_backchannel ? "onvif" : "none");
  gst_util_set_object_arg(G_OBJECT(src), "protocols",
                          s.transport == TRANSPORT_TCP   ? "tcp"
                          : s.transport == TRANSPORT_UDP ? "udp"
                                                         : "udp+udp-mcast+tcp");
  g_signal_connect(src, "select-stream", G_CALLBACK(on_select_stream), self);
  g_signal_connect(src, "pad-added", G_CALLBACK(on_pad_added), self);
  {
    std::lock_guard<std::mutex> lk(p->lock);
    p->conn = Connection();
    p->conn.rtspsrc = GST_ELEMENT(gst_object_ref(src));
    p->lost = false;
    p->no_sdp = false;
    p->state = "connecting";
  }
  gst_bin_add(GST_BIN(self), src);
  gst_element_sync_state_with_parent(src);
  return true;
}

static void teardown(GstRtspCamera *self) {
  auto *p = self->priv;
  Connection old;
  {
    std::lock_guard<std::mutex> lk(p->lock);
    old = p->conn;
    p->conn = Connection();
  }
  for (GstPad *pad : {p->video, p->audio}) {
    std::lock_guard<std::mutex> glk(p->pad_lock(pad));
    gst_ghost_pad_set_target(GST_GHOST_PAD(pad), nullptr);
  }
  if (old.rtspsrc) {
    gst_element_set_state(old.rtspsrc, GST_STATE_NULL);
    gst_bin_remove(GST_BIN(self), old.rtspsrc);
    gst_object_unref(old.rtspsrc);
  }
  for (GstElement *e : old.elements) {
    gst_element_set_state(e, GST_STATE_NULL);
    gst_bin_remove(GST_BIN(self), e);
    gst_object_unref(e);
  }
  if (old.appsrc)
    gst_object_unref(old.appsrc);
  /* GstBin drops the source flag with its last source child; the element stays a source. */
  GST_OBJECT_FLAG_SET(self, GST_ELEMENT_FLAG_SOURCE);
}

/* Pushes `event` on `pad` when no camera stream is behind it (after stream-start and segment
 * if the pad never streamed); drops it otherwise. */
static void push_without_camera(GstRtspCamera *self, GstPad *pad, GstEvent *event) {
  std::lock_guard<std::mutex> glk(self->priv->pad_lock(pad));
  if (GstPad *target = gst_ghost_pad_get_target(GST_GHOST_PAD(pad))) {
    gst_object_unref(target);
    gst_event_unref(event);
    return;
  }
  if (GstEvent *start = gst_pad_get_sticky_event(pad, GST_EVENT_STREAM_START, 0)) {
    gst_event_unref(start);
  } else {
    g_autofree gchar *id = gst_pad_create_stream_id(pad, GST_ELEMENT(self), GST_PAD_NAME(pad));
    gst_pad_push_event(pad, gst_event_new_stream_start(id));
    /* The caps a G.711 / H.264 camera will have: sticky events go stream-start, caps, segment. */
    GstCaps *caps = gst_caps_from_string(
        pad == self->priv->video
            ? "video/x-h264, stream-format=(string)byte-stream, alignment=(string)au"
            : "audio/x-raw, format=(string)S16LE, layout=(string)interleaved, rate=(int)8000, "
              "channels=(int)1");
    gst_pad_push_event(pad, gst_event_new_caps(caps));
    gst_caps_unref(caps);
    GstSegment segment;
    gst_segment_init(&segment, GST_FORMAT_TIME);
    gst_pad_push_event(pad, gst_event_new_segment(&segment));
  }
  gst_pad_push_event(pad, event);
}

/* EOS on both pads: through rtspsrc for the streams it has, so it follows their data; directly
 * on a pad without a camera stream behind it (after stream-start and segment if it never
 * streamed). */
static void end_stream(GstRtspCamera *self) {
  auto *p = self->priv;
  GstElement *rtspsrc = nullptr;
  {
    std::lock_guard<std::mutex> lk(p->lock);
    if (p->conn.rtspsrc)
      rtspsrc = GST_ELEMENT(gst_object_ref(p->conn.rtspsrc));
  }
  if (rtspsrc) {
    gst_element_send_event(rtspsrc, gst_event_new_eos());
    gst_object_unref(rtspsrc);
  }
  for (GstPad *pad : {p->video, p->audio})
    push_without_camera(self, pad, gst_event_new_eos());
}

/* A pad that has no camera stream now and never streamed gets a GAP, so the sinks downstream
 * preroll: otherwise a sink waiting for its first buffer (a camera away, or one without audio)
 * holds the whole pipeline in PAUSED. */
static void announce_gaps(GstRtspCamera *self) {
  GstClockTime now = GST_CLOCK_TIME_NONE;
  if (GstClock *clock = gst_element_get_clock(GST_ELEMENT(self))) {
    const GstClockTime base = gst_element_get_base_time(GST_ELEMENT(self));
    const GstClockTime t = gst_clock_get_time(clock);
    now = t > base ? t - base : 0;
    gst_object_unref(clock);
  }
  /* One thread per pad: a sink that prerolls on its GAP waits there until the pipeline is
   * PLAYING, which needs the other pad's sink to preroll too. */
  for (GstPad *pad : {self->priv->video, self->priv->audio}) {
    if (GstEvent *start = gst_pad_get_sticky_event(pad, GST_EVENT_STREAM_START, 0)) {
      gst_event_unref(start);
      continue;
    }
    std::lock_guard<std::mutex> lk(self->priv->lock);
    self->priv->gap_threads.emplace_back([self, pad, now] {
      push_without_camera(self, pad, gst_event_new_gap(now, GST_CLOCK_TIME_NONE));
    });
  }
}

/* (supervisor, with `lk` held) The GAPs asked for when the element started playing; false when
 * there were none to send. */
static bool service_gaps(GstRtspCamera *self, std::unique_lock<std::mutex> &lk) {
  auto *p = self->priv;
  if (!p->playing || !p->gaps_pending)
    return false;
  p->gaps_pending = false;
  lk.unlock();
  announce_gaps(self);
  lk.lock();
  return true;
}

static void supervise(GstRtspCamera *self) {
  auto *p = self->priv;
  Settings s = costream::locked_copy(self, p->settings);
  costream::Backoff backoff(s.reconnect_delay, s.max_reconnect_delay);
  bool with_backchannel = true;
  bool in_outage = false;
  while (true) {
    s = costream::locked_copy(self, p->settings);
    if (!connect(self, s, with_backchannel))
      return;
    const gint64 started = g_get_monotonic_time();
    std::string reason;
    bool no_sdp, streamed;
    {
      std::unique_lock<std::mutex> lk(p->lock);
      while (!p->stop && !p->lost && !p->eos_requested) {
        p->wake.wait_for(lk, std::chrono::milliseconds(100));
        service_gaps(self, lk);
        if (p->stop || p->lost || p->eos_requested || !p->playing)
          continue;
        const gint64 now = g_get_monotonic_time();
        const gint64 limit = (gint64)s.timeout * 1000;
        if (p->conn.first_data && !p->conn.streaming) {
          lk.unlock();
          post_connected(self);
          lk.lock();
          if (p->stop || p->lost)
            continue;
        }
        if (p->conn.first_data && now - p->last_data.load() > limit) {
          p->lost = true;
          p->lost_reason = "no data from the camera for " + std::to_string(s.timeout) + " ms";
        } else if (!p->conn.first_data && now - std::max(started, p->playing_since) > limit) {
          p->lost = true;
          p->lost_reason =
              "no data from the camera " + std::to_string(s.timeout) + " ms after connecting";
        }
      }
      if (p->eos_requested && !p->stop) {
        /* Ended: no more reconnections; the session stays until the state goes down. */
        lk.unlock();
        end_stream(self);
        lk.lock();
        p->wake.wait(lk, [p] { return p->stop; });
      }
      if (p->stop) {
        lk.unlock();
        teardown(self);
        return;
      }
      reason = p->lost_reason;
      no_sdp = p->no_sdp && !p->conn.described;
      streamed = p->conn.streaming;
      p->conn.ended = true;
      if (streamed)
        p->lost_at = p->last_data.load();
      p->state = "retrying";
    }
    teardown(self);

    /* A camera without a back channel answers the ONVIF Require header with 551 and no SDP:
     * ask again at once without it (and with it again if that fails the same way). */
    if (no_sdp && !streamed) {
      with_backchannel = !with_backchannel;
      GST_INFO_OBJECT(self, "no SDP: trying %s the back channel",
                      with_backchannel ? "with" : "without");
      if (!with_backchannel)
        continue;
    }
    if (streamed)
      backoff.reset();
    const unsigned delay = backoff.next();
    const std::string where = redacted_location(self);
    if (streamed)
      in_outage = false;
    if (!in_outage) {
      in_outage = true;
      guint64 losses;
      {
        std::lock_guard<std::mutex> lk(p->lock);
        losses = ++p->losses;
      }
      GST_ELEMENT_WARNING(self, RESOURCE, READ,
                          ("Lost the camera at %s (%s); trying again in %u ms", where.c_str(),
                           reason.c_str(), delay),
                          (nullptr));
      gst_element_post_message(
          GST_ELEMENT(self),
          gst_message_new_element(GST_OBJECT(self),
                                  gst_structure_new("rtspcamera-lost", "location", G_TYPE_STRING,
                                                    where.c_str(), "reason", G_TYPE_STRING,
                                                    reason.c_str(), "retry-in", G_TYPE_UINT64,
                                                    (guint64)delay * GST_MSECOND, "losses",
                                                    G_TYPE_UINT64, losses, nullptr)));
    } else {
      GST_INFO_OBJECT(self, "camera %s still away (%s); next try in %u ms", where.c_str(),
                      reason.c_str(), delay);
    }
    std::unique_lock<std::mutex> lk(p->lock);
    const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(delay);
    while (p->wake.wait_until(lk, until, [p] {
      return p->stop || p->eos_requested || (p->playing && p->gaps_pending);
    })) {
      if (!service_gaps(self, lk))
        break;
    }
    if (p->stop)
      return;
    if (p->eos_requested) {
      lk.unlock();
      end_stream(self);
      lk.lock();
      p->wake.wait(lk, [p] { return p->stop; });
      return;
    }
  }
}

static void start_supervisor(GstRtspCamera *self) {
  auto *p = self->priv;
  {
    std::lock_guard<std::mutex> lk(p->lock);
    p->stop = false;
    p->lost = false;
    p->lost_at = 0;
  }
  p->eos_requested = false;
  p->supervisor = std::thread(supervise, self);
}

static void stop_supervisor(GstRtspCamera *self) {
  auto *p = self->priv;
  {
    std::lock_guard<std::mutex> lk(p->lock);
    p->stop = true;
    p->state = "stopped";
    p->wake.notify_all();
  }
  if (p->supervisor.joinable())
    p->supervisor.join();
  std::vector<std::thread> gaps;
  {
    std::lock_guard<std::mutex> lk(p->lock);
    gaps.swap(p->gap_threads);
  }
  for (auto &t : gaps)
    t.join();
  teardown(self); /* when the supervisor returned early */
}

/* ---- GstBin / GstElement ---- */

static bool from_connection(GstRtspCamera *self, GstObject *src, GstElement **rtspsrc) {
  auto *p = self->priv;
  std::lock_guard<std::mutex> lk(p->lock);
  *rtspsrc = p->conn.rtspsrc;
  if (!p->conn.rtspsrc)
    return false;
  if (src == GST_OBJECT(p->conn.rtspsrc) ||
      gst_object_has_as_ancestor(src, GST_OBJECT(p->conn.rtspsrc)))
    return true;
  for (GstElement *e : p->conn.elements)
    if (src == GST_OBJECT(e))
      return true;
  return false;
}

static void gst_rtsp_camera_handle_message(GstBin *bin, GstMessage *msg) {
  auto *self = GST_RTSP_CAMERA(bin);
  switch (GST_MESSAGE_TYPE(msg)) {
  case GST_MESSAGE_ERROR: {
    /* The camera's problems are handled here (reconnection), never the pipeline's error. */
    g_autoptr(GError) err = nullptr;
    g_autofree gchar *debug = nullptr;
    gst_message_parse_error(msg, &err, &debug);
    GstElement *rtspsrc;
    const bool current = from_connection(self, GST_MESSAGE_SRC(msg), &rtspsrc);
    const std::string text = costream::redact_url(err ? err->message : "error");
    GST_DEBUG_OBJECT(self, "from %s: %s (%s)", GST_MESSAGE_SRC_NAME(msg), text.c_str(),
                     costream::redact_url(debug ? debug : "").c_str());
    if (current) {
      const bool no_sdp =
          err && err->domain == GST_RESOURCE_ERROR && err->code == GST_RESOURCE_ERROR_SETTINGS;
      mark_lost(self, rtspsrc, text, no_sdp);
    }
    gst_message_unref(msg);
    return;
  }
  case GST_MESSAGE_EOS:
    /* Internal sinks; the element ends its stream through its pads. */
    gst_message_unref(msg);
    return;
  default:
    break;
  }
  GST_BIN_CLASS(gst_rtsp_camera_parent_class)->handle_message(bin, msg);
}

/* The application ends the stream (gst_element_send_event() holds the pipeline's state lock:
 * pushing from here would deadlock with a live sink completing its state change, so the
 * supervisor does it). */
static gboolean gst_rtsp_camera_send_event(GstElement *element, GstEvent *event) {
  auto *self = GST_RTSP_CAMERA(element);
  auto *p = self->priv;
  if (GST_EVENT_TYPE(event) == GST_EVENT_EOS) {
    gst_event_unref(event);
    std::lock_guard<std::mutex> lk(p->lock);
    if (!p->supervisor.joinable() || p->stop)
      return FALSE;
    p->eos_requested = true;
    p->wake.notify_all();
    return TRUE;
  }
  return GST_ELEMENT_CLASS(gst_rtsp_camera_parent_class)->send_event(element, event);
}

static GstStateChangeReturn gst_rtsp_camera_change_state(GstElement *element,
                                                         GstStateChange transition) {
  auto *self = GST_RTSP_CAMERA(element);
  auto *p = self->priv;
  switch (transition) {
  case GST_STATE_CHANGE_NULL_TO_READY: {
    const std::string location = costream::locked_copy(self, p->settings.location);
    if (!costream::split_rtsp_url(location).valid) {
      GST_ELEMENT_ERROR(self, RESOURCE, NOT_FOUND,
                        ("No camera: set location to the camera's rtsp:// address"),
                        ("location '%s'", costream::redact_url(location).c_str()));
      return GST_STATE_CHANGE_FAILURE;
    }
    GstElementFactory *f = gst_element_factory_find("rtspsrc");
    if (!f) {
      GST_ELEMENT_ERROR(self, CORE, MISSING_PLUGIN,
                        ("rtspcamera needs rtspsrc: install gst-plugins-good (Debian: "
                         "gstreamer1.0-plugins-good)"),
                        (nullptr));
      return GST_STATE_CHANGE_FAILURE;
    }
    gst_object_unref(f);
    break;
  }
  case GST_STATE_CHANGE_PAUSED_TO_PLAYING: {
    std::lock_guard<std::mutex> lk(p->lock);
    p->playing = true;
    p->gaps_pending = true;
    p->wake.notify_all();
    p->playing_since = g_get_monotonic_time();
    p->last_data = p->playing_since;
    break;
  }
  case GST_STATE_CHANGE_PAUSED_TO_READY:
    stop_supervisor(self);
    break;
  default:
    break;
  }

  GstStateChangeReturn ret =
      GST_ELEMENT_CLASS(gst_rtsp_camera_parent_class)->change_state(element, transition);
  if (ret == GST_STATE_CHANGE_FAILURE)
    return ret;

  switch (transition) {
  case GST_STATE_CHANGE_READY_TO_PAUSED:
    start_supervisor(self);
    return GST_STATE_CHANGE_NO_PREROLL;
  case GST_STATE_CHANGE_PLAYING_TO_PAUSED: {
    std::lock_guard<std::mutex> lk(p->lock);
    p->playing = false;
    return GST_STATE_CHANGE_NO_PREROLL;
  }
  default:
    break;
  }
  return ret;
}

static GstStructure *make_stats(GstRtspCamera *self) {
  auto *p = self->priv;
  GstStructure *s;
  {
    std::lock_guard<std::mutex> lk(p->lock);
    s = gst_structure_new("rtspcamera-stats", "state", G_TYPE_STRING, p->state.c_str(),
                          "video-codec", G_TYPE_STRING, p->conn.video_codec.c_str(), "audio-codec",
                          G_TYPE_STRING, p->conn.audio_codec.c_str(), "backchannel-codec",
                          G_TYPE_STRING, p->conn.backchannel_codec.c_str(), "connects",
                          G_TYPE_UINT64, p->connects, "losses", G_TYPE_UINT64, p->losses, nullptr);
  }
  const std::string where = redacted_location(self);
  gst_structure_set(s, "location", G_TYPE_STRING, where.c_str(), "video-buffers", G_TYPE_UINT64,
                    p->video_buffers.load(), "video-bytes", G_TYPE_UINT64, p->video_bytes.load(),
                    "audio-buffers", G_TYPE_UINT64, p->audio_buffers.load(), "audio-bytes",
                    G_TYPE_UINT64, p->audio_bytes.load(), "unlinked-drops", G_TYPE_UINT64,
                    p->unlinked_drops.load(), "backchannel-buffers", G_TYPE_UINT64,
                    p->backchannel_in.load(), "backchannel-dropped", G_TYPE_UINT64,
                    p->backchannel_dropped.load(), "backchannel-packets", G_TYPE_UINT64,
                    p->backchannel_packets.load(), "backchannel-bytes", G_TYPE_UINT64,
                    p->backchannel_bytes.load(), nullptr);
  return s;
}

static void gst_rtsp_camera_set_property(GObject *object, guint prop_id, const GValue *value,
                                         GParamSpec *pspec) {
  auto *self = GST_RTSP_CAMERA(object);
  costream::ObjectLock lk(self);
  Settings &s = self->priv->settings;
  switch (prop_id) {
  case PROP_LOCATION:
    s.location = g_value_get_string(value) ? g_value_get_string(value) : "";
    break;
  case PROP_USER_ID:
    s.user_id = g_value_get_string(value) ? g_value_get_string(value) : "";
    break;
  case PROP_USER_PW:
    s.user_pw = g_value_get_string(value) ? g_value_get_string(value) : "";
    break;
  case PROP_TRANSPORT:
    s.transport = g_value_get_enum(value);
    break;
  case PROP_LATENCY:
    s.latency = g_value_get_uint(value);
    break;
  case PROP_TIMEOUT:
    s.timeout = g_value_get_uint(value);
    break;
  case PROP_RECONNECT_DELAY:
    s.reconnect_delay = g_value_get_uint(value);
    break;
  case PROP_MAX_RECONNECT_DELAY:
    s.max_reconnect_delay = g_value_get_uint(value);
    break;
  default:
    G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec);
  }
}

static void gst_rtsp_camera_get_property(GObject *object, guint prop_id, GValue *value,
                                         GParamSpec *pspec) {
  auto *self = GST_RTSP_CAMERA(object);
  if (prop_id == PROP_STATS) {
    g_value_take_boxed(value, make_stats(self));
    return;
  }
  costream::ObjectLock lk(self);
  const Settings &s = self->priv->settings;
  switch (prop_id) {
  case PROP_LOCATION:
    g_value_set_string(value,
                       s.location.empty() ? nullptr : costream::redact_url(s.location).c_str());
    break;
  case PROP_USER_ID:
    g_value_set_string(value, s.user_id.empty() ? nullptr : s.user_id.c_str());
    break;
  case PROP_TRANSPORT:
    g_value_set_enum(value, s.transport);
    break;
  case PROP_LATENCY:
    g_value_set_uint(value, s.latency);
    break;
  case PROP_TIMEOUT:
    g_value_set_uint(value, s.timeout);
    break;
  case PROP_RECONNECT_DELAY:
    g_value_set_uint(value, s.reconnect_delay);
    break;
  case PROP_MAX_RECONNECT_DELAY:
    g_value_set_uint(value, s.max_reconnect_delay);
    break;
  default:
    G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec);
  }
}

static void gst_rtsp_camera_finalize(GObject *object) {
  auto *self = GST_RTSP_CAMERA(object);
  gst_clear_caps(&self->priv->backchannel_caps);
  delete self->priv;
  G_OBJECT_CLASS(gst_rtsp_camera_parent_class)->finalize(object);
}

static void gst_rtsp_camera_class_init(GstRtspCameraClass *klass) {
  auto *gobject_class = G_OBJECT_CLASS(klass);
  auto *element_class = GST_ELEMENT_CLASS(klass);
  auto *bin_class = GST_BIN_CLASS(klass);
  gobject_class->set_property = gst_rtsp_camera_set_property;
  gobject_class->get_property = gst_rtsp_camera_get_property;
  gobject_class->finalize = gst_rtsp_camera_finalize;
  element_class->change_state = GST_DEBUG_FUNCPTR(gst_rtsp_camera_change_state);
  element_class->send_event = GST_DEBUG_FUNCPTR(gst_rtsp_camera_send_event);
  bin_class->handle_message = GST_DEBUG_FUNCPTR(gst_rtsp_camera_handle_message);

  const auto flags = static_cast<GParamFlags>(G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS);
  /**
   * GstRtspCamera:location:
   *
   * The camera's RTSP address, `rtsp://[user:pass@]host[:port]/path`. Reads back with the user
   * information and query values redacted.
   */
  g_object_class_install_property(
      gobject_class, PROP_LOCATION,
      g_param_spec_string("location", "Location",
                          "The camera's RTSP address, rtsp://[user:pass@]host[:port]/path (reads "
                          "back with credentials redacted)",
                          DEFAULT_LOCATION, flags));
  g_object_class_install_property(
      gobject_class, PROP_USER_ID,
      g_param_spec_string("user-id", "User ID",
                          "User name for the camera (overrides one in location)", nullptr, flags));
  /**
   * GstRtspCamera:user-pw:
   *
   * The camera's password (overrides one in location). Write-only: it never reads back.
   */
  g_object_class_install_property(
      gobject_class, PROP_USER_PW,
      g_param_spec_string("user-pw", "User password",
                          "Password for the camera (overrides one in location; write-only)",
                          nullptr,
                          static_cast<GParamFlags>(G_PARAM_WRITABLE | G_PARAM_STATIC_STRINGS)));
  g_object_class_install_property(
      gobject_class, PROP_TRANSPORT,
      g_param_spec_enum("transport", "Transport",
                        "How RTP travels: tcp (interleaved in the RTSP connection, the default: "
                        "works through NAT and firewalls), udp, or auto (UDP, then TCP)",
                        transport_get_type(), DEFAULT_TRANSPORT, flags));
  g_object_class_install_property(
      gobject_class, PROP_LATENCY,
      g_param_spec_uint("latency", "Latency",
                        "Jitter buffer for the camera's streams, in ms (rtspsrc's own default is "
                        "2000)",
                        0, 10000, DEFAULT_LATENCY, flags));
  g_object_class_install_property(
      gobject_class, PROP_TIMEOUT,
      g_param_spec_uint("timeout", "Timeout",
                        "The camera is lost when no data arrived for this long, in ms (also the "
                        "time a connection attempt may take)",
                        100, 600000, DEFAULT_TIMEOUT, flags));
  g_object_class_install_property(
      gobject_class, PROP_RECONNECT_DELAY,
      g_param_spec_uint("reconnect-delay", "Reconnect delay",
                        "Wait before the first attempt after the camera was lost, in ms; doubled "
                        "on each failed attempt up to max-reconnect-delay",
                        0, 3600000, DEFAULT_RECONNECT_DELAY, flags));
  g_object_class_install_property(
      gobject_class, PROP_MAX_RECONNECT_DELAY,
      g_param_spec_uint("max-reconnect-delay", "Maximum reconnect delay",
                        "Longest wait between attempts to reach the camera, in ms", 0, 3600000,
                        DEFAULT_MAX_RECONNECT_DELAY, flags));
  /**
   * GstRtspCamera:stats:
   *
   * `rtspcamera-stats`: `state` (stopped, connecting, streaming, retrying), `location`
   * (redacted), `video-codec`, `audio-codec`, `backchannel-codec`, `connects`, `losses`,
   * `video-buffers`/`video-bytes`, `audio-buffers`/`audio-bytes` (from the camera),
   * `unlinked-drops` (camera data on a pad nobody linked), `backchannel-buffers` (in),
   * `backchannel-dropped` (while there was no back channel), `backchannel-packets` and
   * `backchannel-bytes` (RTP sent to the camera).
   */
  g_object_class_install_property(
      gobject_class, PROP_STATS,
      g_param_spec_boxed("stats", "Statistics",
                         "The session's state, codecs and counters (see the element's docs)",
                         GST_TYPE_STRUCTURE,
                         static_cast<GParamFlags>(G_PARAM_READABLE | G_PARAM_STATIC_STRINGS)));

  gst_element_class_add_static_pad_template(element_class, &video_template);
  gst_element_class_add_static_pad_template(element_class, &audio_template);
  gst_element_class_add_static_pad_template(element_class, &backchannel_template);
  gst_element_class_set_static_metadata(
      element_class, "RTSP/ONVIF camera with audio back channel", "Source/Network/Sink",
      "One IP camera session: its H.264 video and decoded audio out, raw audio in to its ONVIF "
      "back channel, encoded to the camera's codec; reconnects when the camera goes away",
      "costream");
  gst_type_mark_as_plugin_api(transport_get_type(), static_cast<GstPluginAPIFlags>(0));
}

static void gst_rtsp_camera_init(GstRtspCamera *self) {
  self->priv = new GstRtspCameraPrivate();
  auto *p = self->priv;
  p->video = gst_ghost_pad_new_no_target_from_template(
      "video", gst_element_class_get_pad_template(GST_ELEMENT_GET_CLASS(self), "video"));
  p->audio = gst_ghost_pad_new_no_target_from_template(
      "audio", gst_element_class_get_pad_template(GST_ELEMENT_GET_CLASS(self), "audio"));
  gst_element_add_pad(GST_ELEMENT(self), p->video);
  gst_element_add_pad(GST_ELEMENT(self), p->audio);
  p->backchannel = gst_pad_new_from_static_template(&backchannel_template, "backchannel");
  gst_pad_set_chain_function(p->backchannel, gst_rtsp_camera_backchannel_chain);
  gst_pad_set_event_function(p->backchannel, gst_rtsp_camera_backchannel_event);
  gst_pad_set_query_function(p->backchannel, gst_rtsp_camera_backchannel_query);
  gst_element_add_pad(GST_ELEMENT(self), p->backchannel);
  GST_OBJECT_FLAG_SET(self, GST_ELEMENT_FLAG_SOURCE);
}
