/* costream
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
/**
 * SECTION:element-aac2opus
 * @title: aac2opus
 *
 * AAC in, Opus out, in-process: what WebRTC needs from what RTMP and OBS carry.
 *
 * Takes `audio/mpeg, mpegversion=4` (raw with codec_data, or ADTS), AAC-LC or HE-AAC, any rate,
 * mono or stereo. Decodes with the best-ranked AAC decoder GStreamer has (`avdec_aac` from
 * gst-libav, `faad`, `fdkaacdec`), converts and resamples to 48 kHz, and encodes with libopus
 * directly (not `opusenc`). Output: `audio/x-opus` at 48 kHz, ready for `rtpopuspay`.
 *
 * Opus packets are timestamped sample-accurately on the AAC timeline (the audio encoder base
 * class counts samples from the input timestamps and resyncs on a discontinuity, such as an RTMP
 * gap or a publisher restart), and the latency query reports the decoder's, resampler's and
 * encoder's (one frame plus the encoder's lookahead) latency.
 *
 * ## Example launch line
 * |[
 * gst-launch-1.0 filesrc location=in.m4a ! qtdemux ! aac2opus bitrate=64000 ! rtpopuspay \
 *     ! udpsink host=127.0.0.1 port=5002
 * ]|
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "gstaac2opus.h"

#include "gstcostreamopusenc.h"

#include "../common/objectlock.h"

#include <initializer_list>

GST_DEBUG_CATEGORY_STATIC(gst_aac2opus_debug);
#define GST_CAT_DEFAULT gst_aac2opus_debug

enum {
  PROP_0,
  PROP_DECODER,
  PROP_RESAMPLE_QUALITY,
  PROP_ENC_FIRST, /* the encoder's properties follow, in their order */
};

static GstStaticPadTemplate sink_template = GST_STATIC_PAD_TEMPLATE(
    "sink", GST_PAD_SINK, GST_PAD_ALWAYS, GST_STATIC_CAPS("audio/mpeg, mpegversion = (int) 4"));
static GstStaticPadTemplate src_template = GST_STATIC_PAD_TEMPLATE(
    "src", GST_PAD_SRC, GST_PAD_ALWAYS,
    GST_STATIC_CAPS("audio/x-opus, rate = (int) 48000, channels = (int) [ 1, 2 ], "
                    "channel-mapping-family = (int) 0"));

struct _GstAac2Opus {
  GstBin parent;
  GstPad *sinkpad, *srcpad; /* ghost pads */
  GstElement *encoder;      /* created with the element: properties go straight to it */
  GstElement *decoder;      /* picked when going to READY */
  gchar *decoder_name;
  guint resample_quality; /* GST_OBJECT_LOCK */
  gulong caps_probe;      /* choose_parser() on the sink ghost pad, while built */
};

/* 44.1 kHz AAC to 48 kHz: audioresample's quality 2 keeps the resampler's error 80 dB below a
 * full-scale tone (quality 4, its default: 104 dB), where Opus at 96 kbit/s leaves 46 dB; it
 * costs about half as much CPU (docs/rtmpbridge.md). */
#define DEFAULT_RESAMPLE_QUALITY 2

G_DEFINE_TYPE(GstAac2Opus, gst_aac2opus, GST_TYPE_BIN);
GST_ELEMENT_REGISTER_DEFINE(aac2opus, "aac2opus", GST_RANK_NONE, GST_TYPE_AAC2OPUS);

/* The best-ranked decoder that takes raw AAC (after aacparse). */
static GstElementFactory *find_aac_decoder() {
  GList *decoders = gst_element_factory_list_get_elements(
      GST_ELEMENT_FACTORY_TYPE_DECODER | GST_ELEMENT_FACTORY_TYPE_MEDIA_AUDIO, GST_RANK_MARGINAL);
  decoders = g_list_sort(decoders, gst_plugin_feature_rank_compare_func);
  GstCaps *aac = gst_caps_from_string(
      "audio/mpeg, mpegversion = (int) 4, stream-format = (string) raw, rate = (int) 48000, "
      "channels = (int) 2");
  GstElementFactory *found = nullptr;
  for (GList *l = decoders; l && !found; l = l->next) {
    auto *f = GST_ELEMENT_FACTORY(l->data);
    if (gst_element_factory_can_sink_all_caps(f, aac))
      found = GST_ELEMENT_FACTORY(gst_object_ref(f));
  }
  gst_caps_unref(aac);
  gst_plugin_feature_list_free(decoders);
  return found;
}

/* Input already in whole frames (raw AAC from FLV/MP4 with codec_data, or ADTS after a parser)
 * goes straight to the decoder: a second aacparse would only cost time (about 4 % of the
 * element's CPU). Anything else (an ADTS byte stream from a file) goes through aacparse. Runs on
 * every CAPS event, before the event reaches the chain; events are serialized with the data, so
 * nothing is in flight while the chain changes. */
static GstPadProbeReturn choose_parser(GstPad *ghost, GstPadProbeInfo *info, gpointer data) {
  GstEvent *event = GST_PAD_PROBE_INFO_EVENT(info);
  if (GST_EVENT_TYPE(event) != GST_EVENT_CAPS)
    return GST_PAD_PROBE_OK;
  auto *self = GST_AAC2OPUS(data);
  GstCaps *caps;
  gst_event_parse_caps(event, &caps);
  const GstStructure *st = gst_caps_get_structure(caps, 0);
  gboolean framed = FALSE;
  gst_structure_get_boolean(st, "framed", &framed);
  const gchar *format = gst_structure_get_string(st, "stream-format");
  GstElement *parse = gst_bin_get_by_name(GST_BIN(self), "parse");
  if (!parse)
    return GST_PAD_PROBE_OK;
  GstPad *dec_sink = gst_element_get_static_pad(self->decoder, "sink");
  const bool whole = (framed || (format && g_str_equal(format, "raw"))) &&
                     gst_pad_query_accept_caps(dec_sink, caps);
  GstPad *target = gst_ghost_pad_get_target(GST_GHOST_PAD(ghost));
  const bool parsing = target && GST_OBJECT_PARENT(target) == GST_OBJECT_CAST(parse);
  if (whole && parsing) {
    GST_DEBUG_OBJECT(self, "input in whole frames: straight to the decoder");
    gst_element_unlink(parse, self->decoder);
    gst_ghost_pad_set_target(GST_GHOST_PAD(ghost), dec_sink);
  } else if (!whole && !parsing) {
    GST_DEBUG_OBJECT(self, "input not in frames: through aacparse");
    gst_ghost_pad_set_target(GST_GHOST_PAD(ghost), nullptr);
    GstPad *parse_sink = gst_element_get_static_pad(parse, "sink");
    gst_ghost_pad_set_target(GST_GHOST_PAD(ghost), parse_sink);
    gst_object_unref(parse_sink);
    gst_element_link(parse, self->decoder);
  }
  if (target)
    gst_object_unref(target);
  gst_object_unref(dec_sink);
  gst_object_unref(parse);
  return GST_PAD_PROBE_OK;
}

static gboolean build(GstAac2Opus *self) {
  GstElementFactory *factory = find_aac_decoder();
  if (!factory) {
    GST_ELEMENT_ERROR(self, CORE, MISSING_PLUGIN,
                      ("No AAC decoder is installed. Install gstreamer1.0-libav (avdec_aac), or "
                       "gstreamer1.0-plugins-bad (faad)."),
                      (nullptr));
    return FALSE;
  }
  self->decoder = gst_element_factory_create(factory, "decoder");
  GST_INFO_OBJECT(self, "decoding AAC with %s", GST_OBJECT_NAME(factory));
  {
    costream::ObjectLock lk(self);
    g_free(self->decoder_name);
    self->decoder_name = g_strdup(GST_OBJECT_NAME(factory));
  }
  gst_object_unref(factory);
  GstElement *parse = gst_element_factory_make("aacparse", "parse");
  GstElement *convert = gst_element_factory_make("audioconvert", "convert");
  GstElement *resample = gst_element_factory_make("audioresample", "resample");
  GstElement *filter = gst_element_factory_make("capsfilter", "filter");
  if (!parse || !convert || !resample || !filter || !self->decoder) {
    GST_ELEMENT_ERROR(self, CORE, MISSING_PLUGIN,
                      ("aac2opus needs aacparse (gstreamer1.0-plugins-good) and audioconvert, "
                       "audioresample (gstreamer1.0-plugins-base)."),
                      (nullptr));
    for (GstElement *e : {parse, convert, resample, filter, self->decoder})
      if (e)
        gst_object_unref(e);
    self->decoder = nullptr;
    return FALSE;
  }
  const guint quality = costream::locked_copy(self, self->resample_quality);
  g_object_set(resample, "quality", quality, nullptr);
  GstCaps *caps =
      gst_caps_from_string("audio/x-raw, rate = (int) 48000, channels = (int) [ 1, 2 ]");
  g_object_set(filter, "caps", caps, nullptr);
  gst_caps_unref(caps);
  gst_bin_add_many(GST_BIN(self), parse, self->decoder, convert, resample, filter, nullptr);
  if (!gst_element_link_many(parse, self->decoder, convert, resample, filter, self->encoder,
                             nullptr)) {
    GST_ELEMENT_ERROR(self, CORE, NEGOTIATION, ("Could not link the AAC decoding chain."),
                      (nullptr));
    return FALSE;
  }
  GstPad *target = gst_element_get_static_pad(parse, "sink");
  gst_ghost_pad_set_target(GST_GHOST_PAD(self->sinkpad), target);
  gst_object_unref(target);
  self->caps_probe = gst_pad_add_probe(self->sinkpad, GST_PAD_PROBE_TYPE_EVENT_DOWNSTREAM,
                                       choose_parser, self, nullptr);
  return TRUE;
}

static void teardown(GstAac2Opus *self) {
  if (!self->decoder)
    return;
  if (self->caps_probe) {
    gst_pad_remove_probe(self->sinkpad, self->caps_probe);
    self->caps_probe = 0;
  }
  gst_ghost_pad_set_target(GST_GHOST_PAD(self->sinkpad), nullptr);
  for (const char *name : {"parse", "decoder", "convert", "resample", "filter"}) {
    if (GstElement *e = gst_bin_get_by_name(GST_BIN(self), name)) {
      gst_element_set_state(e, GST_STATE_NULL);
      gst_bin_remove(GST_BIN(self), e);
      gst_object_unref(e);
    }
  }
  self->decoder = nullptr;
}

static GstStateChangeReturn gst_aac2opus_change_state(GstElement *element,
                                                      GstStateChange transition) {
  auto *self = GST_AAC2OPUS(element);
  if (transition == GST_STATE_CHANGE_NULL_TO_READY && !self->decoder && !build(self))
    return GST_STATE_CHANGE_FAILURE;
  GstStateChangeReturn ret =
      GST_ELEMENT_CLASS(gst_aac2opus_parent_class)->change_state(element, transition);
  if (transition == GST_STATE_CHANGE_READY_TO_NULL)
    teardown(self);
  return ret;
}

static void gst_aac2opus_set_property(GObject *object, guint prop_id, const GValue *value,
                                      GParamSpec *pspec) {
  auto *self = GST_AAC2OPUS(object);
  if (prop_id == PROP_RESAMPLE_QUALITY) {
    {
      costream::ObjectLock lk(self);
      self->resample_quality = g_value_get_uint(value);
    }
    if (GstElement *resample = gst_bin_get_by_name(GST_BIN(self), "resample")) {
      g_object_set(resample, "quality", g_value_get_uint(value), nullptr);
      gst_object_unref(resample);
    }
    return;
  }
  if (prop_id >= PROP_ENC_FIRST) {
    g_object_set_property(G_OBJECT(self->encoder),
                          gst_costream_opus_enc_property_names[prop_id - PROP_ENC_FIRST], value);
    return;
  }
  G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec);
}

static void gst_aac2opus_get_property(GObject *object, guint prop_id, GValue *value,
                                      GParamSpec *pspec) {
  auto *self = GST_AAC2OPUS(object);
  if (prop_id == PROP_DECODER) {
    costream::ObjectLock lk(self);
    g_value_set_string(value, self->decoder_name);
    return;
  }
  if (prop_id == PROP_RESAMPLE_QUALITY) {
    g_value_set_uint(value, costream::locked_copy(self, self->resample_quality));
    return;
  }
  if (prop_id >= PROP_ENC_FIRST) {
    g_object_get_property(G_OBJECT(self->encoder),
                          gst_costream_opus_enc_property_names[prop_id - PROP_ENC_FIRST], value);
    return;
  }
  G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec);
}

static void gst_aac2opus_finalize(GObject *object) {
  auto *self = GST_AAC2OPUS(object);
  g_free(self->decoder_name);
  G_OBJECT_CLASS(gst_aac2opus_parent_class)->finalize(object);
}

static void gst_aac2opus_class_init(GstAac2OpusClass *klass) {
  auto *gobject_class = G_OBJECT_CLASS(klass);
  auto *element_class = GST_ELEMENT_CLASS(klass);
  GST_DEBUG_CATEGORY_INIT(gst_aac2opus_debug, "aac2opus", 0, "costream AAC to Opus");
  gobject_class->set_property = gst_aac2opus_set_property;
  gobject_class->get_property = gst_aac2opus_get_property;
  gobject_class->finalize = gst_aac2opus_finalize;
  g_object_class_install_property(
      gobject_class, PROP_DECODER,
      g_param_spec_string("decoder", "Decoder",
                          "The AAC decoder in use (the best-ranked one installed)", nullptr,
                          static_cast<GParamFlags>(G_PARAM_READABLE | G_PARAM_STATIC_STRINGS)));
  g_object_class_install_property(
      gobject_class, PROP_RESAMPLE_QUALITY,
      g_param_spec_uint("resample-quality", "Resample quality",
                        "audioresample's quality (0-10) for AAC not at 48 kHz. The default keeps "
                        "its error 80 dB down, well under what Opus adds, at about half the CPU "
                        "of audioresample's own default (4)",
                        0, 10, DEFAULT_RESAMPLE_QUALITY,
                        static_cast<GParamFlags>(G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
                                                 GST_PARAM_MUTABLE_PLAYING)));
  gst_costream_opus_enc_install_properties(gobject_class, PROP_ENC_FIRST);
  element_class->change_state = GST_DEBUG_FUNCPTR(gst_aac2opus_change_state);
  gst_element_class_add_static_pad_template(element_class, &sink_template);
  gst_element_class_add_static_pad_template(element_class, &src_template);
  gst_element_class_set_static_metadata(
      element_class, "AAC to Opus", "Codec/Converter/Audio",
      "Transcodes AAC (raw or ADTS) to 48 kHz Opus in-process: the best-ranked AAC decoder, a "
      "resampler and libopus",
      "costream developers");
}

static void gst_aac2opus_init(GstAac2Opus *self) {
  self->decoder = nullptr;
  self->decoder_name = nullptr;
  self->resample_quality = DEFAULT_RESAMPLE_QUALITY;
  self->caps_probe = 0;
  self->encoder = GST_ELEMENT(g_object_new(GST_TYPE_COSTREAM_OPUS_ENC, "name", "encoder", nullptr));
  gst_bin_add(GST_BIN(self), self->encoder);
  GstPadTemplate *st = gst_static_pad_template_get(&sink_template);
  self->sinkpad = gst_ghost_pad_new_no_target_from_template("sink", st);
  gst_object_unref(st);
  gst_element_add_pad(GST_ELEMENT(self), self->sinkpad);
  GstPad *encsrc = gst_element_get_static_pad(self->encoder, "src");
  GstPadTemplate *srct = gst_static_pad_template_get(&src_template);
  self->srcpad = gst_ghost_pad_new_from_template("src", encsrc, srct);
  gst_object_unref(srct);
  gst_object_unref(encsrc);
  gst_element_add_pad(GST_ELEMENT(self), self->srcpad);
}
