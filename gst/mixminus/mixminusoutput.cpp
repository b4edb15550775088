/* costream
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * mixminus's output thread: which return feeds are raw and which Opus (negotiate), then per block
 * (output): slots -> the common mix -> raw feeds (the common buffer, or a holder's mix without
 * themselves) -> Opus feeds (OpusFeeds) -> the pads' slot/speaking and the pin/unpin messages.
 */

#include "mixminusprivate.h"

#include <algorithm>
#include <cstring>
#include <string>

#define GST_CAT_DEFAULT gst_mix_minus_debug

using costream::MixAccumulator;
using costream::SlotConfig;
using costream::SlotEvent;
using costream::SpeakerSlots;

static GstStaticCaps src_caps = GST_STATIC_CAPS(MIX_MINUS_SRC_CAPS);
static GstStaticCaps raw_caps = GST_STATIC_CAPS(COSTREAM_MIXER_CAPS);
static GstStaticCaps opus_caps = GST_STATIC_CAPS(OPUS_CAPS);

GstMessage *costream::mixminus::slot_message(GstMixMinus *self, const char *name, int slot,
                                             GstPad *pad, GstClockTime running_time) {
  return gst_message_new_element(
      GST_OBJECT(self), gst_structure_new(name, "slot", G_TYPE_INT, slot, "pad", GST_TYPE_PAD, pad,
                                          "pad-name", G_TYPE_STRING, GST_PAD_NAME(pad),
                                          "running-time", G_TYPE_UINT64, running_time, nullptr));
}

/* Output thread: each return feed is raw or Opus (what its peer takes; raw when both), and
 * every raw feed gets the one raw format all their peers accept. With Opus feeds the mix runs
 * at a rate Opus encodes. */
gboolean costream::mixminus::negotiate(GstCostreamMixer *mixer, GstAudioInfo *info) {
  auto *self = GST_MIX_MINUS(mixer);
  auto *priv = self->priv;
  GstCaps *tmpl = gst_static_caps_get(&src_caps);
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
        modes_changed |= mode != mpad->priv->mode;
        mpad->priv->mode = mode;
        if (mpad->priv->mode == FeedMode::Raw) {
          GstCaps *tmp = gst_caps_intersect(common, peer);
          gst_caps_unref(common);
          common = tmp;
        }
        any_opus |= mpad->priv->mode == FeedMode::Opus;
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
  if (mpad->priv->caps_generation == priv->caps_generation)
    return;
  const bool first = mpad->priv->caps_generation == 0;
  GstCaps *caps = mpad->priv->mode == FeedMode::Opus ? priv->opus_caps : priv->caps;
  if (!gst_costream_mixer_push_caps(GST_COSTREAM_MIXER(self), src, caps)) {
    GST_DEBUG_OBJECT(src, "caps not accepted (yet)");
    return;
  }
  if (first)
    gst_costream_mixer_pad_push_event(src,
                                      gst_costream_mixer_segment_event(GST_COSTREAM_MIXER(self)));
  mpad->priv->caps_generation = priv->caps_generation;
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
 * for participant i (holders). Every Opus listener without an own stream gets the shared packet
 * (one buffer, a reference each). */
void opus_block(GstMixMinus *self, GstCostreamMixerBlock *block, const std::vector<int> &slot,
                const std::vector<GstPad *> &srcs, const uint8_t *common_pcm,
                const costream::OpusProps &props, const costream::OpusFeeds::OwnPcm &own_pcm,
                FlowSummary *flow) {
  auto *priv = self->priv;
  std::vector<costream::OpusFeeds::Listener> listeners;
  std::vector<size_t> input_of; /* listener -> block input */
  for (size_t i = 0; i < block->inputs.size(); i++) {
    auto *mpad = GST_MIX_MINUS_PAD(block->inputs[i].pad);
    if (!srcs[i] || mpad->priv->mode != FeedMode::Opus)
      continue;
    listeners.push_back({mpad->index, slot[i] >= 0});
    input_of.push_back(i);
  }
  if (listeners.empty())
    return;
  costream::OpusFeeds::Config cfg;
  cfg.settings = props.settings;
  cfg.frame_ms = static_cast<int>(props.frame_ms);
  cfg.handover_ms = HANDOVER_MS;
  const guint rate = GST_AUDIO_INFO_RATE(&block->info);
  const costream::AudioLayout layout{
      block->format, static_cast<unsigned>(GST_AUDIO_INFO_CHANNELS(&block->info)), rate};
  guint64 frames = 0, encodes = 0;
  auto on_frame = [&](const costream::OpusFeeds::Frame &f) {
    const GstClockTime offset = gst_util_uint64_scale_round(
        static_cast<guint64>(f.start < 0 ? -f.start : f.start), GST_SECOND, rate);
    const GstClockTime pts =
        f.start < 0 ? block->pts - std::min(block->pts, offset) : block->pts + offset;
    const GstClockTime dur = gst_util_uint64_scale_round(f.frames, GST_SECOND, rate);
    GstBuffer *shared = nullptr;
    if (f.shared.size > 0)
      shared = packet_buffer(f.shared.data, f.shared.size, pts, dur, f.discont);
    else
      GST_WARNING_OBJECT(self, "Opus encoding failed (%d): a frame is dropped", f.shared.size);
    for (size_t l = 0; l < listeners.size(); l++) {
      const auto &p = f.packets[l];
      GstBuffer *out = nullptr;
      if (p.shared)
        out = shared ? gst_buffer_ref(shared) : nullptr;
      else if (p.size > 0)
        out = packet_buffer(p.data, p.size, pts, dur, f.discont);
      if (out)
        flow->add(gst_costream_mixer_pad_push(srcs[input_of[l]], out));
    }
    if (shared)
      gst_buffer_unref(shared);
    frames++;
    encodes += f.encodes;
  };
  std::string why;
  if (!priv->opus_feeds.block(
          cfg, layout, common_pcm, block->bytes, listeners,
          [&](size_t l) { return own_pcm(input_of[l]); }, on_frame, &why)) {
    GST_ELEMENT_ERROR(self, LIBRARY, INIT, ("Could not create an Opus encoder."),
                      ("%s", why.c_str()));
    flow->add(GST_FLOW_ERROR);
    return;
  }
  costream::ObjectLock lk(self);
  priv->opus_frames += frames;
  priv->opus_encodes += encodes;
}

} // namespace

GstFlowReturn costream::mixminus::output(GstCostreamMixer *mixer, GstCostreamMixerBlock *block) {
  auto *self = GST_MIX_MINUS(mixer);
  auto *priv = self->priv;
  const double block_ms = 1000.0 * block->frames / GST_AUDIO_INFO_RATE(&block->info);

  const MixMinusSettings st = costream::locked_copy(self, priv->settings);
  const SlotConfig &config = st.config;

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
    if (mpad->priv->mode != FeedMode::Raw)
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
      self, block, slot, srcs, common_map.data, st.opus,
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
      costream::ObjectLock lk(mpad);
      mpad->slot = slot[i];
      mpad->speaking = speaking;
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
    gst_element_post_message(GST_ELEMENT(self),
                             costream::mixminus::slot_message(
                                 self, e.kind == SlotEvent::Pin ? "mixminus-pin" : "mixminus-unpin",
                                 e.slot, pad, running_time));
  }
  for (auto *s : srcs)
    if (s)
      gst_object_unref(s);

  costream::ObjectLock lk(self);
  priv->blocks_out++;
  for (const auto &e : events)
    priv->pins += e.kind == SlotEvent::Pin;
  return flow.result();
}

/* Events for the outputs: flushes reach every return feed; the others only feeds that started
 * (a feed's first buffer brings its own stream-start, caps and segment). */
gboolean costream::mixminus::push_event(GstCostreamMixer *mixer, GstEvent *event) {
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
