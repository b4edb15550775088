/* costream
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * mixminus's insides, shared by its files:
 *   gstmixminus.cpp     the element: properties, participants joining and leaving (a src pad per
 *                       sink pad), what the participants' threads ask (audible), stats
 *   gstmixminuspad.cpp  the participant pad: `slot`, `speaking`
 *   mixminusoutput.cpp  the output thread: negotiation of the return feeds, then per block
 *                       slots -> mix -> raw feeds -> Opus feeds -> messages
 *   speakerslots.*      who holds a slot (pure)
 *   opusfeeds.*         the Opus feeds' encoders and handover (pure)
 *
 * Locks: the base class's (see ../mixer/mixerprivate.h), then GstMixMinusPrivate::lock (slots
 * and src pads; taken inside the base's locks, never around them), then GST_OBJECT_LOCK.
 */
#pragma once

#include "gstmixminus.h"

#include "../audio/mix.h"
#include "../audio/opusprops.h"
#include "../common/objectlock.h"
#include "../mixer/feedpad.h"
#include "opusfeeds.h"
#include "speakerslots.h"

#include <gst/audio/audio.h>

#include <atomic>
#include <mutex>
#include <vector>

GST_DEBUG_CATEGORY_EXTERN(gst_mix_minus_debug);

#define DEFAULT_MAX_SPEAKERS 3
#define DEFAULT_SPEECH_THRESHOLD (-45.0)
#define DEFAULT_SWITCH_THRESHOLD 6.0
#define DEFAULT_SWITCH_HOLD 300
#define DEFAULT_SLOT_TIMEOUT 1500
/* After losing its slot, a listener's own Opus encoder keeps running on the common mix this many
 * frames before the listener is switched to the shared packets: by then both encoders have coded
 * the same audio long enough for the listener's decoder to take the shared stream without a
 * seam. */
#define HANDOVER_MS 200

#define OPUS_CAPS                                                                                  \
  "audio/x-opus, channel-mapping-family = (int) 0, "                                               \
  "rate = (int) { 8000, 12000, 16000, 24000, 48000 }, channels = (int) [ 1, 2 ]"
/* A return feed: raw audio, or Opus encoded inside (see opusfeeds.h). */
#define MIX_MINUS_SRC_CAPS COSTREAM_MIXER_CAPS "; " OPUS_CAPS

enum class FeedMode { Raw, Opus };

struct GstMixMinusPadPrivate {
  /* The participant's streaming thread only: how long its level has been under the speech
   * threshold less kUnheardMarginDb (see gst_mix_minus_audible), and its copy of the element's
   * slot configuration (see participant_config). */
  double quiet_ms = 0.0;
  guint config_generation = 0;
  costream::SlotConfig config;
  /* Output thread only: */
  guint64 caps_generation = 0; /* of the caps last sent on srcpad (0: none, needs stream-start) */
  FeedMode mode = FeedMode::Raw;
};

struct _GstMixMinusPad {
  GstCostreamMixerPad parent;
  guint index;    /* from the pad's name, at construction (see gst_mix_minus_pad_constructed) */
  GstPad *srcpad; /* the participant's return feed (GstMixMinusPrivate::lock) */
  /* GST_OBJECT_LOCK (pad): */
  gint slot;
  gboolean speaking;
  GstMixMinusPadPrivate *priv;
};

/* The element's properties (GST_OBJECT_LOCK (element)); the output thread copies them once per
 * block. */
struct MixMinusSettings {
  costream::SlotConfig config;
  costream::OpusProps opus; /* the Opus feeds' encoder settings */
};

struct GstMixMinusPrivate {
  /* GST_OBJECT_LOCK (element): properties and counters */
  MixMinusSettings settings;
  /* Bumped (with the lock held) whenever `settings.config` changes: the participants' threads keep
   * a copy and take the element lock only when it moved (see participant_config). */
  std::atomic<guint> config_generation{1};
  guint64 blocks_out = 0;
  guint64 pins = 0; /* stats `pins` */
  guint64 opus_frames = 0;
  guint64 opus_encodes = 0;

  /* Slots and the participants' src pads. Taken inside the base's locks, never around them. */
  std::mutex lock;
  costream::SpeakerSlots slots;

  /* Output thread only: */
  GstCaps *caps = nullptr;      /* of every raw feed */
  GstCaps *opus_caps = nullptr; /* of every Opus feed */
  guint64 caps_generation = 0;
  costream::MixAccumulator acc;
  costream::MixAccumulator own;
  std::vector<uint8_t> own_pcm;
  /* The Opus return feeds: the shared stream and the slot holders' own (see opusfeeds.h). */
  costream::OpusFeeds opus_feeds;
};

struct _GstMixMinus {
  GstCostreamMixer parent;
  GstMixMinusPrivate *priv;
};

namespace costream::mixminus {

/* The output thread's side (mixminusoutput.cpp): GstCostreamMixerClass::negotiate, output and
 * push_event. */
gboolean negotiate(GstCostreamMixer *mixer, GstAudioInfo *info);
GstFlowReturn output(GstCostreamMixer *mixer, GstCostreamMixerBlock *block);
gboolean push_event(GstCostreamMixer *mixer, GstEvent *event);
/* A `mixminus-pin` / `mixminus-unpin` message. `running_time`: of the block the change takes
 * effect in (NONE when a participant left). */
GstMessage *slot_message(GstMixMinus *self, const char *name, int slot, GstPad *pad,
                         GstClockTime running_time);

} // namespace costream::mixminus
