/* costream
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
/**
 * SECTION:element-rtspcamera
 * @title: rtspcamera
 *
 * One IP camera session: the camera's RTSP stream in, its ONVIF audio back channel out. It opens
 * `location` with `rtspsrc` (back channel `onvif`), exposes the camera's H.264 video on the
 * `video` pad (byte-stream access units, SPS/PPS before every key frame) and its audio on the
 * `audio` pad (decoded; or, with `audio-format=opus`, Opus: a camera's own Opus passed through
 * without transcoding, other codecs encoded), and sends what arrives on the `backchannel` sink pad
 * (raw audio) to the camera's speaker: resampled and encoded to the codec and rate the camera's SDP
 * offers for its `sendonly` track (PCMA, PCMU, Opus, AAC or L16), payloaded and sent over the same
 * RTSP session.
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
 *   `audio-output` (see `audio-format`), `backchannel-codec` (`none` without one), `connects`,
 * `outage` (ns without data before this connection, 0 for the first).
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

#include "rtspcameraprivate.h"

#include "../common/objectlock.h"
#include "rtspurl.h"

#include <string>

GST_DEBUG_CATEGORY(gst_rtsp_camera_debug);
#define GST_CAT_DEFAULT gst_rtsp_camera_debug

/* The element's glue: properties, pads, state changes, the bin's messages, stats. The supervisor,
 * the receive side and the back channel are in the files that rtspcameraprivate.h lists, with the
 * threads and the lock order. */

using namespace costream::rtspcamera;

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
  PROP_AUDIO_FORMAT,
};

static GstStaticPadTemplate video_template =
    GST_STATIC_PAD_TEMPLATE("video", GST_PAD_SRC, GST_PAD_ALWAYS,
                            GST_STATIC_CAPS("video/x-h264, stream-format = (string) byte-stream, "
                                            "alignment = (string) au"));
static GstStaticPadTemplate audio_template = GST_STATIC_PAD_TEMPLATE(
    "audio", GST_PAD_SRC, GST_PAD_ALWAYS, GST_STATIC_CAPS("audio/x-raw; audio/x-opus"));
static GstStaticPadTemplate backchannel_template =
    GST_STATIC_PAD_TEMPLATE("backchannel", GST_PAD_SINK, GST_PAD_ALWAYS,
                            GST_STATIC_CAPS("audio/x-raw, layout = (string) interleaved"));

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

static GType audio_format_get_type() {
  static GType type = 0;
  if (g_once_init_enter(&type)) {
    static const GEnumValue values[] = {
        {static_cast<gint>(costream::AudioOutput::Raw), "The camera's audio decoded (audio/x-raw)",
         "raw"},
        {static_cast<gint>(costream::AudioOutput::Opus),
         "Opus (audio/x-opus): the camera's own when it sends Opus, else encoded from its audio",
         "opus"},
        {0, nullptr, nullptr}};
    g_once_init_leave(&type, g_enum_register_static("GstRtspCameraAudioFormat", values));
  }
  return type;
}

std::string costream::rtspcamera::redacted_location(GstRtspCamera *self) {
  return costream::redact_url(costream::locked_copy(self, self->priv->settings.location));
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
                          G_TYPE_STRING, p->conn.audio_codec.c_str(), "audio-output", G_TYPE_STRING,
                          p->conn.audio_output.c_str(), "backchannel-codec", G_TYPE_STRING,
                          p->conn.backchannel_codec.c_str(), "connects", G_TYPE_UINT64, p->connects,
                          "losses", G_TYPE_UINT64, p->losses, nullptr);
  }
  const std::string where = redacted_location(self);
  gst_structure_set(s, "location", G_TYPE_STRING, where.c_str(), "video-buffers", G_TYPE_UINT64,
                    p->video_buffers.load(), "video-bytes", G_TYPE_UINT64, p->video_bytes.load(),
                    "audio-buffers", G_TYPE_UINT64, p->audio_buffers.load(), "audio-bytes",
                    G_TYPE_UINT64, p->audio_bytes.load(), "rtp-packets", G_TYPE_UINT64,
                    p->rtp_packets.load(), "rtp-bytes", G_TYPE_UINT64, p->rtp_bytes.load(),
                    "unlinked-drops", G_TYPE_UINT64, p->unlinked_drops.load(),
                    "backchannel-buffers", G_TYPE_UINT64, p->backchannel_in.load(),
                    "backchannel-dropped", G_TYPE_UINT64, p->backchannel_dropped.load(),
                    "backchannel-packets", G_TYPE_UINT64, p->backchannel_packets.load(),
                    "backchannel-bytes", G_TYPE_UINT64, p->backchannel_bytes.load(), nullptr);
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
  case PROP_AUDIO_FORMAT:
    /* (GST_STATE is read under the object lock, held here) */
    if (GST_STATE(self) > GST_STATE_READY) {
      GST_WARNING_OBJECT(self, "audio-format can only change in NULL or READY: kept");
      break;
    }
    s.audio_format = static_cast<costream::AudioOutput>(g_value_get_enum(value));
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
  case PROP_AUDIO_FORMAT:
    g_value_set_enum(value, static_cast<gint>(s.audio_format));
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
   * GstRtspCamera:audio-format:
   *
   * What the `audio` pad carries. `raw` (the default): the camera's audio decoded. `opus`: Opus,
   * for WebRTC and RTP: a camera that sends Opus has its packets passed through untouched
   * (depayloaded only, never decoded), any other codec is decoded and encoded with `opusenc`
   * (48 kHz mono, 20 ms frames). `stats` and `rtspcamera-connected` say which (`audio-output`).
   * Set in NULL or READY: the pad's caps change kind with it.
   */
  g_object_class_install_property(
      gobject_class, PROP_AUDIO_FORMAT,
      g_param_spec_enum("audio-format", "Audio format",
                        "What the audio pad carries: raw (decoded) or opus (the camera's Opus "
                        "passed through, other codecs encoded to Opus)",
                        audio_format_get_type(), static_cast<gint>(DEFAULT_AUDIO_FORMAT),
                        static_cast<GParamFlags>(flags | GST_PARAM_MUTABLE_READY)));
  /**
   * GstRtspCamera:stats:
   *
   * `rtspcamera-stats`: `state` (stopped, connecting, streaming, retrying), `location`
   * (redacted), `video-codec`, `audio-codec`, `audio-output` (`raw`, `opus-passthrough`,
   * `opus-encoded`; `none` without audio), `backchannel-codec`, `connects`, `losses`,
   * `video-buffers`/`video-bytes`, `audio-buffers`/`audio-bytes` (from the camera),
   * `rtp-packets`/`rtp-bytes` (every RTP packet rtspsrc passed on, of every stream of the
   * camera's, exposed or not, and their sizes), `unlinked-drops` (camera data on a pad nobody
   * linked), `backchannel-buffers` (in), `backchannel-dropped` (while there was no back channel),
   * `backchannel-packets` and `backchannel-bytes` (RTP sent to the camera).
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
  gst_pad_set_chain_function(p->backchannel, backchannel_chain);
  gst_pad_set_event_function(p->backchannel, backchannel_event);
  gst_pad_set_query_function(p->backchannel, backchannel_query);
  gst_element_add_pad(GST_ELEMENT(self), p->backchannel);
  GST_OBJECT_FLAG_SET(self, GST_ELEMENT_FLAG_SOURCE);
}
