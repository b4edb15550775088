/* costream
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * GstCostreamMixer's insides, shared by the files of gst/mixer/ only. Where a talker's buffer goes:
 *
 *   mixerpad.cpp         the talker pad type: volume, mute, what its properties show
 *   talkerinput.cpp      the talker's streaming thread: caps, segment, flushes, Opus decoding with
 *                        loss concealment, conversion to the mix format, level, chunk pool
 *   talkerqueueside.cpp  under the data lock: queue a chunk, wait for room (non-live), wake the
 *                        output, read one talker's part of a block (levels, stalls)
 *   output.cpp           the output thread: wait for a block -> read it -> the subclass mixes and
 *                        pushes -> finish it; negotiation, EOS, pushing to src pads
 *   chunkrelease.h       who frees what the queues passed
 *   upstreamlatency.*    the talkers' upstream latency, one writer per value
 *   feedpad.*            return feeds: a src pad with its own thread and bounded queue
 *   gstcostreammixer.cpp the element: properties, request/release pads, states, seeks, src pad
 *                        events and queries, stats, GstChildProxy
 *
 * Threads and locks.
 *
 * Every talker's streaming thread runs the sink pad's chain: it converts its buffer (no lock,
 * TalkerInput belongs to that thread) and appends it to the talker's queue under the element's
 * data lock (TalkerShared). It never waits for the mixer when live; non-live it waits, with
 * hysteresis, once its queue is AHEAD_HIGH ahead of the output, until AHEAD_LOW (so upstreams hand
 * over batches instead of trading places with the mixer at every buffer). It computes each
 * buffer's power (for levels) while the samples are in its cache, and frees the chunks the output
 * has passed (ChunkRelease). One output thread (the element's task) waits for a block to be
 * complete (non-live) or for its deadline on the clock (live), reads every queue under the data
 * lock, then lets the subclass mix and push with no lock held.
 *
 * Lock order (outer to inner): task lock -> priv->lock (data lock) -> GST_OBJECT_LOCK (element
 * or pad) or a pad's shown.lock. No lock is held while pushing, querying or posting a message.
 */
#pragma once

#include "gstcostreammixer.h"
#include "chunkrelease.h"
#include "feedpad.h"
#include "upstreamlatency.h"

#include "../audio/chunkpool.h"
#include "../audio/level.h"
#include "../audio/opusreceiver.h"
#include "../audio/talkerconverter.h"
#include "../audio/talkerqueue.h"
#include "../common/objectlock.h"

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <vector>

GST_DEBUG_CATEGORY_EXTERN(gst_costream_mixer_debug);

namespace costream::mixer {

using Lock = std::unique_lock<std::mutex>;

#define DEFAULT_PAD_VOLUME 1.0
#define DEFAULT_PAD_MUTE FALSE

/* Non-live backpressure: a talker more than this far ahead of the output waits until it is
 * back under the low mark. Each wake-up costs more than the switch: the talker's thread comes
 * back to caches that the other talkers have filled since, so batches are large (256 talkers on
 * 2 cores: 2 s / 0.4 s cost 10 % less CPU than 0.5 s / 0.1 s, 0.15 s / 0.05 s cost 50 % more).
 * Memory: up to AHEAD_HIGH of audio per talker whose samples are kept. */
constexpr GstClockTime AHEAD_HIGH = 2 * GST_SECOND;
constexpr GstClockTime AHEAD_LOW = 400 * GST_MSECOND;

/* An Opus talker in DTX sends a packet only every 400 ms or so while silent: it counts as stalled
 * only after this long without one (or `timeout`, if longer). */
constexpr GstClockTime DTX_STALL = 1 * GST_SECOND;

/* ---- a talker pad's state, by owner ------------------------------------------------------- */

/* The pad's streaming thread only (talkerinput.cpp). */
struct TalkerInput {
  TalkerConverter converter;
  /* Opus input: decoded to F32 48 kHz first, losses concealed (see opusreceiver.h). */
  std::unique_ptr<OpusReceiver> opus;
  std::vector<float> opus_pcm;
  bool opus_live = false; /* the output was live at the last packet (see set_fill_dtx) */
  GstSegment segment;
  guint64 converter_generation = 0;
  GstAudioInfo converter_out;                  /* the output format of converter_generation */
  ChunkPool pool;                              /* see to_pool() */
  LevelMeter shadow_meter;                     /* the output's meter over this talker's buffers */
  std::shared_ptr<std::vector<uint8_t>> zeros; /* silence for unheard buffers, never written */
};

/* The element's data lock (talkerqueueside.cpp). */
struct TalkerShared {
  TalkerQueue queue;
  bool flushing = false;
  bool eos = false;
  bool has_caps = false;
  bool waiting_for_space = false;
  std::condition_variable space_cond; /* non-live: room in the queue, flushing, a new format */
  bool missing = false; /* the output waits for this talker's data (see mark_missing) */
  bool in_dtx = false;  /* Opus DTX: silent, sending a packet now and then (see DTX_STALL) */
  LevelMeter meter;     /* the talker's level over the output's blocks */
  TalkerStats stats;
  bool ever_had_data = false;
  bool stalled = false;
  int64_t missing_frames = 0;
};

/* GST_OBJECT_LOCK (pad): the properties an application sets. */
struct TalkerControls {
  gdouble volume = DEFAULT_PAD_VOLUME;
  gboolean mute = DEFAULT_PAD_MUTE;
  /* volume, or 0 when muted: written with the pad lock held, read by the output thread without
   * it (the talker's thread takes that lock for every buffer it sends). */
  std::atomic<float> gain{static_cast<float>(DEFAULT_PAD_VOLUME)};
};

/* What the pad's properties and the element's stats show: copied from TalkerShared::stats by the
 * output thread at every block, under a lock of its own (the talker's thread takes the pad's
 * object lock for every buffer it sends; the output thread would fight it for every talker and
 * block). Written by the output thread only. */
struct TalkerShown {
  std::mutex lock;
  TalkerStats stats;
};

} // namespace costream::mixer

struct GstCostreamMixerPadPrivate {
  costream::mixer::TalkerInput in;
  costream::mixer::TalkerShared q;
  costream::ChunkRelease::Talker release; /* see chunkrelease.h */
  std::vector<uint8_t> scratch;           /* the output thread only: a block read by copy */
  costream::mixer::TalkerControls controls;
  costream::mixer::TalkerShown shown;
};

GstCostreamMixerPadPrivate *gst_costream_mixer_pad_priv(GstCostreamMixerPad *pad);

/* ---- the element's state, by owner -------------------------------------------------------- */

namespace costream::mixer {

#define DEFAULT_OUTPUT_BUFFER_DURATION (10 * GST_MSECOND)
#define DEFAULT_LATENCY (20 * GST_MSECOND)
#define DEFAULT_TIMEOUT (100 * GST_MSECOND)
#define DEFAULT_ALIGNMENT_THRESHOLD (40 * GST_MSECOND)
#define DEFAULT_DRIFT_CORRECTION TRUE
#define DEFAULT_FORCE_LIVE FALSE

/* The element's properties (GST_OBJECT_LOCK (element)); threads copy them whole (settings()). */
struct Settings {
  GstClockTime block_duration = DEFAULT_OUTPUT_BUFFER_DURATION;
  GstClockTime latency = DEFAULT_LATENCY; /* property `latency`: the jitter allowance */
  GstClockTime timeout = DEFAULT_TIMEOUT;
  GstClockTime alignment_threshold = DEFAULT_ALIGNMENT_THRESHOLD;
  gboolean drift_correction = DEFAULT_DRIFT_CORRECTION;
  gboolean force_live = DEFAULT_FORCE_LIVE;
  GstClockTime feed_queue_time = COSTREAM_MIXER_DEFAULT_FEED_QUEUE_TIME;
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

} // namespace costream::mixer

struct GstCostreamMixerPrivate {
  GstTask *task = nullptr;
  GRecMutex task_lock;

  /* GST_OBJECT_LOCK (element): */
  costream::mixer::Settings settings;
  guint next_pad_index = 0;

  /* The return feeds (src pads made by gst_costream_mixer_new_feed_pad): their queue policy,
   * set by the output thread at every block. Its own locks (see feedpad.h). */
  std::shared_ptr<costream::FeedGroup> feeds = std::make_shared<costream::FeedGroup>();

  /* Data lock and what it protects (plus every pad's TalkerShared). */
  std::mutex lock;
  std::condition_variable data_cond;       /* the output thread waits for data, flush, state */
  std::vector<GstCostreamMixerPad *> pads; /* with a reference each */
  /* The same pads with references of its own, shared by the blocks being output: one reference
   * per block instead of one per talker per block (see refresh_pads_hold). */
  std::shared_ptr<costream::mixer::PadsHold> pads_hold;
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
   * without it to convert with the format they already know (see talker_format). */
  std::atomic<guint64> published_generation{0};
  bool reconfigure = false;
  bool live = false;
  int64_t out_index = 0; /* running time of the next block, in output frames */
  GstSegment segment;
  bool send_segment = true;
  bool discont = true;
  bool eos_requested = false;
  guint32 seqnum = 0;
  /* Seqnum of the last LATENCY event sent upstream (see forward_latency), 0 for none. */
  guint32 latency_event_seqnum = 0;
  costream::UpstreamLatency upstream; /* see upstreamlatency.h */
  costream::ChunkRelease release;     /* see chunkrelease.h */

  /* Output thread only: waiting talkers with room again. */
  std::vector<GstCostreamMixerPadPrivate *> wake_talkers;
};

GstCostreamMixerPrivate *gst_costream_mixer_priv(GstCostreamMixer *self);

namespace costream::mixer {

inline GstCostreamMixerPrivate *mixer_priv(GstCostreamMixer *self) {
  return gst_costream_mixer_priv(self);
}
inline GstCostreamMixerPadPrivate *pad_priv(GstCostreamMixerPad *pad) {
  return gst_costream_mixer_pad_priv(pad);
}
inline GstCostreamMixerClass *klass_of(GstCostreamMixer *self) {
  return GST_COSTREAM_MIXER_GET_CLASS(self);
}
/* A copy of the element's properties (one object lock). */
Settings settings(GstCostreamMixer *self);

/* ---- talkerqueueside.cpp (data lock held unless said) ---- */

/* What a talker's streaming thread queues: an input buffer (counted in the pad's stats), or audio
 * it made itself (the concealment of a loss, the silence of a GAP: not counted). */
enum class Queued { InputBuffer, Made };
/* What the thread does once it has queued: return, or wait for room for the talker's next buffer
 * (wait_for_room_locked) under the same lock. */
enum class ThenWait { No, ForRoom };

/* What the Opus receiver did for one packet or GAP, for the talker's stats: applied when the
 * audio is queued, under that one data lock (one lock per buffer). */
struct OpusTally {
  bool decoded = false;
  bool skipped = false;
  OpusReceiver::Counters before; /* the receiver's counters before, to add the difference */
  OpusReceiver::Counters after;
  bool in_dtx = false;
};

TalkerQueue::Config queue_config(GstCostreamMixer *self, const Settings &s);
void reconfigure_queues(GstCostreamMixer *self, const Settings &s);
int64_t frames_of(GstCostreamMixer *self, GstClockTime t);
int64_t frames_ahead(GstCostreamMixer *self, GstCostreamMixerPadPrivate *pp);
void notify_space_all(GstCostreamMixer *self);
size_t mark_missing(GstCostreamMixer *self, int64_t out, uint32_t n);
void wake_output(GstCostreamMixer *self, GstCostreamMixerPad *pad);
/* (no lock) Streaming thread: waits (non-live) until the talker may queue more, and returns the
 * output format to convert to. */
GstFlowReturn wait_for_room(GstCostreamMixer *self, GstCostreamMixerPad *pad, GstAudioInfo *out,
                            guint64 *generation);
/* (no lock) Streaming thread: queues converted audio. */
GstFlowReturn queue_converted(GstCostreamMixer *self, GstCostreamMixerPad *pad, guint64 generation,
                              TalkerConverter::Converted &c, gsize bytes, Queued what,
                              ThenWait then = ThenWait::No, const OpusTally *opus = nullptr);
/* (no lock) Streaming thread: an input buffer that could not be used, counted as dropped. */
void count_dropped_input(GstCostreamMixer *self, GstCostreamMixerPad *pad, gsize bytes,
                         const OpusTally *opus = nullptr);
/* (data lock) Streaming thread: the receiver's counters into the talker's stats; the output's
 * mode for the receiver (see OpusReceiver::set_fill_dtx). */
void apply_opus_tally(GstCostreamMixer *self, GstCostreamMixerPadPrivate *pp, const OpusTally &t);
/* (no lock) Streaming thread, FLUSH_STOP: the talker's queue starts over. */
void flush_queue(GstCostreamMixer *self, GstCostreamMixerPad *pad);

/* One block's place on the output timeline (output thread). */
struct BlockPlan {
  int64_t out_index = 0;
  uint32_t frames = 0;
  guint rate = 0;
  GstClockTime running_time = 0; /* of out_index */
  GstClockTime pts = 0;
  GstClockTime block_time = 0; /* of `frames` */
  GstClockTime timeout = 0;    /* the element's stall timeout */
};
/* (output thread) Reads talker `pp`'s part of the block into `v`: data (in place or copied),
 * level, stall tracking, its stats for the properties. */
void read_talker(GstCostreamMixer *self, GstCostreamMixerPad *pad, GstCostreamMixerPadPrivate *pp,
                 const BlockPlan &plan, GstCostreamMixerBlock *block, GstCostreamMixerInput *v);

/* ---- talkerinput.cpp ---- */

/* Sets a new talker pad's chain, event, query and activation functions. */
void setup_talker_pad(GstPad *pad);

/* ---- output.cpp ---- */

void output_loop(gpointer user_data);
/* Output thread: pauses itself, unless the task is being stopped. */
void pause_task(GstCostreamMixer *self, const char *why);
/* GstCostreamMixerClass::push_event's default: every src pad of the element. */
gboolean default_push_event(GstCostreamMixer *self, GstEvent *event);
/* Sends an event to every output (the subclass's push_event). Takes `event`. */
gboolean push_event(GstCostreamMixer *self, GstEvent *event);

} // namespace costream::mixer
