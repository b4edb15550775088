/* costream
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
/**
 * SECTION:element-backchannelmixer
 * @title: backchannelmixer
 *
 * Mixes many live talk-back inputs into one output for a single producer: several viewers of an
 * IP camera, a doorbell or a streamer talking back at the same time.
 *
 * Talkers are request pads (`sink_%u`) that may come and go at any moment while PLAYING. Each
 * input is converted to the output format (chosen downstream, e.g. 8 kHz mono in front of
 * `alawenc`) with the GStreamer audio converter, placed by its timestamps, and read with drift
 * correction: a talker whose sample clock runs up to 2% fast or slow against the pipeline clock is
 * followed by a fractional resampler instead of dropping or inserting samples, so there are no
 * clicks and latency does not grow. A talker that stops sending is not waited for (live), counts
 * as silent after `timeout`, and data that arrives after its time was mixed is dropped and counted.
 * The sum is exact and saturates once; an optional peak limiter keeps it from clipping. When
 * exactly one talker is heard and its buffers already match the output block, they are forwarded
 * without copying.
 *
 * The element posts `backchannelmixer-talker` element messages (fields `pad` (GstPad), `pad-name`,
 * `active`, `level`) when a talker starts or stops being heard, and exposes per-pad statistics
 * (`bytes`, `buffers`, `dropped`, `late`, `timeouts`, `level`, `active`) and an element-wide
 * `stats` structure.
 *
 * In live pipelines the added latency is one output block (`output-buffer-duration`) plus the
 * jitter allowance (the `latency` property), and the latency query reports exactly that.
 *
 * ## Example launch line
 * |[
 * gst-launch-1.0 backchannelmixer name=m force-live=true latency=20000000 \
 *     ! audio/x-raw,rate=8000,channels=1 ! alawenc ! rtppcmapay ! udpsink host=127.0.0.1 port=5010 \
 *   audiotestsrc is-live=true freq=440 ! m.sink_0 \
 *   audiotestsrc is-live=true freq=660 volume=0.3 ! m.sink_1
 * ]| Two talkers mixed for a camera's G.711 back channel.
 *
 * |[
 * gst-launch-1.0 backchannelmixer name=m m.sink_1::volume=0.5 ! audioconvert ! wavenc ! \
 *   filesink location=mix.wav \
 *   audiotestsrc num-buffers=200 freq=440 ! m.sink_0 \
 *   audiotestsrc num-buffers=200 freq=880 ! m.sink_1
 * ]| Non-live: the exact, timestamp-aligned sum of two files or sources, ending with EOS.
 */

#include "gstbackchannelmixer.h"

#include "../audio/mix.h"
#include "../audio/talkerinput.h"

#include <gst/audio/audio.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

GST_DEBUG_CATEGORY_STATIC(gst_backchannel_mixer_debug);
#define GST_CAT_DEFAULT gst_backchannel_mixer_debug

/* Lock order (outer to inner):
 *   srcpad STREAM_LOCK (the aggregate thread) -> pad input_lock -> GST_OBJECT_LOCK (element)
 *   -> GST_OBJECT_LOCK (pad)
 * No lock is held while pushing, posting a message or calling into another element.
 */

using costream::MixAccumulator;
using costream::PeakLimiter;
using costream::TalkerInput;
using costream::TalkerQueue;

#define DEFAULT_PAD_VOLUME 1.0
#define DEFAULT_PAD_MUTE FALSE
#define DEFAULT_OUTPUT_BUFFER_DURATION (10 * GST_MSECOND)
#define DEFAULT_TIMEOUT (100 * GST_MSECOND)
#define DEFAULT_ALIGNMENT_THRESHOLD (40 * GST_MSECOND)
#define DEFAULT_DRIFT_CORRECTION TRUE
#define DEFAULT_LIMITER FALSE
#define DEFAULT_IDLE_SILENCE TRUE
#define DEFAULT_TALK_THRESHOLD (-50.0)
#define DEFAULT_FORCE_LIVE FALSE

#define FORMATS "{ S16LE, S32LE, F32LE }"
#define MIXER_CAPS                                                                                 \
  "audio/x-raw, format = (string) " FORMATS ", rate = (int) [ 8000, 48000 ], "                    \
  "channels = (int) [ 1, 2 ], layout = (string) interleaved"

static GstStaticPadTemplate src_template =
    GST_STATIC_PAD_TEMPLATE("src", GST_PAD_SRC, GST_PAD_ALWAYS, GST_STATIC_CAPS(MIXER_CAPS));
static GstStaticPadTemplate sink_template =
    GST_STATIC_PAD_TEMPLATE("sink_%u", GST_PAD_SINK, GST_PAD_REQUEST, GST_STATIC_CAPS(MIXER_CAPS));

/* ------------------------------------------------------------------------------------------ */
/* Pad                                                                                          */

enum {
  PROP_PAD_0,
  PROP_PAD_VOLUME,
  PROP_PAD_MUTE,
  PROP_PAD_BYTES,
  PROP_PAD_BUFFERS,
  PROP_PAD_DROPPED,
  PROP_PAD_LATE,
  PROP_PAD_TIMEOUTS,
  PROP_PAD_LEVEL,
  PROP_PAD_ACTIVE,
};

struct GstBackchannelMixerPadPrivate {
  /* input_lock: the talker's queue and converter. Taken by the aggregate thread, by caps
   * handling and by flushes. */
  std::mutex input_lock;
  TalkerInput input;

  /* GST_OBJECT_LOCK (pad): */
  gdouble volume = DEFAULT_PAD_VOLUME;
  gboolean mute = DEFAULT_PAD_MUTE;
  costream::TalkerStats stats; /* snapshot, updated every output block */

  /* aggregate thread only: */
  std::vector<uint8_t> scratch;
  guint64 out_generation = 0; /* the element's out_generation this input was configured for */
  bool ever_had_data = false;
  bool stalled = false;
  bool heard = false;
  int64_t missing_frames = 0;
};

struct _GstBackchannelMixerPad {
  GstAggregatorPad parent;
  GstBackchannelMixerPadPrivate *priv;
};

G_DEFINE_TYPE(GstBackchannelMixerPad, gst_backchannel_mixer_pad, GST_TYPE_AGGREGATOR_PAD);

static void gst_backchannel_mixer_pad_get_property(GObject *object, guint prop_id, GValue *value,
                                                   GParamSpec *pspec) {
  auto *pad = GST_BACKCHANNEL_MIXER_PAD(object);
  GST_OBJECT_LOCK(pad);
  const auto &st = pad->priv->stats;
  switch (prop_id) {
  case PROP_PAD_VOLUME:
    g_value_set_double(value, pad->priv->volume);
    break;
  case PROP_PAD_MUTE:
    g_value_set_boolean(value, pad->priv->mute);
    break;
  case PROP_PAD_BYTES:
    g_value_set_uint64(value, st.bytes);
    break;
  case PROP_PAD_BUFFERS:
    g_value_set_uint64(value, st.buffers);
    break;
  case PROP_PAD_DROPPED:
    g_value_set_uint64(value, st.dropped);
    break;
  case PROP_PAD_LATE:
    g_value_set_uint64(value, st.late);
    break;
  case PROP_PAD_TIMEOUTS:
    g_value_set_uint64(value, st.timeouts);
    break;
  case PROP_PAD_LEVEL:
    g_value_set_double(value, st.level);
    break;
  case PROP_PAD_ACTIVE:
    g_value_set_boolean(value, st.active);
    break;
  default:
    G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec);
    break;
  }
  GST_OBJECT_UNLOCK(pad);
}

static void gst_backchannel_mixer_pad_set_property(GObject *object, guint prop_id,
                                                   const GValue *value, GParamSpec *pspec) {
  auto *pad = GST_BACKCHANNEL_MIXER_PAD(object);
  GST_OBJECT_LOCK(pad);
  switch (prop_id) {
  case PROP_PAD_VOLUME:
    pad->priv->volume = g_value_get_double(value);
    break;
  case PROP_PAD_MUTE:
    pad->priv->mute = g_value_get_boolean(value);
    break;
  default:
    G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec);
    break;
  }
  GST_OBJECT_UNLOCK(pad);
}

static void gst_backchannel_mixer_pad_finalize(GObject *object) {
  auto *pad = GST_BACKCHANNEL_MIXER_PAD(object);
  delete pad->priv;
  pad->priv = nullptr;
  G_OBJECT_CLASS(gst_backchannel_mixer_pad_parent_class)->finalize(object);
}

static GstFlowReturn gst_backchannel_mixer_pad_flush(GstAggregatorPad *aggpad,
                                                     GstAggregator *agg) {
  auto *pad = GST_BACKCHANNEL_MIXER_PAD(aggpad);
  std::lock_guard<std::mutex> guard(pad->priv->input_lock);
  pad->priv->input.flush();
  return GST_FLOW_OK;
}

static void gst_backchannel_mixer_pad_class_init(GstBackchannelMixerPadClass *klass) {
  auto *gobject_class = G_OBJECT_CLASS(klass);
  auto *aggpad_class = GST_AGGREGATOR_PAD_CLASS(klass);

  gobject_class->get_property = gst_backchannel_mixer_pad_get_property;
  gobject_class->set_property = gst_backchannel_mixer_pad_set_property;
  gobject_class->finalize = gst_backchannel_mixer_pad_finalize;
  aggpad_class->flush = gst_backchannel_mixer_pad_flush;

  const auto ro = static_cast<GParamFlags>(G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);
  const auto rw = static_cast<GParamFlags>(G_PARAM_READWRITE | GST_PARAM_CONTROLLABLE |
                                           GST_PARAM_MUTABLE_PLAYING | G_PARAM_STATIC_STRINGS);

  /**
   * GstBackchannelMixerPad:volume:
   *
   * Gain applied to this talker (1.0 = unchanged).
   */
  g_object_class_install_property(
      gobject_class, PROP_PAD_VOLUME,
      g_param_spec_double("volume", "Volume", "Gain applied to this talker (1.0 = unchanged)", 0.0,
                          10.0, DEFAULT_PAD_VOLUME, rw));
  /**
   * GstBackchannelMixerPad:mute:
   *
   * Leaves this talker out of the mix (its statistics and level keep updating).
   */
  g_object_class_install_property(
      gobject_class, PROP_PAD_MUTE,
      g_param_spec_boolean("mute", "Mute",
                           "Leave this talker out of the mix (statistics keep updating)",
                           DEFAULT_PAD_MUTE, rw));
  g_object_class_install_property(gobject_class, PROP_PAD_BYTES,
                                  g_param_spec_uint64("bytes", "Bytes",
                                                      "Bytes of audio received on this pad", 0,
                                                      G_MAXUINT64, 0, ro));
  g_object_class_install_property(gobject_class, PROP_PAD_BUFFERS,
                                  g_param_spec_uint64("buffers", "Buffers",
                                                      "Buffers received on this pad", 0,
                                                      G_MAXUINT64, 0, ro));
  g_object_class_install_property(
      gobject_class, PROP_PAD_DROPPED,
      g_param_spec_uint64("dropped", "Dropped",
                          "Buffers dropped whole (unreadable, or too far ahead of the output)", 0,
                          G_MAXUINT64, 0, ro));
  g_object_class_install_property(
      gobject_class, PROP_PAD_LATE,
      g_param_spec_uint64("late", "Late",
                          "Buffers that arrived after their time had been mixed (the late part "
                          "was dropped, not mixed late)",
                          0, G_MAXUINT64, 0, ro));
  g_object_class_install_property(
      gobject_class, PROP_PAD_TIMEOUTS,
      g_param_spec_uint64("timeouts", "Timeouts",
                          "Times this talker stopped sending for longer than the element's "
                          "timeout and was treated as silent",
                          0, G_MAXUINT64, 0, ro));
  g_object_class_install_property(
      gobject_class, PROP_PAD_LEVEL,
      g_param_spec_double("level", "Level",
                          "Smoothed input level in dBov (RFC 6464 meaning; -127 = silence)",
                          costream::kSilenceDbov, 0.0, costream::kSilenceDbov, ro));
  g_object_class_install_property(
      gobject_class, PROP_PAD_ACTIVE,
      g_param_spec_boolean("active", "Active",
                           "Whether this talker is currently heard: sending, not muted and above "
                           "the element's talk-threshold",
                           FALSE, ro));
}

static void gst_backchannel_mixer_pad_init(GstBackchannelMixerPad *pad) {
  pad->priv = new GstBackchannelMixerPadPrivate();
}

/* ------------------------------------------------------------------------------------------ */
/* Element                                                                                      */

enum {
  PROP_0,
  PROP_OUTPUT_BUFFER_DURATION,
  PROP_TIMEOUT,
  PROP_ALIGNMENT_THRESHOLD,
  PROP_DRIFT_CORRECTION,
  PROP_LIMITER,
  PROP_IDLE_SILENCE,
  PROP_TALK_THRESHOLD,
  PROP_FORCE_LIVE,
  PROP_STATS,
};

struct GstBackchannelMixerPrivate {
  /* GST_OBJECT_LOCK (element): */
  GstClockTime block_duration = DEFAULT_OUTPUT_BUFFER_DURATION;
  GstClockTime timeout = DEFAULT_TIMEOUT;
  GstClockTime alignment_threshold = DEFAULT_ALIGNMENT_THRESHOLD;
  gboolean drift_correction = DEFAULT_DRIFT_CORRECTION;
  gboolean limiter = DEFAULT_LIMITER;
  gboolean idle_silence = DEFAULT_IDLE_SILENCE;
  gdouble talk_threshold = DEFAULT_TALK_THRESHOLD;
  gboolean eos_requested = FALSE; /* gst_element_send_event (EOS): finish the output */
  guint64 blocks_out = 0;
  guint64 silent_blocks = 0;
  guint64 passthrough_blocks = 0;

  /* aggregate thread (srcpad STREAM_LOCK): */
  GstAudioInfo out_info;
  bool out_valid = false;
  bool live = false;
  guint64 out_generation = 1; /* bumped whenever talkers must be reconfigured */
  guint block_frames = 480;
  int64_t offset = -1;         /* frames output since base_pos; -1: restart at the position */
  GstClockTime base_pos = 0;   /* output segment position of frame `offset` 0 */
  int64_t base_index = 0;      /* running time of base_pos, in output frames */
  bool discont = true;
  MixAccumulator acc;
  PeakLimiter limiter_state;
};

struct _GstBackchannelMixer {
  GstAggregator parent;
  GstBackchannelMixerPrivate *priv;
};

static void gst_backchannel_mixer_child_proxy_init(gpointer g_iface, gpointer iface_data);

G_DEFINE_TYPE_WITH_CODE(GstBackchannelMixer, gst_backchannel_mixer, GST_TYPE_AGGREGATOR,
                        G_IMPLEMENT_INTERFACE(GST_TYPE_CHILD_PROXY,
                                              gst_backchannel_mixer_child_proxy_init));
GST_ELEMENT_REGISTER_DEFINE(backchannelmixer, "backchannelmixer", GST_RANK_NONE,
                            GST_TYPE_BACKCHANNEL_MIXER);

namespace {

/* The pads of the element, each with a reference, taken under the object lock. */
std::vector<GstBackchannelMixerPad *> collect_pads(GstElement *element) {
  std::vector<GstBackchannelMixerPad *> pads;
  GST_OBJECT_LOCK(element);
  for (GList *l = element->sinkpads; l; l = l->next)
    pads.push_back(GST_BACKCHANNEL_MIXER_PAD(gst_object_ref(l->data)));
  GST_OBJECT_UNLOCK(element);
  return pads;
}

void release_pads(std::vector<GstBackchannelMixerPad *> &pads) {
  for (auto *p : pads)
    gst_object_unref(p);
  pads.clear();
}

TalkerQueue::Config queue_config(GstBackchannelMixer *self) {
  auto *priv = self->priv;
  TalkerQueue::Config cfg;
  costream::sample_format_from_gst(GST_AUDIO_INFO_FORMAT(&priv->out_info), &cfg.layout.format);
  cfg.layout.channels = GST_AUDIO_INFO_CHANNELS(&priv->out_info);
  cfg.layout.rate = GST_AUDIO_INFO_RATE(&priv->out_info);
  GST_OBJECT_LOCK(self);
  cfg.drift_correction = priv->drift_correction && priv->live;
  cfg.align_threshold = static_cast<int64_t>(
      gst_util_uint64_scale_round(priv->alignment_threshold, cfg.layout.rate, GST_SECOND));
  GST_OBJECT_UNLOCK(self);
  cfg.max_ahead = static_cast<int64_t>(cfg.layout.rate) * 10;
  return cfg;
}

/* Gives a pad's input the current output format; posts an error when that is impossible. */
bool configure_pad_output(GstBackchannelMixer *self, GstBackchannelMixerPad *pad,
                          const TalkerQueue::Config &cfg) {
  std::string why;
  bool ok;
  {
    std::lock_guard<std::mutex> guard(pad->priv->input_lock);
    ok = pad->priv->input.set_output(self->priv->out_info, cfg, &why);
  }
  if (!ok) {
    GST_ELEMENT_ERROR(self, CORE, NEGOTIATION,
                      ("Talker on pad %s cannot be converted to the output format.",
                       GST_PAD_NAME(pad)),
                      ("%s", why.c_str()));
  }
  return ok;
}

} // namespace

static gboolean gst_backchannel_mixer_sink_event(GstAggregator *agg, GstAggregatorPad *aggpad,
                                                 GstEvent *event) {
  auto *self = GST_BACKCHANNEL_MIXER(agg);
  auto *pad = GST_BACKCHANNEL_MIXER_PAD(aggpad);

  if (GST_EVENT_TYPE(event) == GST_EVENT_CAPS) {
    GstCaps *caps;
    gst_event_parse_caps(event, &caps);
    std::string why;
    bool ok;
    {
      std::lock_guard<std::mutex> guard(pad->priv->input_lock);
      ok = pad->priv->input.set_input_caps(caps, &why);
    }
    if (!ok) {
      GST_ELEMENT_ERROR(self, CORE, NEGOTIATION,
                        ("Talker on pad %s sent audio that cannot be mixed: %s. Accepted: "
                         "S16LE, S32LE or F32LE, 8000-48000 Hz, mono or stereo, interleaved.",
                         GST_PAD_NAME(pad), why.c_str()),
                        ("caps %" GST_PTR_FORMAT, caps));
      gst_event_unref(event);
      return FALSE;
    }
    GST_DEBUG_OBJECT(pad, "input caps %" GST_PTR_FORMAT, caps);
    gst_event_unref(event);
    /* A talker that joins live may come with more latency than the pipeline was configured
     * for (a longer jitter buffer, bigger packets): ask the pipeline to recompute it, so its
     * data is not late at every deadline. */
    if (self->priv->live)
      gst_element_post_message(GST_ELEMENT(self), gst_message_new_latency(GST_OBJECT(self)));
    return TRUE;
  }
  return GST_AGGREGATOR_CLASS(gst_backchannel_mixer_parent_class)->sink_event(agg, aggpad, event);
}

static gboolean gst_backchannel_mixer_sink_query(GstAggregator *agg, GstAggregatorPad *aggpad,
                                                 GstQuery *query) {
  auto *self = GST_BACKCHANNEL_MIXER(agg);
  switch (GST_QUERY_TYPE(query)) {
  case GST_QUERY_CAPS: {
    GstCaps *filter;
    gst_query_parse_caps(query, &filter);
    GstCaps *tmpl = gst_pad_get_pad_template_caps(GST_PAD(aggpad));
    GstCaps *result;
    /* Offer the output format first: upstream that can produce it directly saves a conversion
     * and makes zero-copy passthrough possible. */
    GstCaps *out = nullptr;
    GST_OBJECT_LOCK(self);
    if (gst_pad_has_current_caps(agg->srcpad))
      out = gst_pad_get_current_caps(agg->srcpad);
    GST_OBJECT_UNLOCK(self);
    if (out) {
      result = gst_caps_merge(out, tmpl);
    } else {
      result = tmpl;
    }
    if (filter) {
      GstCaps *tmp = gst_caps_intersect_full(filter, result, GST_CAPS_INTERSECT_FIRST);
      gst_caps_unref(result);
      result = tmp;
    }
    gst_query_set_caps_result(query, result);
    gst_caps_unref(result);
    return TRUE;
  }
  case GST_QUERY_ACCEPT_CAPS: {
    /* Accept any complete raw audio here, so that caps we cannot mix reach the caps event and
     * get an error that names the pad, instead of a bare not-negotiated upstream. */
    GstCaps *caps;
    gst_query_parse_accept_caps(query, &caps);
    GstAudioInfo info;
    gst_query_set_accept_caps_result(query, gst_audio_info_from_caps(&info, caps));
    return TRUE;
  }
  default:
    return GST_AGGREGATOR_CLASS(gst_backchannel_mixer_parent_class)->sink_query(agg, aggpad, query);
  }
}

static GstCaps *gst_backchannel_mixer_fixate_src_caps(GstAggregator *agg, GstCaps *caps) {
  caps = gst_caps_make_writable(caps);
  caps = gst_caps_truncate(caps);
  GstStructure *s = gst_caps_get_structure(caps, 0);
  gst_structure_fixate_field_nearest_int(s, "rate", 48000);
  gst_structure_fixate_field_nearest_int(s, "channels", 2);
  gst_structure_fixate_field_string(s, "format", GST_AUDIO_NE(S16));
  return gst_caps_fixate(caps);
}

static gboolean gst_backchannel_mixer_negotiated_src_caps(GstAggregator *agg, GstCaps *caps) {
  auto *self = GST_BACKCHANNEL_MIXER(agg);
  auto *priv = self->priv;
  GstAudioInfo info;
  if (!gst_audio_info_from_caps(&info, caps)) {
    GST_ERROR_OBJECT(self, "invalid output caps %" GST_PTR_FORMAT, caps);
    return FALSE;
  }
  const bool changed = !priv->out_valid || !gst_audio_info_is_equal(&info, &priv->out_info);
  GST_DEBUG_OBJECT(self, "output caps %" GST_PTR_FORMAT, caps);
  priv->out_info = info;
  priv->out_valid = true;

  GST_OBJECT_LOCK(self);
  const GstClockTime dur = priv->block_duration;
  GST_OBJECT_UNLOCK(self);
  priv->block_frames = static_cast<guint>(
      std::max<guint64>(1, gst_util_uint64_scale_round(dur, GST_AUDIO_INFO_RATE(&info), GST_SECOND)));
  const GstClockTime block_time =
      gst_util_uint64_scale_round(priv->block_frames, GST_SECOND, GST_AUDIO_INFO_RATE(&info));
  gst_aggregator_set_latency(agg, block_time, block_time);
  priv->limiter_state.configure(GST_AUDIO_INFO_RATE(&info), GST_AUDIO_INFO_CHANNELS(&info));

  if (changed) {
    priv->offset = -1;
    priv->out_generation++;
  }
  return TRUE;
}

static GstFlowReturn gst_backchannel_mixer_flush(GstAggregator *agg) {
  auto *self = GST_BACKCHANNEL_MIXER(agg);
  self->priv->offset = -1;
  self->priv->discont = true;
  self->priv->limiter_state.reset();
  auto pads = collect_pads(GST_ELEMENT(self));
  for (auto *p : pads) {
    std::lock_guard<std::mutex> guard(p->priv->input_lock);
    p->priv->input.flush();
  }
  release_pads(pads);
  return GST_FLOW_OK;
}

static gboolean gst_backchannel_mixer_start(GstAggregator *agg) {
  auto *priv = GST_BACKCHANNEL_MIXER(agg)->priv;
  priv->offset = -1;
  priv->discont = true;
  priv->out_valid = false;
  priv->live = false;
  GST_OBJECT_LOCK(agg);
  priv->eos_requested = FALSE;
  priv->blocks_out = priv->silent_blocks = priv->passthrough_blocks = 0;
  GST_OBJECT_UNLOCK(agg);
  return TRUE;
}

static GstPad *gst_backchannel_mixer_request_new_pad(GstElement *element, GstPadTemplate *templ,
                                                     const gchar *name, const GstCaps *caps) {
  GstPad *pad = GST_ELEMENT_CLASS(gst_backchannel_mixer_parent_class)
                    ->request_new_pad(element, templ, name, caps);
  if (pad) {
    GST_DEBUG_OBJECT(element, "talker %s joined", GST_PAD_NAME(pad));
    gst_child_proxy_child_added(GST_CHILD_PROXY(element), G_OBJECT(pad), GST_OBJECT_NAME(pad));
  }
  return pad;
}

/* An application ends a live back channel (with or without talkers) by sending EOS to the
 * pipeline or the mixer: the output ends with EOS after the current block. */
static gboolean gst_backchannel_mixer_send_event(GstElement *element, GstEvent *event) {
  if (GST_EVENT_TYPE(event) == GST_EVENT_EOS) {
    auto *self = GST_BACKCHANNEL_MIXER(element);
    GST_DEBUG_OBJECT(self, "EOS requested");
    GST_OBJECT_LOCK(self);
    self->priv->eos_requested = TRUE;
    GST_OBJECT_UNLOCK(self);
    gst_event_unref(event);
    return TRUE;
  }
  return GST_ELEMENT_CLASS(gst_backchannel_mixer_parent_class)->send_event(element, event);
}

static void gst_backchannel_mixer_release_pad(GstElement *element, GstPad *pad) {
  GST_DEBUG_OBJECT(element, "talker %s left", GST_PAD_NAME(pad));
  gst_object_ref(pad);
  GST_ELEMENT_CLASS(gst_backchannel_mixer_parent_class)->release_pad(element, pad);
  gst_child_proxy_child_removed(GST_CHILD_PROXY(element), G_OBJECT(pad), GST_OBJECT_NAME(pad));
  gst_object_unref(pad);
}

namespace {

struct PadView {
  GstBackchannelMixerPad *pad = nullptr;
  const uint8_t *data = nullptr; /* block_frames frames, or nullptr when nothing to mix */
  GstBuffer *exact = nullptr;    /* zero-copy input buffer behind `data` (ref held) */
  GstMapInfo exact_map{};
  uint32_t frames_with_data = 0;
  float gain = 1.f;
  bool eos = false;
  bool heard_changed = false;
  bool heard = false;
  double level = costream::kSilenceDbov;
};

GstMessage *talker_message(GstBackchannelMixer *self, GstBackchannelMixerPad *pad, bool active,
                           double level) {
  return gst_message_new_element(
      GST_OBJECT(self),
      gst_structure_new("backchannelmixer-talker", "pad", GST_TYPE_PAD, pad, "pad-name",
                        G_TYPE_STRING, GST_PAD_NAME(pad), "active", G_TYPE_BOOLEAN, active,
                        "level", G_TYPE_DOUBLE, level, nullptr));
}

} // namespace

static GstFlowReturn gst_backchannel_mixer_aggregate(GstAggregator *agg, gboolean timeout) {
  auto *self = GST_BACKCHANNEL_MIXER(agg);
  auto *priv = self->priv;

  if (!priv->out_valid || gst_pad_check_reconfigure(agg->srcpad)) {
    if (!gst_aggregator_negotiate(agg)) {
      gst_pad_mark_reconfigure(agg->srcpad);
      if (GST_PAD_IS_FLUSHING(agg->srcpad))
        return GST_FLOW_FLUSHING;
      GST_ELEMENT_ERROR(self, CORE, NEGOTIATION,
                        ("Downstream accepts no output format the mixer can produce."),
                        ("peer caps %" GST_PTR_FORMAT,
                         gst_pad_peer_query_caps(agg->srcpad, nullptr)));
      return GST_FLOW_NOT_NEGOTIATED;
    }
  }

  const bool live = GST_CLOCK_TIME_IS_VALID(gst_aggregator_get_latency(agg));
  if (live != priv->live) {
    priv->live = live;
    priv->out_generation++;
    GST_DEBUG_OBJECT(self, "live: %d", live);
  }

  GST_OBJECT_LOCK(self);
  const bool eos_requested = priv->eos_requested;
  GST_OBJECT_UNLOCK(self);
  if (eos_requested) {
    GST_DEBUG_OBJECT(self, "EOS requested by the application");
    return GST_FLOW_EOS;
  }

  GST_OBJECT_LOCK(self);
  const GstClockTime timeout_ns = priv->timeout;
  const bool use_limiter = priv->limiter;
  const bool idle_silence = priv->idle_silence;
  const double talk_threshold = priv->talk_threshold;
  GstSegment *seg = &GST_AGGREGATOR_PAD(agg->srcpad)->segment;
  if (!GST_CLOCK_TIME_IS_VALID(seg->position) || seg->position < seg->start)
    seg->position = seg->start;
  if (priv->offset < 0) {
    priv->offset = 0;
    priv->base_pos = seg->position;
    const guint64 rt = gst_segment_to_running_time(seg, GST_FORMAT_TIME, seg->position);
    priv->base_index = static_cast<int64_t>(
        gst_util_uint64_scale_round(GST_CLOCK_TIME_IS_VALID(rt) ? rt : 0,
                                    GST_AUDIO_INFO_RATE(&priv->out_info), GST_SECOND));
  }
  GST_OBJECT_UNLOCK(self);

  const guint rate = GST_AUDIO_INFO_RATE(&priv->out_info);
  const guint bpf = GST_AUDIO_INFO_BPF(&priv->out_info);
  uint32_t n = priv->block_frames;
  const int64_t out_index = priv->base_index + priv->offset;
  const GstClockTime pts =
      priv->base_pos + gst_util_uint64_scale_round(priv->offset, GST_SECOND, rate);
  if (GST_CLOCK_TIME_IS_VALID(seg->stop) && pts >= seg->stop)
    return GST_FLOW_EOS;

  /* Pass 1: per talker, queue what the block needs and take a view of its samples. */
  auto pads = collect_pads(GST_ELEMENT(self));
  /* Talkers that joined, or all of them after the output changed, get the output format here,
   * in the streaming thread: no lock is taken from the thread that requests a pad. */
  const TalkerQueue::Config qcfg = queue_config(self);
  for (auto *pad : pads) {
    if (pad->priv->out_generation != priv->out_generation) {
      if (!configure_pad_output(self, pad, qcfg)) {
        release_pads(pads);
        return GST_FLOW_NOT_NEGOTIATED;
      }
      pad->priv->out_generation = priv->out_generation;
    }
  }
  std::vector<PadView> views(pads.size());
  bool all_ready = true;
  bool all_eos = !pads.empty();
  int64_t data_end = INT64_MIN; /* when every talker ended: where their data ends */
  for (size_t i = 0; i < pads.size(); i++) {
    auto *pad = pads[i];
    auto *aggpad = GST_AGGREGATOR_PAD(pad);
    auto &in = pad->priv->input;
    std::lock_guard<std::mutex> guard(pad->priv->input_lock);
    views[i].pad = pad;
    if (!in.has_input()) {
      /* no caps yet: nothing to mix; drop anything that slipped through */
      GstBuffer *b;
      while ((b = gst_aggregator_pad_pop_buffer(aggpad)))
        gst_buffer_unref(b);
      views[i].eos = gst_aggregator_pad_is_eos(aggpad);
      all_eos = all_eos && views[i].eos;
      continue;
    }
    while (!in.queue().covers(out_index, n)) {
      GstBuffer *b = gst_aggregator_pad_pop_buffer(aggpad);
      if (!b)
        break;
      in.push(b, &aggpad->segment);
    }
    const bool eos = gst_aggregator_pad_is_eos(aggpad);
    views[i].eos = eos;
    if (!in.queue().covers(out_index, n) && !eos && !timeout)
      all_ready = false;
    if (eos) {
      if (in.queue().has_pending())
        data_end = std::max(data_end, in.queue().write_end());
    } else {
      all_eos = false;
    }
  }

  if (!all_ready) {
    /* Non-live (or before the deadline): wait for the talkers that have not reached the block. */
    release_pads(pads);
    return GST_FLOW_OK;
  }
  if (all_eos) {
    if (data_end <= out_index) {
      release_pads(pads);
      GST_DEBUG_OBJECT(self, "all talkers ended");
      return GST_FLOW_EOS;
    }
    n = static_cast<uint32_t>(std::min<int64_t>(n, data_end - out_index));
  }

  const GstClockTime block_dur =
      gst_util_uint64_scale_round(priv->offset + n, GST_SECOND, rate) -
      gst_util_uint64_scale_round(priv->offset, GST_SECOND, rate);
  const double block_ms = 1000.0 * n / rate;
  const size_t samples = static_cast<size_t>(n) * GST_AUDIO_INFO_CHANNELS(&priv->out_info);
  const costream::SampleFormat fmt = [&] {
    costream::SampleFormat f = costream::SampleFormat::S16;
    costream::sample_format_from_gst(GST_AUDIO_INFO_FORMAT(&priv->out_info), &f);
    return f;
  }();

  /* Pass 2 (still per talker, under its lock): read the block. */
  size_t contributors = 0;
  PadView *single = nullptr;
  for (auto &v : views) {
    auto *pp = v.pad->priv;
    gst_object_sync_values(GST_OBJECT(v.pad), pts);
    GST_OBJECT_LOCK(v.pad);
    v.gain = pp->mute ? 0.f : static_cast<float>(pp->volume);
    GST_OBJECT_UNLOCK(v.pad);

    std::lock_guard<std::mutex> guard(pp->input_lock);
    auto &in = pp->input;
    if (in.has_input()) {
      TalkerQueue::ReadResult rr;
      const costream::Chunk *exact = in.queue().take_exact(out_index, n, &rr);
      if (exact && TalkerInput::chunk_buffer(*exact)) {
        v.exact = gst_buffer_ref(TalkerInput::chunk_buffer(*exact));
        if (gst_buffer_map(v.exact, &v.exact_map, GST_MAP_READ)) {
          v.data = v.exact_map.data;
        } else {
          gst_buffer_unref(v.exact);
          v.exact = nullptr;
        }
      }
      if (!v.data) {
        pp->scratch.resize(static_cast<size_t>(n) * bpf);
        if (exact) /* unmappable: the block was consumed, mix silence */
          rr.frames_with_data = 0;
        else
          rr = in.queue().read(out_index, n, pp->scratch.data());
        v.data = pp->scratch.data();
      }
      v.frames_with_data = rr.frames_with_data;
      GST_LOG_OBJECT(v.pad,
                     "block %" G_GINT64_FORMAT ": %u/%u frames, drift loop %s rate %+.5f "
                     "timing error %.1f frames%s",
                     out_index, rr.frames_with_data, n,
                     in.queue().correcting() ? "on" : "off", in.queue().rate_offset(),
                     in.queue().time_error(), timeout ? " (deadline)" : "");
      if (rr.late_frames > 0) {
        in.stats().late++;
        in.stats().late_frames += rr.late_frames;
      }
      const double power =
          v.frames_with_data > 0 ? costream::block_power(v.data, samples, fmt) : 0.0;
      v.level = in.meter().update(power, block_ms);
      in.stats().level = v.level;
    }

    /* Stall tracking and whether the talker is heard. */
    if (v.frames_with_data > 0) {
      if (pp->stalled)
        GST_INFO_OBJECT(v.pad, "talker resumed");
      pp->ever_had_data = true;
      pp->stalled = false;
      pp->missing_frames = 0;
    } else if (pp->ever_had_data && !v.eos) {
      pp->missing_frames += n;
      if (!pp->stalled &&
          gst_util_uint64_scale(pp->missing_frames, GST_SECOND, rate) >= timeout_ns) {
        pp->stalled = true;
        in.stats().timeouts++;
        GST_INFO_OBJECT(v.pad, "talker stalled: no data for %" GST_TIME_FORMAT,
                        GST_TIME_ARGS(timeout_ns));
      }
    }
    const bool present = pp->ever_had_data && !pp->stalled &&
                         (v.frames_with_data > 0 || pp->missing_frames > 0);
    const bool heard = present && v.gain > 0.f && v.level > talk_threshold;
    v.heard_changed = heard != pp->heard;
    v.heard = heard;
    pp->heard = heard;
    in.stats().active = heard;
    GST_OBJECT_LOCK(v.pad);
    pp->stats = in.stats();
    GST_OBJECT_UNLOCK(v.pad);

    if (v.frames_with_data > 0 && v.gain > 0.f) {
      contributors++;
      single = &v;
    }
  }

  /* Mix. */
  GstBuffer *outbuf = nullptr;
  bool passthrough = false;
  if (contributors == 1 && single->exact && single->gain == 1.f && !use_limiter &&
      single->frames_with_data == n && gst_buffer_get_size(single->exact) == n * bpf) {
    /* One talker, already in the output format and aligned on the block: forward its buffer.
     * Only the metadata is copied, the memory is shared. */
    outbuf = gst_buffer_copy(single->exact);
    GST_BUFFER_FLAGS(outbuf) = 0;
    passthrough = true;
  } else if (contributors > 0) {
    priv->acc.reset(fmt, samples);
    for (auto &v : views)
      if (v.frames_with_data > 0 && v.gain > 0.f)
        priv->acc.add(v.data, samples, v.gain);
    if (use_limiter)
      priv->limiter_state.process(priv->acc);
    outbuf = gst_buffer_new_allocate(nullptr, samples * sample_size(fmt), nullptr);
    GstMapInfo map;
    gst_buffer_map(outbuf, &map, GST_MAP_WRITE);
    priv->acc.store(map.data);
    gst_buffer_unmap(outbuf, &map);
  }

  for (auto &v : views) {
    if (v.exact) {
      gst_buffer_unmap(v.exact, &v.exact_map);
      gst_buffer_unref(v.exact);
      v.exact = nullptr;
    }
  }

  /* Messages are posted with no lock held. */
  for (auto &v : views) {
    if (v.heard_changed) {
      GST_DEBUG_OBJECT(v.pad, "talker %s", v.heard ? "heard" : "silent");
      gst_element_post_message(GST_ELEMENT(self), talker_message(self, v.pad, v.heard, v.level));
    }
  }
  release_pads(pads);
  views.clear();

  GST_OBJECT_LOCK(self);
  priv->blocks_out++;
  if (passthrough)
    priv->passthrough_blocks++;
  if (!outbuf)
    priv->silent_blocks++;
  seg->position = pts + block_dur;
  GST_OBJECT_UNLOCK(self);
  priv->offset += n;

  GstFlowReturn ret = GST_FLOW_OK;
  if (!outbuf && !idle_silence && !priv->discont) {
    /* Nobody to hear: tell downstream time passes without sending samples. (The very first
     * block is always a buffer, so stream-start, caps and segment precede any GAP.) */
    GST_LOG_OBJECT(self, "gap at %" GST_TIME_FORMAT, GST_TIME_ARGS(pts));
    gst_pad_push_event(agg->srcpad, gst_event_new_gap(pts, block_dur));
    return GST_FLOW_OK;
  }
  if (!outbuf) {
    outbuf = gst_buffer_new_allocate(nullptr, samples * sample_size(fmt), nullptr);
    gst_buffer_memset(outbuf, 0, 0, samples * sample_size(fmt));
    GST_BUFFER_FLAG_SET(outbuf, GST_BUFFER_FLAG_GAP);
  }
  GST_BUFFER_PTS(outbuf) = pts;
  GST_BUFFER_DTS(outbuf) = GST_CLOCK_TIME_NONE;
  GST_BUFFER_DURATION(outbuf) = block_dur;
  GST_BUFFER_OFFSET(outbuf) = static_cast<guint64>(out_index);
  GST_BUFFER_OFFSET_END(outbuf) = static_cast<guint64>(out_index + n);
  if (priv->discont) {
    GST_BUFFER_FLAG_SET(outbuf, GST_BUFFER_FLAG_DISCONT);
    priv->discont = false;
  }
  GST_LOG_OBJECT(self, "output %u frames at %" GST_TIME_FORMAT " from %zu talkers%s", n,
                 GST_TIME_ARGS(pts), contributors, passthrough ? " (passthrough)" : "");
  ret = gst_aggregator_finish_buffer(agg, outbuf);
  return ret;
}

static GstStructure *gst_backchannel_mixer_get_stats(GstBackchannelMixer *self) {
  auto *priv = self->priv;
  GstStructure *s = gst_structure_new_empty("backchannelmixer-stats");
  GValue array = G_VALUE_INIT;
  gst_value_array_init(&array, 0);
  guint talkers = 0, active = 0;
  auto pads = collect_pads(GST_ELEMENT(self));
  for (auto *p : pads) {
    GST_OBJECT_LOCK(p);
    const auto st = p->priv->stats;
    const double volume = p->priv->volume;
    const gboolean mute = p->priv->mute;
    GST_OBJECT_UNLOCK(p);
    talkers++;
    active += st.active ? 1 : 0;
    GstStructure *ps = gst_structure_new(
        "talker", "pad", G_TYPE_STRING, GST_PAD_NAME(p), "bytes", G_TYPE_UINT64, st.bytes,
        "buffers", G_TYPE_UINT64, st.buffers, "dropped", G_TYPE_UINT64, st.dropped, "late",
        G_TYPE_UINT64, st.late, "late-frames", G_TYPE_UINT64, st.late_frames, "timeouts",
        G_TYPE_UINT64, st.timeouts, "level", G_TYPE_DOUBLE, st.level, "active", G_TYPE_BOOLEAN,
        st.active, "volume", G_TYPE_DOUBLE, volume, "mute", G_TYPE_BOOLEAN, mute, nullptr);
    GValue v = G_VALUE_INIT;
    g_value_init(&v, GST_TYPE_STRUCTURE);
    g_value_take_boxed(&v, ps);
    gst_value_array_append_and_take_value(&array, &v);
  }
  release_pads(pads);
  GST_OBJECT_LOCK(self);
  gst_structure_set(s, "talkers", G_TYPE_UINT, talkers, "active-talkers", G_TYPE_UINT, active,
                    "blocks", G_TYPE_UINT64, priv->blocks_out, "silent-blocks", G_TYPE_UINT64,
                    priv->silent_blocks, "passthrough-blocks", G_TYPE_UINT64,
                    priv->passthrough_blocks, nullptr);
  GST_OBJECT_UNLOCK(self);
  gst_structure_take_value(s, "pads", &array);
  return s;
}

static void gst_backchannel_mixer_set_property(GObject *object, guint prop_id, const GValue *value,
                                               GParamSpec *pspec) {
  auto *self = GST_BACKCHANNEL_MIXER(object);
  auto *priv = self->priv;
  switch (prop_id) {
  case PROP_FORCE_LIVE:
    gst_aggregator_set_force_live(GST_AGGREGATOR(self), g_value_get_boolean(value));
    return;
  default:
    break;
  }
  GST_OBJECT_LOCK(self);
  switch (prop_id) {
  case PROP_OUTPUT_BUFFER_DURATION:
    priv->block_duration = g_value_get_uint64(value);
    break;
  case PROP_TIMEOUT:
    priv->timeout = g_value_get_uint64(value);
    break;
  case PROP_ALIGNMENT_THRESHOLD:
    priv->alignment_threshold = g_value_get_uint64(value);
    break;
  case PROP_DRIFT_CORRECTION:
    priv->drift_correction = g_value_get_boolean(value);
    break;
  case PROP_LIMITER:
    priv->limiter = g_value_get_boolean(value);
    break;
  case PROP_IDLE_SILENCE:
    priv->idle_silence = g_value_get_boolean(value);
    break;
  case PROP_TALK_THRESHOLD:
    priv->talk_threshold = g_value_get_double(value);
    break;
  default:
    G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec);
    break;
  }
  GST_OBJECT_UNLOCK(self);
}

static void gst_backchannel_mixer_get_property(GObject *object, guint prop_id, GValue *value,
                                               GParamSpec *pspec) {
  auto *self = GST_BACKCHANNEL_MIXER(object);
  auto *priv = self->priv;
  switch (prop_id) {
  case PROP_FORCE_LIVE:
    g_value_set_boolean(value, gst_aggregator_get_force_live(GST_AGGREGATOR(self)));
    return;
  case PROP_STATS:
    g_value_take_boxed(value, gst_backchannel_mixer_get_stats(self));
    return;
  default:
    break;
  }
  GST_OBJECT_LOCK(self);
  switch (prop_id) {
  case PROP_OUTPUT_BUFFER_DURATION:
    g_value_set_uint64(value, priv->block_duration);
    break;
  case PROP_TIMEOUT:
    g_value_set_uint64(value, priv->timeout);
    break;
  case PROP_ALIGNMENT_THRESHOLD:
    g_value_set_uint64(value, priv->alignment_threshold);
    break;
  case PROP_DRIFT_CORRECTION:
    g_value_set_boolean(value, priv->drift_correction);
    break;
  case PROP_LIMITER:
    g_value_set_boolean(value, priv->limiter);
    break;
  case PROP_IDLE_SILENCE:
    g_value_set_boolean(value, priv->idle_silence);
    break;
  case PROP_TALK_THRESHOLD:
    g_value_set_double(value, priv->talk_threshold);
    break;
  default:
    G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec);
    break;
  }
  GST_OBJECT_UNLOCK(self);
}

static void gst_backchannel_mixer_finalize(GObject *object) {
  auto *self = GST_BACKCHANNEL_MIXER(object);
  delete self->priv;
  self->priv = nullptr;
  G_OBJECT_CLASS(gst_backchannel_mixer_parent_class)->finalize(object);
}

static void gst_backchannel_mixer_class_init(GstBackchannelMixerClass *klass) {
  auto *gobject_class = G_OBJECT_CLASS(klass);
  auto *element_class = GST_ELEMENT_CLASS(klass);
  auto *agg_class = GST_AGGREGATOR_CLASS(klass);

  GST_DEBUG_CATEGORY_INIT(gst_backchannel_mixer_debug, "backchannelmixer", 0,
                          "costream talk-back mixer");

  gobject_class->set_property = gst_backchannel_mixer_set_property;
  gobject_class->get_property = gst_backchannel_mixer_get_property;
  gobject_class->finalize = gst_backchannel_mixer_finalize;

  const auto rw_playing = static_cast<GParamFlags>(G_PARAM_READWRITE | GST_PARAM_MUTABLE_PLAYING |
                                                   G_PARAM_STATIC_STRINGS);
  const auto rw_ready = static_cast<GParamFlags>(G_PARAM_READWRITE | GST_PARAM_MUTABLE_READY |
                                                 G_PARAM_STATIC_STRINGS);

  /**
   * GstBackchannelMixer:output-buffer-duration:
   *
   * Duration of one output block. Live, the element adds this much latency plus the jitter
   * allowance (`latency`).
   */
  g_object_class_install_property(
      gobject_class, PROP_OUTPUT_BUFFER_DURATION,
      g_param_spec_uint64("output-buffer-duration", "Output buffer duration",
                          "Duration of one output block in nanoseconds (adds this much latency)",
                          GST_MSECOND, GST_SECOND, DEFAULT_OUTPUT_BUFFER_DURATION, rw_ready));
  /**
   * GstBackchannelMixer:timeout:
   *
   * A talker that sends nothing for this long (without EOS: a network drop, a closed browser
   * tab) is counted as stalled and silent until its data returns. Live, the output never waits
   * for a missing talker beyond its deadline in any case.
   */
  g_object_class_install_property(
      gobject_class, PROP_TIMEOUT,
      g_param_spec_uint64("timeout", "Stall timeout",
                          "Nanoseconds without data after which a talker counts as stalled and "
                          "silent (until its data returns)",
                          GST_MSECOND, 60 * GST_SECOND, DEFAULT_TIMEOUT, rw_playing));
  /**
   * GstBackchannelMixer:alignment-threshold:
   *
   * Timestamp jitter tolerated before an input's timestamps are taken as a real gap (filled with
   * silence) or overlap (trimmed).
   */
  g_object_class_install_property(
      gobject_class, PROP_ALIGNMENT_THRESHOLD,
      g_param_spec_uint64("alignment-threshold", "Alignment threshold",
                          "Timestamp jitter in nanoseconds tolerated before a gap or overlap is "
                          "acted on",
                          0, 10 * GST_SECOND, DEFAULT_ALIGNMENT_THRESHOLD, rw_playing));
  /**
   * GstBackchannelMixer:drift-correction:
   *
   * Live: follow each talker's sample clock with a fractional resampler so clock drift between
   * talker and pipeline neither clicks nor builds up latency.
   */
  g_object_class_install_property(
      gobject_class, PROP_DRIFT_CORRECTION,
      g_param_spec_boolean("drift-correction", "Drift correction",
                           "Live: resample each talker smoothly to follow its clock drift "
                           "(instead of dropping or inserting samples)",
                           DEFAULT_DRIFT_CORRECTION, rw_ready));
  /**
   * GstBackchannelMixer:limiter:
   *
   * Apply a peak limiter (instant attack, 80 ms release, ceiling -1 dBFS) to the sum instead of
   * letting it saturate.
   */
  g_object_class_install_property(
      gobject_class, PROP_LIMITER,
      g_param_spec_boolean("limiter", "Limiter",
                           "Limit the mix to -1 dBFS with a smooth peak limiter instead of "
                           "letting loud sums saturate",
                           DEFAULT_LIMITER, rw_playing));
  /**
   * GstBackchannelMixer:idle-silence:
   *
   * When no talker has data, output silence (the default: the producer's back channel stays
   * open). When FALSE, send GAP events instead, so nothing is encoded or sent.
   */
  g_object_class_install_property(
      gobject_class, PROP_IDLE_SILENCE,
      g_param_spec_boolean("idle-silence", "Idle silence",
                           "Output silence when nobody talks (FALSE: send GAP events instead of "
                           "buffers)",
                           DEFAULT_IDLE_SILENCE, rw_playing));
  /**
   * GstBackchannelMixer:talk-threshold:
   *
   * Level (dBov) above which a talker counts as heard for the `active` statistic and the
   * `backchannelmixer-talker` messages. Mixing itself does not gate on it.
   */
  g_object_class_install_property(
      gobject_class, PROP_TALK_THRESHOLD,
      g_param_spec_double("talk-threshold", "Talk threshold",
                          "Level in dBov above which a talker counts as heard (for messages and "
                          "stats; mixing does not gate on it)",
                          costream::kSilenceDbov, 0.0, DEFAULT_TALK_THRESHOLD, rw_playing));
  /**
   * GstBackchannelMixer:force-live:
   *
   * Produce output on the clock even before any live talker is linked (a producer's back channel
   * that must stay open with nobody talking). Set before going to PAUSED.
   */
  g_object_class_install_property(
      gobject_class, PROP_FORCE_LIVE,
      g_param_spec_boolean("force-live", "Force live",
                           "Always run live and output on the clock, even with no live talker "
                           "linked (set before PAUSED)",
                           DEFAULT_FORCE_LIVE, rw_ready));
  /**
   * GstBackchannelMixer:stats:
   *
   * A `backchannelmixer-stats` structure: `talkers`, `active-talkers`, `blocks`,
   * `silent-blocks`, `passthrough-blocks` and `pads`, an array of one `talker` structure per pad
   * (`pad`, `bytes`, `buffers`, `dropped`, `late`, `late-frames`, `timeouts`, `level`, `active`,
   * `volume`, `mute`).
   */
  g_object_class_install_property(
      gobject_class, PROP_STATS,
      g_param_spec_boxed("stats", "Statistics", "Summary of the mixer and every talker",
                         GST_TYPE_STRUCTURE,
                         static_cast<GParamFlags>(G_PARAM_READABLE | G_PARAM_STATIC_STRINGS)));

  gst_element_class_add_static_pad_template_with_gtype(element_class, &src_template,
                                                       GST_TYPE_AGGREGATOR_PAD);
  gst_element_class_add_static_pad_template_with_gtype(element_class, &sink_template,
                                                       GST_TYPE_BACKCHANNEL_MIXER_PAD);
  gst_element_class_set_static_metadata(
      element_class, "Talk-back mixer", "Filter/Audio/Mixer",
      "Mixes live talk-back inputs that join and leave at any time into one output, with drift "
      "correction, stall timeouts and talker activity messages",
      "costream developers");

  element_class->request_new_pad = GST_DEBUG_FUNCPTR(gst_backchannel_mixer_request_new_pad);
  element_class->release_pad = GST_DEBUG_FUNCPTR(gst_backchannel_mixer_release_pad);
  element_class->send_event = GST_DEBUG_FUNCPTR(gst_backchannel_mixer_send_event);

  agg_class->aggregate = GST_DEBUG_FUNCPTR(gst_backchannel_mixer_aggregate);
  agg_class->sink_event = GST_DEBUG_FUNCPTR(gst_backchannel_mixer_sink_event);
  agg_class->sink_query = GST_DEBUG_FUNCPTR(gst_backchannel_mixer_sink_query);
  agg_class->fixate_src_caps = GST_DEBUG_FUNCPTR(gst_backchannel_mixer_fixate_src_caps);
  agg_class->negotiated_src_caps = GST_DEBUG_FUNCPTR(gst_backchannel_mixer_negotiated_src_caps);
  agg_class->flush = GST_DEBUG_FUNCPTR(gst_backchannel_mixer_flush);
  agg_class->start = GST_DEBUG_FUNCPTR(gst_backchannel_mixer_start);
  agg_class->get_next_time = gst_aggregator_simple_get_next_time;

  gst_type_mark_as_plugin_api(GST_TYPE_BACKCHANNEL_MIXER_PAD, static_cast<GstPluginAPIFlags>(0));
}

static void gst_backchannel_mixer_init(GstBackchannelMixer *self) {
  self->priv = new GstBackchannelMixerPrivate();
  gst_audio_info_init(&self->priv->out_info);
}

/* GstChildProxy: pads as children, so gst-launch can set `m.sink_0::volume=0.5`. */

static GObject *gst_backchannel_mixer_child_proxy_get_child_by_index(GstChildProxy *proxy,
                                                                     guint index) {
  GObject *obj = nullptr;
  GST_OBJECT_LOCK(proxy);
  obj = static_cast<GObject *>(g_list_nth_data(GST_ELEMENT_CAST(proxy)->sinkpads, index));
  if (obj)
    gst_object_ref(obj);
  GST_OBJECT_UNLOCK(proxy);
  return obj;
}

static guint gst_backchannel_mixer_child_proxy_get_children_count(GstChildProxy *proxy) {
  GST_OBJECT_LOCK(proxy);
  guint count = GST_ELEMENT_CAST(proxy)->numsinkpads;
  GST_OBJECT_UNLOCK(proxy);
  return count;
}

static void gst_backchannel_mixer_child_proxy_init(gpointer g_iface, gpointer iface_data) {
  auto *iface = static_cast<GstChildProxyInterface *>(g_iface);
  iface->get_child_by_index = gst_backchannel_mixer_child_proxy_get_child_by_index;
  iface->get_children_count = gst_backchannel_mixer_child_proxy_get_children_count;
}
