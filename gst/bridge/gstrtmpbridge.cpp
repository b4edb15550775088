/* costream
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
/**
 * SECTION:element-rtmpbridge
 * @title: rtmpbridge
 *
 * OBS (or any RTMP publisher) in, WebRTC-ready Opus and H.264 out, in one element and one
 * process: `rtmpserversrc`, its own FLV tag demuxer, `aac2opus` for the audio, and H.264 made
 * byte-stream with SPS/PPS before every IDR (so a viewer joining late can start at the next
 * keyframe).
 *
 * Sometimes pads: `audio` (`audio/x-opus`, 48 kHz) and `video` (`video/x-h264,
 * stream-format=byte-stream, alignment=au`), added as soon as the publisher's codecs are known;
 * audio-only and video-only publishes work. The pads stay when the publisher stops and starts
 * again, and the timeline continues. Audio and video timestamps come from the one RTMP clock.
 *
 * The properties of `rtmpserversrc` (port, stream-key, application, limits, stats) and of the
 * Opus encoder (bitrate, complexity, frame-duration, inband-fec, dtx, packet-loss-percentage) are
 * the bridge's own, and so is its `authorize-publish` signal; `rtmpserversrc`'s messages
 * (`rtmp-publish-start`, `rtmp-publish-stop`) reach the bus as they are.
 *
 * ## Example launch line
 * |[
 * gst-launch-1.0 rtpbin name=r \
 *   rtmpbridge name=b port=1935 stream-key=s3cret \
 *   b.video ! queue ! rtph264pay config-interval=-1 pt=96 ! r.send_rtp_sink_0 \
 *   r.send_rtp_src_0 ! udpsink host=127.0.0.1 port=5000 \
 *   b.audio ! queue ! rtpopuspay pt=97 ! r.send_rtp_sink_1 \
 *   r.send_rtp_src_1 ! udpsink host=127.0.0.1 port=5002
 * ]| OBS publishes to rtmp://this-machine/live with key s3cret; a costream receiver gets H.264 on
 * UDP 5000 and Opus on 5002.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "gstrtmpbridge.h"

#include "../rtmp/gstrtmpserversrc.h"
#include "gstaac2opus.h"
#include "gstflvtagdemux.h"

#include <string>
#include <vector>

GST_DEBUG_CATEGORY_STATIC(gst_rtmp_bridge_debug);
#define GST_CAT_DEFAULT gst_rtmp_bridge_debug

static GstStaticPadTemplate audio_template = GST_STATIC_PAD_TEMPLATE(
    "audio", GST_PAD_SRC, GST_PAD_SOMETIMES,
    GST_STATIC_CAPS("audio/x-opus, rate = (int) 48000, channels = (int) [ 1, 2 ]"));
static GstStaticPadTemplate video_template =
    GST_STATIC_PAD_TEMPLATE("video", GST_PAD_SRC, GST_PAD_SOMETIMES,
                            GST_STATIC_CAPS("video/x-h264, stream-format = (string) byte-stream, "
                                            "alignment = (string) au"));

/* Properties forwarded to a child: [0] rtmpserversrc, [1] aac2opus. */
static const char *const kSrcProps[] = {"address",
                                        "port",
                                        "bound-port",
                                        "application",
                                        "stream-key",
                                        "eos-on-disconnect",
                                        "max-message-size",
                                        "max-chunk-size",
                                        "handshake-timeout",
                                        "idle-timeout",
                                        "max-pending-connections",
                                        "tls-cert-file",
                                        "publish-auth-url",
                                        "publish-auth-timeout",
                                        "read-interval",
                                        "tls-key-file",
                                        "tls-certificate",
                                        "stats"};
static const char *const kEncProps[] = {"bitrate",         "complexity", "frame-duration",
                                        "inband-fec",      "dtx",        "packet-loss-percentage",
                                        "resample-quality"};
static std::vector<std::pair<int, const char *>> forwarded; /* prop_id - 1 -> (child, name) */

struct _GstRtmpBridge {
  GstBin parent;
  GstElement *src, *demux, *aac2opus, *parse, *filter;
  gint keyframe_requests; /* downstream force-key-unit requests seen (atomic) */
  gulong forward_id;      /* rtmpserversrc's authorize-publish, while the bridge has handlers */
};

enum { SIGNAL_AUTHORIZE_PUBLISH, N_SIGNALS };
static guint bridge_signals[N_SIGNALS];

/* (the authorizer's thread) rtmpserversrc asks: the bridge's handlers decide. */
static gboolean forward_authorize(GstElement *, const gchar *app, const gchar *key,
                                  const gchar *remote, const gchar *tc_url, const gchar *flash_ver,
                                  gpointer data) {
  gboolean allowed = FALSE;
  g_signal_emit(data, bridge_signals[SIGNAL_AUTHORIZE_PUBLISH], 0, app, key, remote, tc_url,
                flash_ver, &allowed);
  return allowed;
}

G_DEFINE_TYPE(GstRtmpBridge, gst_rtmp_bridge, GST_TYPE_BIN);
GST_ELEMENT_REGISTER_DEFINE(rtmpbridge, "rtmpbridge", GST_RANK_NONE, GST_TYPE_RTMP_BRIDGE);

static GstElement *child(GstRtmpBridge *self, int which) {
  return which == 0 ? self->src : self->aac2opus;
}

/* The child and its property name that `prop_id` forwards to (nullptr: none). */
static GObject *forwarded_to(GObject *object, guint prop_id, GParamSpec *pspec, const char **name) {
  if (prop_id == 0 || prop_id > forwarded.size()) {
    G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec);
    return nullptr;
  }
  const auto &f = forwarded[prop_id - 1];
  *name = f.second;
  return G_OBJECT(child(GST_RTMP_BRIDGE(object), f.first));
}

static void gst_rtmp_bridge_set_property(GObject *object, guint prop_id, const GValue *value,
                                         GParamSpec *pspec) {
  const char *name;
  if (GObject *target = forwarded_to(object, prop_id, pspec, &name))
    g_object_set_property(target, name, value);
}

static void gst_rtmp_bridge_get_property(GObject *object, guint prop_id, GValue *value,
                                         GParamSpec *pspec) {
  const char *name;
  if (GObject *target = forwarded_to(object, prop_id, pspec, &name))
    g_object_get_property(target, name, value);
}

/* A new WebRTC viewer's PLI arrives here as an upstream force-key-unit event. RTMP has no message
 * that asks a publisher for a keyframe: say so once, clearly, then count. */
static GstPadProbeReturn on_video_upstream(GstPad *pad, GstPadProbeInfo *info, gpointer data) {
  auto *self = GST_RTMP_BRIDGE(data);
  GstEvent *event = GST_PAD_PROBE_INFO_EVENT(info);
  const GstStructure *s = gst_event_get_structure(event);
  if (GST_EVENT_TYPE(event) != GST_EVENT_CUSTOM_UPSTREAM || !s ||
      !gst_structure_has_name(s, "GstForceKeyUnit"))
    return GST_PAD_PROBE_OK;
  const gint n = g_atomic_int_add(&self->keyframe_requests, 1) + 1;
  if (n == 1)
    GST_WARNING_OBJECT(self,
                       "downstream asked for a keyframe (a new viewer's PLI): RTMP cannot forward "
                       "that to the publisher, the next keyframe comes at the publisher's own "
                       "keyframe interval (rtmpserversrc stats keyframe-interval; OBS: Keyframe "
                       "Interval 1 or 2 s). Further requests are logged at DEBUG level");
  else
    GST_DEBUG_OBJECT(self, "keyframe request %d not forwardable over RTMP", n);
  return GST_PAD_PROBE_OK; /* h264parse still sees it (SPS/PPS with the next keyframe) */
}

/* (streaming thread) The demuxer knows a codec: link its chain and expose the bridge's pad. */
static void on_demux_pad(GstElement *demux, GstPad *pad, gpointer data) {
  auto *self = GST_RTMP_BRIDGE(data);
  const bool audio = g_str_equal(GST_PAD_NAME(pad), "audio");
  GstElement *first = audio ? self->aac2opus : self->parse;
  GstElement *last = audio ? self->aac2opus : self->filter;
  GstPad *sink = gst_element_get_static_pad(first, "sink");
  if (gst_pad_link(pad, sink) != GST_PAD_LINK_OK) {
    GST_ELEMENT_ERROR(self, CORE, NEGOTIATION,
                      ("Could not link the %s chain.", audio ? "audio" : "video"), (nullptr));
    gst_object_unref(sink);
    return;
  }
  gst_object_unref(sink);
  GstPad *target = gst_element_get_static_pad(last, "src");
  GstPadTemplate *templ = gst_static_pad_template_get(audio ? &audio_template : &video_template);
  GstPad *ghost = gst_ghost_pad_new_from_template(audio ? "audio" : "video", target, templ);
  gst_object_unref(templ);
  gst_object_unref(target);
  gst_pad_set_active(ghost, TRUE);
  if (!audio)
    gst_pad_add_probe(ghost, GST_PAD_PROBE_TYPE_EVENT_UPSTREAM, on_video_upstream, self, nullptr);
  GST_INFO_OBJECT(self, "exposing %s", GST_PAD_NAME(ghost));
  gst_element_add_pad(GST_ELEMENT(self), ghost);
}

static void on_no_more_pads(GstElement *demux, gpointer data) {
  gst_element_no_more_pads(GST_ELEMENT(data));
}

/* A property of a child as one of the bridge's own: same name, range, default and flags. (An
 * override pspec would work for get/set but is not listed by gst-inspect.) */
static GParamSpec *clone_pspec(GParamSpec *ps) {
  const char *name = g_param_spec_get_name(ps);
  const char *nick = g_param_spec_get_nick(ps);
  const char *blurb = g_param_spec_get_blurb(ps);
  const auto flags = static_cast<GParamFlags>(ps->flags & ~G_PARAM_STATIC_STRINGS);
  const GType t = G_PARAM_SPEC_VALUE_TYPE(ps);
  if (t == G_TYPE_UINT) {
    auto *u = G_PARAM_SPEC_UINT(ps);
    return g_param_spec_uint(name, nick, blurb, u->minimum, u->maximum, u->default_value, flags);
  }
  if (t == G_TYPE_INT) {
    auto *i = G_PARAM_SPEC_INT(ps);
    return g_param_spec_int(name, nick, blurb, i->minimum, i->maximum, i->default_value, flags);
  }
  if (t == G_TYPE_BOOLEAN)
    return g_param_spec_boolean(name, nick, blurb, G_PARAM_SPEC_BOOLEAN(ps)->default_value, flags);
  if (t == G_TYPE_STRING)
    return g_param_spec_string(name, nick, blurb, G_PARAM_SPEC_STRING(ps)->default_value, flags);
  if (G_TYPE_IS_BOXED(t))
    return g_param_spec_boxed(name, nick, blurb, t, flags);
  return nullptr;
}

static GstStateChangeReturn gst_rtmp_bridge_change_state(GstElement *element,
                                                         GstStateChange transition) {
  auto *self = GST_RTMP_BRIDGE(element);
  if (transition == GST_STATE_CHANGE_NULL_TO_READY && !self->parse) {
    GST_ELEMENT_ERROR(self, CORE, MISSING_PLUGIN,
                      ("rtmpbridge needs the h264parse element, from GStreamer's "
                       "plugins-bad (Debian: gstreamer1.0-plugins-bad)."),
                      ("gst_element_factory_make(\"h264parse\") failed"));
    return GST_STATE_CHANGE_FAILURE;
  }
  /* The bridge's authorize-publish handlers decide for its rtmpserversrc, which looks for
   * handlers when it starts (below, in the parent's state change). */
  if (transition == GST_STATE_CHANGE_READY_TO_PAUSED && !self->forward_id &&
      g_signal_has_handler_pending(self, bridge_signals[SIGNAL_AUTHORIZE_PUBLISH], 0, FALSE))
    self->forward_id =
        g_signal_connect(self->src, "authorize-publish", G_CALLBACK(forward_authorize), self);
  const GstStateChangeReturn ret =
      GST_ELEMENT_CLASS(gst_rtmp_bridge_parent_class)->change_state(element, transition);
  if ((transition == GST_STATE_CHANGE_PAUSED_TO_READY || ret == GST_STATE_CHANGE_FAILURE) &&
      self->forward_id) {
    g_signal_handler_disconnect(self->src, self->forward_id);
    self->forward_id = 0;
  }
  return ret;
}

static void gst_rtmp_bridge_class_init(GstRtmpBridgeClass *klass) {
  auto *gobject_class = G_OBJECT_CLASS(klass);
  auto *element_class = GST_ELEMENT_CLASS(klass);
  GST_DEBUG_CATEGORY_INIT(gst_rtmp_bridge_debug, "rtmpbridge", 0, "costream OBS/RTMP bridge");
  gobject_class->set_property = gst_rtmp_bridge_set_property;
  gobject_class->get_property = gst_rtmp_bridge_get_property;

  /* The children's properties, as the bridge's own (the override pspecs point into the
   * children's classes, kept referenced for the life of the process). */
  const GType types[2] = {GST_TYPE_RTMP_SERVER_SRC, GST_TYPE_AAC2OPUS};
  forwarded.clear();
  for (int which = 0; which < 2; which++) {
    auto *cc = G_OBJECT_CLASS(g_type_class_ref(types[which]));
    const char *const *names = which == 0 ? kSrcProps : kEncProps;
    const size_t count = which == 0 ? G_N_ELEMENTS(kSrcProps) : G_N_ELEMENTS(kEncProps);
    for (size_t i = 0; i < count; i++) {
      GParamSpec *ps = g_object_class_find_property(cc, names[i]);
      if (!ps)
        continue;
      GParamSpec *copy = clone_pspec(ps);
      if (!copy)
        continue;
      forwarded.push_back({which, names[i]});
      g_object_class_install_property(gobject_class, forwarded.size(), copy);
    }
  }

  /**
   * GstRtmpBridge::authorize-publish:
   *
   * As rtmpserversrc's (application, stream key, remote address, tcUrl, flashVer; return TRUE to
   * allow), for the bridge's publishes: emitted from a thread of the element's own, before
   * `publish-auth-url` is asked. Only handlers connected before the bridge starts are used.
   */
  bridge_signals[SIGNAL_AUTHORIZE_PUBLISH] =
      g_signal_new("authorize-publish", G_TYPE_FROM_CLASS(klass), G_SIGNAL_RUN_LAST, 0,
                   g_signal_accumulator_first_wins, nullptr, nullptr, G_TYPE_BOOLEAN, 5,
                   G_TYPE_STRING, G_TYPE_STRING, G_TYPE_STRING, G_TYPE_STRING, G_TYPE_STRING);
  element_class->change_state = GST_DEBUG_FUNCPTR(gst_rtmp_bridge_change_state);
  gst_element_class_add_static_pad_template(element_class, &audio_template);
  gst_element_class_add_static_pad_template(element_class, &video_template);
  gst_element_class_set_static_metadata(
      element_class, "RTMP to WebRTC bridge", "Source/Network",
      "Accepts an RTMP publish (OBS, ffmpeg) and outputs WebRTC-ready Opus and H.264 "
      "(byte-stream, SPS/PPS before every IDR)",
      "costream developers");
}

static void gst_rtmp_bridge_init(GstRtmpBridge *self) {
  self->src = GST_ELEMENT(g_object_new(GST_TYPE_RTMP_SERVER_SRC, "name", "src", nullptr));
  self->demux = GST_ELEMENT(g_object_new(GST_TYPE_FLV_TAG_DEMUX, "name", "demux", nullptr));
  self->aac2opus = GST_ELEMENT(g_object_new(GST_TYPE_AAC2OPUS, "name", "aac2opus", nullptr));
  self->parse = gst_element_factory_make("h264parse", "parse");
  self->filter = gst_element_factory_make("capsfilter", "filter");
  gst_bin_add_many(GST_BIN(self), self->src, self->demux, self->aac2opus, nullptr);
  gst_element_link(self->src, self->demux);
  if (!self->parse || !self->filter) {
    /* the state change to READY fails with a missing-plugin error (change_state) */
    if (self->parse)
      gst_object_unref(gst_object_ref_sink(self->parse));
    if (self->filter)
      gst_object_unref(gst_object_ref_sink(self->filter));
    self->parse = self->filter = nullptr;
    return;
  }
  g_object_set(self->parse, "config-interval", -1, nullptr);
  GstCaps *caps = gst_caps_from_string(
      "video/x-h264, stream-format = (string) byte-stream, alignment = (string) au");
  g_object_set(self->filter, "caps", caps, nullptr);
  gst_caps_unref(caps);
  gst_bin_add_many(GST_BIN(self), self->parse, self->filter, nullptr);
  gst_element_link(self->parse, self->filter);
  g_signal_connect(self->demux, "pad-added", G_CALLBACK(on_demux_pad), self);
  g_signal_connect(self->demux, "no-more-pads", G_CALLBACK(on_no_more_pads), self);
}
