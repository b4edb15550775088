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
 * Talkers may also send Opus (`audio/x-opus`, mapping family 0, e.g. straight from
 * `rtpopusdepay`): it is decoded inside, in the talker's thread, and lost packets are concealed
 * as a receiving peer would (libopus PLC for a hole in the timestamps or a GAP event, in-band FEC
 * from the next packet when the sender adds it, DTX silence not taken for a loss); the pads count
 * `concealed` and `recovered` packets.
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
 *     ! audio/x-raw,rate=8000,channels=1 ! alawenc ! rtppcmapay ! udpsink host=127.0.0.1 port=5010
 * \
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

#include "../audio/level.h"
#include "../audio/mix.h"
#include "../common/objectlock.h"

#include <gst/audio/audio.h>

#include <algorithm>

GST_DEBUG_CATEGORY_STATIC(gst_backchannel_mixer_debug);
#define GST_CAT_DEFAULT gst_backchannel_mixer_debug

/* The input side (talker pads, queues, clocking, latency, seeks) is GstCostreamMixer's. This
 * element is its output side: one src pad, an exact saturating sum or zero-copy passthrough,
 * an optional limiter, GAP events when idle, and talker activity messages. */

using costream::MixAccumulator;
using costream::PeakLimiter;

#define DEFAULT_LIMITER FALSE
#define DEFAULT_IDLE_SILENCE TRUE
#define DEFAULT_TALK_THRESHOLD (-50.0)

static GstStaticPadTemplate src_template = GST_STATIC_PAD_TEMPLATE(
    "src", GST_PAD_SRC, GST_PAD_ALWAYS, GST_STATIC_CAPS(COSTREAM_MIXER_CAPS));
static GstStaticPadTemplate sink_template = GST_STATIC_PAD_TEMPLATE(
    "sink_%u", GST_PAD_SINK, GST_PAD_REQUEST,
    GST_STATIC_CAPS(COSTREAM_MIXER_CAPS "; " COSTREAM_MIXER_OPUS_INPUT_CAPS));

/* ------------------------------------------------------------------------------------------ */
/* Pad: the base talker pad; `heard` is this element's own state (output thread only).        */

struct _GstBackchannelMixerPad {
  GstCostreamMixerPad parent;
  bool heard;
};

G_DEFINE_TYPE(GstBackchannelMixerPad, gst_backchannel_mixer_pad, GST_TYPE_COSTREAM_MIXER_PAD);

static void gst_backchannel_mixer_pad_class_init(GstBackchannelMixerPadClass *klass) {}
static void gst_backchannel_mixer_pad_init(GstBackchannelMixerPad *pad) {
  pad->heard = false;
}

/* ------------------------------------------------------------------------------------------ */
/* Element                                                                                      */

enum {
  PROP_0,
  PROP_LIMITER,
  PROP_IDLE_SILENCE,
  PROP_TALK_THRESHOLD,
  PROP_STATS,
};

struct GstBackchannelMixerPrivate {
  GstPad *srcpad = nullptr;

  /* GST_OBJECT_LOCK (element): properties (copied once per block) and counters */
  struct Settings {
    gboolean limiter = DEFAULT_LIMITER;
    gboolean idle_silence = DEFAULT_IDLE_SILENCE;
    gdouble talk_threshold = DEFAULT_TALK_THRESHOLD;
  } settings;
  guint64 blocks_out = 0;
  guint64 silent_blocks = 0;
  guint64 passthrough_blocks = 0;

  /* Output thread only: */
  MixAccumulator acc;
  PeakLimiter limiter_state;
  int limiter_rate = 0;
  int limiter_channels = 0;
};

struct _GstBackchannelMixer {
  GstCostreamMixer parent;
  GstBackchannelMixerPrivate *priv;
};

G_DEFINE_TYPE(GstBackchannelMixer, gst_backchannel_mixer, GST_TYPE_COSTREAM_MIXER);
GST_ELEMENT_REGISTER_DEFINE(backchannelmixer, "backchannelmixer", GST_RANK_NONE,
                            GST_TYPE_BACKCHANNEL_MIXER);

namespace {

GstMessage *talker_message(GstBackchannelMixer *self, GstCostreamMixerPad *pad, bool active,
                           double level) {
  return gst_message_new_element(GST_OBJECT(self),
                                 gst_structure_new("backchannelmixer-talker", "pad", GST_TYPE_PAD,
                                                   pad, "pad-name", G_TYPE_STRING,
                                                   GST_PAD_NAME(pad), "active", G_TYPE_BOOLEAN,
                                                   active, "level", G_TYPE_DOUBLE, level, nullptr));
}

} // namespace

/* Output thread: picks the output format downstream wants and announces it. */
static gboolean gst_backchannel_mixer_negotiate(GstCostreamMixer *mixer, GstAudioInfo *info) {
  auto *self = GST_BACKCHANNEL_MIXER(mixer);
  auto *priv = self->priv;
  gst_pad_check_reconfigure(priv->srcpad); /* this negotiation answers any pending request */
  GstCaps *tmpl = gst_pad_get_pad_template_caps(priv->srcpad);
  GstCaps *peer = gst_pad_peer_query_caps(priv->srcpad, tmpl);
  gst_caps_unref(tmpl);
  if (gst_caps_is_empty(peer)) {
    gst_caps_unref(peer);
    if (GST_PAD_IS_FLUSHING(priv->srcpad))
      return FALSE;
    GST_ELEMENT_ERROR(self, CORE, NEGOTIATION,
                      ("Downstream accepts no output format the mixer can produce (raw S16LE, "
                       "S32LE or F32LE, 8000-48000 Hz, mono or stereo)."),
                      (nullptr));
    return FALSE;
  }
  GstCaps *caps = gst_costream_mixer_fixate_caps(peer, 2);
  if (!gst_audio_info_from_caps(info, caps)) {
    GST_ELEMENT_ERROR(self, CORE, NEGOTIATION,
                      ("Downstream settled on a format that is not complete raw audio (rate, "
                       "channels and sample format fixed)."),
                      ("caps %" GST_PTR_FORMAT, caps));
    gst_caps_unref(caps);
    return FALSE;
  }
  if (!gst_costream_mixer_push_caps(mixer, priv->srcpad, caps)) {
    GST_DEBUG_OBJECT(self, "downstream refused %" GST_PTR_FORMAT, caps);
    gst_caps_unref(caps);
    gst_pad_mark_reconfigure(priv->srcpad);
    return FALSE;
  }
  GST_DEBUG_OBJECT(self, "output caps %" GST_PTR_FORMAT, caps);
  gst_caps_unref(caps);
  return TRUE;
}

static GstFlowReturn gst_backchannel_mixer_output(GstCostreamMixer *mixer,
                                                  GstCostreamMixerBlock *block) {
  auto *self = GST_BACKCHANNEL_MIXER(mixer);
  auto *priv = self->priv;

  if (gst_pad_check_reconfigure(priv->srcpad))
    gst_costream_mixer_request_reconfigure(mixer);

  const auto st = costream::locked_copy(self, priv->settings);
  const bool use_limiter = st.limiter;
  const bool idle_silence = st.idle_silence;
  const double talk_threshold = st.talk_threshold;

  const int rate = GST_AUDIO_INFO_RATE(&block->info);
  const int channels = GST_AUDIO_INFO_CHANNELS(&block->info);
  if (rate != priv->limiter_rate || channels != priv->limiter_channels) {
    priv->limiter_state.configure(rate, channels);
    priv->limiter_rate = rate;
    priv->limiter_channels = channels;
  }

  size_t contributors = 0;
  GstCostreamMixerInput *single = nullptr;
  for (auto &v : block->inputs) {
    if (v.frames_with_data > 0 && v.gain > 0.f) {
      contributors++;
      single = &v;
    }
  }

  /* Mix. */
  const uint32_t n = block->frames;
  GstBuffer *outbuf = nullptr;
  bool passthrough = false;
  if (contributors == 1 && single->exact && single->gain == 1.f && !use_limiter &&
      single->frames_with_data == n) {
    /* One talker, already in the output format and aligned on the block: forward its buffer.
     * Only the metadata is copied, the memory is shared. */
    outbuf = gst_buffer_copy(single->exact);
    GST_BUFFER_FLAGS(outbuf) = 0;
    passthrough = true;
  } else if (contributors > 0) {
    priv->acc.reset(block->format, block->samples);
    for (auto &v : block->inputs)
      if (v.frames_with_data > 0 && v.gain > 0.f)
        priv->acc.add(v.data, block->samples, v.gain);
    if (use_limiter)
      priv->limiter_state.process(priv->acc);
    outbuf = gst_buffer_new_allocate(nullptr, block->bytes, nullptr);
    GstMapInfo map;
    gst_buffer_map(outbuf, &map, GST_MAP_WRITE);
    priv->acc.store(map.data);
    gst_buffer_unmap(outbuf, &map);
  }

  /* Who is heard: sending, not muted, above the talk threshold. */
  for (auto &v : block->inputs) {
    auto *bpad = GST_BACKCHANNEL_MIXER_PAD(v.pad);
    const bool heard = v.present && v.gain > 0.f && v.level > talk_threshold;
    if (heard == bpad->heard)
      continue;
    bpad->heard = heard;
    gst_costream_mixer_pad_set_active(v.pad, heard);
    GST_DEBUG_OBJECT(v.pad, "talker %s", heard ? "heard" : "silent");
    gst_element_post_message(GST_ELEMENT(self), talker_message(self, v.pad, heard, v.level));
  }

  {
    costream::ObjectLock lk(self);
    priv->blocks_out++;
    if (passthrough)
      priv->passthrough_blocks++;
    if (!outbuf)
      priv->silent_blocks++;
  }

  if (!outbuf && !idle_silence && !block->discont) {
    /* Nobody to hear: tell downstream time passes without sending samples. (The first block is
     * always a buffer.) */
    gst_pad_push_event(priv->srcpad, gst_event_new_gap(block->pts, block->duration));
    return GST_FLOW_OK;
  }
  if (!outbuf) {
    outbuf = gst_buffer_new_allocate(nullptr, block->bytes, nullptr);
    gst_buffer_memset(outbuf, 0, 0, block->bytes);
    GST_BUFFER_FLAG_SET(outbuf, GST_BUFFER_FLAG_GAP);
  }
  GST_BUFFER_PTS(outbuf) = block->pts;
  GST_BUFFER_DTS(outbuf) = GST_CLOCK_TIME_NONE;
  GST_BUFFER_DURATION(outbuf) = block->duration;
  GST_BUFFER_OFFSET(outbuf) = static_cast<guint64>(block->offset);
  GST_BUFFER_OFFSET_END(outbuf) = static_cast<guint64>(block->offset + n);
  if (block->discont)
    GST_BUFFER_FLAG_SET(outbuf, GST_BUFFER_FLAG_DISCONT);
  GST_LOG_OBJECT(self, "output %u frames at %" GST_TIME_FORMAT " from %zu talkers%s", n,
                 GST_TIME_ARGS(block->pts), contributors, passthrough ? " (passthrough)" : "");
  return gst_pad_push(priv->srcpad, outbuf);
}

static void gst_backchannel_mixer_reset(GstCostreamMixer *mixer) {
  auto *self = GST_BACKCHANNEL_MIXER(mixer);
  auto *priv = self->priv;
  priv->limiter_state.reset();
  auto pads = gst_costream_mixer_get_pads(mixer);
  for (auto *p : pads) {
    GST_BACKCHANNEL_MIXER_PAD(p)->heard = false;
    gst_costream_mixer_pad_set_active(p, FALSE);
  }
  gst_costream_mixer_release_pads(pads);
  costream::ObjectLock lk(self);
  priv->blocks_out = priv->silent_blocks = priv->passthrough_blocks = 0;
}

static GstStructure *gst_backchannel_mixer_get_stats(GstBackchannelMixer *self) {
  auto *priv = self->priv;
  GstStructure *s = gst_structure_new_empty("backchannelmixer-stats");
  GValue array = G_VALUE_INIT;
  guint active = 0;
  const guint talkers = gst_costream_mixer_pads_stats(GST_COSTREAM_MIXER(self), &array, &active);
  {
    costream::ObjectLock lk(self);
    gst_structure_set(s, "talkers", G_TYPE_UINT, talkers, "active-talkers", G_TYPE_UINT, active,
                      "blocks", G_TYPE_UINT64, priv->blocks_out, "silent-blocks", G_TYPE_UINT64,
                      priv->silent_blocks, "passthrough-blocks", G_TYPE_UINT64,
                      priv->passthrough_blocks, nullptr);
  }
  gst_structure_take_value(s, "pads", &array);
  return s;
}

static void gst_backchannel_mixer_set_property(GObject *object, guint prop_id, const GValue *value,
                                               GParamSpec *pspec) {
  auto *self = GST_BACKCHANNEL_MIXER(object);
  auto &st = self->priv->settings;
  costream::ObjectLock lk(self);
  switch (prop_id) {
  case PROP_LIMITER:
    st.limiter = g_value_get_boolean(value);
    break;
  case PROP_IDLE_SILENCE:
    st.idle_silence = g_value_get_boolean(value);
    break;
  case PROP_TALK_THRESHOLD:
    st.talk_threshold = g_value_get_double(value);
    break;
  default:
    G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec);
    break;
  }
}

static void gst_backchannel_mixer_get_property(GObject *object, guint prop_id, GValue *value,
                                               GParamSpec *pspec) {
  auto *self = GST_BACKCHANNEL_MIXER(object);
  if (prop_id == PROP_STATS) {
    g_value_take_boxed(value, gst_backchannel_mixer_get_stats(self));
    return;
  }
  const auto st = costream::locked_copy(self, self->priv->settings);
  switch (prop_id) {
  case PROP_LIMITER:
    g_value_set_boolean(value, st.limiter);
    break;
  case PROP_IDLE_SILENCE:
    g_value_set_boolean(value, st.idle_silence);
    break;
  case PROP_TALK_THRESHOLD:
    g_value_set_double(value, st.talk_threshold);
    break;
  default:
    G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec);
    break;
  }
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
  auto *mixer_class = GST_COSTREAM_MIXER_CLASS(klass);

  GST_DEBUG_CATEGORY_INIT(gst_backchannel_mixer_debug, "backchannelmixer", 0,
                          "costream talk-back mixer");

  gobject_class->set_property = gst_backchannel_mixer_set_property;
  gobject_class->get_property = gst_backchannel_mixer_get_property;
  gobject_class->finalize = gst_backchannel_mixer_finalize;

  mixer_class->negotiate = GST_DEBUG_FUNCPTR(gst_backchannel_mixer_negotiate);
  mixer_class->output = GST_DEBUG_FUNCPTR(gst_backchannel_mixer_output);
  mixer_class->forwards_inputs = TRUE; /* one talker alone passes through untouched */
  mixer_class->reset = GST_DEBUG_FUNCPTR(gst_backchannel_mixer_reset);

  const auto rw_playing = static_cast<GParamFlags>(G_PARAM_READWRITE | GST_PARAM_MUTABLE_PLAYING |
                                                   G_PARAM_STATIC_STRINGS);
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

  gst_element_class_add_static_pad_template(element_class, &src_template);
  gst_element_class_add_static_pad_template_with_gtype(element_class, &sink_template,
                                                       GST_TYPE_BACKCHANNEL_MIXER_PAD);
  gst_element_class_set_static_metadata(
      element_class, "Talk-back mixer", "Filter/Audio/Mixer",
      "Mixes live talk-back inputs that join and leave at any time into one output, with drift "
      "correction, stall timeouts and talker activity messages",
      "costream developers");

  gst_type_mark_as_plugin_api(GST_TYPE_BACKCHANNEL_MIXER_PAD, static_cast<GstPluginAPIFlags>(0));
}

static void gst_backchannel_mixer_init(GstBackchannelMixer *self) {
  auto *priv = new GstBackchannelMixerPrivate();
  self->priv = priv;
  priv->srcpad = gst_pad_new_from_static_template(&src_template, "src");
  gst_pad_set_event_function(priv->srcpad, GST_DEBUG_FUNCPTR(gst_costream_mixer_src_event));
  gst_pad_set_query_function(priv->srcpad, GST_DEBUG_FUNCPTR(gst_costream_mixer_src_query));
  gst_element_add_pad(GST_ELEMENT(self), priv->srcpad);
}
