/* costream
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * GstCostreamMixer: the input engine both mixers stand on (backchannelmixer, mixminus).
 *
 * It owns the talkers: `sink_%u` request pads whose streaming threads convert their audio to the
 * mix format (TalkerConverter) and queue it (TalkerQueue: placement by timestamp, drift
 * correction, late data), non-live backpressure, one output task that waits for a block to be
 * complete (non-live) or for its deadline on the clock (live), reads one block from every queue
 * (levels, stall timeouts, zero-copy views) and hands it to the subclass, which mixes and pushes.
 * Also: the latency query and LATENCY messages, flushing seeks, EOS, state changes, GstChildProxy
 * over the sink pads, and the properties every mixer has.
 *
 * Subclasses provide the output side: `negotiate` picks the mix format and announces caps on
 * their src pads, `output` mixes and pushes one block. Events for every output (segment, EOS,
 * flushes) go through `push_event`, which defaults to every src pad of the element.
 */
#pragma once

#include <gst/audio/audio.h>
#include <gst/gst.h>

#include "../audio/sampleformat.h"

#include <memory>
#include <vector>

G_BEGIN_DECLS

#define GST_TYPE_COSTREAM_MIXER_PAD (gst_costream_mixer_pad_get_type())
G_DECLARE_DERIVABLE_TYPE(GstCostreamMixerPad, gst_costream_mixer_pad, GST, COSTREAM_MIXER_PAD,
                         GstPad)

struct _GstCostreamMixerPadClass {
  GstPadClass parent_class;
  gpointer _reserved[4];
};

#define GST_TYPE_COSTREAM_MIXER (gst_costream_mixer_get_type())
G_DECLARE_DERIVABLE_TYPE(GstCostreamMixer, gst_costream_mixer, GST, COSTREAM_MIXER, GstElement)

G_END_DECLS

/* One talker's view of the block being output (valid during GstCostreamMixerClass::output). */
struct GstCostreamMixerInput {
  GstCostreamMixerPad *pad = nullptr; /* kept by the block (pads_hold) */
  const uint8_t *data = nullptr;      /* frames * bpf bytes in the mix format (silence if none) */
  GstBuffer *exact = nullptr; /* the talker's own buffer when `data` is exactly it (zero-copy; only
                                 with GstCostreamMixerClass::forwards_inputs) */
  uint32_t frames_with_data = 0;
  float gain = 1.f;      /* volume, 0 when muted */
  double level = -127.0; /* smoothed level in dBov (from GstAudioLevelMeta when present) */
  bool present = false;  /* sending (not stalled, not ended without data) */
  bool eos = false;
};

/* What a talker's streaming thread knows of audio it is about to keep (GstCostreamMixerClass::
 * audible). */
struct GstCostreamMixerAudibility {
  /* TRUE: an Opus packet not decoded yet, `level_dbov` the level its GstAudioLevelMeta gives
   * (RFC 6464). FALSE: raw audio, `level_dbov` the talker's smoothed level after this buffer (the
   * output's meter, run over the talker's own buffers as they arrive). */
  gboolean packet_level = FALSE;
  double level_dbov = -127.0;
  double ms = 0.0; /* the audio's duration */
};

struct GstCostreamMixerBlock {
  GstAudioInfo info;
  costream::SampleFormat format = costream::SampleFormat::S16;
  uint32_t frames = 0;
  size_t samples = 0; /* frames * channels */
  size_t bytes = 0;   /* frames * bpf */
  int64_t offset = 0; /* running time of the block in output frames */
  GstClockTime pts = GST_CLOCK_TIME_NONE;
  GstClockTime duration = GST_CLOCK_TIME_NONE;
  bool discont = false;
  bool timed_out = false; /* live: mixed at the deadline without every talker */
  std::vector<GstCostreamMixerInput> inputs;
  std::shared_ptr<void> pads_hold; /* keeps every input's pad */
};

struct _GstCostreamMixerClass {
  GstElementClass parent_class;

  /* Output thread. Chooses the mix format (`info`) and sends stream-start and caps downstream.
   * Return FALSE when not negotiated (post an error when it is not just flushing). */
  gboolean (*negotiate)(GstCostreamMixer *self, GstAudioInfo *info);
  /* Output thread, no lock held: mix and push one block. */
  GstFlowReturn (*output)(GstCostreamMixer *self, GstCostreamMixerBlock *block);
  /* Sends an event to every output. Default: every src pad of the element. Takes `event`. */
  gboolean (*push_event)(GstCostreamMixer *self, GstEvent *event);
  /* A talker pad was added to (after) or is being removed from (before) the element. */
  void (*pad_added)(GstCostreamMixer *self, GstCostreamMixerPad *pad);
  void (*pad_removed)(GstCostreamMixer *self, GstCostreamMixerPad *pad);
  /* The stream starts over (READY->PAUSED, flushing seek): forget per-stream state. */
  void (*reset)(GstCostreamMixer *self);
  /* A talker's streaming thread, before it keeps audio (see GstCostreamMixerAudibility): FALSE
   * when nobody can hear it whenever it is mixed, so it need not be decoded (Opus) or its samples
   * kept (raw): silence of its duration is queued instead, and its level still counts. NULL:
   * always audible. */
  gboolean (*audible)(GstCostreamMixer *self, GstCostreamMixerPad *pad,
                      const GstCostreamMixerAudibility *a);

  /* TRUE when `output` may forward a talker's own buffer (GstCostreamMixerInput::exact is set
   * for blocks that are exactly one); FALSE leaves it NULL (one reference less per talker and
   * block). */
  gboolean forwards_inputs;

  /* Adds the subclass's fields to one talker's `talker` structure in the stats. NULL: none. */
  void (*pad_stats)(GstCostreamMixer *self, GstCostreamMixerPad *pad, GstStructure *stats);

  gpointer _reserved[4];
};

/* ---- for subclasses ------------------------------------------------------------------------ */

/* The template caps of talker input (and raw output): S16LE/S32LE/F32LE, 8-48 kHz, 1-2 ch. */
#define COSTREAM_MIXER_FORMATS "{ S16LE, S32LE, F32LE }"
#define COSTREAM_MIXER_CAPS                                                                        \
  "audio/x-raw, format = (string) " COSTREAM_MIXER_FORMATS ", rate = (int) [ 8000, 48000 ], "      \
  "channels = (int) [ 1, 2 ], layout = (string) interleaved"

/* Talker input that may also be Opus (decoded inside, in the talker's thread). */
#define COSTREAM_MIXER_OPUS_INPUT_CAPS "audio/x-opus, channel-mapping-family = (int) 0"

/* A return feed: a src pad with its own streaming thread and bounded queue (GstCostreamFeedPad,
 * feedpad.h), with the element's src event and query functions. Floating; add it to the element.
 * Push to it with the two functions below, from the output thread. */
GstPad *gst_costream_mixer_new_feed_pad(GstCostreamMixer *self, GstPadTemplate *templ,
                                        const gchar *name);
/* Pushes on a src pad: queued for a feed pad's own thread, else pushed at once. Take the
 * buffer/event. */
GstFlowReturn gst_costream_mixer_pad_push(GstPad *pad, GstBuffer *buffer);
gboolean gst_costream_mixer_pad_push_event(GstPad *pad, GstEvent *event);
/* How much audio each feed pad queues (the subclass's `feed-queue-time` property; see
 * feedpad.h for what live and non-live feeds do with it). */
#define COSTREAM_MIXER_DEFAULT_FEED_QUEUE_TIME (200 * GST_MSECOND)
void gst_costream_mixer_set_feed_queue_time(GstCostreamMixer *self, GstClockTime t);
GstClockTime gst_costream_mixer_get_feed_queue_time(GstCostreamMixer *self);
/* Sets the caps on `pad` (after a stream-start it gets if it has none). */
gboolean gst_costream_mixer_push_caps(GstCostreamMixer *self, GstPad *pad, GstCaps *caps);
/* A copy of the output segment as an event (for a src pad that joins while running). */
GstEvent *gst_costream_mixer_segment_event(GstCostreamMixer *self);
/* Asks the output thread to renegotiate before the next block. */
void gst_costream_mixer_request_reconfigure(GstCostreamMixer *self);
/* Records whether the talker is heard, for its `active` property and the stats. */
void gst_costream_mixer_pad_set_active(GstCostreamMixerPad *pad, gboolean active);
/* The output format (FALSE if none yet). */
gboolean gst_costream_mixer_get_info(GstCostreamMixer *self, GstAudioInfo *info);
/* Live or not (as the last latency update found). */
gboolean gst_costream_mixer_is_live(GstCostreamMixer *self);
/* Handlers for a subclass's src pads: seek, reconfigure, latency and caps queries. */
gboolean gst_costream_mixer_src_event(GstPad *pad, GstObject *parent, GstEvent *event);
gboolean gst_costream_mixer_src_query(GstPad *pad, GstObject *parent, GstQuery *query);
/* Snapshot of the element's src pads (each with a reference; gst_object_unref each). */
std::vector<GstPad *> gst_costream_mixer_get_src_pads(GstCostreamMixer *self);
/* Fixates raw audio caps (taken) to one format: 48 kHz, `channels`, native S16 where the caps
 * leave the choice. */
GstCaps *gst_costream_mixer_fixate_caps(GstCaps *caps, int channels);
/* Snapshot of the talker pads (each with a reference; unref with the function below). */
std::vector<GstCostreamMixerPad *> gst_costream_mixer_get_pads(GstCostreamMixer *self);
void gst_costream_mixer_release_pads(std::vector<GstCostreamMixerPad *> &pads);
/* One `talker` structure with the pad's statistics (for a subclass's stats property). */
GstStructure *gst_costream_mixer_pad_stats(GstCostreamMixerPad *pad);
/* A GValue array of the above for every talker; returns the count, `active` gets the number
 * of active talkers. */
guint gst_costream_mixer_pads_stats(GstCostreamMixer *self, GValue *array, guint *active);
/* Answers a CAPS query with `caps` (taken) restricted to the query's filter. */
void gst_costream_mixer_answer_caps_query(GstQuery *query, GstCaps *caps);
