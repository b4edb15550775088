/* costream
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
/**
 * SECTION:gstcostreammixer
 * @title: GstCostreamMixer
 *
 * Base class of the costream mixers (`backchannelmixer`, `mixminus`): talker request pads with
 * conversion, timestamp placement, drift correction, stall timeouts, levels and statistics, and
 * one output task clocked live or driven by data non-live. Not an element of its own.
 */

#include "gstcostreammixer.h"
#include "feedpad.h"

#include "../audio/level.h"
#include "../audio/opus.h"
#include "../audio/opusreceiver.h"
#include "../audio/chunkpool.h"
#include "../audio/talkerconverter.h"

#include <algorithm>
#include <cmath>
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>

GST_DEBUG_CATEGORY_STATIC(gst_costream_mixer_debug);
#define GST_CAT_DEFAULT gst_costream_mixer_debug

/* Threads and locks.
 *
 * Every talker's streaming thread runs the sink pad's chain: it converts its buffer (no lock,
 * the converter belongs to that thread) and appends it to the talker's queue under the element's
 * data lock. It never waits for the mixer when live; non-live it waits, with hysteresis, once
 * its queue is AHEAD_HIGH ahead of the output, until AHEAD_LOW (so upstreams hand over batches
 * instead of trading places with the mixer at every buffer). It computes each buffer's power
 * (for levels) while the samples are in its cache, and frees the chunks the output has passed.
 * One output thread (the element's task) waits for a block to be complete (non-live) or for its
 * deadline on the clock (live), reads every queue under the data lock, then lets the subclass
 * mix and push with no lock held.
 *
 * Lock order (outer to inner): task lock -> priv->lock (data lock) -> GST_OBJECT_LOCK (element
 * or pad) or a pad's stats_lock. No lock is held while pushing, querying or posting a message.
 */

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
#define DEFAULT_FORCE_LIVE FALSE

/* Non-live backpressure: a talker more than this far ahead of the output waits until it is
 * back under the low mark. Each wake-up costs more than the switch: the talker's thread comes
 * back to caches that the other talkers have filled since, so batches are large (256 talkers on
 * 2 cores: 2 s / 0.4 s cost 10 % less CPU than 0.5 s / 0.1 s, 0.15 s / 0.05 s cost 50 % more).
 * Memory: up to AHEAD_HIGH of audio per talker whose samples are kept. */
#define AHEAD_HIGH (2 * GST_SECOND)
#define AHEAD_LOW (400 * GST_MSECOND)

/* An Opus talker in DTX sends a packet only every 400 ms or so while silent: it counts as stalled
 * only after this long without one (or `timeout`, if longer). */
#define DTX_STALL (1 * GST_SECOND)

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
  PROP_PAD_CONCEALED,
  PROP_PAD_RECOVERED,
};

struct GstCostreamMixerPadPrivate {
  /* The pad's streaming thread only: */
  TalkerConverter converter;
  /* Opus input: decoded to F32 48 kHz first, losses concealed (see opusreceiver.h). */
  std::unique_ptr<costream::OpusReceiver> opus;
  std::vector<float> opus_pcm;
  bool opus_live = false; /* the output was live at the last packet (see set_fill_dtx) */
  GstSegment segment;
  guint64 converter_generation = 0;
  GstAudioInfo converter_out;                  /* the output format of converter_generation */
  costream::ChunkPool pool;                    /* see to_pool() */
  costream::LevelMeter shadow_meter;           /* the output's meter over this talker's buffers */
  std::shared_ptr<std::vector<uint8_t>> zeros; /* silence for unheard buffers, never written */

  /* Element data lock: */
  TalkerQueue queue;
  bool flushing = false;
  bool eos = false;
  bool has_caps = false;
  bool waiting_for_space = false;
  std::condition_variable space_cond; /* non-live: room in the queue, flushing, a new format */
  bool missing = false; /* the output waits for this talker's data (see mark_missing) */
  bool in_dtx = false;  /* Opus DTX: silent, sending a packet now and then (see DTX_STALL) */
  costream::LevelMeter meter;
  TalkerStats stats;
  bool ever_had_data = false;
  bool stalled = false;
  int64_t missing_frames = 0;
  /* Chunks the output read past, for the talker's own thread to release with its next buffer
   * (see defer_consumed). */
  std::vector<std::shared_ptr<void>> consumed;

  /* Output thread only: */
  std::vector<uint8_t> scratch;

  /* The pad's streaming thread: the chunks it took from `consumed` (swapped, so that neither
   * vector gives up its capacity). */
  std::vector<std::shared_ptr<void>> releasing;

  /* GST_OBJECT_LOCK (pad): */
  gdouble volume = DEFAULT_PAD_VOLUME;
  gboolean mute = DEFAULT_PAD_MUTE;

  /* stats_lock: what the pad's properties and the element's stats show, copied by the output
   * thread at every block (a lock of its own: the talker's thread takes the pad's object lock for
   * every buffer it sends, the output thread would have to fight it for every talker and
   * block). Written by the output thread only. */
  std::mutex stats_lock;
  TalkerStats snapshot;
  /* volume, or 0 when muted: written with the pad lock held, read by the output thread without
   * it (the talker's thread takes that lock for every buffer it sends). */
  std::atomic<float> gain{static_cast<float>(DEFAULT_PAD_VOLUME)};
};

typedef struct {
  GstCostreamMixerPadPrivate *priv;
} GstCostreamMixerPadInstancePrivate;

G_DEFINE_TYPE_WITH_PRIVATE(GstCostreamMixerPad, gst_costream_mixer_pad, GST_TYPE_PAD);

static GstCostreamMixerPadPrivate *pad_priv(GstCostreamMixerPad *pad) {
  return static_cast<GstCostreamMixerPadInstancePrivate *>(
             gst_costream_mixer_pad_get_instance_private(pad))
      ->priv;
}

static void gst_costream_mixer_pad_get_property(GObject *object, guint prop_id, GValue *value,
                                                GParamSpec *pspec) {
  auto *pad = GST_COSTREAM_MIXER_PAD(object);
  auto *pp = pad_priv(pad);
  if (prop_id == PROP_PAD_VOLUME || prop_id == PROP_PAD_MUTE) {
    GST_OBJECT_LOCK(pad);
    if (prop_id == PROP_PAD_VOLUME)
      g_value_set_double(value, pp->volume);
    else
      g_value_set_boolean(value, pp->mute);
    GST_OBJECT_UNLOCK(pad);
    return;
  }
  std::lock_guard<std::mutex> lk(pp->stats_lock);
  const auto &st = pp->snapshot;
  switch (prop_id) {
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
  case PROP_PAD_CONCEALED:
    g_value_set_uint64(value, st.opus_concealed);
    break;
  case PROP_PAD_RECOVERED:
    g_value_set_uint64(value, st.opus_recovered);
    break;
  default:
    G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec);
    break;
  }
}

static void gst_costream_mixer_pad_set_property(GObject *object, guint prop_id, const GValue *value,
                                                GParamSpec *pspec) {
  auto *pad = GST_COSTREAM_MIXER_PAD(object);
  auto *pp = pad_priv(pad);
  GST_OBJECT_LOCK(pad);
  switch (prop_id) {
  case PROP_PAD_VOLUME:
    pp->volume = g_value_get_double(value);
    break;
  case PROP_PAD_MUTE:
    pp->mute = g_value_get_boolean(value);
    break;
  default:
    G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec);
    break;
  }
  pp->gain.store(pp->mute ? 0.f : static_cast<float>(pp->volume), std::memory_order_relaxed);
  GST_OBJECT_UNLOCK(pad);
}

static void gst_costream_mixer_pad_finalize(GObject *object) {
  auto *ip = static_cast<GstCostreamMixerPadInstancePrivate *>(
      gst_costream_mixer_pad_get_instance_private(GST_COSTREAM_MIXER_PAD(object)));
  delete ip->priv;
  ip->priv = nullptr;
  G_OBJECT_CLASS(gst_costream_mixer_pad_parent_class)->finalize(object);
}

static void gst_costream_mixer_pad_class_init(GstCostreamMixerPadClass *klass) {
  auto *gobject_class = G_OBJECT_CLASS(klass);
  gobject_class->get_property = gst_costream_mixer_pad_get_property;
  gobject_class->set_property = gst_costream_mixer_pad_set_property;
  gobject_class->finalize = gst_costream_mixer_pad_finalize;

  const auto ro = static_cast<GParamFlags>(G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);
  const auto rw = static_cast<GParamFlags>(G_PARAM_READWRITE | GST_PARAM_CONTROLLABLE |
                                           GST_PARAM_MUTABLE_PLAYING | G_PARAM_STATIC_STRINGS);

  /**
   * GstCostreamMixerPad:volume:
   *
   * Gain applied to this talker (1.0 = unchanged).
   */
  g_object_class_install_property(
      gobject_class, PROP_PAD_VOLUME,
      g_param_spec_double("volume", "Volume", "Gain applied to this talker (1.0 = unchanged)", 0.0,
                          10.0, DEFAULT_PAD_VOLUME, rw));
  /**
   * GstCostreamMixerPad:mute:
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
                          "Smoothed input level in dBov (RFC 6464 meaning; -127 = silence). From "
                          "the buffers' GstAudioLevelMeta when they carry one",
                          costream::kSilenceDbov, 0.0, costream::kSilenceDbov, ro));
  g_object_class_install_property(
      gobject_class, PROP_PAD_ACTIVE,
      g_param_spec_boolean("active", "Active", "Whether this talker is currently heard in the mix",
                           FALSE, ro));
  /**
   * GstCostreamMixerPad:concealed:
   *
   * Opus input: packets lost on the way (a hole in the timestamps, or a GAP from the jitter
   * buffer) and concealed with libopus packet loss concealment.
   */
  g_object_class_install_property(
      gobject_class, PROP_PAD_CONCEALED,
      g_param_spec_uint64("concealed", "Concealed",
                          "Opus input: lost packets concealed (libopus PLC)", 0, G_MAXUINT64, 0,
                          ro));
  /**
   * GstCostreamMixerPad:recovered:
   *
   * Opus input: lost packets recovered from the in-band FEC of the packet after them (senders
   * with `inband-fec` and a `packet-loss-percentage`).
   */
  g_object_class_install_property(
      gobject_class, PROP_PAD_RECOVERED,
      g_param_spec_uint64("recovered", "Recovered",
                          "Opus input: lost packets recovered from the next packet's in-band FEC",
                          0, G_MAXUINT64, 0, ro));
}

static void gst_costream_mixer_pad_init(GstCostreamMixerPad *pad) {
  auto *ip = static_cast<GstCostreamMixerPadInstancePrivate *>(
      gst_costream_mixer_pad_get_instance_private(pad));
  ip->priv = new GstCostreamMixerPadPrivate();
  gst_segment_init(&ip->priv->segment, GST_FORMAT_TIME);
  ip->priv->meter.configure();
  ip->priv->shadow_meter.configure();
}

void gst_costream_mixer_pad_set_active(GstCostreamMixerPad *pad, gboolean active) {
  auto *pp = pad_priv(pad);
  if (pp->snapshot.active == active) /* only the output thread writes it */
    return;
  std::lock_guard<std::mutex> lk(pp->stats_lock);
  pp->snapshot.active = active;
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
  PROP_FORCE_LIVE,
};

/* Talker pads with a reference each, dropped with the last block that uses them. */
struct PadsHold {
  std::vector<GstCostreamMixerPad *> pads;
  /* Their private parts, so the output thread need not read the pad objects (whose first cache
   * line every talker buffer writes: reference count, object lock). */
  std::vector<GstCostreamMixerPadPrivate *> privs;
  PadsHold() = default;
  PadsHold(const PadsHold &) = delete;
  PadsHold &operator=(const PadsHold &) = delete;
  ~PadsHold() {
    for (auto *p : pads)
      gst_object_unref(p);
  }
};

struct GstCostreamMixerPrivate {
  GstTask *task = nullptr;
  GRecMutex task_lock;

  /* GST_OBJECT_LOCK (element): properties */
  GstClockTime block_duration = DEFAULT_OUTPUT_BUFFER_DURATION;
  GstClockTime latency = DEFAULT_LATENCY; /* property `latency`: the jitter allowance */
  GstClockTime timeout = DEFAULT_TIMEOUT;
  GstClockTime alignment_threshold = DEFAULT_ALIGNMENT_THRESHOLD;
  gboolean drift_correction = DEFAULT_DRIFT_CORRECTION;
  gboolean force_live = DEFAULT_FORCE_LIVE;
  GstClockTime feed_queue_time = COSTREAM_MIXER_DEFAULT_FEED_QUEUE_TIME;
  guint next_pad_index = 0;

  /* The return feeds (src pads made by gst_costream_mixer_new_feed_pad): their queue policy,
   * set by the output thread at every block. Its own locks (see feedpad.h). */
  std::shared_ptr<costream::FeedGroup> feeds = std::make_shared<costream::FeedGroup>();

  /* Data lock and what it protects (plus every pad's queue and flags). */
  std::mutex lock;
  std::condition_variable data_cond;       /* the output thread waits for data, flush, state */
  std::vector<GstCostreamMixerPad *> pads; /* with a reference each */
  /* The same pads with references of its own, shared by the blocks being output: one reference
   * per block instead of one per talker per block (see refresh_pads_hold). */
  std::shared_ptr<PadsHold> pads_hold;
  bool flushing = true;
  bool stopping = false; /* the task is being stopped: it must not pause itself */
  bool playing = false;
  bool output_waiting = false;
  size_t missing = 0; /* talkers the waiting output still needs data from */
  GstClockID clock_id = nullptr;
  bool out_valid = false;
  GstAudioInfo out_info;
  guint block_frames = 480;
  guint64 generation = 1; /* bumped when the output format changes */
  /* `generation` while out_valid, else 0: written with the data lock held, read by talkers
   * without it to convert with the format they already know (see gst_costream_mixer_sink_chain).
   */
  std::atomic<guint64> published_generation{0};
  bool reconfigure = false;
  bool live = false;
  bool latency_dirty = true;
  GstClockTime upstream_latency = 0;
  int64_t out_index = 0; /* running time of the next block, in output frames */
  GstSegment segment;
  bool send_segment = true;
  bool discont = true;
  bool eos_requested = false;
  guint32 seqnum = 0;
  /* Seqnum of the last LATENCY event sent upstream (see forward_latency), 0 for none. */
  guint32 latency_event_seqnum = 0;
  /* The talkers' combined upstream latency as the last src pad LATENCY query found it (see
   * upstream_latency_for_query). */
  struct {
    guint64 generation = 0; /* bumped whenever it may have changed */
    bool valid = false;
    gint64 when = 0; /* g_get_monotonic_time() */
    gboolean live = FALSE;
    GstClockTime min = 0, max = GST_CLOCK_TIME_NONE;
  } latency_cache;

  /* Output thread only: the chunks the queues passed while it read a block (filled with the
   * data lock held, released after it). */
  std::vector<std::shared_ptr<void>> released;
  std::vector<GstCostreamMixerPadPrivate *> wake_talkers; /* waiting talkers with room again */

  /* (data lock) The output thread is mixing a block outside the lock, reading talkers' chunks in
   * place: a queue emptied meanwhile (a talker's flush) hands its chunks to `deferred`, which the
   * output thread frees when the block is done. So the output need not take a reference to every
   * chunk it reads (an atomic on a cold cache line per talker and block). */
  bool block_in_flight = false;
  std::vector<std::shared_ptr<void>> deferred;
};

typedef struct {
  GstCostreamMixerPrivate *priv;
} GstCostreamMixerInstancePrivate;

static void gst_costream_mixer_child_proxy_init(gpointer g_iface, gpointer iface_data);

/* (data lock) */
static void invalidate_latency_cache(GstCostreamMixerPrivate *priv) {
  priv->latency_cache.generation++;
  priv->latency_cache.valid = false;
}

/* (data lock) After priv->pads changed. Returns the previous hold, for the caller to drop after the
 * lock (its last reference to a pad may finalize it). */
static std::shared_ptr<PadsHold> refresh_pads_hold(GstCostreamMixerPrivate *priv) {
  auto hold = std::make_shared<PadsHold>();
  hold->pads.reserve(priv->pads.size());
  hold->privs.reserve(priv->pads.size());
  for (auto *p : priv->pads) {
    hold->pads.push_back(GST_COSTREAM_MIXER_PAD(gst_object_ref(p)));
    hold->privs.push_back(pad_priv(p));
  }
  std::swap(hold, priv->pads_hold);
  return hold;
}

G_DEFINE_ABSTRACT_TYPE_WITH_CODE(GstCostreamMixer, gst_costream_mixer, GST_TYPE_ELEMENT,
                                 G_ADD_PRIVATE(GstCostreamMixer)
                                     G_IMPLEMENT_INTERFACE(GST_TYPE_CHILD_PROXY,
                                                           gst_costream_mixer_child_proxy_init));

static GstCostreamMixerPrivate *mixer_priv(GstCostreamMixer *self) {
  return static_cast<GstCostreamMixerInstancePrivate *>(
             gst_costream_mixer_get_instance_private(self))
      ->priv;
}

#define KLASS(self) GST_COSTREAM_MIXER_GET_CLASS(self)

using Lock = std::unique_lock<std::mutex>;

static void gst_costream_mixer_loop(gpointer user_data);

namespace {

TalkerQueue::Config queue_config(GstCostreamMixer *self) {
  auto *priv = mixer_priv(self);
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
void reconfigure_queues(GstCostreamMixer *self) {
  const auto cfg = queue_config(self);
  for (auto *p : mixer_priv(self)->pads)
    pad_priv(p)->queue.configure(cfg);
}

int64_t frames_of(GstCostreamMixer *self, GstClockTime t) {
  return static_cast<int64_t>(
      gst_util_uint64_scale_round(t, GST_AUDIO_INFO_RATE(&mixer_priv(self)->out_info), GST_SECOND));
}

/* (data lock) How far a talker's data reaches beyond the output position. */
int64_t frames_ahead(GstCostreamMixer *self, GstCostreamMixerPadPrivate *pp) {
  return pp->queue.write_end() - mixer_priv(self)->out_index;
}

/* (data lock) Every talker waiting for room looks again (flushing, new format, live). */
void notify_space_all(GstCostreamMixer *self) {
  for (auto *p : mixer_priv(self)->pads)
    pad_priv(p)->space_cond.notify_all();
}

/* (data lock) Whether a talker is one the output waits for. */
bool expected_talker(GstCostreamMixerPad *p) {
  auto *pp = pad_priv(p);
  return !pp->eos && (pp->has_caps || gst_pad_is_linked(GST_PAD(p)));
}

/* (data lock, output thread) Marks every talker the output waits for that does not have the
 * block [out, out + n) yet, and counts them in priv->missing. Returns how many talkers the
 * output waits for. */
size_t mark_missing(GstCostreamMixer *self, int64_t out, uint32_t n) {
  auto *priv = mixer_priv(self);
  size_t expected = 0;
  priv->missing = 0;
  for (auto *p : priv->pads) {
    auto *pp = pad_priv(p);
    pp->missing = false;
    if (!expected_talker(p))
      continue;
    expected++;
    if (!pp->queue.covers(out, n)) {
      pp->missing = true;
      priv->missing++;
    }
  }
  return expected;
}

/* Released chunks beyond this many are the output thread's to free: the talker is not coming back
 * soon (ended, stalled, or sending blocks larger than a few output blocks). */
constexpr size_t kMaxDeferredRelease = 32;

/* (data lock, output thread) After reading a block from `pad`'s queue: what the queue passed
 * (pp->consumed) stays for the talker's thread to free with its next buffer. The buffers were
 * allocated there: freeing them in the same thread takes the allocator's thread-local path instead
 * of the lock of another thread's arena, and spreads the work over the talkers' threads instead of
 * the one output thread (at 256 participants, freeing input buffers was a third of the output
 * thread's time). More than kMaxDeferredRelease waiting go to `out`, for the output to free after
 * the data lock. */
void defer_consumed(GstCostreamMixerPadPrivate *pp, std::vector<std::shared_ptr<void>> *out) {
  /* A talker waiting for room takes them when it wakes. */
  if ((pp->waiting_for_space || pp->consumed.size() <= kMaxDeferredRelease) && !pp->eos &&
      !pp->flushing)
    return;
  for (auto &c : pp->consumed)
    out->push_back(std::move(c));
  pp->consumed.clear();
}

/* Talker's thread: take() (data lock held) takes the chunks the output passed; they are freed
 * when the guard goes, after the lock (declare the guard before the lock). */
struct ConsumedRelease {
  GstCostreamMixerPadPrivate *pp;
  void take() { pp->releasing.swap(pp->consumed); }
  ~ConsumedRelease() { pp->releasing.clear(); }
};

/* (data lock) Wakes the output thread when it waits and the block became complete with this
 * talker's data (nullptr: something else changed, wake it to look again). O(1) per buffer: a
 * talker counts once, when its data first covers the block the output waits for. Waking the
 * output for every buffer would cost a context switch and a clock re-arm per talker per block. */
void wake_output(GstCostreamMixer *self, GstCostreamMixerPad *pad) {
  auto *priv = mixer_priv(self);
  if (!priv->output_waiting)
    return;
  if (pad) {
    auto *pp = pad_priv(pad);
    if (!pp->missing || !pp->queue.covers(priv->out_index, priv->block_frames))
      return;
    pp->missing = false;
    if (--priv->missing > 0)
      return;
  }
  priv->data_cond.notify_one();
  if (priv->clock_id)
    gst_clock_id_unschedule(priv->clock_id);
}

void post_negotiation_error(GstCostreamMixer *self, GstPad *pad, const std::string &why,
                            GstCaps *caps) {
  GST_ELEMENT_ERROR(self, CORE, NEGOTIATION,
                    ("Talker on pad %s sent audio that cannot be mixed: %s. Accepted: S16LE, "
                     "S32LE or F32LE, 8000-48000 Hz, mono or stereo, interleaved.",
                     GST_PAD_NAME(pad), why.c_str()),
                    ("caps %" GST_PTR_FORMAT, caps));
}

/* (data lock, streaming thread of the talker) Waits, non-live, until the talker may queue more:
 * GST_FLOW_OK, or why it may not. */
GstFlowReturn wait_for_room_locked(GstCostreamMixer *self, GstCostreamMixerPadPrivate *pp,
                                   Lock &lk) {
  auto *priv = mixer_priv(self);
  for (;;) {
    if (pp->flushing)
      return GST_FLOW_FLUSHING;
    if (pp->eos)
      return GST_FLOW_EOS;
    /* Never wait while the output still needs this talker's data (that would deadlock). Once
     * waiting, wait down to the low mark: the talker then queues a batch in one go. */
    const GstClockTime limit = pp->waiting_for_space ? AHEAD_LOW : AHEAD_HIGH;
    if (priv->out_valid &&
        (priv->live || frames_ahead(self, pp) <= frames_of(self, limit) ||
         !pp->queue.has_pending() || !pp->queue.covers(priv->out_index, priv->block_frames)))
      break;
    /* (The output does not wait for this talker: it already covers the output's block.) */
    pp->waiting_for_space = true;
    pp->space_cond.wait(lk);
  }
  pp->waiting_for_space = false;
  return GST_FLOW_OK;
}

/* Streaming thread of `pad`: waits (non-live) until the talker may queue more, and returns the
 * output format to convert to. */
GstFlowReturn wait_for_room(GstCostreamMixer *self, GstCostreamMixerPad *pad, GstAudioInfo *out,
                            guint64 *generation) {
  auto *priv = mixer_priv(self);
  auto *pp = pad_priv(pad);
  ConsumedRelease done{pp};
  Lock lk(priv->lock);
  const GstFlowReturn ret = wait_for_room_locked(self, pp, lk);
  if (ret != GST_FLOW_OK)
    return ret;
  done.take();
  *out = priv->out_info;
  *generation = priv->generation;
  return GST_FLOW_OK;
}

/* Streaming thread of `pad`: the chunk's power, for levels: from the GstAudioLevelMeta's -dBov
 * `meta_level` when there was one (>= 0), else from its samples, here where they are in the cache
 * (the output thread then reads the samples only of the talkers it mixes). */
void set_chunk_power(costream::Chunk &chunk, const GstAudioInfo &out, int meta_level) {
  if (meta_level >= 0) {
    chunk.power = static_cast<float>(std::pow(10.0, -meta_level / 10.0));
    chunk.power_whole = true;
    return;
  }
  costream::SampleFormat fmt;
  if (chunk.data && costream::sample_format_from_gst(GST_AUDIO_INFO_FORMAT(&out), &fmt))
    chunk.power = static_cast<float>(costream::block_power(
        chunk.data, static_cast<size_t>(chunk.frames) * GST_AUDIO_INFO_CHANNELS(&out), fmt));
}

/* Points a chunk at storage that `keep` holds, all of it the chunk's (so it may be read in place:
 * see TalkerQueue::take_exact). */
void set_storage(costream::Chunk &chunk, const uint8_t *data, std::shared_ptr<void> keep) {
  chunk.data = data;
  chunk.tag = keep.get();
  chunk.keepalive = std::move(keep); /* the converted buffer's reference, if any, goes here */
}

/* Streaming thread of `pad`: moves a converted chunk's samples into the talker's recycled storage
 * and lets its GstBuffer go now, while it is in the cache (see ChunkPool). Only for mixers that
 * never forward a talker's own buffer. */
void to_pool(GstCostreamMixerPadPrivate *pp, costream::Chunk &chunk, const GstAudioInfo &out) {
  if (!chunk.data || chunk.frames == 0)
    return;
  const size_t bytes = static_cast<size_t>(chunk.frames) * GST_AUDIO_INFO_BPF(&out);
  uint8_t *data = nullptr;
  std::shared_ptr<void> keep = pp->pool.take(bytes, &data);
  memcpy(data, chunk.data, bytes);
  set_storage(chunk, data, std::move(keep));
}

/* Streaming thread of `pad`: a chunk nobody can hear keeps its power but not its samples: it
 * points to shared silence, and its buffer goes now (see GstCostreamMixerClass::samples_unheard).
 */
void to_silence(GstCostreamMixerPadPrivate *pp, costream::Chunk &chunk, const GstAudioInfo &out) {
  const size_t bytes = static_cast<size_t>(chunk.frames) * GST_AUDIO_INFO_BPF(&out);
  if (!pp->zeros || pp->zeros->size() < bytes) /* a new one: chunks may still use the old */
    pp->zeros = std::make_shared<std::vector<uint8_t>>(std::max<size_t>(bytes, 4096), 0);
  set_storage(chunk, pp->zeros->data(), pp->zeros);
}

/* What a talker's streaming thread queues: an input buffer (counted in the pad's stats), or audio
 * it made itself (the concealment of a loss, the silence of a GAP: not counted). */
enum class Queued { InputBuffer, Made };
/* What the thread does once it has queued: return, or wait for room for the talker's next buffer
 * (wait_for_room_locked) under the same lock. */
enum class ThenWait { No, ForRoom };

/* Streaming thread of `pad`: queues converted audio. */
GstFlowReturn queue_converted(GstCostreamMixer *self, GstCostreamMixerPad *pad, guint64 generation,
                              TalkerConverter::Converted &c, gsize bytes, Queued what,
                              ThenWait then = ThenWait::No) {
  const bool then_wait = then == ThenWait::ForRoom;
  auto *priv = mixer_priv(self);
  auto *pp = pad_priv(pad);
  ConsumedRelease done{pp};
  Lock lk(priv->lock);
  if (!then_wait)
    done.take();
  if (what == Queued::InputBuffer) {
    pp->stats.buffers++;
    pp->stats.bytes += bytes;
    pp->stats.unheard += c.unheard;
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
  if (!then_wait)
    return GST_FLOW_OK;
  const GstFlowReturn ret = wait_for_room_locked(self, pp, lk);
  done.take();
  return ret;
}

/* Streaming thread: the converter follows the output format. */
bool update_converter(GstCostreamMixer *self, GstCostreamMixerPad *pad, const GstAudioInfo &out,
                      guint64 generation) {
  auto *pp = pad_priv(pad);
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
  pp->converter_out = out;
  return true;
}

} // namespace

/* Frames at 48 kHz of a time on the talker's timeline (INT64_MIN when unknown). */
static int64_t opus_pos(GstClockTime t) {
  return GST_CLOCK_TIME_IS_VALID(t)
             ? static_cast<int64_t>(gst_util_uint64_scale_round(t, 48000, GST_SECOND))
             : INT64_MIN;
}

/* Streaming thread: what the receiver decoded or concealed, as an F32 48 kHz buffer from
 * `out.start` (flags from `like`, when given). */
static GstBuffer *opus_pcm_buffer(GstCostreamMixerPadPrivate *pp,
                                  const costream::OpusReceiver::Output &out, GstBuffer *like) {
  const gsize size = static_cast<gsize>(out.frames) * pp->opus->channels() * sizeof(float);
  GstBuffer *b = gst_buffer_new_memdup(pp->opus_pcm.data(), size);
  if (like)
    gst_buffer_copy_into(b, like, GST_BUFFER_COPY_FLAGS, 0, static_cast<gsize>(-1));
  if (out.start != INT64_MIN) {
    GST_BUFFER_PTS(b) = gst_util_uint64_scale_round(
        static_cast<guint64>(std::max<int64_t>(0, out.start)), GST_SECOND, 48000);
    GST_BUFFER_DURATION(b) =
        gst_util_uint64_scale_round(
            static_cast<guint64>(std::max<int64_t>(0, out.start) + out.frames), GST_SECOND, 48000) -
        GST_BUFFER_PTS(b);
  } else {
    if (like)
      GST_BUFFER_PTS(b) = GST_BUFFER_PTS(like);
    GST_BUFFER_DURATION(b) = gst_util_uint64_scale_round(out.frames, GST_SECOND, 48000);
  }
  return b;
}

/* (data lock) The receiver's counters into the talker's stats. */
static void opus_stats(GstCostreamMixerPadPrivate *pp,
                       const costream::OpusReceiver::Counters &before) {
  const auto &now = pp->opus->counters();
  pp->stats.opus_concealed += now.concealed - before.concealed;
  pp->stats.opus_recovered += now.recovered - before.recovered;
  pp->stats.opus_dtx += now.dtx - before.dtx;
  pp->in_dtx = pp->opus->in_dtx();
}

/* (data lock) Whether the output is live, for the talker's own thread (see set_fill_dtx). */
static void opus_follow_mode(GstCostreamMixer *self, GstCostreamMixerPadPrivate *pp) {
  pp->opus_live = mixer_priv(self)->live;
}

/* Streaming thread: an Opus packet (taken) to F32 48 kHz audio, the hole before it concealed, or
 * silence of its duration when the subclass says it cannot be heard. nullptr: unreadable. */
static GstBuffer *decode_opus(GstCostreamMixer *self, GstCostreamMixerPad *pad, GstBuffer *buf,
                              int meta_level) {
  auto *pp = pad_priv(pad);
  GstMapInfo map;
  if (!gst_buffer_map(buf, &map, GST_MAP_READ)) {
    gst_buffer_unref(buf);
    return nullptr;
  }
  const int frames = costream::opus_packet_frames(map.data, map.size, 48000);
  if (frames <= 0 || frames > 5760) {
    GST_WARNING_OBJECT(pad, "dropped an unreadable Opus packet (%" G_GSIZE_FORMAT " bytes)",
                       map.size);
    gst_buffer_unmap(buf, &map);
    gst_buffer_unref(buf);
    return nullptr;
  }
  auto *klass = GST_COSTREAM_MIXER_GET_CLASS(self);
  const bool skip = meta_level >= 0 && klass->skip_decode &&
                    klass->skip_decode(self, pad, -static_cast<double>(meta_level));
  const auto before = pp->opus->counters();
  costream::OpusReceiver::Output out;
  pp->opus->set_fill_dtx(!pp->opus_live);
  const bool ok = pp->opus->packet(map.data, map.size, frames, opus_pos(GST_BUFFER_PTS(buf)), !skip,
                                   &pp->opus_pcm, &out);
  gst_buffer_unmap(buf, &map);
  if (!ok) {
    GST_WARNING_OBJECT(pad, "dropped an Opus packet that did not decode");
    gst_buffer_unref(buf);
    return nullptr;
  }
  GstBuffer *pcm = opus_pcm_buffer(pp, out, buf);
  if (out.frames > frames) /* the hole before it was concealed: the stream goes on unbroken */
    GST_BUFFER_FLAG_UNSET(pcm, GST_BUFFER_FLAG_DISCONT);
  gst_buffer_unref(buf);
  {
    Lock lk(mixer_priv(self)->lock);
    if (skip)
      pp->stats.opus_skipped++;
    else
      pp->stats.opus_decoded++;
    opus_stats(pp, before);
    opus_follow_mode(self, pp);
  }
  return pcm;
}

/* Streaming thread of `pad`: the output format to convert to. One data lock per buffer: once
 * the talker knows the output format, it converts without asking (its previous buffer already
 * waited for room after it was queued) and takes the lock only to queue. Until then, and after a
 * format change, it asks first. */
static GstFlowReturn talker_format(GstCostreamMixer *self, GstCostreamMixerPad *mpad,
                                   GstAudioInfo *out, guint64 *generation) {
  auto *pp = pad_priv(mpad);
  *generation = mixer_priv(self)->published_generation.load(std::memory_order_acquire);
  if (*generation != 0 && *generation == pp->converter_generation) {
    *out = pp->converter_out;
  } else if (GstFlowReturn ret = wait_for_room(self, mpad, out, generation); ret != GST_FLOW_OK) {
    return ret;
  }
  if (!pp->converter.has_input()) {
    GST_ELEMENT_ERROR(
        self, CORE, NEGOTIATION,
        ("Talker on pad %s sent audio before its format (no caps).", GST_PAD_NAME(mpad)),
        (nullptr));
    return GST_FLOW_NOT_NEGOTIATED;
  }
  if (!update_converter(self, mpad, *out, *generation))
    return GST_FLOW_NOT_NEGOTIATED;
  return GST_FLOW_OK;
}

/* Streaming thread of `pad`: converts a buffer in the talker's input format (taken; decoded
 * already for Opus), computes its power, and queues it (`what`: an input buffer, or audio made
 * here), then returns or waits for room (`then`). */
static GstFlowReturn queue_input(GstCostreamMixer *self, GstCostreamMixerPad *mpad, GstBuffer *buf,
                                 gsize bytes, int meta_level, const GstAudioInfo &out,
                                 guint64 generation, Queued what, ThenWait then) {
  auto *pp = pad_priv(mpad);
  TalkerConverter::Converted c;
  if (!pp->converter.convert(buf, &pp->segment, &c)) {
    Lock lk(mixer_priv(self)->lock);
    pp->stats.buffers++;
    pp->stats.bytes += bytes;
    pp->stats.dropped++;
    GST_WARNING_OBJECT(mpad, "dropped a buffer that could not be read or converted");
    return GST_FLOW_OK;
  }
  set_chunk_power(c.chunk, out, meta_level);
  if (KLASS(self)->samples_unheard && !pp->opus && c.chunk.power >= 0.f && c.chunk.data) {
    const double ms = 1000.0 * c.chunk.frames / GST_AUDIO_INFO_RATE(&out);
    const double level = pp->shadow_meter.update(c.chunk.power, ms);
    c.unheard = KLASS(self)->samples_unheard(self, mpad, level, ms);
  }
  if (c.unheard)
    to_silence(pp, c.chunk, out);
  else if (!KLASS(self)->forwards_inputs)
    to_pool(pp, c.chunk, out);
  return queue_converted(self, mpad, generation, c, bytes, what, then);
}

static GstFlowReturn gst_costream_mixer_sink_chain(GstPad *pad, GstObject *parent, GstBuffer *buf) {
  auto *self = GST_COSTREAM_MIXER(parent);
  auto *mpad = GST_COSTREAM_MIXER_PAD(pad);
  auto *pp = pad_priv(mpad);
  const gsize bytes = gst_buffer_get_size(buf);
  GstAudioInfo out;
  guint64 generation;
  if (GstFlowReturn ret = talker_format(self, mpad, &out, &generation); ret != GST_FLOW_OK) {
    gst_buffer_unref(buf);
    return ret;
  }
  int meta_level = -1;
  if (GstAudioLevelMeta *meta = gst_buffer_get_audio_level_meta(buf))
    meta_level = std::min<int>(meta->level, 127);
  if (pp->opus) {
    buf = decode_opus(self, mpad, buf, meta_level);
    if (!buf) {
      Lock lk(mixer_priv(self)->lock);
      pp->stats.buffers++;
      pp->stats.bytes += bytes;
      pp->stats.dropped++;
      return GST_FLOW_OK;
    }
  }
  return queue_input(self, mpad, buf, bytes, meta_level, out, generation, Queued::InputBuffer,
                     ThenWait::ForRoom);
}

/* An Opus talker's GAP (a loss its jitter buffer gave up on): concealed now, but for the last
 * packet's worth, which the next packet may recover from its FEC (see OpusReceiver::gap). Nothing
 * is queued otherwise: the next packet fills the hole. */
static void opus_gap(GstCostreamMixer *self, GstCostreamMixerPad *pad, GstClockTime ts,
                     GstClockTime dur) {
  auto *pp = pad_priv(pad);
  const auto before = pp->opus->counters();
  costream::OpusReceiver::Output o;
  pp->opus->gap(opus_pos(ts), opus_pos(dur), &pp->opus_pcm, &o);
  if (o.frames == 0)
    return;
  GstBuffer *pcm = opus_pcm_buffer(pp, o, nullptr);
  {
    Lock lk(mixer_priv(self)->lock);
    opus_stats(pp, before);
  }
  GstAudioInfo out;
  guint64 generation;
  if (talker_format(self, pad, &out, &generation) != GST_FLOW_OK) {
    gst_buffer_unref(pcm);
    return;
  }
  queue_input(self, pad, pcm, 0, -1, out, generation, Queued::Made, ThenWait::No);
}

/* A GAP event: silence for its duration, so the time counts as covered (non-live alignment). */
static void gst_costream_mixer_sink_gap(GstCostreamMixer *self, GstCostreamMixerPad *pad,
                                        GstEvent *event) {
  GstClockTime ts, dur;
  gst_event_parse_gap(event, &ts, &dur);
  if (pad_priv(pad)->opus) {
    if (GST_CLOCK_TIME_IS_VALID(ts) && GST_CLOCK_TIME_IS_VALID(dur))
      opus_gap(self, pad, ts, dur);
    return;
  }
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
  c.chunk.power = 0.f;
  c.chunk.power_whole = true;
  const guint64 rt = gst_segment_to_running_time(&pad_priv(pad)->segment, GST_FORMAT_TIME, ts);
  c.pts = GST_CLOCK_TIME_IS_VALID(rt) ? static_cast<double>(rt) * rate / GST_SECOND : NAN;
  queue_converted(self, pad, generation, c, 0, Queued::Made);
}

static gboolean gst_costream_mixer_sink_event(GstPad *pad, GstObject *parent, GstEvent *event) {
  auto *self = GST_COSTREAM_MIXER(parent);
  auto *priv = mixer_priv(self);
  auto *mpad = GST_COSTREAM_MIXER_PAD(pad);
  auto *pp = pad_priv(mpad);

  switch (GST_EVENT_TYPE(event)) {
  case GST_EVENT_CAPS: {
    GstCaps *caps;
    gst_event_parse_caps(event, &caps);
    std::string why;
    GstCaps *raw = nullptr;
    GstStructure *st = gst_caps_get_structure(caps, 0);
    if (st && gst_structure_has_name(st, "audio/x-opus")) {
      /* Opus in: decoded here to F32 48 kHz, which the converter then takes as input. */
      gint channels = 1, family = 0;
      gst_structure_get_int(st, "channels", &channels);
      gst_structure_get_int(st, "channel-mapping-family", &family);
      if (family != 0 || channels < 1 || channels > 2) {
        post_negotiation_error(self, pad, "Opus with more than two channels", caps);
        gst_event_unref(event);
        return FALSE;
      }
      if (!pp->opus || pp->opus->channels() != channels) {
        pp->opus = std::make_unique<costream::OpusReceiver>();
        if (!pp->opus->init(channels, &why)) {
          pp->opus.reset();
          post_negotiation_error(self, pad, "no Opus decoder: " + why, caps);
          gst_event_unref(event);
          return FALSE;
        }
      }
      raw = gst_caps_new_simple("audio/x-raw", "format", G_TYPE_STRING, "F32LE", "rate", G_TYPE_INT,
                                48000, "channels", G_TYPE_INT, channels, "layout", G_TYPE_STRING,
                                "interleaved", nullptr);
    } else {
      pp->opus.reset();
    }
    const bool ok = pp->converter.set_input_caps(raw ? raw : caps, &why);
    if (raw)
      gst_caps_unref(raw);
    if (!ok) {
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
      invalidate_latency_cache(priv);
      live = priv->live;
      wake_output(self, nullptr); /* to look at its latency again */
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
    gst_costream_mixer_sink_gap(self, mpad, event);
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
    pp->space_cond.notify_all();
    gst_event_unref(event);
    return TRUE;
  }
  case GST_EVENT_FLUSH_STOP: {
    {
      Lock lk(priv->lock);
      pp->flushing = false;
      pp->eos = false;
      pp->queue.release_into(priv->block_in_flight ? &priv->deferred : nullptr);
      pp->queue.reset();
      pp->queue.release_into(nullptr);
      pp->meter.reset();
      wake_output(self, nullptr);
    }
    pp->converter.reset();
    pp->shadow_meter.reset();
    if (pp->opus)
      pp->opus->reset();
    gst_event_unref(event);
    return TRUE;
  }
  default:
    /* stream-start, tags and the like belong to one talker: not forwarded */
    gst_event_unref(event);
    return TRUE;
  }
}

void gst_costream_mixer_answer_caps_query(GstQuery *query, GstCaps *caps) {
  GstCaps *filter;
  gst_query_parse_caps(query, &filter);
  if (filter) {
    GstCaps *tmp = gst_caps_intersect_full(filter, caps, GST_CAPS_INTERSECT_FIRST);
    gst_caps_unref(caps);
    caps = tmp;
  }
  gst_query_set_caps_result(query, caps);
  gst_caps_unref(caps);
}

static gboolean gst_costream_mixer_sink_query(GstPad *pad, GstObject *parent, GstQuery *query) {
  auto *self = GST_COSTREAM_MIXER(parent);
  switch (GST_QUERY_TYPE(query)) {
  case GST_QUERY_CAPS: {
    GstCaps *result = gst_pad_get_pad_template_caps(pad);
    /* Offer the mix format first: upstream that can produce it directly saves a conversion and
     * makes zero-copy passthrough possible. */
    GstAudioInfo info;
    if (gst_costream_mixer_get_info(self, &info)) {
      GstCaps *out = gst_audio_info_to_caps(&info);
      result = gst_caps_merge(out, result);
    }
    gst_costream_mixer_answer_caps_query(query, result);
    return TRUE;
  }
  case GST_QUERY_ACCEPT_CAPS: {
    /* Accept any complete raw audio here, so that caps we cannot mix reach the caps event and
     * get an error that names the pad, instead of a bare not-negotiated upstream. */
    GstCaps *caps;
    gst_query_parse_accept_caps(query, &caps);
    GstAudioInfo info;
    GstCaps *tmpl = gst_pad_get_pad_template_caps(pad);
    const bool opus = gst_caps_is_fixed(caps) &&
                      gst_structure_has_name(gst_caps_get_structure(caps, 0), "audio/x-opus") &&
                      gst_caps_can_intersect(caps, tmpl);
    gst_caps_unref(tmpl);
    gst_query_set_accept_caps_result(query, opus || gst_audio_info_from_caps(&info, caps));
    return TRUE;
  }
  case GST_QUERY_ALLOCATION:
    return FALSE;
  default:
    return gst_pad_query_default(pad, parent, query);
  }
}

static gboolean gst_costream_mixer_sink_activate_mode(GstPad *pad, GstObject *parent,
                                                      GstPadMode mode, gboolean active) {
  auto *self = GST_COSTREAM_MIXER(parent);
  auto *pp = pad_priv(GST_COSTREAM_MIXER_PAD(pad));
  if (mode != GST_PAD_MODE_PUSH)
    return FALSE;
  Lock lk(mixer_priv(self)->lock);
  pp->flushing = !active;
  if (active) {
    pp->eos = false;
  } else {
    /* let a chain waiting for room return, so the pad can stop */
    pp->space_cond.notify_all();
  }
  return TRUE;
}

/* ---- upstream latency ------------------------------------------------------------------- */

std::vector<GstCostreamMixerPad *> gst_costream_mixer_get_pads(GstCostreamMixer *self) {
  Lock lk(mixer_priv(self)->lock);
  std::vector<GstCostreamMixerPad *> pads;
  for (auto *p : mixer_priv(self)->pads)
    pads.push_back(GST_COSTREAM_MIXER_PAD(gst_object_ref(p)));
  return pads;
}

void gst_costream_mixer_release_pads(std::vector<GstCostreamMixerPad *> &pads) {
  for (auto *p : pads)
    gst_object_unref(p);
  pads.clear();
}

namespace {

/* A cached answer is reused for this long at most (a direct query by an application between the
 * pipeline's rounds is not followed by a LATENCY event). */
constexpr gint64 kLatencyCacheUsec = 200 * 1000;

/* Queries every talker's upstream (no lock held). */
void query_upstream_latency(GstCostreamMixer *self, gboolean *live, GstClockTime *min,
                            GstClockTime *max) {
  *live = FALSE;
  *min = 0;
  *max = GST_CLOCK_TIME_NONE;
  auto pads = gst_costream_mixer_get_pads(self);
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
  gst_costream_mixer_release_pads(pads);
}

GstClockTime own_latency(GstCostreamMixer *self) {
  GST_OBJECT_LOCK(self);
  const GstClockTime l = mixer_priv(self)->block_duration + mixer_priv(self)->latency;
  GST_OBJECT_UNLOCK(self);
  return l;
}

/* For a LATENCY query on a src pad (no lock held): the pipeline asks each of the P src pads in
 * turn, and each answer needs all P talkers' upstreams, P^2 queries (half the start-up of a
 * 256-participant room). The first answer of a round is reused by the next src pads until the
 * pipeline's LATENCY event ends the round, a talker joins, leaves or changes caps, or
 * kLatencyCacheUsec passes. */
void upstream_latency_for_query(GstCostreamMixer *self, gboolean *live, GstClockTime *min,
                                GstClockTime *max) {
  auto *priv = mixer_priv(self);
  auto &c = priv->latency_cache;
  guint64 generation;
  {
    Lock lk(priv->lock);
    if (c.valid && g_get_monotonic_time() - c.when < kLatencyCacheUsec) {
      *live = c.live;
      *min = c.min;
      *max = c.max;
      return;
    }
    generation = c.generation;
  }
  query_upstream_latency(self, live, min, max);
  Lock lk(priv->lock);
  if (c.generation == generation) { /* nothing changed while asking */
    c.valid = true;
    c.when = g_get_monotonic_time();
    c.live = *live;
    c.min = *min;
    c.max = *max;
  }
}

/* Output thread: refreshes live-ness and the upstream latency the deadlines use. */
void update_latency(GstCostreamMixer *self) {
  auto *priv = mixer_priv(self);
  gboolean live;
  GstClockTime min, max;
  query_upstream_latency(self, &live, &min, &max);
  GST_OBJECT_LOCK(self);
  const bool force = priv->force_live;
  const bool drift_prop = priv->drift_correction;
  GST_OBJECT_UNLOCK(self);
  Lock lk(priv->lock);
  const bool now_live = live || force;
  if (now_live != priv->live) {
    GST_DEBUG_OBJECT(self, "live: %d", now_live);
    priv->live = now_live;
    /* Queued data stays: only whether the talkers' clocks are followed changes. */
    for (auto *p : priv->pads)
      pad_priv(p)->queue.set_drift_correction(drift_prop && now_live);
    notify_space_all(self);
  }
  priv->upstream_latency = live ? min : 0;
}

} // namespace

/* ---- output ------------------------------------------------------------------------------ */

gboolean gst_costream_mixer_push_caps(GstCostreamMixer *self, GstPad *pad, GstCaps *caps) {
  if (GST_IS_COSTREAM_FEED_PAD(pad)) /* queued in order with the feed's buffers */
    return gst_costream_feed_pad_set_caps(GST_COSTREAM_FEED_PAD(pad), caps);
  if (GstEvent *ss = gst_pad_get_sticky_event(pad, GST_EVENT_STREAM_START, 0)) {
    gst_event_unref(ss);
  } else {
    /* The mix is a new stream, not any one talker's. */
    gchar *id =
        g_strdup_printf("%s-%s-%08x", GST_OBJECT_NAME(self), GST_PAD_NAME(pad), g_random_int());
    gst_pad_push_event(pad, gst_event_new_stream_start(id));
    g_free(id);
  }
  GstCaps *current = gst_pad_get_current_caps(pad);
  const bool same = current && gst_caps_is_equal(current, caps);
  if (current)
    gst_caps_unref(current);
  if (same)
    return TRUE;
  return gst_pad_push_event(pad, gst_event_new_caps(caps));
}

GstEvent *gst_costream_mixer_segment_event(GstCostreamMixer *self) {
  auto *priv = mixer_priv(self);
  Lock lk(priv->lock);
  GstEvent *ev = gst_event_new_segment(&priv->segment);
  if (priv->seqnum)
    gst_event_set_seqnum(ev, priv->seqnum);
  return ev;
}

void gst_costream_mixer_request_reconfigure(GstCostreamMixer *self) {
  Lock lk(mixer_priv(self)->lock);
  mixer_priv(self)->reconfigure = true;
  wake_output(self, nullptr);
}

gboolean gst_costream_mixer_get_info(GstCostreamMixer *self, GstAudioInfo *info) {
  auto *priv = mixer_priv(self);
  Lock lk(priv->lock);
  if (!priv->out_valid)
    return FALSE;
  *info = priv->out_info;
  return TRUE;
}

gboolean gst_costream_mixer_is_live(GstCostreamMixer *self) {
  Lock lk(mixer_priv(self)->lock);
  return mixer_priv(self)->live;
}

namespace {

/* Output thread: asks the subclass for the mix format and adopts it. */
bool negotiate(GstCostreamMixer *self) {
  auto *priv = mixer_priv(self);
  GstAudioInfo info;
  gst_audio_info_init(&info);
  if (!KLASS(self)->negotiate(self, &info))
    return false;
  GST_OBJECT_LOCK(self);
  const GstClockTime dur = priv->block_duration;
  GST_OBJECT_UNLOCK(self);
  Lock lk(priv->lock);
  if (!priv->out_valid || !gst_audio_info_is_equal(&info, &priv->out_info)) {
    const int64_t old_rate = priv->out_valid ? GST_AUDIO_INFO_RATE(&priv->out_info) : 0;
    priv->out_info = info;
    priv->out_valid = true;
    priv->generation++;
    priv->published_generation.store(priv->generation, std::memory_order_release);
    if (old_rate)
      priv->out_index = static_cast<int64_t>(
          gst_util_uint64_scale_round(priv->out_index, GST_AUDIO_INFO_RATE(&info), old_rate));
    priv->block_frames = static_cast<guint>(std::max<guint64>(
        1, gst_util_uint64_scale_round(dur, GST_AUDIO_INFO_RATE(&info), GST_SECOND)));
    reconfigure_queues(self);
    notify_space_all(self);
  }
  return true;
}

/* Output thread: pauses itself, unless the task is being stopped (pausing then would undo the
 * stop and leave the thread waiting forever). */
void pause_task(GstCostreamMixer *self, const char *why) {
  auto *priv = mixer_priv(self);
  Lock lk(priv->lock);
  if (priv->stopping)
    return;
  GST_DEBUG_OBJECT(self, "pausing output: %s", why);
  gst_task_pause(priv->task);
}

gboolean push_event(GstCostreamMixer *self, GstEvent *event) {
  return KLASS(self)->push_event(self, event);
}

void push_eos(GstCostreamMixer *self) {
  GstEvent *eos = gst_event_new_eos();
  if (mixer_priv(self)->seqnum)
    gst_event_set_seqnum(eos, mixer_priv(self)->seqnum);
  push_event(self, eos);
}

} // namespace

std::vector<GstPad *> gst_costream_mixer_get_src_pads(GstCostreamMixer *self) {
  std::vector<GstPad *> pads;
  GST_OBJECT_LOCK(self);
  for (GList *l = GST_ELEMENT(self)->srcpads; l; l = l->next)
    pads.push_back(GST_PAD(gst_object_ref(l->data)));
  GST_OBJECT_UNLOCK(self);
  return pads;
}

GstCaps *gst_costream_mixer_fixate_caps(GstCaps *caps, int channels) {
  caps = gst_caps_make_writable(caps);
  caps = gst_caps_truncate(caps);
  GstStructure *s = gst_caps_get_structure(caps, 0);
  gst_structure_fixate_field_nearest_int(s, "rate", 48000);
  gst_structure_fixate_field_nearest_int(s, "channels", channels);
  gst_structure_fixate_field_string(s, "format", GST_AUDIO_NE(S16));
  return gst_caps_fixate(caps);
}

gboolean gst_costream_mixer_pad_push_event(GstPad *pad, GstEvent *event) {
  if (GST_IS_COSTREAM_FEED_PAD(pad))
    return gst_costream_feed_pad_push_event(GST_COSTREAM_FEED_PAD(pad), event);
  return gst_pad_push_event(pad, event);
}

GstFlowReturn gst_costream_mixer_pad_push(GstPad *pad, GstBuffer *buffer) {
  if (GST_IS_COSTREAM_FEED_PAD(pad))
    return gst_costream_feed_pad_push(GST_COSTREAM_FEED_PAD(pad), buffer);
  return gst_pad_push(pad, buffer);
}

GstPad *gst_costream_mixer_new_feed_pad(GstCostreamMixer *self, GstPadTemplate *templ,
                                        const gchar *name) {
  GstPad *pad = gst_costream_feed_pad_new(templ, name, mixer_priv(self)->feeds);
  gst_pad_set_event_function(pad, GST_DEBUG_FUNCPTR(gst_costream_mixer_src_event));
  gst_pad_set_query_function(pad, GST_DEBUG_FUNCPTR(gst_costream_mixer_src_query));
  return pad;
}

void gst_costream_mixer_set_feed_queue_time(GstCostreamMixer *self, GstClockTime t) {
  GST_OBJECT_LOCK(self);
  mixer_priv(self)->feed_queue_time = t;
  GST_OBJECT_UNLOCK(self);
}

GstClockTime gst_costream_mixer_get_feed_queue_time(GstCostreamMixer *self) {
  GST_OBJECT_LOCK(self);
  const GstClockTime t = mixer_priv(self)->feed_queue_time;
  GST_OBJECT_UNLOCK(self);
  return t;
}

static gboolean gst_costream_mixer_default_push_event(GstCostreamMixer *self, GstEvent *event) {
  gboolean ok = TRUE;
  for (auto *p : gst_costream_mixer_get_src_pads(self)) {
    ok = gst_costream_mixer_pad_push_event(p, gst_event_ref(event)) && ok;
    gst_object_unref(p);
  }
  gst_event_unref(event);
  return ok;
}

static void gst_costream_mixer_loop(gpointer user_data) {
  auto *self = GST_COSTREAM_MIXER(user_data);
  auto *priv = mixer_priv(self);

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
  if (need_negotiate) {
    if (!negotiate(self)) {
      Lock lk(priv->lock);
      if (priv->flushing) {
        lk.unlock();
        pause_task(self, "flushing while negotiating");
        return;
      }
      priv->reconfigure = true;
      lk.unlock();
      push_eos(self);
      pause_task(self, "not negotiated");
      return;
    }
  }

  GST_OBJECT_LOCK(self);
  const GstClockTime timeout_ns = priv->timeout;
  const GstClockTime jitter = priv->latency;
  const GstClockTime feed_queue_time = priv->feed_queue_time;
  GST_OBJECT_UNLOCK(self);

  Lock lk(priv->lock);
  priv->feeds->configure(priv->live, feed_queue_time);
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
  bool feeds_kicked = false;
  bool all_eos;
  int64_t data_end;
  for (;;) {
    if (priv->flushing) {
      lk.unlock();
      pause_task(self, "flushing");
      return;
    }
    if (priv->reconfigure || priv->latency_dirty)
      return; /* the next iteration renegotiates, or finds out whether it is live, first: a
               * live talker that starts while the output waits on talkers that never sent
               * (linked to a source that has no data yet) makes the output live */
    if (priv->eos_requested) {
      lk.unlock();
      GST_DEBUG_OBJECT(self, "EOS requested by the application");
      push_eos(self);
      pause_task(self, "EOS requested");
      return;
    }
    all_eos = !priv->pads.empty();
    data_end = INT64_MIN;
    for (auto *p : priv->pads) {
      auto *pp = pad_priv(p);
      if (pp->eos) {
        if (pp->queue.has_pending())
          data_end = std::max(data_end, pp->queue.write_end());
        continue;
      }
      all_eos = false;
    }
    /* With nobody to wait for, a live output still keeps to the clock. */
    if (all_eos)
      break;
    const size_t expected = mark_missing(self, out_index, n);
    if (expected > 0 && priv->missing == 0)
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
      if (!feeds_kicked) {
        /* Non-live return feeds push in batches: before waiting, let each push what it has (a
         * feed's sink may still need its first buffer to preroll). */
        priv->output_waiting = false;
        lk.unlock();
        priv->feeds->kick_all();
        lk.lock();
        feeds_kicked = true;
        continue;
      }
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

  GstCostreamMixerBlock block;
  block.info = priv->out_info;
  costream::sample_format_from_gst(GST_AUDIO_INFO_FORMAT(&priv->out_info), &block.format);
  block.frames = n;
  block.samples = static_cast<size_t>(n) * channels;
  block.bytes = static_cast<size_t>(n) * bpf;
  block.offset = out_index;
  block.pts = pts;
  block.duration = gst_util_uint64_scale_round(out_index + n, GST_SECOND, rate) - rt;
  block.timed_out = timed_out;
  const double block_ms = 1000.0 * n / rate;

  /* Read the block from every talker (data lock held: the queues are shared with the talkers'
   * threads). A block that is exactly one queued chunk is read where it lies. What the queues
   * pass is freed by the talker's own thread (defer_consumed), or after the lock, not while every
   * talker waits for it. */
  const PadsHold empty_hold;
  const PadsHold &hold = priv->pads_hold ? *priv->pads_hold : empty_hold;
  block.pads_hold = priv->pads_hold;
  block.inputs.resize(hold.pads.size());
  for (size_t i = 0; i < hold.pads.size(); i++) {
    auto *pad = hold.pads[i];
    auto *pp = hold.privs[i];
    auto &v = block.inputs[i];
    v.pad = pad; /* kept by block.pads_hold */
    v.gain = pp->gain.load(std::memory_order_relaxed);

    TalkerQueue::ReadResult rr;
    pp->queue.release_into(&pp->consumed);
    const costream::Chunk *exact = pp->queue.take_exact(out_index, n, &rr);
    if (exact) { /* a whole chunk (see TalkerConverter::wrap() and to_pool()) */
      if (KLASS(self)->forwards_inputs) /* then chunks are the talkers' buffers, mapped */
        v.exact = gst_buffer_ref(TalkerConverter::chunk_buffer(*exact));
      v.data = exact->data; /* stays in the queue until the next block (see block_in_flight) */
    } else {
      pp->scratch.resize(block.bytes);
      rr = pp->queue.read(out_index, n, pp->scratch.data());
      v.data = pp->scratch.data();
    }
    pp->queue.release_into(nullptr);
    defer_consumed(pp, &priv->released);
    if (!v.data) {
      pp->scratch.assign(block.bytes, 0);
      v.data = pp->scratch.data();
      rr.frames_with_data = 0;
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
    /* The level: from the chunks' powers (computed in the talker's thread, or from RTP level
     * headers) when they fit the block, so that the samples of a talker not mixed are not read. */
    double power = 0.0;
    if (v.frames_with_data > 0)
      power =
          rr.power >= 0.0 ? rr.power : costream::block_power(v.data, block.samples, block.format);
    v.level = pp->meter.update(power, block_ms);
    pp->stats.level = v.level;

    /* Stall tracking. */
    if (v.frames_with_data > 0) {
      if (pp->stalled)
        GST_INFO_OBJECT(pad, "talker resumed");
      pp->ever_had_data = true;
      pp->stalled = false;
      pp->missing_frames = 0;
    } else if (pp->ever_had_data && !pp->eos) {
      pp->missing_frames += n;
      const GstClockTime stall_after =
          pp->in_dtx ? std::max<GstClockTime>(timeout_ns, DTX_STALL) : timeout_ns;
      if (!pp->stalled &&
          gst_util_uint64_scale(pp->missing_frames, GST_SECOND, rate) >= stall_after) {
        pp->stalled = true;
        pp->stats.timeouts++;
        GST_INFO_OBJECT(pad, "talker stalled: no data for %" GST_TIME_FORMAT,
                        GST_TIME_ARGS(timeout_ns));
      }
    }
    v.present = pp->ever_had_data && !pp->stalled && (v.frames_with_data > 0 || !pp->eos);
    v.eos = pp->eos;
    {
      std::lock_guard<std::mutex> slk(pp->stats_lock);
      const gboolean active = pp->snapshot.active;
      pp->snapshot = pp->stats;
      pp->snapshot.active = active;
    }

    if (pp->waiting_for_space && frames_ahead(self, pp) - n <= frames_of(self, AHEAD_LOW))
      priv->wake_talkers.push_back(pp); /* this one only: no herd waking to sleep again */
  }
  priv->out_index = out_index + n;
  priv->block_in_flight = true;
  block.discont = priv->discont;
  priv->discont = false;
  const bool send_segment = priv->send_segment;
  priv->send_segment = false;
  GstSegment segment = priv->segment;
  const guint32 seqnum = priv->seqnum;
  lk.unlock();
  /* Woken after the lock: woken under it, each would run only to wait for the lock. (The block
   * holds their pads.) */
  for (auto *pp : priv->wake_talkers)
    pp->space_cond.notify_one();
  priv->wake_talkers.clear();
  priv->released.clear();

  /* Controlled properties follow the stream time of the block. */
  for (auto &v : block.inputs)
    gst_object_sync_values(GST_OBJECT(v.pad), pts);

  if (send_segment) {
    GstEvent *seg = gst_event_new_segment(&segment);
    if (seqnum)
      gst_event_set_seqnum(seg, seqnum);
    push_event(self, seg);
  }

  const GstFlowReturn ret = KLASS(self)->output(self, &block);
  for (auto &v : block.inputs) {
    if (v.exact)
      gst_buffer_unref(v.exact);
  }
  {
    std::vector<std::shared_ptr<void>> deferred;
    {
      Lock dlk(priv->lock);
      priv->block_in_flight = false;
      deferred.swap(priv->deferred);
    }
  }
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

/* ---- task, seeks, src pads ------------------------------------------------------------- */

namespace {

/* (any thread) Stops the output thread at its next check and wakes it. */
void set_flushing(GstCostreamMixer *self, bool flushing) {
  auto *priv = mixer_priv(self);
  Lock lk(priv->lock);
  priv->flushing = flushing;
  if (flushing) {
    if (priv->clock_id)
      gst_clock_id_unschedule(priv->clock_id);
    priv->data_cond.notify_all();
    notify_space_all(self);
  }
}

void start_task(GstCostreamMixer *self) {
  auto *priv = mixer_priv(self);
  Lock lk(priv->lock);
  priv->flushing = false;
  priv->stopping = false;
  gst_task_start(priv->task);
}

void stop_task(GstCostreamMixer *self) {
  auto *priv = mixer_priv(self);
  {
    Lock lk(priv->lock);
    priv->stopping = true;
    gst_task_stop(priv->task);
  }
  set_flushing(self, true);
  gst_task_join(priv->task);
}

} // namespace

static gboolean gst_costream_mixer_do_seek(GstCostreamMixer *self, GstEvent *event) {
  auto *priv = mixer_priv(self);
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
    push_event(self, fs);
    set_flushing(self, true);
  }

  /* Every talker seeks (and flushes its pad). */
  bool ok = true;
  auto pads = gst_costream_mixer_get_pads(self);
  for (auto *p : pads)
    if (gst_pad_is_linked(GST_PAD(p)))
      ok = gst_pad_push_event(GST_PAD(p), gst_event_ref(event)) && ok;
  gst_costream_mixer_release_pads(pads);

  if (flush) {
    g_rec_mutex_lock(&priv->task_lock); /* the output task has stopped */
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
      /* The talkers' queues were reset by their own FLUSH_STOP and may already hold data from
       * the new position: keep it. */
      for (auto *p : priv->pads) {
        pad_priv(p)->stalled = false;
        pad_priv(p)->missing_frames = 0;
      }
      notify_space_all(self);
    }
    if (KLASS(self)->reset)
      KLASS(self)->reset(self);
    GstEvent *fstop = gst_event_new_flush_stop(TRUE);
    gst_event_set_seqnum(fstop, seqnum);
    push_event(self, fstop);
    start_task(self);
    g_rec_mutex_unlock(&priv->task_lock);
  }
  gst_event_unref(event);
  return ok;
}

/* A LATENCY event on a src pad goes to every talker's upstream, once. The pipeline sends the same
 * event (one seqnum) to every sink, so it reaches each of the P src pads; forwarding each copy to
 * the P talkers (gst_pad_event_default) would send P^2 events at every latency change, and that
 * forwarding's own bookkeeping is O(P) per pad: a tenth of a second of start-up at 256. */
static gboolean forward_latency(GstCostreamMixer *self, GstEvent *event) {
  auto *priv = mixer_priv(self);
  const guint32 seqnum = gst_event_get_seqnum(event);
  {
    Lock lk(priv->lock);
    if (seqnum == priv->latency_event_seqnum) {
      lk.unlock();
      gst_event_unref(event);
      return TRUE;
    }
    priv->latency_event_seqnum = seqnum;
    invalidate_latency_cache(priv); /* the pipeline's round of queries is over */
  }
  auto pads = gst_costream_mixer_get_pads(self);
  gboolean ok = pads.empty();
  for (auto *p : pads)
    ok |= gst_pad_push_event(GST_PAD(p), gst_event_ref(event));
  gst_costream_mixer_release_pads(pads);
  gst_event_unref(event);
  return ok;
}

gboolean gst_costream_mixer_src_event(GstPad *pad, GstObject *parent, GstEvent *event) {
  auto *self = GST_COSTREAM_MIXER(parent);
  switch (GST_EVENT_TYPE(event)) {
  case GST_EVENT_LATENCY:
    return forward_latency(self, event);
  case GST_EVENT_SEEK:
    return gst_costream_mixer_do_seek(self, event);
  case GST_EVENT_RECONFIGURE:
    /* Renegotiate before the next block, even if the output thread is waiting for one. */
    gst_costream_mixer_request_reconfigure(self);
    gst_event_unref(event);
    return TRUE;
  case GST_EVENT_QOS:
  case GST_EVENT_NAVIGATION:
    gst_event_unref(event);
    return TRUE;
  default:
    return gst_pad_event_default(pad, parent, event);
  }
}

gboolean gst_costream_mixer_src_query(GstPad *pad, GstObject *parent, GstQuery *query) {
  auto *self = GST_COSTREAM_MIXER(parent);
  auto *priv = mixer_priv(self);
  switch (GST_QUERY_TYPE(query)) {
  case GST_QUERY_LATENCY: {
    gboolean live;
    GstClockTime min, max;
    upstream_latency_for_query(self, &live, &min, &max);
    GST_OBJECT_LOCK(self);
    const bool force = priv->force_live;
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
      Lock lk(priv->lock);
      priv->upstream_latency = live ? min - own : 0;
    }
    GST_DEBUG_OBJECT(self, "latency: live %d min %" GST_TIME_FORMAT " max %" GST_TIME_FORMAT,
                     live || force, GST_TIME_ARGS(min), GST_TIME_ARGS(max));
    gst_query_set_latency(query, live || force, min, max);
    return TRUE;
  }
  case GST_QUERY_CAPS:
    gst_costream_mixer_answer_caps_query(query, gst_pad_get_pad_template_caps(pad));
    return TRUE;
  default:
    return gst_pad_query_default(pad, parent, query);
  }
}

/* ---- element ---------------------------------------------------------------------------- */

static GstPad *gst_costream_mixer_request_new_pad(GstElement *element, GstPadTemplate *templ,
                                                  const gchar *name, const GstCaps *caps) {
  auto *self = GST_COSTREAM_MIXER(element);
  auto *priv = mixer_priv(self);
  if (GST_PAD_TEMPLATE_DIRECTION(templ) != GST_PAD_SINK)
    return nullptr;
  guint index = 0;
  GST_OBJECT_LOCK(self);
  if (name && sscanf(name, "sink_%u", &index) == 1) {
    priv->next_pad_index = std::max(priv->next_pad_index, index + 1);
  } else {
    index = priv->next_pad_index++;
  }
  GST_OBJECT_UNLOCK(self);
  gchar *pad_name = g_strdup_printf("sink_%u", index);
  GType type = GST_PAD_TEMPLATE_GTYPE(templ);
  if (type == G_TYPE_NONE || !g_type_is_a(type, GST_TYPE_COSTREAM_MIXER_PAD))
    type = GST_TYPE_COSTREAM_MIXER_PAD;
  auto *pad = GST_COSTREAM_MIXER_PAD(
      g_object_new(type, "name", pad_name, "direction", GST_PAD_SINK, "template", templ, nullptr));
  g_free(pad_name);
  gst_pad_set_chain_function(GST_PAD(pad), GST_DEBUG_FUNCPTR(gst_costream_mixer_sink_chain));
  gst_pad_set_event_function(GST_PAD(pad), GST_DEBUG_FUNCPTR(gst_costream_mixer_sink_event));
  gst_pad_set_query_function(GST_PAD(pad), GST_DEBUG_FUNCPTR(gst_costream_mixer_sink_query));
  gst_pad_set_activatemode_function(GST_PAD(pad),
                                    GST_DEBUG_FUNCPTR(gst_costream_mixer_sink_activate_mode));
  std::shared_ptr<PadsHold> old_hold; /* dropped after the data lock */
  {
    Lock lk(priv->lock);
    if (priv->out_valid)
      pad_priv(pad)->queue.configure(queue_config(self));
    priv->pads.push_back(GST_COSTREAM_MIXER_PAD(gst_object_ref(pad)));
    old_hold = refresh_pads_hold(priv);
    priv->latency_dirty = true;
    invalidate_latency_cache(priv);
  }
  old_hold.reset();
  if (!gst_element_add_pad(element, GST_PAD(pad))) {
    GST_WARNING_OBJECT(self, "could not add pad %s (name taken?)", GST_PAD_NAME(pad));
    Lock lk(priv->lock);
    priv->pads.erase(std::find(priv->pads.begin(), priv->pads.end(), pad));
    old_hold = refresh_pads_hold(priv);
    lk.unlock();
    old_hold.reset();
    gst_object_unref(pad); /* the list's reference */
    gst_object_unref(pad); /* the floating one, sunk by the failed add or not */
    return nullptr;
  }
  GST_DEBUG_OBJECT(self, "talker %s joined", GST_PAD_NAME(pad));
  gst_child_proxy_child_added(GST_CHILD_PROXY(element), G_OBJECT(pad), GST_OBJECT_NAME(pad));
  if (KLASS(self)->pad_added)
    KLASS(self)->pad_added(self, pad);
  return GST_PAD(pad);
}

static void gst_costream_mixer_release_pad(GstElement *element, GstPad *pad) {
  auto *self = GST_COSTREAM_MIXER(element);
  auto *priv = mixer_priv(self);
  auto *mpad = GST_COSTREAM_MIXER_PAD(pad);
  GST_DEBUG_OBJECT(self, "talker %s left", GST_PAD_NAME(pad));
  gst_object_ref(pad);
  if (KLASS(self)->pad_removed)
    KLASS(self)->pad_removed(self, mpad);
  bool found = false;
  std::shared_ptr<PadsHold> old_hold; /* dropped after the data lock */
  {
    Lock lk(priv->lock);
    auto it = std::find(priv->pads.begin(), priv->pads.end(), mpad);
    if (it != priv->pads.end()) {
      priv->pads.erase(it);
      old_hold = refresh_pads_hold(priv);
      found = true;
    }
    pad_priv(mpad)->flushing = true;
    priv->latency_dirty = true;
    invalidate_latency_cache(priv);
    pad_priv(mpad)->space_cond.notify_all();
    wake_output(self, nullptr);
  }
  gst_child_proxy_child_removed(GST_CHILD_PROXY(element), G_OBJECT(pad), GST_OBJECT_NAME(pad));
  gst_element_remove_pad(element, pad);
  if (found)
    gst_object_unref(pad); /* the list's reference */
  gst_object_unref(pad);
}

/* An application ends a live mix (with or without talkers) by sending EOS to the pipeline or the
 * mixer: the output ends with EOS after the current block. */
static gboolean gst_costream_mixer_send_event(GstElement *element, GstEvent *event) {
  auto *self = GST_COSTREAM_MIXER(element);
  if (GST_EVENT_TYPE(event) == GST_EVENT_EOS) {
    GST_DEBUG_OBJECT(self, "EOS requested");
    Lock lk(mixer_priv(self)->lock);
    mixer_priv(self)->eos_requested = true;
    wake_output(self, nullptr);
    gst_event_unref(event);
    return TRUE;
  }
  return GST_ELEMENT_CLASS(gst_costream_mixer_parent_class)->send_event(element, event);
}

static GstStateChangeReturn gst_costream_mixer_change_state(GstElement *element,
                                                            GstStateChange transition) {
  auto *self = GST_COSTREAM_MIXER(element);
  auto *priv = mixer_priv(self);
  switch (transition) {
  case GST_STATE_CHANGE_READY_TO_PAUSED: {
    {
      Lock lk(priv->lock);
      priv->out_index = 0;
      gst_segment_init(&priv->segment, GST_FORMAT_TIME);
      priv->send_segment = true;
      priv->discont = true;
      priv->eos_requested = false;
      priv->latency_dirty = true;
      invalidate_latency_cache(priv);
      priv->reconfigure = false;
      priv->playing = false;
      priv->seqnum = 0;
      for (auto *p : priv->pads) {
        auto *pp = pad_priv(p);
        pp->queue.reset();
        pp->ever_had_data = pp->stalled = false;
        pp->missing_frames = 0;
        pp->shadow_meter.reset(); /* (no talker streams in READY) */
      }
    }
    if (KLASS(self)->reset)
      KLASS(self)->reset(self);
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
  case GST_STATE_CHANGE_PAUSED_TO_READY:
    set_flushing(self, true); /* the output thread stops waiting; joined below */
    break;
  default:
    break;
  }

  GstStateChangeReturn ret =
      GST_ELEMENT_CLASS(gst_costream_mixer_parent_class)->change_state(element, transition);
  if (ret == GST_STATE_CHANGE_FAILURE) {
    if (transition == GST_STATE_CHANGE_READY_TO_PAUSED)
      stop_task(self);
    return ret;
  }

  switch (transition) {
  case GST_STATE_CHANGE_READY_TO_PAUSED:
    start_task(self);
    /* fall through */
  case GST_STATE_CHANGE_PLAYING_TO_PAUSED: {
    GST_OBJECT_LOCK(self);
    const bool force = priv->force_live;
    GST_OBJECT_UNLOCK(self);
    if (force) /* a live source of its own: no preroll */
      ret = GST_STATE_CHANGE_NO_PREROLL;
    break;
  }
  case GST_STATE_CHANGE_PAUSED_TO_READY: {
    stop_task(self);
    Lock lk(priv->lock);
    priv->out_valid = false;
    priv->published_generation.store(0, std::memory_order_release);
    priv->live = false;
    for (auto *p : priv->pads)
      pad_priv(p)->queue.reset();
    break;
  }
  default:
    break;
  }
  return ret;
}

GstStructure *gst_costream_mixer_pad_stats(GstCostreamMixerPad *p) {
  auto *pp = pad_priv(p);
  TalkerStats st;
  {
    std::lock_guard<std::mutex> lk(pp->stats_lock);
    st = pp->snapshot;
  }
  GST_OBJECT_LOCK(p);
  const double volume = pp->volume;
  const gboolean mute = pp->mute;
  GST_OBJECT_UNLOCK(p);
  return gst_structure_new(
      "talker", "pad", G_TYPE_STRING, GST_PAD_NAME(p), "bytes", G_TYPE_UINT64, st.bytes, "buffers",
      G_TYPE_UINT64, st.buffers, "dropped", G_TYPE_UINT64, st.dropped, "late", G_TYPE_UINT64,
      st.late, "late-frames", G_TYPE_UINT64, st.late_frames, "timeouts", G_TYPE_UINT64, st.timeouts,
      "level", G_TYPE_DOUBLE, st.level, "active", G_TYPE_BOOLEAN, st.active, "opus-decoded",
      G_TYPE_UINT64, st.opus_decoded, "opus-skipped", G_TYPE_UINT64, st.opus_skipped,
      "opus-concealed", G_TYPE_UINT64, st.opus_concealed, "opus-recovered", G_TYPE_UINT64,
      st.opus_recovered, "opus-dtx", G_TYPE_UINT64, st.opus_dtx, "unheard", G_TYPE_UINT64,
      st.unheard, "volume", G_TYPE_DOUBLE, volume, "mute", G_TYPE_BOOLEAN, mute, nullptr);
}

guint gst_costream_mixer_pads_stats(GstCostreamMixer *self, GValue *array, guint *active) {
  gst_value_array_init(array, 0);
  guint talkers = 0;
  *active = 0;
  auto pads = gst_costream_mixer_get_pads(self);
  for (auto *p : pads) {
    GstStructure *ps = gst_costream_mixer_pad_stats(p);
    if (KLASS(self)->pad_stats)
      KLASS(self)->pad_stats(self, p, ps);
    gboolean a = FALSE;
    gst_structure_get_boolean(ps, "active", &a);
    talkers++;
    *active += a ? 1 : 0;
    GValue v = G_VALUE_INIT;
    g_value_init(&v, GST_TYPE_STRUCTURE);
    g_value_take_boxed(&v, ps);
    gst_value_array_append_and_take_value(array, &v);
  }
  gst_costream_mixer_release_pads(pads);
  return talkers;
}

static void gst_costream_mixer_set_property(GObject *object, guint prop_id, const GValue *value,
                                            GParamSpec *pspec) {
  auto *self = GST_COSTREAM_MIXER(object);
  auto *priv = mixer_priv(self);
  bool latency_changed = false;
  GST_OBJECT_LOCK(self);
  switch (prop_id) {
  case PROP_OUTPUT_BUFFER_DURATION:
    priv->block_duration = g_value_get_uint64(value);
    break;
  case PROP_LATENCY:
    latency_changed = priv->latency != g_value_get_uint64(value);
    priv->latency = g_value_get_uint64(value);
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

static void gst_costream_mixer_get_property(GObject *object, guint prop_id, GValue *value,
                                            GParamSpec *pspec) {
  auto *self = GST_COSTREAM_MIXER(object);
  auto *priv = mixer_priv(self);
  GST_OBJECT_LOCK(self);
  switch (prop_id) {
  case PROP_OUTPUT_BUFFER_DURATION:
    g_value_set_uint64(value, priv->block_duration);
    break;
  case PROP_LATENCY:
    g_value_set_uint64(value, priv->latency);
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
  case PROP_FORCE_LIVE:
    g_value_set_boolean(value, priv->force_live);
    break;

  default:
    G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec);
    break;
  }
  GST_OBJECT_UNLOCK(self);
}

static void gst_costream_mixer_finalize(GObject *object) {
  auto *self = GST_COSTREAM_MIXER(object);
  auto *ip =
      static_cast<GstCostreamMixerInstancePrivate *>(gst_costream_mixer_get_instance_private(self));
  for (auto *p : ip->priv->pads)
    gst_object_unref(p);
  gst_object_unref(ip->priv->task);
  g_rec_mutex_clear(&ip->priv->task_lock);
  delete ip->priv;
  ip->priv = nullptr;
  G_OBJECT_CLASS(gst_costream_mixer_parent_class)->finalize(object);
}

static void gst_costream_mixer_class_init(GstCostreamMixerClass *klass) {
  auto *gobject_class = G_OBJECT_CLASS(klass);
  auto *element_class = GST_ELEMENT_CLASS(klass);

  GST_DEBUG_CATEGORY_INIT(gst_costream_mixer_debug, "costreammixer", 0,
                          "costream mixers' input engine");

  gobject_class->set_property = gst_costream_mixer_set_property;
  gobject_class->get_property = gst_costream_mixer_get_property;
  gobject_class->finalize = gst_costream_mixer_finalize;

  klass->push_event = gst_costream_mixer_default_push_event;

  const auto rw_playing = static_cast<GParamFlags>(G_PARAM_READWRITE | GST_PARAM_MUTABLE_PLAYING |
                                                   G_PARAM_STATIC_STRINGS);
  const auto rw_ready = static_cast<GParamFlags>(G_PARAM_READWRITE | GST_PARAM_MUTABLE_READY |
                                                 G_PARAM_STATIC_STRINGS);

  /**
   * GstCostreamMixer:output-buffer-duration:
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
   * GstCostreamMixer:latency:
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
   * GstCostreamMixer:timeout:
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
   * GstCostreamMixer:alignment-threshold:
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
   * GstCostreamMixer:drift-correction:
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
   * GstCostreamMixer:force-live:
   *
   * Produce output on the clock even before any live talker is linked (an output that must stay
   * open with nobody talking). The element is then a live source of its own.
   */
  g_object_class_install_property(
      gobject_class, PROP_FORCE_LIVE,
      g_param_spec_boolean("force-live", "Force live",
                           "Always run live and output on the clock, even with no live talker "
                           "linked (set before PAUSED)",
                           DEFAULT_FORCE_LIVE, rw_ready));

  element_class->request_new_pad = GST_DEBUG_FUNCPTR(gst_costream_mixer_request_new_pad);
  element_class->release_pad = GST_DEBUG_FUNCPTR(gst_costream_mixer_release_pad);
  element_class->send_event = GST_DEBUG_FUNCPTR(gst_costream_mixer_send_event);
  element_class->change_state = GST_DEBUG_FUNCPTR(gst_costream_mixer_change_state);

  gst_type_mark_as_plugin_api(GST_TYPE_COSTREAM_MIXER, static_cast<GstPluginAPIFlags>(0));
  gst_type_mark_as_plugin_api(GST_TYPE_COSTREAM_MIXER_PAD, static_cast<GstPluginAPIFlags>(0));
  gst_type_mark_as_plugin_api(GST_TYPE_COSTREAM_FEED_PAD, static_cast<GstPluginAPIFlags>(0));
}

static void gst_costream_mixer_init(GstCostreamMixer *self) {
  auto *ip =
      static_cast<GstCostreamMixerInstancePrivate *>(gst_costream_mixer_get_instance_private(self));
  auto *priv = new GstCostreamMixerPrivate();
  ip->priv = priv;
  gst_audio_info_init(&priv->out_info);
  gst_segment_init(&priv->segment, GST_FORMAT_TIME);
  g_rec_mutex_init(&priv->task_lock);
  priv->task = gst_task_new(gst_costream_mixer_loop, self, nullptr);
  gst_task_set_lock(priv->task, &priv->task_lock);
}

/* GstChildProxy: talker pads as children, so gst-launch can set `sink_0::volume=0.5`. */

static GObject *gst_costream_mixer_child_proxy_get_child_by_index(GstChildProxy *proxy,
                                                                  guint index) {
  GObject *obj = nullptr;
  GST_OBJECT_LOCK(proxy);
  obj = static_cast<GObject *>(g_list_nth_data(GST_ELEMENT_CAST(proxy)->sinkpads, index));
  if (obj)
    gst_object_ref(obj);
  GST_OBJECT_UNLOCK(proxy);
  return obj;
}

static guint gst_costream_mixer_child_proxy_get_children_count(GstChildProxy *proxy) {
  GST_OBJECT_LOCK(proxy);
  guint count = GST_ELEMENT_CAST(proxy)->numsinkpads;
  GST_OBJECT_UNLOCK(proxy);
  return count;
}

static void gst_costream_mixer_child_proxy_init(gpointer g_iface, gpointer iface_data) {
  auto *iface = static_cast<GstChildProxyInterface *>(g_iface);
  iface->get_child_by_index = gst_costream_mixer_child_proxy_get_child_by_index;
  iface->get_children_count = gst_costream_mixer_child_proxy_get_children_count;
}
