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

#include "mixminusprivate.h"

#include <algorithm>
#include <cstdio>

GST_DEBUG_CATEGORY(gst_mix_minus_debug);
#define GST_CAT_DEFAULT gst_mix_minus_debug

using costream::SlotConfig;
using costream::SlotEvent;

static GstStaticPadTemplate src_template = GST_STATIC_PAD_TEMPLATE(
    "src_%u", GST_PAD_SRC, GST_PAD_SOMETIMES, GST_STATIC_CAPS(MIX_MINUS_SRC_CAPS));
static GstStaticPadTemplate sink_template = GST_STATIC_PAD_TEMPLATE(
    "sink_%u", GST_PAD_SINK, GST_PAD_REQUEST,
    GST_STATIC_CAPS(COSTREAM_MIXER_CAPS "; " COSTREAM_MIXER_OPUS_INPUT_CAPS));

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

G_DEFINE_TYPE(GstMixMinus, gst_mix_minus, GST_TYPE_COSTREAM_MIXER);
GST_ELEMENT_REGISTER_DEFINE(mixminus, "mixminus", GST_RANK_NONE, GST_TYPE_MIX_MINUS);

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
  const GstClockTime frame =
      costream::locked_copy(self, self->priv->settings.opus.frame_ms) * GST_MSECOND;
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
    gst_element_post_message(GST_ELEMENT(self),
                             costream::mixminus::slot_message(self, "mixminus-unpin", e.slot,
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
  if (mpad->priv->config_generation !=
      self->priv->config_generation.load(std::memory_order_acquire)) {
    costream::ObjectLock lk(self);
    mpad->priv->config = self->priv->settings.config;
    mpad->priv->config_generation = self->priv->config_generation;
  }
  return mpad->priv->config;
}

/* A participant's streaming thread: whether what it is about to keep can be heard.
 *
 * An Opus packet whose RFC 6464 level says the participant is not speaking, from a participant
 * without a slot, is not decoded (nobody could hear it). Slot holders and speaking challengers
 * are.
 *
 * Raw samples are kept only while someone could hear them. Nobody can once the participant holds
 * no slot and its level has stayed under the speech threshold (less kUnheardMarginDb, for the
 * difference between the meter run over its buffers here and over the output's blocks) longer
 * than the slot timeout (plus kUnheardGuardMs): a slot is taken only while speaking and given up
 * after slot-timeout of silence, so no slot can be held by the time those samples are mixed,
 * however far ahead of the output they arrive. Its level still counts: it may still take a slot
 * as soon as it speaks. */
constexpr double kUnheardMarginDb = 6.0;
constexpr double kUnheardGuardMs = 100.0;

static gboolean gst_mix_minus_audible(GstCostreamMixer *mixer, GstCostreamMixerPad *pad,
                                      const GstCostreamMixerAudibility *a) {
  auto *mpad = GST_MIX_MINUS_PAD(pad);
  const SlotConfig &config = participant_config(GST_MIX_MINUS(mixer), mpad);
  if (a->packet_level) {
    if (config.max_speakers == 0 || a->level_dbov >= config.speech_threshold)
      return TRUE;
  } else {
    if (a->level_dbov >= config.speech_threshold - kUnheardMarginDb) {
      mpad->priv->quiet_ms = 0.0;
      return TRUE;
    }
    mpad->priv->quiet_ms += a->ms;
    if (config.max_speakers == 0 || mpad->priv->quiet_ms < config.slot_timeout_ms + kUnheardGuardMs)
      return TRUE;
  }
  return costream::locked_copy(pad, mpad->slot) >= 0;
}

static void gst_mix_minus_reset(GstCostreamMixer *mixer) {
  auto *self = GST_MIX_MINUS(mixer);
  std::vector<SlotEvent> events;
  {
    std::lock_guard<std::mutex> lk(self->priv->lock);
    self->priv->slots.clear(&events);
  }
  /* (output thread stopped) */
  self->priv->opus_feeds.reset();
  auto pads = gst_costream_mixer_get_pads(mixer);
  for (auto *p : pads) {
    auto *mpad = GST_MIX_MINUS_PAD(p);
    mpad->priv->caps_generation = 0;
    mpad->priv->quiet_ms = 0.0; /* (no participant streams in READY) */
    {
      costream::ObjectLock lk(mpad);
      mpad->slot = -1;
      mpad->speaking = FALSE;
    }
    gst_costream_mixer_pad_set_active(p, FALSE);
  }
  gst_costream_mixer_release_pads(pads);
  costream::ObjectLock lk(self);
  self->priv->blocks_out = self->priv->pins = 0;
  self->priv->opus_frames = self->priv->opus_encodes = 0;
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
  {
    costream::ObjectLock lk(self);
    gst_structure_set(s, "participants", G_TYPE_UINT, n, "speakers", G_TYPE_UINT, active, "blocks",
                      G_TYPE_UINT64, self->priv->blocks_out, "pins", G_TYPE_UINT64,
                      self->priv->pins, "opus-frames", G_TYPE_UINT64, self->priv->opus_frames,
                      "opus-encodes", G_TYPE_UINT64, self->priv->opus_encodes, nullptr);
  }
  gst_structure_take_value(s, "pads", &array);
  return s;
}

static void gst_mix_minus_set_property(GObject *object, guint prop_id, const GValue *value,
                                       GParamSpec *pspec) {
  auto *self = GST_MIX_MINUS(object);
  auto &c = self->priv->settings.config;
  if (prop_id == PROP_FEED_QUEUE_TIME) { /* kept by the base class */
    gst_costream_mixer_set_feed_queue_time(GST_COSTREAM_MIXER(self), g_value_get_uint64(value));
    return;
  }
  costream::ObjectLock lk(self);
  if (costream::opus_props_set(&self->priv->settings.opus, PROP_OPUS_FIRST, prop_id, value,
                               "mixminus"))
    return;
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
}

static void gst_mix_minus_get_property(GObject *object, guint prop_id, GValue *value,
                                       GParamSpec *pspec) {
  auto *self = GST_MIX_MINUS(object);
  if (prop_id == PROP_STATS) {
    g_value_take_boxed(value, gst_mix_minus_get_stats(self));
    return;
  }
  const auto &c = self->priv->settings.config;
  if (prop_id == PROP_FEED_QUEUE_TIME) { /* kept by the base class */
    g_value_set_uint64(value, gst_costream_mixer_get_feed_queue_time(GST_COSTREAM_MIXER(self)));
    return;
  }
  costream::ObjectLock lk(self);
  if (costream::opus_props_get(self->priv->settings.opus, PROP_OPUS_FIRST, prop_id, value))
    return;
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

  mixer_class->negotiate = GST_DEBUG_FUNCPTR(costream::mixminus::negotiate);
  mixer_class->output = GST_DEBUG_FUNCPTR(costream::mixminus::output);
  mixer_class->push_event = GST_DEBUG_FUNCPTR(costream::mixminus::push_event);
  mixer_class->pad_added = GST_DEBUG_FUNCPTR(gst_mix_minus_pad_added);
  mixer_class->pad_removed = GST_DEBUG_FUNCPTR(gst_mix_minus_pad_removed);
  mixer_class->reset = GST_DEBUG_FUNCPTR(gst_mix_minus_reset);
  mixer_class->audible = GST_DEBUG_FUNCPTR(gst_mix_minus_audible);
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
  self->priv->settings.config.max_speakers = DEFAULT_MAX_SPEAKERS;
  self->priv->settings.config.speech_threshold = DEFAULT_SPEECH_THRESHOLD;
  self->priv->settings.config.switch_threshold = DEFAULT_SWITCH_THRESHOLD;
  self->priv->settings.config.switch_hold_ms = DEFAULT_SWITCH_HOLD;
  self->priv->settings.config.slot_timeout_ms = DEFAULT_SLOT_TIMEOUT;
  self->priv->slots.configure(self->priv->settings.config);
  self->priv->settings.opus = default_opus_props();
}
