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
#include "../audio/talkerconverter.h"

#include <gst/audio/audio.h>

#include <algorithm>
#include <cmath>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

GST_DEBUG_CATEGORY_STATIC(gst_backchannel_mixer_debug);
#define GST_CAT_DEFAULT gst_backchannel_mixer_debug

/* Threads and locks.
 *
 * Every talker's streaming thread runs the sink pad's chain: it converts its buffer (no lock,
 * the converter belongs to that thread) and appends it to the talker's queue under the element's
 * data lock. It never waits for the mixer when live; non-live it waits, with hysteresis, while
 * its queue is more than 200 ms ahead of the output (so upstreams hand over batches instead of
 * trading places with the mixer at every buffer). One output thread (the src pad's task) waits
 * for a block to be complete (non-live) or for its deadline on the clock (live), reads every
 * queue under the data lock, then mixes and pushes with no lock held.
 *
 * Lock order (outer to inner): src pad STREAM_LOCK -> priv->lock (data lock) -> GST_OBJECT_LOCK
 * (element or pad). No lock is held while pushing, querying or posting a message.
 */

using costream::MixAccumulator;
using costream::PeakLimiter;
using costream::TalkerConverter;
using costream::TalkerQueue;
using costream::TalkerStats;

#define DEFAULT_PAD_VOLUME 1.0
#define DEFAULT_PAD_MUTE FALSE
#define DEFAULT_OUTPUT_BUFFER_DURATION (10 * GST_MSECOND)
#define DEFAULT_LATENCY (20 * GST_MSECOND)
#define DEFAULT_TIMEOUT (100 * GST_MSECOND)
#define DEFAULT_ALIGNMENT_THRESHOLD (40 * GST_MSECOND)
#define DEFAULT_DRIFT_CORRECTION TRUE
#define DEFAULT_LIMITER FALSE
#define DEFAULT_IDLE_SILENCE TRUE
#define DEFAULT_TALK_THRESHOLD (-50.0)
#define DEFAULT_FORCE_LIVE FALSE

/* Non-live backpressure: a talker more than this far ahead of the output waits until it is
 * back under the low mark. */
#define AHEAD_HIGH (200 * GST_MSECOND)
#define AHEAD_LOW (100 * GST_MSECOND)

#define FORMATS "{ S16LE, S32LE, F32LE }"
#define MIXER_CAPS                                                                                 \
  "audio/x-raw, format = (string) " FORMATS ", rate = (int) [ 8000, 48000 ], "                     \
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
  /* The pad's streaming thread only: */
  TalkerConverter converter;
  GstSegment segment;
  guint64 converter_generation = 0;

  /* Element data lock: */
  TalkerQueue queue;
  bool flushing = false;
  bool eos = false;
  bool has_caps = false;
  bool waiting_for_space = false;
  costream::LevelMeter meter;
  TalkerStats stats;
  bool ever_had_data = false;
  bool stalled = false;
  bool heard = false;
  int64_t missing_frames = 0;

  /* Output thread only: */
  std::vector<uint8_t> scratch;

  /* GST_OBJECT_LOCK (pad): */
  gdouble volume = DEFAULT_PAD_VOLUME;
  gboolean mute = DEFAULT_PAD_MUTE;
  TalkerStats snapshot;
};

struct _GstBackchannelMixerPad {
  GstPad parent;
  GstBackchannelMixerPadPrivate *priv;
};

G_DEFINE_TYPE(GstBackchannelMixerPad, gst_backchannel_mixer_pad, GST_TYPE_PAD);

static void gst_backchannel_mixer_pad_get_property(GObject *object, guint prop_id, GValue *value,
                                                   GParamSpec *pspec) {
  auto *pad = GST_BACKCHANNEL_MIXER_PAD(object);
  GST_OBJECT_LOCK(pad);
  const auto &st = pad->priv->snapshot;
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

static void gst_backchannel_mixer_pad_class_init(GstBackchannelMixerPadClass *klass) {
  auto *gobject_class = G_OBJECT_CLASS(klass);
  gobject_class->get_property = gst_backchannel_mixer_pad_get_property;
  gobject_class->set_property = gst_backchannel_mixer_pad_set_property;
  gobject_class->finalize = gst_backchannel_mixer_pad_finalize;

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
  gst_segment_init(&pad->priv->segment, GST_FORMAT_TIME);
  pad->priv->meter.configure();
}

/* ------------------------------------------------------------------------------------------ */
/* Element                                                                                      */

enum {
  PROP_0,
  PROP_OUTPUT_BUFFER_DURATION,
  PROP_LATENCY,
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
  GstPad *srcpad = nullptr;

  /* GST_OBJECT_LOCK (element): properties and counters */
  GstClockTime block_duration = DEFAULT_OUTPUT_BUFFER_DURATION;
  GstClockTime jitter = DEFAULT_LATENCY;
  GstClockTime timeout = DEFAULT_TIMEOUT;
  GstClockTime alignment_threshold = DEFAULT_ALIGNMENT_THRESHOLD;
  gboolean drift_correction = DEFAULT_DRIFT_CORRECTION;
  gboolean limiter = DEFAULT_LIMITER;
  gboolean idle_silence = DEFAULT_IDLE_SILENCE;
  gdouble talk_threshold = DEFAULT_TALK_THRESHOLD;
  gboolean force_live = DEFAULT_FORCE_LIVE;
  guint next_pad_index = 0;
  guint64 blocks_out = 0;
  guint64 silent_blocks = 0;
  guint64 passthrough_blocks = 0;

  /* Data lock and what it protects (plus every pad's queue and flags). */
  std::mutex lock;
  std::condition_variable data_cond;  /* the output thread waits for data, flush, state */
  std::condition_variable space_cond; /* non-live talkers wait for room, or an output format */
  std::vector<GstBackchannelMixerPad *> pads; /* with a reference each */
  bool flushing = true;
  bool playing = false;
  bool output_waiting = false;
  GstClockID clock_id = nullptr;
  bool out_valid = false;
  GstAudioInfo out_info;
  guint block_frames = 480;
  guint64 generation = 1; /* bumped when the output format changes */
  bool reconfigure = false;
  bool live = false;
  bool latency_dirty = true;
  GstClockTime upstream_latency = 0;
  int64_t out_index = 0; /* running time of the next block, in output frames */
  GstSegment segment;
  bool send_stream_start = true;
  bool send_segment = true;
  bool discont = true;
  bool eos_requested = false;
  guint32 seqnum = 0;

  /* Output thread only: */
  MixAccumulator acc;
  PeakLimiter limiter_state;
};

struct _GstBackchannelMixer {
  GstElement parent;
  GstBackchannelMixerPrivate *priv;
};

static void gst_backchannel_mixer_child_proxy_init(gpointer g_iface, gpointer iface_data);

G_DEFINE_TYPE_WITH_CODE(GstBackchannelMixer, gst_backchannel_mixer, GST_TYPE_ELEMENT,
                        G_IMPLEMENT_INTERFACE(GST_TYPE_CHILD_PROXY,
                                              gst_backchannel_mixer_child_proxy_init));
GST_ELEMENT_REGISTER_DEFINE(backchannelmixer, "backchannelmixer", GST_RANK_NONE,
                            GST_TYPE_BACKCHANNEL_MIXER);

using Lock = std::unique_lock<std::mutex>;

namespace {

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

/* (data lock) The talkers' queues follow the output format and mode. */
void reconfigure_queues(GstBackchannelMixer *self) {
  const auto cfg = queue_config(self);
  for (auto *p : self->priv->pads)
    p->priv->queue.configure(cfg);
}

int64_t frames_of(GstBackchannelMixer *self, GstClockTime t) {
  return static_cast<int64_t>(
      gst_util_uint64_scale_round(t, GST_AUDIO_INFO_RATE(&self->priv->out_info), GST_SECOND));
}

/* (data lock) How far a talker's data reaches beyond the output position. */
int64_t frames_ahead(GstBackchannelMixer *self, GstBackchannelMixerPad *pad) {
  return pad->priv->queue.write_end() - self->priv->out_index;
}

/* (data lock) Whether every talker the output waits for has the block [out, out + n). */
bool block_complete(GstBackchannelMixer *self, int64_t out, uint32_t n) {
  size_t expected = 0;
  for (auto *p : self->priv->pads) {
    auto *pp = p->priv;
    if (pp->eos || (!pp->has_caps && !gst_pad_is_linked(GST_PAD(p))))
      continue;
    expected++;
    if (!pp->queue.covers(out, n))
      return false;
  }
  return expected > 0;
}

/* (data lock) Wakes the output thread when it waits and the block became complete with this
 * talker's data (nullptr: something else changed, wake it to look). Waking it for every buffer
 * would cost a context switch and a clock re-arm per talker per block. */
void wake_output(GstBackchannelMixer *self, GstBackchannelMixerPad *pad) {
  auto *priv = self->priv;
  if (!priv->output_waiting)
    return;
  if (pad && !block_complete(self, priv->out_index, priv->block_frames))
    return;
  priv->data_cond.notify_one();
  if (priv->clock_id)
    gst_clock_id_unschedule(priv->clock_id);
}

void post_negotiation_error(GstBackchannelMixer *self, GstPad *pad, const std::string &why,
                            GstCaps *caps) {
  GST_ELEMENT_ERROR(self, CORE, NEGOTIATION,
                    ("Talker on pad %s sent audio that cannot be mixed: %s. Accepted: S16LE, "
                     "S32LE or F32LE, 8000-48000 Hz, mono or stereo, interleaved.",
                     GST_PAD_NAME(pad), why.c_str()),
                    ("caps %" GST_PTR_FORMAT, caps));
}

/* Streaming thread of `pad`: waits (non-live) until the talker may queue more, and returns the
 * output format to convert to. FALSE when flushing or ended. */
GstFlowReturn wait_for_room(GstBackchannelMixer *self, GstBackchannelMixerPad *pad,
                            GstAudioInfo *out, guint64 *generation) {
  auto *priv = self->priv;
  auto *pp = pad->priv;
  Lock lk(priv->lock);
  for (;;) {
    if (pp->flushing)
      return GST_FLOW_FLUSHING;
    if (pp->eos)
      return GST_FLOW_EOS;
    /* Never wait while the output still needs this talker's data (that would deadlock). */
    if (priv->out_valid &&
        (priv->live || frames_ahead(self, pad) <= frames_of(self, AHEAD_HIGH) ||
         !pp->queue.has_pending() || !pp->queue.covers(priv->out_index, priv->block_frames)))
      break;
    pp->waiting_for_space = true;
    wake_output(self, nullptr);
    priv->space_cond.wait(lk);
  }
  pp->waiting_for_space = false;
  *out = priv->out_info;
  *generation = priv->generation;
  return GST_FLOW_OK;
}

/* Streaming thread of `pad`: queues converted audio. */
GstFlowReturn queue_converted(GstBackchannelMixer *self, GstBackchannelMixerPad *pad,
                              guint64 generation, TalkerConverter::Converted &c, gsize bytes,
                              bool count) {
  auto *priv = self->priv;
  auto *pp = pad->priv;
  Lock lk(priv->lock);
  if (count) {
    pp->stats.buffers++;
    pp->stats.bytes += bytes;
  }
  if (pp->flushing)
    return GST_FLOW_FLUSHING;
  if (generation != priv->generation) {
    GST_DEBUG_OBJECT(pad, "output format changed while converting: dropping a buffer");
    pp->stats.dropped++;
    return GST_FLOW_OK;
  }
  const auto r = pp->queue.push(std::move(c.chunk), c.pts, c.discont);
  if (r.late_frames > 0) {
    pp->stats.late++;
    pp->stats.late_frames += r.late_frames;
    GST_LOG_OBJECT(pad, "%" G_GUINT64_FORMAT " frames arrived after their time", r.late_frames);
  }
  if (r.overflow_frames > 0)
    pp->stats.dropped++;
  wake_output(self, pad);
  return GST_FLOW_OK;
}

/* Streaming thread: the converter follows the output format. */
bool update_converter(GstBackchannelMixer *self, GstBackchannelMixerPad *pad,
                      const GstAudioInfo &out, guint64 generation) {
  auto *pp = pad->priv;
  if (pp->converter_generation == generation)
    return true;
  std::string why;
  if (!pp->converter.set_output(out, &why)) {
    GST_ELEMENT_ERROR(
        self, CORE, NEGOTIATION,
        ("Talker on pad %s cannot be converted to the output format.", GST_PAD_NAME(pad)),
        ("%s", why.c_str()));
    return false;
  }
  pp->converter_generation = generation;
  return true;
}

} // namespace

static GstFlowReturn gst_backchannel_mixer_sink_chain(GstPad *pad, GstObject *parent,
                                                      GstBuffer *buf) {
  auto *self = GST_BACKCHANNEL_MIXER(parent);
  auto *mpad = GST_BACKCHANNEL_MIXER_PAD(pad);
  auto *pp = mpad->priv;
  const gsize bytes = gst_buffer_get_size(buf);

  GstAudioInfo out;
  guint64 generation;
  GstFlowReturn ret = wait_for_room(self, mpad, &out, &generation);
  if (ret != GST_FLOW_OK) {
    gst_buffer_unref(buf);
    return ret;
  }
  if (!pp->converter.has_input()) {
    gst_buffer_unref(buf);
    GST_ELEMENT_ERROR(
        self, CORE, NEGOTIATION,
        ("Talker on pad %s sent audio before its format (no caps).", GST_PAD_NAME(pad)), (nullptr));
    return GST_FLOW_NOT_NEGOTIATED;
  }
  if (!update_converter(self, mpad, out, generation)) {
    gst_buffer_unref(buf);
    return GST_FLOW_NOT_NEGOTIATED;
  }
  TalkerConverter::Converted c;
  if (!pp->converter.convert(buf, &pp->segment, &c)) {
    Lock lk(self->priv->lock);
    pp->stats.buffers++;
    pp->stats.bytes += bytes;
    pp->stats.dropped++;
    GST_WARNING_OBJECT(pad, "dropped a buffer that could not be read or converted");
    return GST_FLOW_OK;
  }
  return queue_converted(self, mpad, generation, c, bytes, true);
}

/* A GAP event: silence for its duration, so the time counts as covered (non-live alignment). */
static void gst_backchannel_mixer_sink_gap(GstBackchannelMixer *self, GstBackchannelMixerPad *pad,
                                           GstEvent *event) {
  GstClockTime ts, dur;
  gst_event_parse_gap(event, &ts, &dur);
  GstAudioInfo out;
  guint64 generation;
  if (!GST_CLOCK_TIME_IS_VALID(dur) || wait_for_room(self, pad, &out, &generation) != GST_FLOW_OK)
    return;
  const guint rate = GST_AUDIO_INFO_RATE(&out);
  const guint64 frames = std::min<guint64>(gst_util_uint64_scale_round(dur, rate, GST_SECOND),
                                           static_cast<guint64>(rate) * 10);
  if (frames == 0)
    return;
  const gsize size = frames * GST_AUDIO_INFO_BPF(&out);
  GstBuffer *silence = gst_buffer_new_allocate(nullptr, size, nullptr);
  gst_buffer_memset(silence, 0, 0, size);
  TalkerConverter::Converted c;
  c.chunk = TalkerConverter::wrap(silence, GST_AUDIO_INFO_BPF(&out));
  const guint64 rt = gst_segment_to_running_time(&pad->priv->segment, GST_FORMAT_TIME, ts);
  c.pts = GST_CLOCK_TIME_IS_VALID(rt) ? static_cast<double>(rt) * rate / GST_SECOND : NAN;
  queue_converted(self, pad, generation, c, 0, false);
}

static gboolean gst_backchannel_mixer_sink_event(GstPad *pad, GstObject *parent, GstEvent *event) {
  auto *self = GST_BACKCHANNEL_MIXER(parent);
  auto *priv = self->priv;
  auto *mpad = GST_BACKCHANNEL_MIXER_PAD(pad);
  auto *pp = mpad->priv;

  switch (GST_EVENT_TYPE(event)) {
  case GST_EVENT_CAPS: {
    GstCaps *caps;
    gst_event_parse_caps(event, &caps);
    std::string why;
    if (!pp->converter.set_input_caps(caps, &why)) {
      post_negotiation_error(self, pad, why, caps);
      gst_event_unref(event);
      return FALSE;
    }
    GST_DEBUG_OBJECT(pad, "input caps %" GST_PTR_FORMAT, caps);
    bool live;
    {
      Lock lk(priv->lock);
      pp->has_caps = true;
      priv->latency_dirty = true;
      live = priv->live;
    }
    gst_event_unref(event);
    /* A talker that joins live may bring more latency than the pipeline was configured for (a
     * longer jitter buffer, bigger packets): ask the pipeline to recompute it. */
    if (live)
      gst_element_post_message(GST_ELEMENT(self), gst_message_new_latency(GST_OBJECT(self)));
    return TRUE;
  }
  case GST_EVENT_SEGMENT: {
    GstSegment seg;
    gst_event_copy_segment(event, &seg);
    gst_event_unref(event);
    if (seg.format != GST_FORMAT_TIME) {
      GST_ELEMENT_ERROR(self, STREAM, FORMAT,
                        ("Talker on pad %s sent a %s segment; only TIME segments can be mixed.",
                         GST_PAD_NAME(pad), gst_format_get_name(seg.format)),
                        (nullptr));
      return FALSE;
    }
    pp->segment = seg;
    return TRUE;
  }
  case GST_EVENT_GAP:
    gst_backchannel_mixer_sink_gap(self, mpad, event);
    gst_event_unref(event);
    return TRUE;
  case GST_EVENT_EOS: {
    Lock lk(priv->lock);
    GST_DEBUG_OBJECT(pad, "talker ended");
    pp->eos = true;
    wake_output(self, nullptr);
    gst_event_unref(event);
    return TRUE;
  }
  case GST_EVENT_FLUSH_START: {
    Lock lk(priv->lock);
    pp->flushing = true;
    priv->space_cond.notify_all();
    gst_event_unref(event);
    return TRUE;
  }
  case GST_EVENT_FLUSH_STOP: {
    {
      Lock lk(priv->lock);
      pp->flushing = false;
      pp->eos = false;
      pp->queue.reset();
      pp->meter.reset();
      wake_output(self, nullptr);
    }
    pp->converter.reset();
    gst_event_unref(event);
    return TRUE;
  }
  default:
    /* stream-start, tags and the like belong to one talker: not forwarded */
    gst_event_unref(event);
    return TRUE;
  }
}

/* Answers a CAPS query with `caps` (taken) restricted to the query's filter. */
static void answer_caps_query(GstQuery *query, GstCaps *caps, GstCaps *filter) {
  if (filter) {
    GstCaps *tmp = gst_caps_intersect_full(filter, caps, GST_CAPS_INTERSECT_FIRST);
    gst_caps_unref(caps);
    caps = tmp;
  }
  gst_query_set_caps_result(query, caps);
  gst_caps_unref(caps);
}

static gboolean gst_backchannel_mixer_sink_query(GstPad *pad, GstObject *parent, GstQuery *query) {
  auto *self = GST_BACKCHANNEL_MIXER(parent);
  switch (GST_QUERY_TYPE(query)) {
  case GST_QUERY_CAPS: {
    GstCaps *filter;
    gst_query_parse_caps(query, &filter);
    GstCaps *result = gst_pad_get_pad_template_caps(pad);
    /* Offer the output format first: upstream that can produce it directly saves a conversion
     * and makes zero-copy passthrough possible. */
    if (GstCaps *out = gst_pad_get_current_caps(self->priv->srcpad))
      result = gst_caps_merge(out, result);
    answer_caps_query(query, result, filter);
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
  case GST_QUERY_ALLOCATION:
    return FALSE;
  default:
    return gst_pad_query_default(pad, parent, query);
  }
}

static gboolean gst_backchannel_mixer_sink_activate_mode(GstPad *pad, GstObject *parent,
                                                         GstPadMode mode, gboolean active) {
  auto *self = GST_BACKCHANNEL_MIXER(parent);
  auto *pp = GST_BACKCHANNEL_MIXER_PAD(pad)->priv;
  if (mode != GST_PAD_MODE_PUSH)
    return FALSE;
  Lock lk(self->priv->lock);
  pp->flushing = !active;
  if (active) {
    pp->eos = false;
  } else {
    /* let a chain waiting for room return, so the pad can stop */
    self->priv->space_cond.notify_all();
  }
  return TRUE;
}

/* ---- upstream latency ------------------------------------------------------------------- */

namespace {

std::vector<GstBackchannelMixerPad *> snapshot_pads(GstBackchannelMixer *self) {
  Lock lk(self->priv->lock);
  std::vector<GstBackchannelMixerPad *> pads;
  for (auto *p : self->priv->pads)
    pads.push_back(GST_BACKCHANNEL_MIXER_PAD(gst_object_ref(p)));
  return pads;
}

void release_pads(std::vector<GstBackchannelMixerPad *> &pads) {
  for (auto *p : pads)
    gst_object_unref(p);
  pads.clear();
}

/* Queries every talker's upstream (no lock held). */
void query_upstream_latency(GstBackchannelMixer *self, gboolean *live, GstClockTime *min,
                            GstClockTime *max) {
  *live = FALSE;
  *min = 0;
  *max = GST_CLOCK_TIME_NONE;
  auto pads = snapshot_pads(self);
  for (auto *p : pads) {
    if (!gst_pad_is_linked(GST_PAD(p)))
      continue;
    GstQuery *q = gst_query_new_latency();
    if (gst_pad_peer_query(GST_PAD(p), q)) {
      gboolean l;
      GstClockTime mn, mx;
      gst_query_parse_latency(q, &l, &mn, &mx);
      if (l) {
        *live = TRUE;
        *min = std::max(*min, mn);
        if (GST_CLOCK_TIME_IS_VALID(mx))
          *max = GST_CLOCK_TIME_IS_VALID(*max) ? std::min(*max, mx) : mx;
      }
    }
    gst_query_unref(q);
  }
  release_pads(pads);
}

GstClockTime own_latency(GstBackchannelMixer *self) {
  GST_OBJECT_LOCK(self);
  const GstClockTime l = self->priv->block_duration + self->priv->jitter;
  GST_OBJECT_UNLOCK(self);
  return l;
}

/* Output thread: refreshes live-ness and the upstream latency the deadlines use. */
void update_latency(GstBackchannelMixer *self) {
  gboolean live;
  GstClockTime min, max;
  query_upstream_latency(self, &live, &min, &max);
  GST_OBJECT_LOCK(self);
  const bool force = self->priv->force_live;
  GST_OBJECT_UNLOCK(self);
  Lock lk(self->priv->lock);
  const bool now_live = live || force;
  if (now_live != self->priv->live) {
    GST_DEBUG_OBJECT(self, "live: %d", now_live);
    self->priv->live = now_live;
    /* Queued data stays: only whether the talkers' clocks are followed changes. */
    GST_OBJECT_LOCK(self);
    const bool drift = self->priv->drift_correction && now_live;
    GST_OBJECT_UNLOCK(self);
    for (auto *p : self->priv->pads)
      p->priv->queue.set_drift_correction(drift);
    self->priv->space_cond.notify_all();
  }
  self->priv->upstream_latency = live ? min : 0;
}

} // namespace

/* ---- output ------------------------------------------------------------------------------ */

namespace {

GstCaps *fixate_output(GstCaps *caps) {
  caps = gst_caps_make_writable(caps);
  caps = gst_caps_truncate(caps);
  GstStructure *s = gst_caps_get_structure(caps, 0);
  gst_structure_fixate_field_nearest_int(s, "rate", 48000);
  gst_structure_fixate_field_nearest_int(s, "channels", 2);
  gst_structure_fixate_field_string(s, "format", GST_AUDIO_NE(S16));
  return gst_caps_fixate(caps);
}

/* Output thread: picks the output format downstream wants and announces it. */
bool negotiate(GstBackchannelMixer *self) {
  auto *priv = self->priv;
  GstCaps *tmpl = gst_pad_get_pad_template_caps(priv->srcpad);
  GstCaps *peer = gst_pad_peer_query_caps(priv->srcpad, tmpl);
  gst_caps_unref(tmpl);
  if (gst_caps_is_empty(peer)) {
    GST_ELEMENT_ERROR(self, CORE, NEGOTIATION,
                      ("Downstream accepts no output format the mixer can produce (raw S16LE, "
                       "S32LE or F32LE, 8000-48000 Hz, mono or stereo)."),
                      ("peer caps %" GST_PTR_FORMAT, peer));
    gst_caps_unref(peer);
    return false;
  }
  GstCaps *caps = fixate_output(peer);
  GstAudioInfo info;
  if (!gst_audio_info_from_caps(&info, caps)) {
    GST_ELEMENT_ERROR(self, CORE, NEGOTIATION, ("Could not fix an output format."),
                      ("caps %" GST_PTR_FORMAT, caps));
    gst_caps_unref(caps);
    return false;
  }
  bool need_start;
  {
    Lock lk(priv->lock);
    need_start = priv->send_stream_start;
    priv->send_stream_start = false;
  }
  if (need_start) {
    /* The mix is a new stream, not any one talker's. */
    gchar *id = g_strdup_printf("backchannelmixer-%08x", g_random_int());
    gst_pad_push_event(priv->srcpad, gst_event_new_stream_start(id));
    g_free(id);
  }
  if (!gst_pad_push_event(priv->srcpad, gst_event_new_caps(caps))) {
    GST_DEBUG_OBJECT(self, "downstream refused %" GST_PTR_FORMAT, caps);
    gst_caps_unref(caps);
    return false;
  }
  GST_DEBUG_OBJECT(self, "output caps %" GST_PTR_FORMAT, caps);
  gst_caps_unref(caps);

  GST_OBJECT_LOCK(self);
  const GstClockTime dur = priv->block_duration;
  GST_OBJECT_UNLOCK(self);
  Lock lk(priv->lock);
  if (!priv->out_valid || !gst_audio_info_is_equal(&info, &priv->out_info)) {
    const int64_t old_rate = priv->out_valid ? GST_AUDIO_INFO_RATE(&priv->out_info) : 0;
    priv->out_info = info;
    priv->out_valid = true;
    priv->generation++;
    if (old_rate)
      priv->out_index = static_cast<int64_t>(
          gst_util_uint64_scale_round(priv->out_index, GST_AUDIO_INFO_RATE(&info), old_rate));
    priv->block_frames = static_cast<guint>(std::max<guint64>(
        1, gst_util_uint64_scale_round(dur, GST_AUDIO_INFO_RATE(&info), GST_SECOND)));
    reconfigure_queues(self);
    priv->limiter_state.configure(GST_AUDIO_INFO_RATE(&info), GST_AUDIO_INFO_CHANNELS(&info));
    priv->space_cond.notify_all();
  }
  return true;
}

struct PadView {
  GstBackchannelMixerPad *pad = nullptr;
  const uint8_t *data = nullptr;
  GstBuffer *exact = nullptr; /* zero-copy input buffer behind `data` (ref held, mapped) */
  GstMapInfo exact_map{};
  uint32_t frames_with_data = 0;
  float gain = 1.f;
  bool heard_changed = false;
  bool heard = false;
  double level = costream::kSilenceDbov;
};

GstMessage *talker_message(GstBackchannelMixer *self, GstBackchannelMixerPad *pad, bool active,
                           double level) {
  return gst_message_new_element(GST_OBJECT(self),
                                 gst_structure_new("backchannelmixer-talker", "pad", GST_TYPE_PAD,
                                                   pad, "pad-name", G_TYPE_STRING,
                                                   GST_PAD_NAME(pad), "active", G_TYPE_BOOLEAN,
                                                   active, "level", G_TYPE_DOUBLE, level, nullptr));
}

void pause_task(GstBackchannelMixer *self, const char *why) {
  GST_DEBUG_OBJECT(self, "pausing output: %s", why);
  gst_pad_pause_task(self->priv->srcpad);
}

void push_eos(GstBackchannelMixer *self) {
  GstEvent *eos = gst_event_new_eos();
  if (self->priv->seqnum)
    gst_event_set_seqnum(eos, self->priv->seqnum);
  gst_pad_push_event(self->priv->srcpad, eos);
}

} // namespace

static void gst_backchannel_mixer_loop(GstBackchannelMixer *self) {
  auto *priv = self->priv;

  bool need_negotiate, need_latency;
  {
    Lock lk(priv->lock);
    if (priv->flushing) {
      lk.unlock();
      pause_task(self, "flushing");
      return;
    }
    need_negotiate = !priv->out_valid || priv->reconfigure;
    priv->reconfigure = false;
    need_latency = priv->latency_dirty;
    priv->latency_dirty = false;
  }
  /* Live or not decides how talkers are queued: know it before they can queue anything. */
  if (need_latency)
    update_latency(self);
  if (need_negotiate || gst_pad_check_reconfigure(priv->srcpad)) {
    if (!negotiate(self)) {
      if (GST_PAD_IS_FLUSHING(priv->srcpad)) {
        pause_task(self, "flushing while negotiating");
        return;
      }
      gst_pad_mark_reconfigure(priv->srcpad);
      push_eos(self);
      pause_task(self, "not negotiated");
      return;
    }
  }

  GST_OBJECT_LOCK(self);
  const GstClockTime timeout_ns = priv->timeout;
  const bool use_limiter = priv->limiter;
  const bool idle_silence = priv->idle_silence;
  const double talk_threshold = priv->talk_threshold;
  const GstClockTime jitter = priv->jitter;
  GST_OBJECT_UNLOCK(self);

  Lock lk(priv->lock);
  const guint rate = GST_AUDIO_INFO_RATE(&priv->out_info);
  const guint bpf = GST_AUDIO_INFO_BPF(&priv->out_info);
  const guint channels = GST_AUDIO_INFO_CHANNELS(&priv->out_info);
  uint32_t n = priv->block_frames;
  const int64_t out_index = priv->out_index;
  const GstClockTime rt = gst_util_uint64_scale_round(out_index, GST_SECOND, rate);
  const GstClockTime pts = priv->segment.start + rt;
  const GstClockTime block_time = gst_util_uint64_scale_round(n, GST_SECOND, rate);
  if (GST_CLOCK_TIME_IS_VALID(priv->segment.stop) && pts >= priv->segment.stop) {
    lk.unlock();
    push_eos(self);
    pause_task(self, "segment done");
    return;
  }

  /* Wait until every talker has the block (non-live), or its deadline (live). */
  bool timed_out = false;
  bool all_eos;
  int64_t data_end;
  for (;;) {
    if (priv->flushing) {
      lk.unlock();
      pause_task(self, "flushing");
      return;
    }
    if (priv->reconfigure)
      return; /* the next iteration renegotiates first */
    if (priv->eos_requested) {
      lk.unlock();
      GST_DEBUG_OBJECT(self, "EOS requested by the application");
      push_eos(self);
      pause_task(self, "EOS requested");
      return;
    }
    /* With nobody to wait for, a live output still keeps to the clock. */
    bool ready = true;
    size_t expected = 0;
    all_eos = !priv->pads.empty();
    data_end = INT64_MIN;
    for (auto *p : priv->pads) {
      auto *pp = p->priv;
      if (pp->eos) {
        if (pp->queue.has_pending())
          data_end = std::max(data_end, pp->queue.write_end());
        continue;
      }
      all_eos = false;
      if (!gst_pad_is_linked(GST_PAD(p)) && !pp->has_caps)
        continue; /* requested but not (yet) linked: nothing to wait for */
      expected++;
      if (!pp->queue.covers(out_index, n))
        ready = false;
    }
    if ((ready && expected > 0) || all_eos)
      break;
    priv->output_waiting = true;
    if (priv->live) {
      GstClock *clock = GST_ELEMENT_CLOCK(self);
      if (!priv->playing || !clock) {
        priv->data_cond.wait(lk);
        priv->output_waiting = false;
        continue;
      }
      gst_object_ref(clock);
      const GstClockTime deadline =
          GST_ELEMENT_CAST(self)->base_time + rt + priv->upstream_latency + block_time + jitter;
      GstClockID id = gst_clock_new_single_shot_id(clock, deadline);
      gst_object_unref(clock);
      priv->clock_id = id;
      lk.unlock();
      const GstClockReturn cret = gst_clock_id_wait(id, nullptr);
      lk.lock();
      priv->clock_id = nullptr;
      gst_clock_id_unref(id);
      priv->output_waiting = false;
      if (cret == GST_CLOCK_OK || cret == GST_CLOCK_EARLY) {
        timed_out = true;
        break;
      }
    } else {
      priv->data_cond.wait(lk);
      priv->output_waiting = false;
    }
  }

  if (all_eos) {
    if (data_end <= out_index) {
      lk.unlock();
      GST_DEBUG_OBJECT(self, "every talker ended");
      push_eos(self);
      pause_task(self, "all talkers ended");
      return;
    }
    n = static_cast<uint32_t>(std::min<int64_t>(n, data_end - out_index));
  }

  const size_t samples = static_cast<size_t>(n) * channels;
  costream::SampleFormat fmt = costream::SampleFormat::S16;
  costream::sample_format_from_gst(GST_AUDIO_INFO_FORMAT(&priv->out_info), &fmt);
  const GstClockTime dur = gst_util_uint64_scale_round(out_index + n, GST_SECOND, rate) - rt;
  const double block_ms = 1000.0 * n / rate;

  /* Read the block from every talker (data lock held: the queues are shared with the talkers'
   * threads). Zero-copy blocks keep their buffer by reference. */
  std::vector<PadView> views(priv->pads.size());
  size_t contributors = 0;
  PadView *single = nullptr;
  bool wake_talkers = false;
  for (size_t i = 0; i < priv->pads.size(); i++) {
    auto *pad = priv->pads[i];
    auto *pp = pad->priv;
    auto &v = views[i];
    v.pad = GST_BACKCHANNEL_MIXER_PAD(gst_object_ref(pad));
    GST_OBJECT_LOCK(pad);
    v.gain = pp->mute ? 0.f : static_cast<float>(pp->volume);
    GST_OBJECT_UNLOCK(pad);

    TalkerQueue::ReadResult rr;
    const costream::Chunk *exact = pp->queue.take_exact(out_index, n, &rr);
    if (exact && TalkerConverter::chunk_buffer(*exact) &&
        gst_buffer_get_size(TalkerConverter::chunk_buffer(*exact)) == n * bpf) {
      v.exact = gst_buffer_ref(TalkerConverter::chunk_buffer(*exact));
      if (gst_buffer_map(v.exact, &v.exact_map, GST_MAP_READ)) {
        v.data = v.exact_map.data;
      } else {
        gst_buffer_unref(v.exact);
        v.exact = nullptr;
        rr.frames_with_data = 0;
      }
    } else if (!exact) {
      pp->scratch.resize(static_cast<size_t>(n) * bpf);
      rr = pp->queue.read(out_index, n, pp->scratch.data());
      v.data = pp->scratch.data();
    }
    if (!v.data) {
      pp->scratch.assign(static_cast<size_t>(n) * bpf, 0);
      v.data = pp->scratch.data();
    }
    v.frames_with_data = rr.frames_with_data;
    GST_LOG_OBJECT(pad,
                   "block %" G_GINT64_FORMAT ": %u/%u frames, drift loop %s rate %+.5f timing "
                   "error %.1f frames%s",
                   out_index, rr.frames_with_data, n, pp->queue.correcting() ? "on" : "off",
                   pp->queue.rate_offset(), pp->queue.time_error(), timed_out ? " (deadline)" : "");
    if (rr.late_frames > 0) {
      pp->stats.late++;
      pp->stats.late_frames += rr.late_frames;
    }
    const double power = v.frames_with_data > 0 ? costream::block_power(v.data, samples, fmt) : 0.0;
    v.level = pp->meter.update(power, block_ms);
    pp->stats.level = v.level;

    /* Stall tracking, and whether the talker is heard. */
    if (v.frames_with_data > 0) {
      if (pp->stalled)
        GST_INFO_OBJECT(pad, "talker resumed");
      pp->ever_had_data = true;
      pp->stalled = false;
      pp->missing_frames = 0;
    } else if (pp->ever_had_data && !pp->eos) {
      pp->missing_frames += n;
      if (!pp->stalled &&
          gst_util_uint64_scale(pp->missing_frames, GST_SECOND, rate) >= timeout_ns) {
        pp->stalled = true;
        pp->stats.timeouts++;
        GST_INFO_OBJECT(pad, "talker stalled: no data for %" GST_TIME_FORMAT,
                        GST_TIME_ARGS(timeout_ns));
      }
    }
    const bool present = pp->ever_had_data && !pp->stalled && (v.frames_with_data > 0 || !pp->eos);
    const bool heard = present && v.gain > 0.f && v.level > talk_threshold;
    v.heard_changed = heard != pp->heard;
    v.heard = heard;
    pp->heard = heard;
    pp->stats.active = heard;
    GST_OBJECT_LOCK(pad);
    pp->snapshot = pp->stats;
    GST_OBJECT_UNLOCK(pad);

    if (v.frames_with_data > 0 && v.gain > 0.f) {
      contributors++;
      single = &v;
    }
    if (pp->waiting_for_space && frames_ahead(self, pad) - n <= frames_of(self, AHEAD_LOW))
      wake_talkers = true;
  }
  priv->out_index = out_index + n;
  const bool discont = priv->discont;
  priv->discont = false;
  const bool send_segment = priv->send_segment;
  priv->send_segment = false;
  GstSegment segment = priv->segment;
  if (wake_talkers)
    priv->space_cond.notify_all();
  lk.unlock();

  /* Controlled properties follow the stream time of the block. */
  for (auto &v : views)
    gst_object_sync_values(GST_OBJECT(v.pad), pts);

  /* Mix. */
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
    }
    if (v.heard_changed) {
      GST_DEBUG_OBJECT(v.pad, "talker %s", v.heard ? "heard" : "silent");
      gst_element_post_message(GST_ELEMENT(self), talker_message(self, v.pad, v.heard, v.level));
    }
    gst_object_unref(v.pad);
  }
  views.clear();

  GST_OBJECT_LOCK(self);
  priv->blocks_out++;
  if (passthrough)
    priv->passthrough_blocks++;
  if (!outbuf)
    priv->silent_blocks++;
  GST_OBJECT_UNLOCK(self);

  if (send_segment) {
    GstEvent *seg = gst_event_new_segment(&segment);
    if (priv->seqnum)
      gst_event_set_seqnum(seg, priv->seqnum);
    gst_pad_push_event(priv->srcpad, seg);
  }

  if (!outbuf && !idle_silence && !discont) {
    /* Nobody to hear: tell downstream time passes without sending samples. (The first block is
     * always a buffer.) */
    gst_pad_push_event(priv->srcpad, gst_event_new_gap(pts, dur));
    return;
  }
  if (!outbuf) {
    outbuf = gst_buffer_new_allocate(nullptr, samples * sample_size(fmt), nullptr);
    gst_buffer_memset(outbuf, 0, 0, samples * sample_size(fmt));
    GST_BUFFER_FLAG_SET(outbuf, GST_BUFFER_FLAG_GAP);
  }
  GST_BUFFER_PTS(outbuf) = pts;
  GST_BUFFER_DTS(outbuf) = GST_CLOCK_TIME_NONE;
  GST_BUFFER_DURATION(outbuf) = dur;
  GST_BUFFER_OFFSET(outbuf) = static_cast<guint64>(out_index);
  GST_BUFFER_OFFSET_END(outbuf) = static_cast<guint64>(out_index + n);
  if (discont)
    GST_BUFFER_FLAG_SET(outbuf, GST_BUFFER_FLAG_DISCONT);
  GST_LOG_OBJECT(self, "output %u frames at %" GST_TIME_FORMAT " from %zu talkers%s", n,
                 GST_TIME_ARGS(pts), contributors, passthrough ? " (passthrough)" : "");

  const GstFlowReturn ret = gst_pad_push(priv->srcpad, outbuf);
  if (ret != GST_FLOW_OK) {
    if (ret == GST_FLOW_FLUSHING || ret == GST_FLOW_EOS) {
      pause_task(self, gst_flow_get_name(ret));
    } else {
      GST_ELEMENT_FLOW_ERROR(self, ret);
      push_eos(self);
      pause_task(self, gst_flow_get_name(ret));
    }
  }
}

/* ---- src pad -------------------------------------------------------------------------- */

static gboolean gst_backchannel_mixer_src_activate_mode(GstPad *pad, GstObject *parent,
                                                        GstPadMode mode, gboolean active) {
  auto *self = GST_BACKCHANNEL_MIXER(parent);
  auto *priv = self->priv;
  if (mode != GST_PAD_MODE_PUSH)
    return FALSE;
  if (active) {
    {
      Lock lk(priv->lock);
      priv->flushing = false;
    }
    return gst_pad_start_task(pad, reinterpret_cast<GstTaskFunction>(gst_backchannel_mixer_loop),
                              self, nullptr);
  }
  {
    Lock lk(priv->lock);
    priv->flushing = true;
    if (priv->clock_id)
      gst_clock_id_unschedule(priv->clock_id);
    priv->data_cond.notify_all();
    priv->space_cond.notify_all();
  }
  return gst_pad_stop_task(pad);
}

static gboolean gst_backchannel_mixer_do_seek(GstBackchannelMixer *self, GstEvent *event) {
  auto *priv = self->priv;
  gdouble rate;
  GstFormat format;
  GstSeekFlags flags;
  GstSeekType start_type, stop_type;
  gint64 start, stop;
  gst_event_parse_seek(event, &rate, &format, &flags, &start_type, &start, &stop_type, &stop);
  if (format != GST_FORMAT_TIME || rate <= 0.0) {
    GST_WARNING_OBJECT(self, "only forward seeks in TIME are supported");
    gst_event_unref(event);
    return FALSE;
  }
  const bool flush = flags & GST_SEEK_FLAG_FLUSH;
  const guint32 seqnum = gst_event_get_seqnum(event);
  if (flush) {
    GstEvent *fs = gst_event_new_flush_start();
    gst_event_set_seqnum(fs, seqnum);
    gst_pad_push_event(priv->srcpad, fs);
    Lock lk(priv->lock);
    priv->flushing = true;
    if (priv->clock_id)
      gst_clock_id_unschedule(priv->clock_id);
    priv->data_cond.notify_all();
    priv->space_cond.notify_all();
  }

  /* Every talker seeks (and flushes its pad). */
  bool ok = true;
  auto pads = snapshot_pads(self);
  for (auto *p : pads)
    if (gst_pad_is_linked(GST_PAD(p)))
      ok = gst_pad_push_event(GST_PAD(p), gst_event_ref(event)) && ok;
  release_pads(pads);

  if (flush) {
    GST_PAD_STREAM_LOCK(priv->srcpad); /* the output task has stopped */
    {
      Lock lk(priv->lock);
      gboolean update;
      gst_segment_do_seek(&priv->segment, rate, format, flags, start_type, start, stop_type, stop,
                          &update);
      priv->segment.position = priv->segment.start;
      priv->segment.base = 0;
      priv->out_index = 0;
      priv->seqnum = seqnum;
      priv->send_segment = true;
      priv->discont = true;
      priv->flushing = false;
      priv->limiter_state.reset();
      /* The talkers' queues were reset by their own FLUSH_STOP and may already hold data from
       * the new position: keep it. */
      for (auto *p : priv->pads) {
        p->priv->stalled = false;
        p->priv->missing_frames = 0;
      }
      priv->space_cond.notify_all();
    }
    GstEvent *fstop = gst_event_new_flush_stop(TRUE);
    gst_event_set_seqnum(fstop, seqnum);
    gst_pad_push_event(priv->srcpad, fstop);
    gst_pad_start_task(priv->srcpad, reinterpret_cast<GstTaskFunction>(gst_backchannel_mixer_loop),
                       self, nullptr);
    GST_PAD_STREAM_UNLOCK(priv->srcpad);
  }
  gst_event_unref(event);
  return ok;
}

static gboolean gst_backchannel_mixer_src_event(GstPad *pad, GstObject *parent, GstEvent *event) {
  auto *self = GST_BACKCHANNEL_MIXER(parent);
  switch (GST_EVENT_TYPE(event)) {
  case GST_EVENT_SEEK:
    return gst_backchannel_mixer_do_seek(self, event);
  case GST_EVENT_RECONFIGURE: {
    /* Renegotiate before the next block, even if the output thread is waiting for one. */
    Lock lk(self->priv->lock);
    self->priv->reconfigure = true;
    wake_output(self, nullptr);
    gst_event_unref(event);
    return TRUE;
  }
  case GST_EVENT_QOS:
  case GST_EVENT_NAVIGATION:
    gst_event_unref(event);
    return TRUE;
  default:
    return gst_pad_event_default(pad, parent, event);
  }
}

static gboolean gst_backchannel_mixer_src_query(GstPad *pad, GstObject *parent, GstQuery *query) {
  auto *self = GST_BACKCHANNEL_MIXER(parent);
  switch (GST_QUERY_TYPE(query)) {
  case GST_QUERY_LATENCY: {
    gboolean live;
    GstClockTime min, max;
    query_upstream_latency(self, &live, &min, &max);
    GST_OBJECT_LOCK(self);
    const bool force = self->priv->force_live;
    GST_OBJECT_UNLOCK(self);
    const GstClockTime own = own_latency(self);
    if (!live) {
      min = 0;
      max = GST_CLOCK_TIME_NONE;
    }
    min += own;
    if (GST_CLOCK_TIME_IS_VALID(max))
      max += own;
    {
      Lock lk(self->priv->lock);
      self->priv->upstream_latency = live ? min - own : 0;
    }
    GST_DEBUG_OBJECT(self, "latency: live %d min %" GST_TIME_FORMAT " max %" GST_TIME_FORMAT,
                     live || force, GST_TIME_ARGS(min), GST_TIME_ARGS(max));
    gst_query_set_latency(query, live || force, min, max);
    return TRUE;
  }
  case GST_QUERY_CAPS: {
    GstCaps *filter;
    gst_query_parse_caps(query, &filter);
    answer_caps_query(query, gst_pad_get_pad_template_caps(pad), filter);
    return TRUE;
  }
  default:
    return gst_pad_query_default(pad, parent, query);
  }
}

/* ---- element ---------------------------------------------------------------------------- */

static GstPad *gst_backchannel_mixer_request_new_pad(GstElement *element, GstPadTemplate *templ,
                                                     const gchar *name, const GstCaps *caps) {
  auto *self = GST_BACKCHANNEL_MIXER(element);
  auto *priv = self->priv;
  guint index = 0;
  GST_OBJECT_LOCK(self);
  if (name && sscanf(name, "sink_%u", &index) == 1) {
    priv->next_pad_index = std::max(priv->next_pad_index, index + 1);
  } else {
    index = priv->next_pad_index++;
  }
  GST_OBJECT_UNLOCK(self);
  gchar *pad_name = g_strdup_printf("sink_%u", index);
  auto *pad = GST_BACKCHANNEL_MIXER_PAD(g_object_new(GST_TYPE_BACKCHANNEL_MIXER_PAD, "name",
                                                     pad_name, "direction", GST_PAD_SINK,
                                                     "template", templ, nullptr));
  g_free(pad_name);
  gst_pad_set_chain_function(GST_PAD(pad), GST_DEBUG_FUNCPTR(gst_backchannel_mixer_sink_chain));
  gst_pad_set_event_function(GST_PAD(pad), GST_DEBUG_FUNCPTR(gst_backchannel_mixer_sink_event));
  gst_pad_set_query_function(GST_PAD(pad), GST_DEBUG_FUNCPTR(gst_backchannel_mixer_sink_query));
  gst_pad_set_activatemode_function(GST_PAD(pad),
                                    GST_DEBUG_FUNCPTR(gst_backchannel_mixer_sink_activate_mode));
  {
    Lock lk(priv->lock);
    if (priv->out_valid)
      pad->priv->queue.configure(queue_config(self));
    priv->pads.push_back(GST_BACKCHANNEL_MIXER_PAD(gst_object_ref(pad)));
    priv->latency_dirty = true;
  }
  if (!gst_element_add_pad(element, GST_PAD(pad))) {
    Lock lk(priv->lock);
    priv->pads.erase(std::find(priv->pads.begin(), priv->pads.end(), pad));
    gst_object_unref(pad);
    return nullptr;
  }
  GST_DEBUG_OBJECT(self, "talker %s joined", GST_PAD_NAME(pad));
  gst_child_proxy_child_added(GST_CHILD_PROXY(element), G_OBJECT(pad), GST_OBJECT_NAME(pad));
  return GST_PAD(pad);
}

static void gst_backchannel_mixer_release_pad(GstElement *element, GstPad *pad) {
  auto *self = GST_BACKCHANNEL_MIXER(element);
  auto *priv = self->priv;
  auto *mpad = GST_BACKCHANNEL_MIXER_PAD(pad);
  GST_DEBUG_OBJECT(self, "talker %s left", GST_PAD_NAME(pad));
  bool found = false;
  {
    Lock lk(priv->lock);
    auto it = std::find(priv->pads.begin(), priv->pads.end(), mpad);
    if (it != priv->pads.end()) {
      priv->pads.erase(it);
      found = true;
    }
    mpad->priv->flushing = true;
    priv->latency_dirty = true;
    priv->space_cond.notify_all();
    wake_output(self, nullptr);
  }
  gst_object_ref(pad);
  gst_child_proxy_child_removed(GST_CHILD_PROXY(element), G_OBJECT(pad), GST_OBJECT_NAME(pad));
  gst_element_remove_pad(element, pad);
  if (found)
    gst_object_unref(pad); /* the list's reference */
  gst_object_unref(pad);
}

/* An application ends a live back channel (with or without talkers) by sending EOS to the
 * pipeline or the mixer: the output ends with EOS after the current block. */
static gboolean gst_backchannel_mixer_send_event(GstElement *element, GstEvent *event) {
  auto *self = GST_BACKCHANNEL_MIXER(element);
  if (GST_EVENT_TYPE(event) == GST_EVENT_EOS) {
    GST_DEBUG_OBJECT(self, "EOS requested");
    Lock lk(self->priv->lock);
    self->priv->eos_requested = true;
    wake_output(self, nullptr);
    gst_event_unref(event);
    return TRUE;
  }
  return GST_ELEMENT_CLASS(gst_backchannel_mixer_parent_class)->send_event(element, event);
}

static GstStateChangeReturn gst_backchannel_mixer_change_state(GstElement *element,
                                                               GstStateChange transition) {
  auto *self = GST_BACKCHANNEL_MIXER(element);
  auto *priv = self->priv;
  switch (transition) {
  case GST_STATE_CHANGE_READY_TO_PAUSED: {
    Lock lk(priv->lock);
    priv->out_index = 0;
    gst_segment_init(&priv->segment, GST_FORMAT_TIME);
    priv->send_stream_start = true;
    priv->send_segment = true;
    priv->discont = true;
    priv->eos_requested = false;
    priv->latency_dirty = true;
    priv->playing = false;
    priv->seqnum = 0;
    for (auto *p : priv->pads) {
      p->priv->queue.reset();
      p->priv->ever_had_data = p->priv->stalled = p->priv->heard = false;
      p->priv->missing_frames = 0;
    }
    GST_OBJECT_LOCK(self);
    priv->blocks_out = priv->silent_blocks = priv->passthrough_blocks = 0;
    GST_OBJECT_UNLOCK(self);
    break;
  }
  case GST_STATE_CHANGE_PAUSED_TO_PLAYING: {
    Lock lk(priv->lock);
    priv->playing = true;
    priv->data_cond.notify_all();
    break;
  }
  case GST_STATE_CHANGE_PLAYING_TO_PAUSED: {
    Lock lk(priv->lock);
    priv->playing = false;
    if (priv->clock_id)
      gst_clock_id_unschedule(priv->clock_id);
    break;
  }
  default:
    break;
  }

  GstStateChangeReturn ret =
      GST_ELEMENT_CLASS(gst_backchannel_mixer_parent_class)->change_state(element, transition);
  if (ret == GST_STATE_CHANGE_FAILURE)
    return ret;

  switch (transition) {
  case GST_STATE_CHANGE_READY_TO_PAUSED:
  case GST_STATE_CHANGE_PLAYING_TO_PAUSED: {
    GST_OBJECT_LOCK(self);
    const bool force = priv->force_live;
    GST_OBJECT_UNLOCK(self);
    if (force) /* a live source of its own: no preroll */
      ret = GST_STATE_CHANGE_NO_PREROLL;
    break;
  }
  case GST_STATE_CHANGE_PAUSED_TO_READY: {
    Lock lk(priv->lock);
    priv->out_valid = false;
    priv->live = false;
    for (auto *p : priv->pads)
      p->priv->queue.reset();
    break;
  }
  default:
    break;
  }
  return ret;
}

static GstStructure *gst_backchannel_mixer_get_stats(GstBackchannelMixer *self) {
  auto *priv = self->priv;
  GstStructure *s = gst_structure_new_empty("backchannelmixer-stats");
  GValue array = G_VALUE_INIT;
  gst_value_array_init(&array, 0);
  guint talkers = 0, active = 0;
  auto pads = snapshot_pads(self);
  for (auto *p : pads) {
    GST_OBJECT_LOCK(p);
    const auto st = p->priv->snapshot;
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
  bool latency_changed = false;
  GST_OBJECT_LOCK(self);
  switch (prop_id) {
  case PROP_OUTPUT_BUFFER_DURATION:
    priv->block_duration = g_value_get_uint64(value);
    break;
  case PROP_LATENCY:
    latency_changed = priv->jitter != g_value_get_uint64(value);
    priv->jitter = g_value_get_uint64(value);
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
  case PROP_FORCE_LIVE:
    priv->force_live = g_value_get_boolean(value);
    break;
  default:
    G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec);
    break;
  }
  GST_OBJECT_UNLOCK(self);
  if (latency_changed)
    gst_element_post_message(GST_ELEMENT(self), gst_message_new_latency(GST_OBJECT(self)));
}

static void gst_backchannel_mixer_get_property(GObject *object, guint prop_id, GValue *value,
                                               GParamSpec *pspec) {
  auto *self = GST_BACKCHANNEL_MIXER(object);
  auto *priv = self->priv;
  if (prop_id == PROP_STATS) {
    g_value_take_boxed(value, gst_backchannel_mixer_get_stats(self));
    return;
  }
  GST_OBJECT_LOCK(self);
  switch (prop_id) {
  case PROP_OUTPUT_BUFFER_DURATION:
    g_value_set_uint64(value, priv->block_duration);
    break;
  case PROP_LATENCY:
    g_value_set_uint64(value, priv->jitter);
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
  case PROP_FORCE_LIVE:
    g_value_set_boolean(value, priv->force_live);
    break;
  default:
    G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec);
    break;
  }
  GST_OBJECT_UNLOCK(self);
}

static void gst_backchannel_mixer_finalize(GObject *object) {
  auto *self = GST_BACKCHANNEL_MIXER(object);
  for (auto *p : self->priv->pads)
    gst_object_unref(p);
  delete self->priv;
  self->priv = nullptr;
  G_OBJECT_CLASS(gst_backchannel_mixer_parent_class)->finalize(object);
}

static void gst_backchannel_mixer_class_init(GstBackchannelMixerClass *klass) {
  auto *gobject_class = G_OBJECT_CLASS(klass);
  auto *element_class = GST_ELEMENT_CLASS(klass);

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
   * GstBackchannelMixer:latency:
   *
   * Jitter allowance: how much later than its reported latency a live talker's data may arrive
   * and still be mixed. Added to the element's latency.
   */
  g_object_class_install_property(
      gobject_class, PROP_LATENCY,
      g_param_spec_uint64("latency", "Jitter allowance",
                          "Live: nanoseconds a talker may be later than its reported latency "
                          "and still be mixed (added to the element's latency)",
                          0, 10 * GST_SECOND, DEFAULT_LATENCY, rw_playing));
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
                          0, 10 * GST_SECOND, DEFAULT_ALIGNMENT_THRESHOLD, rw_ready));
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
   * that must stay open with nobody talking). The element is then a live source of its own.
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

  gst_element_class_add_static_pad_template(element_class, &src_template);
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
  element_class->change_state = GST_DEBUG_FUNCPTR(gst_backchannel_mixer_change_state);

  gst_type_mark_as_plugin_api(GST_TYPE_BACKCHANNEL_MIXER_PAD, static_cast<GstPluginAPIFlags>(0));
}

static void gst_backchannel_mixer_init(GstBackchannelMixer *self) {
  auto *priv = new GstBackchannelMixerPrivate();
  self->priv = priv;
  gst_audio_info_init(&priv->out_info);
  gst_segment_init(&priv->segment, GST_FORMAT_TIME);
  priv->srcpad = gst_pad_new_from_static_template(&src_template, "src");
  gst_pad_set_activatemode_function(priv->srcpad,
                                    GST_DEBUG_FUNCPTR(gst_backchannel_mixer_src_activate_mode));
  gst_pad_set_event_function(priv->srcpad, GST_DEBUG_FUNCPTR(gst_backchannel_mixer_src_event));
  gst_pad_set_query_function(priv->srcpad, GST_DEBUG_FUNCPTR(gst_backchannel_mixer_src_query));
  gst_element_add_pad(GST_ELEMENT(self), priv->srcpad);
}

/* GstChildProxy: pads as children, so gst-launch can set `sink_0::volume=0.5`. */

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
