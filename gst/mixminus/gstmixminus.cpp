/* costream
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
/**
 * SECTION:element-mixminus
 * @title: mixminus
 *
 * A conference mixer: every participant hears the room's loudest voices except their own.
 *
 * Each participant is a request pad `sink_%u`; requesting `sink_N` adds the matching `src_N`,
 * that participant's return feed, and releasing `sink_N` removes it. Up to `max-speakers`
 * participants hold a speaker slot (0 = everyone). Every participant's output is the sum of the
 * slot holders other than themselves: a holder hears the other holders, everyone else hears all
 * of them. Nobody outside the slots is heard.
 *
 * Levels are smoothed dBov with RFC 6464 meaning, taken from the buffers' GstAudioLevelMeta when
 * present (`rtphdrextclientaudiolevel` writes it from the RTP header extension) or computed from
 * the samples. Participants may send raw audio or Opus (`audio/x-opus`, decoded inside); with
 * level metas on Opus input, only what can be heard is decoded (slot holders and participants
 * speaking loud enough to challenge). A participant below `speech-threshold` does not take a slot.
 * A free slot is taken at once; when all are taken, a challenger replaces the quietest holder only
 * after being louder by `switch-threshold` dB for `switch-hold` ms, and a holder silent for
 * `slot-timeout` ms gives its slot up. Every change posts a `mixminus-pin` or `mixminus-unpin`
 * element message (fields `slot`, `pad` (the sink pad), `pad-name`, `running-time` of the first
 * block the change applies to, or NONE when the participant left); pads expose `slot`, `speaking`
 * and `level`.
 *
 * A return feed whose peer takes `audio/x-opus` and not raw audio (e.g. `rtpopuspay`) is encoded
 * inside with libopus: one encoder for the common mix, shared by every listener without a slot,
 * plus one per slot holder (`bitrate`, `complexity`, `frame-duration`, `inband-fec` with
 * `packet-loss-percentage`, `dtx`). A
 * listener moving into a slot continues from a copy of the shared encoder's state and one
 * leaving it is handed over after 200 ms, so their decoder hears no seam.
 *
 * The work per block is O(participants + speakers): the holders are summed once, a holder's
 * output is that sum minus their own block, and every other participant's src pad receives the
 * same buffer (a reference, not a copy).
 *
 * Timing is that of `backchannelmixer` (same engine): live with stall timeouts, participants
 * joining and leaving while PLAYING, clock drift absorbed, exact non-live mixing, and a latency
 * of one block plus the jitter allowance.
 *
 * ## Example launch lines
 * |[
 * gst-launch-1.0 mixminus name=mm max-speakers=2 \
 *   audiotestsrc is-live=true freq=300 ! mm.sink_0  mm.src_0 ! autoaudiosink \
 *   audiotestsrc is-live=true freq=500 ! mm.sink_1  mm.src_1 ! fakesink sync=true \
 *   audiotestsrc is-live=true freq=700 ! mm.sink_2  mm.src_2 ! fakesink sync=true
 * ]| Three participants; the first one hears the other two (two slots, everyone speaks).
 *
 * |[
 * gst-launch-1.0 mixminus name=mm \
 *   audiotestsrc is-live=true volume=0.2 freq=300 ! mm.sink_0 \
 *   audiotestsrc is-live=true volume=0.2 freq=500 ! mm.sink_1 \
 *   mm.src_0 ! rtpopuspay ! udpsink host=127.0.0.1 port=5990 \
 *   mm.src_1 ! rtpopuspay ! udpsink host=127.0.0.1 port=5992
 * ]| Each return feed encoded to Opus inside and sent over RTP, no queues needed.
 *
 * |[
 * gst-launch-1.0 mixminus name=mm \
 *   mm.src_0 ! audioconvert ! wavenc ! filesink location=p0.wav \
 *   audiotestsrc num-buffers=300 freq=440 ! mm.sink_0 \
 *   audiotestsrc num-buffers=300 freq=660 ! mm.sink_1  mm.src_1 ! fakesink
 * ]| Non-live, a src pad named before its sink pad: participant 0 hears 660 Hz only.
 *
 * Every return feed has its own streaming thread and a bounded queue (`feed-queue-time`, 200 ms),
 * so no `queue` is needed after a src pad: a sink that prerolls, a synchronised sink, or a
 * downstream that is slow or blocked holds up only its own feed. Live, such a feed drops its
 * oldest buffers beyond the queue (counted: the src pad's `dropped-buffers`, and
 * `feed-dropped-buffers` in `stats`); non-live, the room waits for it and nothing is lost.
 */

#include "gstmixminus.h"

#include "../mixer/feedpad.h"

#include "../audio/level.h"
#include "../audio/mix.h"
#include "../audio/opus.h"
#include "../audio/opusprops.h"
#include "speakerslots.h"

#include <gst/audio/audio.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <vector>

GST_DEBUG_CATEGORY_STATIC(gst_mix_minus_debug);
#define GST_CAT_DEFAULT gst_mix_minus_debug

using costream::MixAccumulator;
using costream::OpusEnc;
using costream::OpusSettings;
using costream::SlotConfig;
using costream::SlotEvent;
using costream::SpeakerSlots;

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

static GstStaticPadTemplate src_template = GST_STATIC_PAD_TEMPLATE(
    "src_%u", GST_PAD_SRC, GST_PAD_SOMETIMES, GST_STATIC_CAPS(COSTREAM_MIXER_CAPS "; " OPUS_CAPS));
static GstStaticCaps raw_caps = GST_STATIC_CAPS(COSTREAM_MIXER_CAPS);
static GstStaticCaps opus_caps = GST_STATIC_CAPS(OPUS_CAPS);
static GstStaticPadTemplate sink_template = GST_STATIC_PAD_TEMPLATE(
    "sink_%u", GST_PAD_SINK, GST_PAD_REQUEST,
    GST_STATIC_CAPS(COSTREAM_MIXER_CAPS "; " COSTREAM_MIXER_OPUS_INPUT_CAPS));

/* ------------------------------------------------------------------------------------------ */
/* Pad                                                                                          */

enum {
  PROP_PAD_0,
  PROP_PAD_SLOT,
  PROP_PAD_SPEAKING,
};

/* A participant's own Opus stream: while they hold a slot (and a little after, see HANDOVER_MS). */
struct OwnStream {
  OpusEnc enc;
  std::vector<uint8_t> pending; /* PCM of the frame being filled */
  bool need_clone = true;       /* starts as a copy of the shared encoder */
  int handover_frames = -1;     /* >= 0: no longer a holder, frames left before the switch */
};

enum class FeedMode { Raw, Opus };

struct _GstMixMinusPad {
  GstCostreamMixerPad parent;
  guint index;
  GstPad *srcpad; /* the participant's return feed (priv->lock) */
  /* GST_OBJECT_LOCK (pad): */
  gint slot;
  gboolean speaking;
  /* The participant's streaming thread only: how long its level has been under the
   * speech threshold less kUnheardMarginDb (see gst_mix_minus_samples_unheard), and its copy of
   * the element's slot configuration (see participant_config). */
  double quiet_ms;
  guint config_generation;
  SlotConfig config;
  /* Output thread only: */
  guint64 caps_generation; /* of the caps last sent on srcpad (0: none, needs stream-start) */
  FeedMode mode;
  OwnStream *own;
};

G_DEFINE_TYPE(GstMixMinusPad, gst_mix_minus_pad, GST_TYPE_COSTREAM_MIXER_PAD);

static void gst_mix_minus_pad_finalize(GObject *object);
static void gst_mix_minus_pad_constructed(GObject *object);

static void gst_mix_minus_pad_get_property(GObject *object, guint prop_id, GValue *value,
                                           GParamSpec *pspec) {
  auto *pad = GST_MIX_MINUS_PAD(object);
  GST_OBJECT_LOCK(pad);
  switch (prop_id) {
  case PROP_PAD_SLOT:
    g_value_set_int(value, pad->slot);
    break;
  case PROP_PAD_SPEAKING:
    g_value_set_boolean(value, pad->speaking);
    break;
  default:
    G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec);
    break;
  }
  GST_OBJECT_UNLOCK(pad);
}

static void gst_mix_minus_pad_class_init(GstMixMinusPadClass *klass) {
  auto *gobject_class = G_OBJECT_CLASS(klass);
  gobject_class->constructed = gst_mix_minus_pad_constructed;
  gobject_class->get_property = gst_mix_minus_pad_get_property;
  gobject_class->finalize = gst_mix_minus_pad_finalize;
  const auto ro = static_cast<GParamFlags>(G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);
  g_object_class_install_property(gobject_class, PROP_PAD_SLOT,
                                  g_param_spec_int("slot", "Slot",
                                                   "Speaker slot this participant holds (-1: none)",
                                                   -1, G_MAXINT, -1, ro));
  g_object_class_install_property(
      gobject_class, PROP_PAD_SPEAKING,
      g_param_spec_boolean("speaking", "Speaking",
                           "Whether the participant's level is at or above the speech threshold",
                           FALSE, ro));
}

/* The participant's number comes from the pad's name, set at construction: the pad must have it
 * before the base class lists it for the output thread (set later, a block read in between
 * would take the newcomer for participant 0 and unpin them for that block). */
static void gst_mix_minus_pad_constructed(GObject *object) {
  G_OBJECT_CLASS(gst_mix_minus_pad_parent_class)->constructed(object);
  auto *pad = GST_MIX_MINUS_PAD(object);
  guint index = 0;
  if (GST_PAD_NAME(pad))
    sscanf(GST_PAD_NAME(pad), "sink_%u", &index);
  pad->index = index;
}

static void gst_mix_minus_pad_init(GstMixMinusPad *pad) {
  pad->index = 0;
  pad->srcpad = nullptr;
  pad->slot = -1;
  pad->speaking = FALSE;
  pad->quiet_ms = 0.0;
  pad->config_generation = 0;
  pad->caps_generation = 0;
  pad->mode = FeedMode::Raw;
  pad->own = nullptr;
}

static void gst_mix_minus_pad_finalize(GObject *object) {
  auto *pad = GST_MIX_MINUS_PAD(object);
  delete pad->own;
  pad->own = nullptr;
  G_OBJECT_CLASS(gst_mix_minus_pad_parent_class)->finalize(object);
}

/* ------------------------------------------------------------------------------------------ */
/* Element                                                                                      */

enum {
  PROP_0,
  PROP_MAX_SPEAKERS,
  PROP_SPEECH_THRESHOLD,
  PROP_SWITCH_THRESHOLD,
  PROP_SWITCH_HOLD,
  PROP_SLOT_TIMEOUT,
  PROP_OPUS_FIRST, /* the Opus feeds' encoder settings (costream::OpusProp order) */
  PROP_FEED_QUEUE_TIME = PROP_OPUS_FIRST + costream::kOpusPropCount,
  PROP_STATS,
};

/* The Opus feeds' defaults: 32 kbit/s voice at complexity 5 (many encoders run at once), no
 * FEC or DTX, 20 ms packets. */
static costream::OpusProps default_opus_props() {
  costream::OpusProps p;
  p.settings.bitrate = 32000;
  p.settings.complexity = 5;
  p.settings.voice = true;
  p.frame_ms = 20;
  return p;
}

struct GstMixMinusPrivate {
  /* GST_OBJECT_LOCK (element): properties and counters */
  SlotConfig config;
  /* Bumped (with the lock held) whenever `config` changes: the participants' threads keep a copy
   * and take the element lock only when it moved (see participant_config). */
  std::atomic<guint> config_generation{1};
  costream::OpusProps opus; /* the Opus feeds' encoder settings */
  guint64 blocks_out = 0;
  guint64 pins = 0; /* stats `pins` */
  guint64 opus_frames = 0;
  guint64 opus_encodes = 0;

  /* Slots and the participants' src pads. Taken inside the base's locks, never around them. */
  std::mutex lock;
  SpeakerSlots slots;

  /* Output thread only: */
  GstCaps *caps = nullptr;      /* of every raw feed */
  GstCaps *opus_caps = nullptr; /* of every Opus feed */
  guint64 caps_generation = 0;
  MixAccumulator acc;
  MixAccumulator own;
  std::vector<uint8_t> own_pcm;
  /* The shared Opus stream (every Opus listener without a slot). */
  OpusEnc common;
  OpusSettings common_settings;
  std::vector<uint8_t> common_pending;
  bool opus_discont = true;
};

struct _GstMixMinus {
  GstCostreamMixer parent;
  GstMixMinusPrivate *priv;
};

G_DEFINE_TYPE(GstMixMinus, gst_mix_minus, GST_TYPE_COSTREAM_MIXER);
GST_ELEMENT_REGISTER_DEFINE(mixminus, "mixminus", GST_RANK_NONE, GST_TYPE_MIX_MINUS);

namespace {

/* `running_time`: of the block the change takes effect in (NONE when a participant left). */
GstMessage *slot_message(GstMixMinus *self, const char *name, int slot, GstPad *pad,
                         GstClockTime running_time) {
  return gst_message_new_element(
      GST_OBJECT(self), gst_structure_new(name, "slot", G_TYPE_INT, slot, "pad", GST_TYPE_PAD, pad,
                                          "pad-name", G_TYPE_STRING, GST_PAD_NAME(pad),
                                          "running-time", G_TYPE_UINT64, running_time, nullptr));
}

} // namespace

/* Output thread: each return feed is raw or Opus (what its peer takes; raw when both), and
 * every raw feed gets the one raw format all their peers accept. With Opus feeds the mix runs
 * at a rate Opus encodes. */
static gboolean gst_mix_minus_negotiate(GstCostreamMixer *mixer, GstAudioInfo *info) {
  auto *self = GST_MIX_MINUS(mixer);
  auto *priv = self->priv;
  GstCaps *tmpl = gst_static_pad_template_get_caps(&src_template);
  GstCaps *raw = gst_static_caps_get(&raw_caps);
  GstCaps *opus = gst_static_caps_get(&opus_caps);
  GstCaps *common = gst_caps_ref(raw);
  bool any_opus = false, modes_changed = false;
  for (auto *p : gst_costream_mixer_get_pads(mixer)) {
    auto *mpad = GST_MIX_MINUS_PAD(p);
    GstPad *src = nullptr;
    {
      std::lock_guard<std::mutex> lk(priv->lock);
      if (mpad->srcpad)
        src = GST_PAD(gst_object_ref(mpad->srcpad));
    }
    if (src) {
      gst_pad_check_reconfigure(src); /* this negotiation answers it */
      if (gst_pad_is_linked(src)) {
        GstCaps *peer = gst_pad_peer_query_caps(src, tmpl);
        const bool raw_ok = gst_caps_can_intersect(peer, raw);
        const bool opus_ok = gst_caps_can_intersect(peer, opus);
        const FeedMode mode = !raw_ok && opus_ok ? FeedMode::Opus : FeedMode::Raw;
        modes_changed |= mode != mpad->mode;
        mpad->mode = mode;
        if (mpad->mode == FeedMode::Raw) {
          GstCaps *tmp = gst_caps_intersect(common, peer);
          gst_caps_unref(common);
          common = tmp;
        }
        any_opus |= mpad->mode == FeedMode::Opus;
        gst_caps_unref(peer);
      }
      gst_object_unref(src);
    }
    gst_object_unref(p);
  }
  gst_caps_unref(tmpl);
  gst_caps_unref(raw);
  gst_caps_unref(opus);
  if (any_opus) {
    GstCaps *rates = gst_caps_from_string("audio/x-raw, rate = (int) { 48000, 24000, 16000, "
                                          "12000, 8000 }, format = (string) { S16LE, F32LE }");
    GstCaps *tmp = gst_caps_intersect(common, rates);
    gst_caps_unref(common);
    gst_caps_unref(rates);
    common = tmp;
  }
  if (gst_caps_is_empty(common)) {
    gst_caps_unref(common);
    GST_ELEMENT_ERROR(
        self, CORE, NEGOTIATION,
        ("The participants' outputs accept no common raw format (S16LE, S32LE or "
         "F32LE, 8000-48000 Hz, mono or stereo%s).",
         any_opus ? "; with Opus outputs: S16LE or F32LE at 8, 12, 16, 24 or 48 kHz" : ""),
        (nullptr));
    return FALSE;
  }
  GstCaps *caps = gst_costream_mixer_fixate_caps(common, 1 /* voices */);
  if (!gst_audio_info_from_caps(info, caps)) {
    GST_ELEMENT_ERROR(self, CORE, NEGOTIATION,
                      ("The participants' outputs settled on a format that is not complete "
                       "raw audio (rate, channels and sample format fixed)."),
                      ("caps %" GST_PTR_FORMAT, caps));
    gst_caps_unref(caps);
    return FALSE;
  }
  const int channels = GST_AUDIO_INFO_CHANNELS(info);
  GstCaps *ocaps = gst_caps_new_simple(
      "audio/x-opus", "rate", G_TYPE_INT, GST_AUDIO_INFO_RATE(info), "channels", G_TYPE_INT,
      channels, "channel-mapping-family", G_TYPE_INT, 0, "stream-count", G_TYPE_INT, 1,
      "coupled-count", G_TYPE_INT, channels - 1, nullptr);
  GST_DEBUG_OBJECT(self, "output caps %" GST_PTR_FORMAT " / %" GST_PTR_FORMAT, caps, ocaps);
  if (modes_changed || !priv->caps || !gst_caps_is_equal(priv->caps, caps) || !priv->opus_caps ||
      !gst_caps_is_equal(priv->opus_caps, ocaps)) {
    gst_caps_replace(&priv->caps, caps);
    gst_caps_replace(&priv->opus_caps, ocaps);
    priv->caps_generation++;
  }
  gst_caps_unref(ocaps);
  gst_caps_unref(caps);
  return TRUE;
}

namespace {

/* Output thread: stream-start, caps and segment before a return feed's first buffer (and caps
 * again after a format change). */
void prepare_src(GstMixMinus *self, GstMixMinusPad *mpad, GstPad *src) {
  auto *priv = self->priv;
  if (mpad->caps_generation == priv->caps_generation)
    return;
  const bool first = mpad->caps_generation == 0;
  GstCaps *caps = mpad->mode == FeedMode::Opus ? priv->opus_caps : priv->caps;
  if (!gst_costream_mixer_push_caps(GST_COSTREAM_MIXER(self), src, caps)) {
    GST_DEBUG_OBJECT(src, "caps not accepted (yet)");
    return;
  }
  if (first)
    gst_costream_mixer_pad_push_event(src,
                                      gst_costream_mixer_segment_event(GST_COSTREAM_MIXER(self)));
  mpad->caps_generation = priv->caps_generation;
}

GstBuffer *new_block_buffer(const GstCostreamMixerBlock *block, MixAccumulator *acc) {
  GstBuffer *buf = gst_buffer_new_allocate(nullptr, block->bytes, nullptr);
  GstMapInfo map;
  gst_buffer_map(buf, &map, GST_MAP_WRITE);
  if (acc)
    acc->store(map.data);
  else
    memset(map.data, 0, map.size);
  gst_buffer_unmap(buf, &map);
  GST_BUFFER_PTS(buf) = block->pts;
  GST_BUFFER_DURATION(buf) = block->duration;
  GST_BUFFER_OFFSET(buf) = static_cast<guint64>(block->offset);
  GST_BUFFER_OFFSET_END(buf) = static_cast<guint64>(block->offset + block->frames);
  if (block->discont)
    GST_BUFFER_FLAG_SET(buf, GST_BUFFER_FLAG_DISCONT);
  if (!acc)
    GST_BUFFER_FLAG_SET(buf, GST_BUFFER_FLAG_GAP);
  return buf;
}

/* The return feeds' flow returns together: one feed unlinked, flushing, ended or failing does not
 * stop the others (a failing one is logged); only when no feed took its buffer is the worst
 * return passed on (an error, else flushing, else EOS). */
struct FlowSummary {
  size_t pushed = 0, ok = 0, flushing = 0, eos = 0;
  GstFlowReturn error = GST_FLOW_OK;
  void add(GstFlowReturn r) {
    pushed++;
    if (r == GST_FLOW_OK || r == GST_FLOW_NOT_LINKED)
      ok++;
    else if (r == GST_FLOW_FLUSHING)
      flushing++;
    else if (r == GST_FLOW_EOS)
      eos++;
    else
      error = std::min(error, r);
  }
  GstFlowReturn result() const {
    if (pushed == 0 || ok > 0)
      return GST_FLOW_OK;
    if (error != GST_FLOW_OK)
      return error;
    return flushing > 0 ? GST_FLOW_FLUSHING : GST_FLOW_EOS;
  }
};

} // namespace

namespace {

GstBuffer *packet_buffer(const uint8_t *data, int size, GstClockTime pts, GstClockTime duration,
                         bool discont) {
  GstBuffer *buf = gst_buffer_new_memdup(data, size);
  GST_BUFFER_PTS(buf) = pts;
  GST_BUFFER_DURATION(buf) = duration;
  if (discont)
    GST_BUFFER_FLAG_SET(buf, GST_BUFFER_FLAG_DISCONT);
  return buf;
}

/* Output thread: the Opus side of one block. `common_pcm` is the shared mix, `own_pcm(i)` the mix
 * for participant i (holders). Frames complete -> one encode for the shared stream, one per own
 * stream; every Opus listener without an own stream gets the shared packet (a reference). */
template <typename OwnPcm>
void opus_block(GstMixMinus *self, GstCostreamMixerBlock *block, const std::vector<int> &slot,
                const std::vector<GstPad *> &srcs, const uint8_t *common_pcm, OwnPcm own_pcm,
                FlowSummary *flow) {
  auto *priv = self->priv;
  const size_t n_in = block->inputs.size();
  bool any = false;
  for (size_t i = 0; i < n_in; i++)
    any |= srcs[i] && GST_MIX_MINUS_PAD(block->inputs[i].pad)->mode == FeedMode::Opus;
  if (!any)
    return;

  const int rate = GST_AUDIO_INFO_RATE(&block->info);
  const int channels = GST_AUDIO_INFO_CHANNELS(&block->info);
  const int bpf = GST_AUDIO_INFO_BPF(&block->info);
  GST_OBJECT_LOCK(self);
  OpusSettings settings = priv->opus.settings;
  const guint frame_ms = priv->opus.frame_ms;
  GST_OBJECT_UNLOCK(self);
  settings.rate = rate;
  settings.channels = channels;
  const int frame = rate / 1000 * static_cast<int>(frame_ms);
  const size_t frame_bytes = static_cast<size_t>(frame) * bpf;

  if (!priv->common.valid() || priv->common.settings().rate != rate ||
      priv->common.settings().channels != channels) {
    std::string why;
    if (!priv->common.init(settings, &why)) {
      GST_ELEMENT_ERROR(self, LIBRARY, INIT, ("Could not create an Opus encoder."),
                        ("%s", why.c_str()));
      flow->add(GST_FLOW_ERROR);
      return;
    }
    priv->common_pending.clear();
    priv->opus_discont = true;
  } else if (settings.bitrate != priv->common.settings().bitrate ||
             settings.complexity != priv->common.settings().complexity ||
             settings.inband_fec != priv->common.settings().inband_fec ||
             settings.packet_loss_percentage != priv->common.settings().packet_loss_percentage ||
             settings.dtx != priv->common.settings().dtx) {
    priv->common.update(settings);
    for (auto &v : block->inputs)
      if (auto *own = GST_MIX_MINUS_PAD(v.pad)->own)
        own->enc.update(settings);
  }

  /* Own streams follow the slots: a new holder starts from the shared stream's state (and the
   * part of the frame already mixed); a former holder hands over after HANDOVER_MS. */
  const size_t pending_before = priv->common_pending.size();
  for (size_t i = 0; i < n_in; i++) {
    auto *mpad = GST_MIX_MINUS_PAD(block->inputs[i].pad);
    if (mpad->mode != FeedMode::Opus || !srcs[i]) {
      delete mpad->own;
      mpad->own = nullptr;
      continue;
    }
    if (slot[i] >= 0) {
      if (!mpad->own) {
        mpad->own = new OwnStream();
        mpad->own->pending = priv->common_pending;
      }
      mpad->own->handover_frames = -1;
    } else if (mpad->own && mpad->own->handover_frames < 0) {
      mpad->own->handover_frames = std::max<int>(1, HANDOVER_MS / frame_ms);
    }
  }
  priv->common_pending.insert(priv->common_pending.end(), common_pcm, common_pcm + block->bytes);
  for (size_t i = 0; i < n_in; i++) {
    auto *own = GST_MIX_MINUS_PAD(block->inputs[i].pad)->own;
    if (!own)
      continue;
    const uint8_t *pcm = slot[i] >= 0 ? own_pcm(i) : common_pcm;
    own->pending.insert(own->pending.end(), pcm, pcm + block->bytes);
  }

  /* Every complete frame. */
  const GstClockTime frame_dur = gst_util_uint64_scale_round(frame, GST_SECOND, rate);
  size_t consumed = 0;
  uint8_t packet[4000];
  while (priv->common_pending.size() - consumed >= frame_bytes) {
    /* the frame starts `pending_before - consumed` bytes before this block */
    const int64_t back = static_cast<int64_t>(pending_before) - static_cast<int64_t>(consumed);
    const GstClockTime pts =
        block->pts - std::min<GstClockTime>(
                         block->pts, gst_util_uint64_scale_round(back / bpf, GST_SECOND, rate));
    for (auto &v : block->inputs) {
      auto *own = GST_MIX_MINUS_PAD(v.pad)->own;
      if (own && own->need_clone) {
        own->enc.clone_from(priv->common);
        own->need_clone = false;
      }
    }
    guint64 encodes = 1;
    int size = priv->common.encode(priv->common_pending.data() + consumed, block->format, frame,
                                   packet, sizeof(packet));
    GstBuffer *shared = nullptr;
    if (size > 0)
      shared = packet_buffer(packet, size, pts, frame_dur, priv->opus_discont);
    else
      GST_WARNING_OBJECT(self, "Opus encoding failed (%d): a frame is dropped", size);
    for (size_t i = 0; i < n_in; i++) {
      auto *mpad = GST_MIX_MINUS_PAD(block->inputs[i].pad);
      if (mpad->mode != FeedMode::Opus || !srcs[i])
        continue;
      GstBuffer *out = nullptr;
      if (auto *own = mpad->own) {
        encodes++;
        const int sz = own->enc.encode(own->pending.data() + consumed, block->format, frame, packet,
                                       sizeof(packet));
        if (sz > 0)
          out = packet_buffer(packet, sz, pts, frame_dur, priv->opus_discont);
        if (own->handover_frames > 0 && --own->handover_frames == 0) {
          GST_DEBUG_OBJECT(srcs[i], "handed over to the shared Opus stream");
          delete own;
          mpad->own = nullptr;
        }
      } else if (shared) {
        out = gst_buffer_ref(shared);
      }
      if (out)
        flow->add(gst_costream_mixer_pad_push(srcs[i], out));
    }
    if (shared)
      gst_buffer_unref(shared);
    priv->opus_discont = false;
    consumed += frame_bytes;
    GST_OBJECT_LOCK(self);
    priv->opus_frames++;
    priv->opus_encodes += encodes;
    GST_OBJECT_UNLOCK(self);
  }
  if (consumed > 0) {
    priv->common_pending.erase(priv->common_pending.begin(),
                               priv->common_pending.begin() + consumed);
    for (auto &v : block->inputs)
      if (auto *own = GST_MIX_MINUS_PAD(v.pad)->own)
        own->pending.erase(own->pending.begin(), own->pending.begin() + consumed);
  }
}

} // namespace

static GstFlowReturn gst_mix_minus_output(GstCostreamMixer *mixer, GstCostreamMixerBlock *block) {
  auto *self = GST_MIX_MINUS(mixer);
  auto *priv = self->priv;
  const double block_ms = 1000.0 * block->frames / GST_AUDIO_INFO_RATE(&block->info);

  GST_OBJECT_LOCK(self);
  const SlotConfig config = priv->config;
  GST_OBJECT_UNLOCK(self);

  /* Who holds a slot. */
  const size_t n_in = block->inputs.size();
  std::vector<SpeakerSlots::Input> levels;
  levels.reserve(n_in);
  for (auto &v : block->inputs)
    levels.push_back({GST_MIX_MINUS_PAD(v.pad)->index, v.level, v.present && v.gain > 0.f});
  std::vector<SlotEvent> events;
  std::vector<int> slot(n_in);
  std::vector<GstPad *> srcs(n_in, nullptr);
  {
    std::lock_guard<std::mutex> lk(priv->lock);
    priv->slots.configure(config);
    priv->slots.update(levels, block_ms, &events);
    for (size_t i = 0; i < n_in; i++) {
      auto *mpad = GST_MIX_MINUS_PAD(block->inputs[i].pad);
      slot[i] = priv->slots.slot_of(mpad->index, i);
      if (mpad->srcpad)
        srcs[i] = GST_PAD(gst_object_ref(mpad->srcpad));
    }
  }
  auto contributes = [&](size_t i) {
    const auto &v = block->inputs[i];
    return slot[i] >= 0 && v.frames_with_data > 0 && v.gain > 0.f;
  };

  /* The common mix: every holder once. */
  size_t heard = 0;
  priv->acc.reset(block->format, block->samples);
  for (size_t i = 0; i < n_in; i++) {
    if (contributes(i)) {
      priv->acc.add(block->inputs[i].data, block->samples, block->inputs[i].gain);
      heard++;
    }
  }
  GstBuffer *common = new_block_buffer(block, heard > 0 ? &priv->acc : nullptr);
  GstMapInfo common_map;
  gst_buffer_map(common, &common_map, GST_MAP_READ);

  /* A holder's mix: the common sum minus their own block (silence when alone in the slots). */
  auto own_mix = [&](size_t i, uint8_t *out) {
    if (!contributes(i)) {
      memcpy(out, common_map.data, block->bytes);
    } else if (heard > 1) {
      priv->own = priv->acc;
      priv->own.subtract(block->inputs[i].data, block->samples, block->inputs[i].gain);
      priv->own.store(out);
    } else {
      memset(out, 0, block->bytes);
    }
  };

  /* Raw return feeds: the common buffer itself, or a holder's own mix. */
  FlowSummary flow;
  for (size_t i = 0; i < n_in; i++) {
    GstPad *src = srcs[i];
    if (!src)
      continue;
    auto *mpad = GST_MIX_MINUS_PAD(block->inputs[i].pad);
    prepare_src(self, mpad, src);
    if (mpad->mode != FeedMode::Raw)
      continue;
    GstBuffer *out;
    if (slot[i] >= 0) {
      out = new_block_buffer(block, nullptr);
      GST_BUFFER_FLAG_UNSET(out, GST_BUFFER_FLAG_GAP);
      GstMapInfo map;
      gst_buffer_map(out, &map, GST_MAP_WRITE);
      own_mix(i, map.data);
      gst_buffer_unmap(out, &map);
    } else {
      out = gst_buffer_ref(common);
    }
    const GstFlowReturn r = gst_costream_mixer_pad_push(src, out);
    if (r != GST_FLOW_OK && r != GST_FLOW_NOT_LINKED && r != GST_FLOW_FLUSHING)
      GST_WARNING_OBJECT(src, "return feed refused a buffer: %s", gst_flow_get_name(r));
    flow.add(r);
  }

  /* Opus return feeds. */
  opus_block(
      self, block, slot, srcs, common_map.data,
      [&](size_t i) {
        priv->own_pcm.resize(block->bytes);
        own_mix(i, priv->own_pcm.data());
        return static_cast<const uint8_t *>(priv->own_pcm.data());
      },
      &flow);
  gst_buffer_unmap(common, &common_map);
  gst_buffer_unref(common);

  /* Pads' properties, then the messages. */
  for (size_t i = 0; i < n_in; i++) {
    auto *mpad = GST_MIX_MINUS_PAD(block->inputs[i].pad);
    const gboolean speaking = block->inputs[i].present && block->inputs[i].gain > 0.f &&
                              block->inputs[i].level >= config.speech_threshold;
    if (mpad->slot != slot[i] || mpad->speaking != speaking) { /* only this thread writes them */
      GST_OBJECT_LOCK(mpad);
      mpad->slot = slot[i];
      mpad->speaking = speaking;
      GST_OBJECT_UNLOCK(mpad);
    }
    gst_costream_mixer_pad_set_active(block->inputs[i].pad, slot[i] >= 0);
  }
  const GstClockTime running_time =
      gst_util_uint64_scale_round(block->offset, GST_SECOND, GST_AUDIO_INFO_RATE(&block->info));
  for (const auto &e : events) {
    GstPad *pad = nullptr;
    for (auto &v : block->inputs)
      if (GST_MIX_MINUS_PAD(v.pad)->index == e.id)
        pad = GST_PAD(v.pad);
    if (!pad)
      continue;
    GST_DEBUG_OBJECT(pad, "%s slot %d", e.kind == SlotEvent::Pin ? "pinned to" : "unpinned from",
                     e.slot);
    gst_element_post_message(
        GST_ELEMENT(self),
        slot_message(self, e.kind == SlotEvent::Pin ? "mixminus-pin" : "mixminus-unpin", e.slot,
                     pad, running_time));
  }
  for (auto *s : srcs)
    if (s)
      gst_object_unref(s);

  GST_OBJECT_LOCK(self);
  priv->blocks_out++;
  for (const auto &e : events)
    priv->pins += e.kind == SlotEvent::Pin;
  GST_OBJECT_UNLOCK(self);
  return flow.result();
}

/* Events for the outputs: flushes reach every return feed; the others only feeds that started
 * (a feed's first buffer brings its own stream-start, caps and segment). */
static gboolean gst_mix_minus_push_event(GstCostreamMixer *mixer, GstEvent *event) {
  const bool flush = GST_EVENT_TYPE(event) == GST_EVENT_FLUSH_START ||
                     GST_EVENT_TYPE(event) == GST_EVENT_FLUSH_STOP;
  gboolean ok = TRUE;
  for (auto *p : gst_costream_mixer_get_src_pads(mixer)) {
    if (flush || gst_costream_feed_pad_started(GST_COSTREAM_FEED_PAD(p)))
      ok = gst_costream_mixer_pad_push_event(p, gst_event_ref(event)) && ok;
    gst_object_unref(p);
  }
  gst_event_unref(event);
  return ok;
}

/* The base's answer, plus for an Opus feed the wait for a whole frame beyond one block. */
static gboolean gst_mix_minus_src_query(GstPad *pad, GstObject *parent, GstQuery *query) {
  if (!gst_costream_mixer_src_query(pad, parent, query))
    return FALSE;
  if (GST_QUERY_TYPE(query) != GST_QUERY_LATENCY)
    return TRUE;
  GstCaps *caps = gst_pad_get_current_caps(pad);
  const bool opus = caps && gst_structure_has_name(gst_caps_get_structure(caps, 0), "audio/x-opus");
  if (caps)
    gst_caps_unref(caps);
  if (!opus)
    return TRUE;
  auto *self = GST_MIX_MINUS(parent);
  guint64 block = 0;
  g_object_get(self, "output-buffer-duration", &block, nullptr);
  GST_OBJECT_LOCK(self);
  const GstClockTime frame = self->priv->opus.frame_ms * GST_MSECOND;
  GST_OBJECT_UNLOCK(self);
  if (frame <= block)
    return TRUE;
  gboolean live;
  GstClockTime min, max;
  gst_query_parse_latency(query, &live, &min, &max);
  min += frame - block;
  if (GST_CLOCK_TIME_IS_VALID(max))
    max += frame - block;
  gst_query_set_latency(query, live, min, max);
  return TRUE;
}

static void gst_mix_minus_pad_added(GstCostreamMixer *mixer, GstCostreamMixerPad *pad) {
  auto *self = GST_MIX_MINUS(mixer);
  auto *mpad = GST_MIX_MINUS_PAD(pad);
  const guint index = mpad->index; /* see gst_mix_minus_pad_constructed */
  gchar *name = g_strdup_printf("src_%u", index);
  GstPadTemplate *templ = gst_element_class_get_pad_template(GST_ELEMENT_GET_CLASS(self), "src_%u");
  GstPad *src = gst_costream_mixer_new_feed_pad(mixer, templ, name);
  g_free(name);
  gst_pad_set_query_function(src, GST_DEBUG_FUNCPTR(gst_mix_minus_src_query));
  gst_pad_use_fixed_caps(src);
  {
    std::lock_guard<std::mutex> lk(self->priv->lock);
    mpad->srcpad = GST_PAD(gst_object_ref(src));
  }
  GST_DEBUG_OBJECT(self, "participant %u joined", index);
  gst_element_add_pad(GST_ELEMENT(self), src);
}

static void gst_mix_minus_pad_removed(GstCostreamMixer *mixer, GstCostreamMixerPad *pad) {
  auto *self = GST_MIX_MINUS(mixer);
  auto *mpad = GST_MIX_MINUS_PAD(pad);
  GstPad *src;
  std::vector<SlotEvent> events;
  {
    std::lock_guard<std::mutex> lk(self->priv->lock);
    src = mpad->srcpad;
    mpad->srcpad = nullptr;
    self->priv->slots.remove(mpad->index, &events);
  }
  for (const auto &e : events)
    gst_element_post_message(GST_ELEMENT(self), slot_message(self, "mixminus-unpin", e.slot,
                                                             GST_PAD(pad), GST_CLOCK_TIME_NONE));
  GST_DEBUG_OBJECT(self, "participant %u left", mpad->index);
  if (src) {
    /* The feed's thread may be held downstream (a prerolled sink, a full queue): flush it out so
     * that stopping the thread does not wait on it, then leave the peer usable again. */
    GstPad *peer = gst_pad_get_peer(src);
    if (peer)
      gst_pad_send_event(peer, gst_event_new_flush_start());
    gst_pad_set_active(src, FALSE);
    if (peer) {
      gst_pad_send_event(peer, gst_event_new_flush_stop(TRUE));
      gst_object_unref(peer);
    }
    gst_element_remove_pad(GST_ELEMENT(self), src);
    gst_object_unref(src);
  }
}

/* The participant's streaming thread: its copy of the element's slot configuration, refreshed
 * under the element lock only when the configuration changed (one lock for every participant's
 * every buffer otherwise). */
static const SlotConfig &participant_config(GstMixMinus *self, GstMixMinusPad *mpad) {
  if (mpad->config_generation != self->priv->config_generation.load(std::memory_order_acquire)) {
    GST_OBJECT_LOCK(self);
    mpad->config = self->priv->config;
    mpad->config_generation = self->priv->config_generation;
    GST_OBJECT_UNLOCK(self);
  }
  return mpad->config;
}

/* A talker's streaming thread: an Opus packet whose RFC 6464 level says the participant is not
 * speaking, from a participant without a slot, is not decoded (nobody could hear it). Slot
 * holders and speaking challengers are. */
static gboolean gst_mix_minus_skip_decode(GstCostreamMixer *mixer, GstCostreamMixerPad *pad,
                                          double level_dbov) {
  auto *mpad = GST_MIX_MINUS_PAD(pad);
  const SlotConfig &config = participant_config(GST_MIX_MINUS(mixer), mpad);
  GST_OBJECT_LOCK(pad);
  const gint slot = mpad->slot;
  GST_OBJECT_UNLOCK(pad);
  return config.max_speakers != 0 && slot < 0 && level_dbov < config.speech_threshold;
}

/* A participant's raw samples are kept only while someone could hear them. Nobody can once the
 * participant holds no slot and its level has stayed under the speech threshold (less this
 * margin, for the difference between the meter run over its buffers here and over the output's
 * blocks) longer than the slot timeout (plus this guard): a slot is taken only while speaking and
 * given up after slot-timeout of silence, so no slot can be held by the time those samples are
 * mixed, however far ahead of the output they arrive. Its level still counts: it may still take a
 * slot as soon as it speaks. */
constexpr double kUnheardMarginDb = 6.0;
constexpr double kUnheardGuardMs = 100.0;

static gboolean gst_mix_minus_samples_unheard(GstCostreamMixer *mixer, GstCostreamMixerPad *pad,
                                              double level_dbov, double ms) {
  auto *mpad = GST_MIX_MINUS_PAD(pad);
  const SlotConfig &config = participant_config(GST_MIX_MINUS(mixer), mpad);
  if (level_dbov >= config.speech_threshold - kUnheardMarginDb) {
    mpad->quiet_ms = 0.0;
    return FALSE;
  }
  mpad->quiet_ms += ms;
  if (config.max_speakers == 0 || mpad->quiet_ms < config.slot_timeout_ms + kUnheardGuardMs)
    return FALSE;
  GST_OBJECT_LOCK(pad);
  const gint slot = mpad->slot;
  GST_OBJECT_UNLOCK(pad);
  return slot < 0;
}

static void gst_mix_minus_reset(GstCostreamMixer *mixer) {
  auto *self = GST_MIX_MINUS(mixer);
  std::vector<SlotEvent> events;
  {
    std::lock_guard<std::mutex> lk(self->priv->lock);
    self->priv->slots.clear(&events);
  }
  /* (output thread stopped) */
  self->priv->common.reset();
  self->priv->common_pending.clear();
  self->priv->opus_discont = true;
  auto pads = gst_costream_mixer_get_pads(mixer);
  for (auto *p : pads) {
    auto *mpad = GST_MIX_MINUS_PAD(p);
    mpad->caps_generation = 0;
    mpad->quiet_ms = 0.0; /* (no participant streams in READY) */
    delete mpad->own;
    mpad->own = nullptr;
    GST_OBJECT_LOCK(mpad);
    mpad->slot = -1;
    mpad->speaking = FALSE;
    GST_OBJECT_UNLOCK(mpad);
    gst_costream_mixer_pad_set_active(p, FALSE);
  }
  gst_costream_mixer_release_pads(pads);
  GST_OBJECT_LOCK(self);
  self->priv->blocks_out = self->priv->pins = 0;
  self->priv->opus_frames = self->priv->opus_encodes = 0;
  GST_OBJECT_UNLOCK(self);
}

/* A participant's return feed in their `talker` stats: what it dropped because its downstream did
 * not keep up (live). */
static void gst_mix_minus_pad_stats(GstCostreamMixer *mixer, GstCostreamMixerPad *pad,
                                    GstStructure *stats) {
  auto *self = GST_MIX_MINUS(mixer);
  GstPad *src = nullptr;
  {
    std::lock_guard<std::mutex> lk(self->priv->lock);
    if (auto *s = GST_MIX_MINUS_PAD(pad)->srcpad)
      src = GST_PAD(gst_object_ref(s));
  }
  guint64 dropped = 0, dropped_time = 0;
  if (src) {
    g_object_get(src, "dropped-buffers", &dropped, "dropped-time", &dropped_time, nullptr);
    gst_object_unref(src);
  }
  gst_structure_set(stats, "feed-dropped-buffers", G_TYPE_UINT64, dropped, "feed-dropped-time",
                    G_TYPE_UINT64, dropped_time, nullptr);
}

static GstStructure *gst_mix_minus_get_stats(GstMixMinus *self) {
  GstStructure *s = gst_structure_new_empty("mixminus-stats");
  GValue array = G_VALUE_INIT;
  guint active = 0;
  const guint n = gst_costream_mixer_pads_stats(GST_COSTREAM_MIXER(self), &array, &active);
  GST_OBJECT_LOCK(self);
  gst_structure_set(s, "participants", G_TYPE_UINT, n, "speakers", G_TYPE_UINT, active, "blocks",
                    G_TYPE_UINT64, self->priv->blocks_out, "pins", G_TYPE_UINT64, self->priv->pins,
                    "opus-frames", G_TYPE_UINT64, self->priv->opus_frames, "opus-encodes",
                    G_TYPE_UINT64, self->priv->opus_encodes, nullptr);
  GST_OBJECT_UNLOCK(self);
  gst_structure_take_value(s, "pads", &array);
  return s;
}

static void gst_mix_minus_set_property(GObject *object, guint prop_id, const GValue *value,
                                       GParamSpec *pspec) {
  auto *self = GST_MIX_MINUS(object);
  auto &c = self->priv->config;
  if (prop_id == PROP_FEED_QUEUE_TIME) { /* kept by the base class */
    gst_costream_mixer_set_feed_queue_time(GST_COSTREAM_MIXER(self), g_value_get_uint64(value));
    return;
  }
  GST_OBJECT_LOCK(self);
  if (costream::opus_props_set(&self->priv->opus, PROP_OPUS_FIRST, prop_id, value, "mixminus")) {
    GST_OBJECT_UNLOCK(self);
    return;
  }
  self->priv->config_generation++;
  switch (prop_id) {
  case PROP_MAX_SPEAKERS:
    c.max_speakers = g_value_get_uint(value);
    break;
  case PROP_SPEECH_THRESHOLD:
    c.speech_threshold = g_value_get_double(value);
    break;
  case PROP_SWITCH_THRESHOLD:
    c.switch_threshold = g_value_get_double(value);
    break;
  case PROP_SWITCH_HOLD:
    c.switch_hold_ms = g_value_get_uint(value);
    break;
  case PROP_SLOT_TIMEOUT:
    c.slot_timeout_ms = g_value_get_uint(value);
    break;
  default:
    G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec);
    break;
  }
  GST_OBJECT_UNLOCK(self);
}

static void gst_mix_minus_get_property(GObject *object, guint prop_id, GValue *value,
                                       GParamSpec *pspec) {
  auto *self = GST_MIX_MINUS(object);
  if (prop_id == PROP_STATS) {
    g_value_take_boxed(value, gst_mix_minus_get_stats(self));
    return;
  }
  const auto &c = self->priv->config;
  if (prop_id == PROP_FEED_QUEUE_TIME) { /* kept by the base class */
    g_value_set_uint64(value, gst_costream_mixer_get_feed_queue_time(GST_COSTREAM_MIXER(self)));
    return;
  }
  GST_OBJECT_LOCK(self);
  if (costream::opus_props_get(self->priv->opus, PROP_OPUS_FIRST, prop_id, value)) {
    GST_OBJECT_UNLOCK(self);
    return;
  }
  switch (prop_id) {
  case PROP_MAX_SPEAKERS:
    g_value_set_uint(value, c.max_speakers);
    break;
  case PROP_SPEECH_THRESHOLD:
    g_value_set_double(value, c.speech_threshold);
    break;
  case PROP_SWITCH_THRESHOLD:
    g_value_set_double(value, c.switch_threshold);
    break;
  case PROP_SWITCH_HOLD:
    g_value_set_uint(value, static_cast<guint>(c.switch_hold_ms));
    break;
  case PROP_SLOT_TIMEOUT:
    g_value_set_uint(value, static_cast<guint>(c.slot_timeout_ms));
    break;
  default:
    G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec);
    break;
  }
  GST_OBJECT_UNLOCK(self);
}

static void gst_mix_minus_finalize(GObject *object) {
  auto *self = GST_MIX_MINUS(object);
  if (self->priv->caps)
    gst_caps_unref(self->priv->caps);
  if (self->priv->opus_caps)
    gst_caps_unref(self->priv->opus_caps);
  delete self->priv;
  self->priv = nullptr;
  G_OBJECT_CLASS(gst_mix_minus_parent_class)->finalize(object);
}

static void gst_mix_minus_class_init(GstMixMinusClass *klass) {
  auto *gobject_class = G_OBJECT_CLASS(klass);
  auto *element_class = GST_ELEMENT_CLASS(klass);
  auto *mixer_class = GST_COSTREAM_MIXER_CLASS(klass);

  GST_DEBUG_CATEGORY_INIT(gst_mix_minus_debug, "mixminus", 0, "costream mix-minus mixer");

  gobject_class->set_property = gst_mix_minus_set_property;
  gobject_class->get_property = gst_mix_minus_get_property;
  gobject_class->finalize = gst_mix_minus_finalize;

  mixer_class->negotiate = GST_DEBUG_FUNCPTR(gst_mix_minus_negotiate);
  mixer_class->output = GST_DEBUG_FUNCPTR(gst_mix_minus_output);
  mixer_class->push_event = GST_DEBUG_FUNCPTR(gst_mix_minus_push_event);
  mixer_class->pad_added = GST_DEBUG_FUNCPTR(gst_mix_minus_pad_added);
  mixer_class->pad_removed = GST_DEBUG_FUNCPTR(gst_mix_minus_pad_removed);
  mixer_class->reset = GST_DEBUG_FUNCPTR(gst_mix_minus_reset);
  mixer_class->skip_decode = GST_DEBUG_FUNCPTR(gst_mix_minus_skip_decode);
  mixer_class->samples_unheard = GST_DEBUG_FUNCPTR(gst_mix_minus_samples_unheard);
  mixer_class->pad_stats = GST_DEBUG_FUNCPTR(gst_mix_minus_pad_stats);

  const auto rw = static_cast<GParamFlags>(G_PARAM_READWRITE | GST_PARAM_MUTABLE_PLAYING |
                                           G_PARAM_STATIC_STRINGS);
  /**
   * GstMixMinus:max-speakers:
   *
   * How many participants are heard at once (0: everyone).
   */
  g_object_class_install_property(
      gobject_class, PROP_MAX_SPEAKERS,
      g_param_spec_uint("max-speakers", "Max speakers",
                        "Speaker slots: how many participants are heard at once (0 = everyone)", 0,
                        G_MAXINT, DEFAULT_MAX_SPEAKERS, rw));
  /**
   * GstMixMinus:speech-threshold:
   *
   * Smoothed level (dBov) at or above which a participant is speaking and may take a slot.
   */
  g_object_class_install_property(
      gobject_class, PROP_SPEECH_THRESHOLD,
      g_param_spec_double("speech-threshold", "Speech threshold",
                          "Level in dBov at or above which a participant counts as speaking and "
                          "may take a slot",
                          -127.0, 0.0, DEFAULT_SPEECH_THRESHOLD, rw));
  /**
   * GstMixMinus:switch-threshold:
   *
   * With every slot taken, how many dB louder than the quietest holder a challenger must be.
   */
  g_object_class_install_property(
      gobject_class, PROP_SWITCH_THRESHOLD,
      g_param_spec_double("switch-threshold", "Switch threshold",
                          "dB a challenger must be louder than the quietest slot holder to "
                          "replace it",
                          0.0, 60.0, DEFAULT_SWITCH_THRESHOLD, rw));
  /**
   * GstMixMinus:switch-hold:
   *
   * Milliseconds a challenger must stay louder by the switch threshold before it takes the slot.
   */
  g_object_class_install_property(
      gobject_class, PROP_SWITCH_HOLD,
      g_param_spec_uint("switch-hold", "Switch hold",
                        "Milliseconds a challenger must stay louder by switch-threshold before it "
                        "takes the slot",
                        0, 60000, DEFAULT_SWITCH_HOLD, rw));
  /**
   * GstMixMinus:slot-timeout:
   *
   * Milliseconds after which a holder that is no longer speaking gives its slot up.
   */
  g_object_class_install_property(
      gobject_class, PROP_SLOT_TIMEOUT,
      g_param_spec_uint("slot-timeout", "Slot timeout",
                        "Milliseconds below the speech threshold after which a holder gives its "
                        "slot up",
                        0, 600000, DEFAULT_SLOT_TIMEOUT, rw));
  /* Opus feeds: bitrate, complexity, frame-duration, inband-fec, dtx, packet-loss-percentage */
  costream::OpusPropsClass opus;
  opus.prefix = "Opus feeds: ";
  opus.bitrate_blurb = "bits per second of every encoder (0 = libopus chooses)";
  opus.defaults = default_opus_props();
  costream::opus_props_install(gobject_class, PROP_OPUS_FIRST, opus);
  /**
   * GstMixMinus:feed-queue-time:
   *
   * Each return feed (src pad) has a streaming thread and a queue of its own, so a downstream
   * that is slow, blocked or prerolling holds up only its own feed. Live, a feed queues at most
   * this much audio: beyond it, its oldest buffers are dropped and counted on the src pad
   * (`dropped-buffers`). Non-live, the room waits for a full feed instead (nothing is lost; a
   * non-live feed queues at least 1 s, pushed in batches of half its queue).
   */
  g_object_class_install_property(
      gobject_class, PROP_FEED_QUEUE_TIME,
      g_param_spec_uint64("feed-queue-time", "Return feed queue time",
                          "Most audio (ns) each src pad queues for its downstream; live, older "
                          "buffers are dropped beyond it (src pad dropped-buffers), non-live the "
                          "room waits",
                          10 * GST_MSECOND, 10 * GST_SECOND, COSTREAM_MIXER_DEFAULT_FEED_QUEUE_TIME,
                          static_cast<GParamFlags>(G_PARAM_READWRITE | GST_PARAM_MUTABLE_PLAYING |
                                                   G_PARAM_STATIC_STRINGS)));
  /**
   * GstMixMinus:stats:
   *
   * A `mixminus-stats` structure: `participants`, `speakers`, `blocks`, `pins`, `opus-frames`,
   * `opus-encodes` and `pads`, an array of one `talker` structure per participant (as in
   * backchannelmixer) with, for their return feed, `feed-dropped-buffers` and
   * `feed-dropped-time` (what the feed's downstream did not take in time, live).
   */
  g_object_class_install_property(
      gobject_class, PROP_STATS,
      g_param_spec_boxed("stats", "Statistics", "Summary of the room and every participant",
                         GST_TYPE_STRUCTURE,
                         static_cast<GParamFlags>(G_PARAM_READABLE | G_PARAM_STATIC_STRINGS)));

  gst_element_class_add_static_pad_template_with_gtype(element_class, &src_template,
                                                       GST_TYPE_COSTREAM_FEED_PAD);
  gst_element_class_add_static_pad_template_with_gtype(element_class, &sink_template,
                                                       GST_TYPE_MIX_MINUS_PAD);
  gst_element_class_set_static_metadata(
      element_class, "Mix-minus conference mixer", "Filter/Audio/Mixer",
      "Every participant hears the room's loudest voices except their own: speaker slots with "
      "hysteresis, one sum for the room, drift correction and stall timeouts",
      "costream developers");

  gst_type_mark_as_plugin_api(GST_TYPE_MIX_MINUS_PAD, static_cast<GstPluginAPIFlags>(0));
}

static void gst_mix_minus_init(GstMixMinus *self) {
  self->priv = new GstMixMinusPrivate();
  self->priv->config.max_speakers = DEFAULT_MAX_SPEAKERS;
  self->priv->config.speech_threshold = DEFAULT_SPEECH_THRESHOLD;
  self->priv->config.switch_threshold = DEFAULT_SWITCH_THRESHOLD;
  self->priv->config.switch_hold_ms = DEFAULT_SWITCH_HOLD;
  self->priv->config.slot_timeout_ms = DEFAULT_SLOT_TIMEOUT;
  self->priv->slots.configure(self->priv->config);
  self->priv->opus = default_opus_props();
}
