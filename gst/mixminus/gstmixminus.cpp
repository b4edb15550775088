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
 * the samples. A participant below `speech-threshold` does not take a slot. A free slot is taken
 * at once; when all are taken, a challenger replaces the quietest holder only after being louder
 * by `switch-threshold` dB for `switch-hold` ms, and a holder silent for `slot-timeout` ms gives
 * its slot up. Every change posts a `mixminus-pin` or `mixminus-unpin` element message (fields
 * `slot`, `pad` (the sink pad), `pad-name`, `running-time` of the first block the change applies
 * to, or NONE when the participant left); pads expose `slot`, `speaking` and `level`.
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
 *   audiotestsrc is-live=true freq=300 ! mm.sink_0  mm.src_0 ! queue ! autoaudiosink \
 *   audiotestsrc is-live=true freq=500 ! mm.sink_1  mm.src_1 ! queue ! fakesink \
 *   audiotestsrc is-live=true freq=700 ! mm.sink_2  mm.src_2 ! queue ! fakesink
 * ]| Three participants; the first one hears the other two (two slots, everyone speaks).
 *
 * |[
 * gst-launch-1.0 mixminus name=mm \
 *   mm.src_0 ! queue ! audioconvert ! wavenc ! filesink location=p0.wav \
 *   audiotestsrc num-buffers=300 freq=440 ! mm.sink_0 \
 *   audiotestsrc num-buffers=300 freq=660 ! mm.sink_1  mm.src_1 ! queue ! fakesink
 * ]| Non-live, a src pad named before its sink pad: participant 0 hears 660 Hz only.
 *
 * As with `tee`, one thread feeds every return feed: put a `queue` after each src pad whose
 * downstream may block (any sink while the pipeline prerolls, a synchronised sink). In live
 * pipelines that send to the network (`rtpbin` + `udpsink`) a `queue` per feed is still the
 * safe choice.
 */

#include "gstmixminus.h"

#include "../audio/level.h"
#include "../audio/mix.h"
#include "speakerslots.h"

#include <gst/audio/audio.h>

#include <algorithm>
#include <cstdio>
#include <mutex>
#include <vector>

GST_DEBUG_CATEGORY_STATIC(gst_mix_minus_debug);
#define GST_CAT_DEFAULT gst_mix_minus_debug

using costream::MixAccumulator;
using costream::SlotConfig;
using costream::SlotEvent;
using costream::SpeakerSlots;

#define DEFAULT_MAX_SPEAKERS 3
#define DEFAULT_SPEECH_THRESHOLD (-45.0)
#define DEFAULT_SWITCH_THRESHOLD 6.0
#define DEFAULT_SWITCH_HOLD 300
#define DEFAULT_SLOT_TIMEOUT 1500

static GstStaticPadTemplate src_template = GST_STATIC_PAD_TEMPLATE(
    "src_%u", GST_PAD_SRC, GST_PAD_SOMETIMES, GST_STATIC_CAPS(COSTREAM_MIXER_CAPS));
static GstStaticPadTemplate sink_template = GST_STATIC_PAD_TEMPLATE(
    "sink_%u", GST_PAD_SINK, GST_PAD_REQUEST, GST_STATIC_CAPS(COSTREAM_MIXER_CAPS));

/* ------------------------------------------------------------------------------------------ */
/* Pad                                                                                          */

enum {
  PROP_PAD_0,
  PROP_PAD_SLOT,
  PROP_PAD_SPEAKING,
};

struct _GstMixMinusPad {
  GstCostreamMixerPad parent;
  guint index;
  GstPad *srcpad; /* the participant's return feed (element's lock) */
  /* GST_OBJECT_LOCK (pad): */
  gint slot;
  gboolean speaking;
  /* Output thread only: */
  guint64 caps_generation; /* of the caps last sent on srcpad (0: none, needs stream-start) */
};

G_DEFINE_TYPE(GstMixMinusPad, gst_mix_minus_pad, GST_TYPE_COSTREAM_MIXER_PAD);

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
  gobject_class->get_property = gst_mix_minus_pad_get_property;
  const auto ro = static_cast<GParamFlags>(G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);
  g_object_class_install_property(
      gobject_class, PROP_PAD_SLOT,
      g_param_spec_int("slot", "Slot", "Speaker slot this participant holds (-1: none)", -1,
                       G_MAXINT, -1, ro));
  g_object_class_install_property(
      gobject_class, PROP_PAD_SPEAKING,
      g_param_spec_boolean("speaking", "Speaking",
                           "Whether the participant's level is at or above the speech threshold",
                           FALSE, ro));
}

static void gst_mix_minus_pad_init(GstMixMinusPad *pad) {
  pad->index = 0;
  pad->srcpad = nullptr;
  pad->slot = -1;
  pad->speaking = FALSE;
  pad->caps_generation = 0;
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
  PROP_STATS,
};

struct GstMixMinusPrivate {
  /* GST_OBJECT_LOCK (element): properties and counters */
  SlotConfig config;
  guint64 blocks_out = 0;
  guint64 switches = 0;

  /* Slots and the participants' src pads. Taken inside the base's locks, never around them. */
  std::mutex lock;
  SpeakerSlots slots;

  /* Output thread only: */
  GstCaps *caps = nullptr; /* of every src pad */
  guint64 caps_generation = 0;
  MixAccumulator acc;
  MixAccumulator own;
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
      GST_OBJECT(self),
      gst_structure_new(name, "slot", G_TYPE_INT, slot, "pad", GST_TYPE_PAD, pad, "pad-name",
                        G_TYPE_STRING, GST_PAD_NAME(pad), "running-time", G_TYPE_UINT64,
                        running_time, nullptr));
}

/* Every participant's src pad (with a reference each). */
std::vector<GstPad *> src_pads(GstMixMinus *self) {
  std::vector<GstPad *> pads;
  GST_OBJECT_LOCK(self);
  for (GList *l = GST_ELEMENT(self)->srcpads; l; l = l->next)
    pads.push_back(GST_PAD(gst_object_ref(l->data)));
  GST_OBJECT_UNLOCK(self);
  return pads;
}

GstCaps *fixate_output(GstCaps *caps) {
  caps = gst_caps_make_writable(caps);
  caps = gst_caps_truncate(caps);
  GstStructure *s = gst_caps_get_structure(caps, 0);
  gst_structure_fixate_field_nearest_int(s, "rate", 48000);
  gst_structure_fixate_field_nearest_int(s, "channels", 1); /* voices */
  gst_structure_fixate_field_string(s, "format", GST_AUDIO_NE(S16));
  return gst_caps_fixate(caps);
}

} // namespace

/* Output thread: one raw format for every return feed, the one all their peers accept. */
static gboolean gst_mix_minus_negotiate(GstCostreamMixer *mixer, GstAudioInfo *info) {
  auto *self = GST_MIX_MINUS(mixer);
  auto *priv = self->priv;
  GstCaps *tmpl = gst_static_pad_template_get_caps(&src_template);
  GstCaps *common = gst_caps_ref(tmpl);
  auto pads = src_pads(self);
  for (auto *p : pads) {
    gst_pad_check_reconfigure(p); /* this negotiation answers it */
    if (!gst_pad_is_linked(p))
      continue;
    GstCaps *peer = gst_pad_peer_query_caps(p, tmpl);
    GstCaps *tmp = gst_caps_intersect(common, peer);
    gst_caps_unref(common);
    gst_caps_unref(peer);
    common = tmp;
  }
  for (auto *p : pads)
    gst_object_unref(p);
  gst_caps_unref(tmpl);
  if (gst_caps_is_empty(common)) {
    gst_caps_unref(common);
    GST_ELEMENT_ERROR(self, CORE, NEGOTIATION,
                      ("The participants' outputs accept no common raw format (S16LE, S32LE or "
                       "F32LE, 8000-48000 Hz, mono or stereo)."),
                      (nullptr));
    return FALSE;
  }
  GstCaps *caps = fixate_output(common);
  if (!gst_audio_info_from_caps(info, caps)) {
    GST_ELEMENT_ERROR(self, CORE, NEGOTIATION, ("Could not fix an output format."),
                      ("caps %" GST_PTR_FORMAT, caps));
    gst_caps_unref(caps);
    return FALSE;
  }
  GST_DEBUG_OBJECT(self, "output caps %" GST_PTR_FORMAT, caps);
  if (!priv->caps || !gst_caps_is_equal(priv->caps, caps)) {
    gst_caps_replace(&priv->caps, caps);
    priv->caps_generation++;
  }
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
  if (!gst_costream_mixer_push_caps(GST_COSTREAM_MIXER(self), src, priv->caps)) {
    GST_DEBUG_OBJECT(src, "caps not accepted (yet)");
    return;
  }
  if (first)
    gst_pad_push_event(src, gst_costream_mixer_segment_event(GST_COSTREAM_MIXER(self)));
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

static GstFlowReturn gst_mix_minus_output(GstCostreamMixer *mixer, GstCostreamMixerBlock *block) {
  auto *self = GST_MIX_MINUS(mixer);
  auto *priv = self->priv;
  const double block_ms = 1000.0 * block->frames / GST_AUDIO_INFO_RATE(&block->info);

  GST_OBJECT_LOCK(self);
  const SlotConfig config = priv->config;
  GST_OBJECT_UNLOCK(self);

  /* Who holds a slot. */
  std::vector<SpeakerSlots::Input> levels;
  levels.reserve(block->inputs.size());
  for (auto &v : block->inputs)
    levels.push_back({GST_MIX_MINUS_PAD(v.pad)->index, v.level, v.present && v.gain > 0.f});
  std::vector<SlotEvent> events;
  std::vector<int> slot(block->inputs.size());
  std::vector<GstPad *> srcs(block->inputs.size(), nullptr);
  {
    std::lock_guard<std::mutex> lk(priv->lock);
    priv->slots.configure(config);
    priv->slots.update(levels, block_ms, &events);
    for (size_t i = 0; i < block->inputs.size(); i++) {
      auto *mpad = GST_MIX_MINUS_PAD(block->inputs[i].pad);
      slot[i] = priv->slots.slot_of(mpad->index);
      if (mpad->srcpad)
        srcs[i] = GST_PAD(gst_object_ref(mpad->srcpad));
    }
  }

  /* The common mix: every holder once. */
  size_t heard = 0;
  priv->acc.reset(block->format, block->samples);
  for (size_t i = 0; i < block->inputs.size(); i++) {
    const auto &v = block->inputs[i];
    if (slot[i] >= 0 && v.frames_with_data > 0 && v.gain > 0.f) {
      priv->acc.add(v.data, block->samples, v.gain);
      heard++;
    }
  }
  GstBuffer *common = new_block_buffer(block, heard > 0 ? &priv->acc : nullptr);

  /* Every return feed: the common buffer itself, or (holders) the common sum minus their own. */
  FlowSummary flow;
  for (size_t i = 0; i < block->inputs.size(); i++) {
    GstPad *src = srcs[i];
    if (!src)
      continue;
    const auto &v = block->inputs[i];
    auto *mpad = GST_MIX_MINUS_PAD(v.pad);
    prepare_src(self, mpad, src);
    GstBuffer *out;
    if (slot[i] >= 0 && v.frames_with_data > 0 && v.gain > 0.f) {
      if (heard > 1) {
        priv->own = priv->acc;
        priv->own.subtract(v.data, block->samples, v.gain);
        out = new_block_buffer(block, &priv->own);
      } else {
        out = new_block_buffer(block, nullptr); /* alone in the slots: hears silence */
      }
    } else {
      out = gst_buffer_ref(common);
    }
    const GstFlowReturn r = gst_pad_push(src, out);
    if (r != GST_FLOW_OK && r != GST_FLOW_NOT_LINKED && r != GST_FLOW_FLUSHING)
      GST_WARNING_OBJECT(src, "return feed refused a buffer: %s", gst_flow_get_name(r));
    flow.add(r);
  }
  gst_buffer_unref(common);

  /* Pads' properties, then the messages. */
  for (size_t i = 0; i < block->inputs.size(); i++) {
    auto *mpad = GST_MIX_MINUS_PAD(block->inputs[i].pad);
    const gboolean speaking = block->inputs[i].present && block->inputs[i].gain > 0.f &&
                              block->inputs[i].level >= config.speech_threshold;
    GST_OBJECT_LOCK(mpad);
    mpad->slot = slot[i];
    mpad->speaking = speaking;
    GST_OBJECT_UNLOCK(mpad);
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
    priv->switches += e.kind == SlotEvent::Pin;
  GST_OBJECT_UNLOCK(self);
  return flow.result();
}

/* Events for the outputs: flushes reach every return feed; the others only feeds that started
 * (a feed's first buffer brings its own stream-start, caps and segment). */
static gboolean gst_mix_minus_push_event(GstCostreamMixer *mixer, GstEvent *event) {
  auto *self = GST_MIX_MINUS(mixer);
  const bool flush =
      GST_EVENT_TYPE(event) == GST_EVENT_FLUSH_START || GST_EVENT_TYPE(event) == GST_EVENT_FLUSH_STOP;
  gboolean ok = TRUE;
  for (auto *p : src_pads(self)) {
    GstEvent *ss = gst_pad_get_sticky_event(p, GST_EVENT_CAPS, 0);
    if (flush || ss)
      ok = gst_pad_push_event(p, gst_event_ref(event)) && ok;
    if (ss)
      gst_event_unref(ss);
    gst_object_unref(p);
  }
  gst_event_unref(event);
  return ok;
}

static void gst_mix_minus_pad_added(GstCostreamMixer *mixer, GstCostreamMixerPad *pad) {
  auto *self = GST_MIX_MINUS(mixer);
  auto *mpad = GST_MIX_MINUS_PAD(pad);
  guint index = 0;
  sscanf(GST_PAD_NAME(pad), "sink_%u", &index);
  mpad->index = index;
  gchar *name = g_strdup_printf("src_%u", index);
  GstPad *src = gst_pad_new_from_static_template(&src_template, name);
  g_free(name);
  gst_pad_set_event_function(src, GST_DEBUG_FUNCPTR(gst_costream_mixer_src_event));
  gst_pad_set_query_function(src, GST_DEBUG_FUNCPTR(gst_costream_mixer_src_query));
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
    gst_element_post_message(GST_ELEMENT(self),
                             slot_message(self, "mixminus-unpin", e.slot, GST_PAD(pad),
                                          GST_CLOCK_TIME_NONE));
  GST_DEBUG_OBJECT(self, "participant %u left", mpad->index);
  if (src) {
    gst_pad_set_active(src, FALSE);
    gst_element_remove_pad(GST_ELEMENT(self), src);
    gst_object_unref(src);
  }
}

static void gst_mix_minus_reset(GstCostreamMixer *mixer) {
  auto *self = GST_MIX_MINUS(mixer);
  std::vector<SlotEvent> events;
  {
    std::lock_guard<std::mutex> lk(self->priv->lock);
    self->priv->slots.clear(&events);
  }
  auto pads = gst_costream_mixer_get_pads(mixer);
  for (auto *p : pads) {
    auto *mpad = GST_MIX_MINUS_PAD(p);
    mpad->caps_generation = 0;
    GST_OBJECT_LOCK(mpad);
    mpad->slot = -1;
    mpad->speaking = FALSE;
    GST_OBJECT_UNLOCK(mpad);
    gst_costream_mixer_pad_set_active(p, FALSE);
  }
  gst_costream_mixer_release_pads(pads);
  GST_OBJECT_LOCK(self);
  self->priv->blocks_out = self->priv->switches = 0;
  GST_OBJECT_UNLOCK(self);
}

static GstStructure *gst_mix_minus_get_stats(GstMixMinus *self) {
  GstStructure *s = gst_structure_new_empty("mixminus-stats");
  GValue array = G_VALUE_INIT;
  guint active = 0;
  const guint n = gst_costream_mixer_pads_stats(GST_COSTREAM_MIXER(self), &array, &active);
  GST_OBJECT_LOCK(self);
  gst_structure_set(s, "participants", G_TYPE_UINT, n, "speakers", G_TYPE_UINT, active, "blocks",
                    G_TYPE_UINT64, self->priv->blocks_out, "pins", G_TYPE_UINT64,
                    self->priv->switches, nullptr);
  GST_OBJECT_UNLOCK(self);
  gst_structure_take_value(s, "pads", &array);
  return s;
}

static void gst_mix_minus_set_property(GObject *object, guint prop_id, const GValue *value,
                                       GParamSpec *pspec) {
  auto *self = GST_MIX_MINUS(object);
  auto &c = self->priv->config;
  GST_OBJECT_LOCK(self);
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
  GST_OBJECT_LOCK(self);
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
                        "Speaker slots: how many participants are heard at once (0 = everyone)",
                        0, G_MAXINT, DEFAULT_MAX_SPEAKERS, rw));
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
  /**
   * GstMixMinus:stats:
   *
   * A `mixminus-stats` structure: `participants`, `speakers`, `blocks`, `pins` and `pads`, an
   * array of one `talker` structure per participant (as in backchannelmixer).
   */
  g_object_class_install_property(
      gobject_class, PROP_STATS,
      g_param_spec_boxed("stats", "Statistics", "Summary of the room and every participant",
                         GST_TYPE_STRUCTURE,
                         static_cast<GParamFlags>(G_PARAM_READABLE | G_PARAM_STATIC_STRINGS)));

  gst_element_class_add_static_pad_template(element_class, &src_template);
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
}
