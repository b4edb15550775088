/* costream
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * A talker's streaming thread: what arrives on a `sink_%u` pad, up to the moment it is queued.
 * Caps (raw, or Opus decoded here), segment, GAP, EOS and flushes; each buffer is decoded (Opus,
 * with loss concealment), converted to the mix format, its power computed for the level, and its
 * samples moved to the talker's pool (or to silence when nobody can hear them), then queued
 * (talkerqueueside.cpp). Everything in TalkerInput belongs to this thread alone.
 */

#include "mixerprivate.h"

#include "../audio/opus.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#define GST_CAT_DEFAULT gst_costream_mixer_debug

using namespace costream::mixer;
using costream::TalkerConverter;

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

namespace {

void post_negotiation_error(GstCostreamMixer *self, GstPad *pad, const std::string &why,
                            GstCaps *caps) {
  GST_ELEMENT_ERROR(self, CORE, NEGOTIATION,
                    ("Talker on pad %s sent audio that cannot be mixed: %s. Accepted: S16LE, "
                     "S32LE or F32LE, 8000-48000 Hz, mono or stereo, interleaved.",
                     GST_PAD_NAME(pad), why.c_str()),
                    ("caps %" GST_PTR_FORMAT, caps));
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
  std::shared_ptr<void> keep = pp->in.pool.take(bytes, &data);
  memcpy(data, chunk.data, bytes);
  set_storage(chunk, data, std::move(keep));
}

/* Streaming thread of `pad`: a chunk nobody can hear keeps its power but not its samples: it
 * points to shared silence, and its buffer goes now (see GstCostreamMixerClass::audible).
 */
void to_silence(GstCostreamMixerPadPrivate *pp, costream::Chunk &chunk, const GstAudioInfo &out) {
  const size_t bytes = static_cast<size_t>(chunk.frames) * GST_AUDIO_INFO_BPF(&out);
  if (!pp->in.zeros || pp->in.zeros->size() < bytes) /* a new one: chunks may still use the old */
    pp->in.zeros = std::make_shared<std::vector<uint8_t>>(std::max<size_t>(bytes, 4096), 0);
  set_storage(chunk, pp->in.zeros->data(), pp->in.zeros);
}

/* Streaming thread: the converter follows the output format. */
bool update_converter(GstCostreamMixer *self, GstCostreamMixerPad *pad, const GstAudioInfo &out,
                      guint64 generation) {
  auto *pp = pad_priv(pad);
  if (pp->in.converter_generation == generation)
    return true;
  std::string why;
  if (!pp->in.converter.set_output(out, &why)) {
    GST_ELEMENT_ERROR(
        self, CORE, NEGOTIATION,
        ("Talker on pad %s cannot be converted to the output format.", GST_PAD_NAME(pad)),
        ("%s", why.c_str()));
    return false;
  }
  pp->in.converter_generation = generation;
  pp->in.converter_out = out;
  return true;
}

/* Frames at 48 kHz of a time on the talker's timeline (INT64_MIN when unknown). */
int64_t opus_pos(GstClockTime t) {
  return GST_CLOCK_TIME_IS_VALID(t)
             ? static_cast<int64_t>(gst_util_uint64_scale_round(t, 48000, GST_SECOND))
             : INT64_MIN;
}

/* Streaming thread: what the receiver decoded or concealed, as an F32 48 kHz buffer from
 * `out.start` (flags from `like`, when given). */
GstBuffer *opus_pcm_buffer(GstCostreamMixerPadPrivate *pp,
                           const costream::OpusReceiver::Output &out, GstBuffer *like) {
  const gsize size = static_cast<gsize>(out.frames) * pp->in.opus->channels() * sizeof(float);
  GstBuffer *b = gst_buffer_new_memdup(pp->in.opus_pcm.data(), size);
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

/* Streaming thread: an Opus packet (taken) to F32 48 kHz audio, the hole before it concealed, or
 * silence of its duration when the subclass says it cannot be heard. nullptr: unreadable. */
GstBuffer *decode_opus(GstCostreamMixer *self, GstCostreamMixerPad *pad, GstBuffer *buf,
                       int meta_level, OpusTally *tally) {
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
  bool skip = false;
  if (meta_level >= 0 && klass_of(self)->audible) {
    GstCostreamMixerAudibility a;
    a.packet_level = TRUE;
    a.level_dbov = -static_cast<double>(meta_level);
    a.ms = frames / 48.0;
    skip = !klass_of(self)->audible(self, pad, &a);
  }
  tally->before = pp->in.opus->counters();
  costream::OpusReceiver::Output out;
  pp->in.opus->set_fill_dtx(!pp->in.opus_live);
  const bool ok = pp->in.opus->packet(map.data, map.size, frames, opus_pos(GST_BUFFER_PTS(buf)),
                                      !skip, &pp->in.opus_pcm, &out);
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
  tally->skipped = skip;
  tally->decoded = !skip;
  tally->after = pp->in.opus->counters();
  tally->in_dtx = pp->in.opus->in_dtx();
  return pcm;
}

/* Streaming thread of `pad`: the output format to convert to. One data lock per buffer: once
 * the talker knows the output format, it converts without asking (its previous buffer already
 * waited for room after it was queued) and takes the lock only to queue. Until then, and after a
 * format change, it asks first. */
GstFlowReturn talker_format(GstCostreamMixer *self, GstCostreamMixerPad *mpad, GstAudioInfo *out,
                            guint64 *generation) {
  auto *pp = pad_priv(mpad);
  *generation = mixer_priv(self)->published_generation.load(std::memory_order_acquire);
  if (*generation != 0 && *generation == pp->in.converter_generation) {
    *out = pp->in.converter_out;
  } else if (GstFlowReturn ret = wait_for_room(self, mpad, out, generation); ret != GST_FLOW_OK) {
    return ret;
  }
  if (!pp->in.converter.has_input()) {
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
GstFlowReturn queue_input(GstCostreamMixer *self, GstCostreamMixerPad *mpad, GstBuffer *buf,
                          gsize bytes, int meta_level, const GstAudioInfo &out, guint64 generation,
                          Queued what, ThenWait then, const OpusTally *tally) {
  auto *pp = pad_priv(mpad);
  TalkerConverter::Converted c;
  if (!pp->in.converter.convert(buf, &pp->in.segment, &c)) {
    GST_WARNING_OBJECT(mpad, "dropped a buffer that could not be read or converted");
    count_dropped_input(self, mpad, bytes, tally);
    return GST_FLOW_OK;
  }
  set_chunk_power(c.chunk, out, meta_level);
  if (klass_of(self)->audible && !pp->in.opus && c.chunk.power >= 0.f && c.chunk.data) {
    GstCostreamMixerAudibility a;
    a.ms = 1000.0 * c.chunk.frames / GST_AUDIO_INFO_RATE(&out);
    a.level_dbov = pp->in.shadow_meter.update(c.chunk.power, a.ms);
    c.unheard = !klass_of(self)->audible(self, mpad, &a);
  }
  if (c.unheard)
    to_silence(pp, c.chunk, out);
  else if (!klass_of(self)->forwards_inputs)
    to_pool(pp, c.chunk, out);
  return queue_converted(self, mpad, generation, c, bytes, what, then, tally);
}

GstFlowReturn sink_chain(GstPad *pad, GstObject *parent, GstBuffer *buf) {
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
  OpusTally tally;
  if (pp->in.opus) {
    buf = decode_opus(self, mpad, buf, meta_level, &tally);
    if (!buf) {
      count_dropped_input(self, mpad, bytes);
      return GST_FLOW_OK;
    }
  }
  return queue_input(self, mpad, buf, bytes, meta_level, out, generation, Queued::InputBuffer,
                     ThenWait::ForRoom, pp->in.opus ? &tally : nullptr);
}

/* An Opus talker's GAP (a loss its jitter buffer gave up on): concealed now, but for the last
 * packet's worth, which the next packet may recover from its FEC (see OpusReceiver::gap). Nothing
 * is queued otherwise: the next packet fills the hole. */
void opus_gap(GstCostreamMixer *self, GstCostreamMixerPad *pad, GstClockTime ts, GstClockTime dur) {
  auto *pp = pad_priv(pad);
  OpusTally tally;
  tally.before = pp->in.opus->counters();
  costream::OpusReceiver::Output o;
  pp->in.opus->gap(opus_pos(ts), opus_pos(dur), &pp->in.opus_pcm, &o);
  if (o.frames == 0)
    return;
  tally.after = pp->in.opus->counters();
  tally.in_dtx = pp->in.opus->in_dtx();
  GstBuffer *pcm = opus_pcm_buffer(pp, o, nullptr);
  GstAudioInfo out;
  guint64 generation;
  if (talker_format(self, pad, &out, &generation) != GST_FLOW_OK) {
    gst_buffer_unref(pcm);
    Lock lk(mixer_priv(self)->lock);
    apply_opus_tally(self, pp, tally);
    return;
  }
  queue_input(self, pad, pcm, 0, -1, out, generation, Queued::Made, ThenWait::No, &tally);
}

/* A GAP event: silence for its duration, so the time counts as covered (non-live alignment). */
void sink_gap(GstCostreamMixer *self, GstCostreamMixerPad *pad, GstEvent *event) {
  GstClockTime ts, dur;
  gst_event_parse_gap(event, &ts, &dur);
  if (pad_priv(pad)->in.opus) {
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
  const guint64 rt = gst_segment_to_running_time(&pad_priv(pad)->in.segment, GST_FORMAT_TIME, ts);
  c.pts = GST_CLOCK_TIME_IS_VALID(rt) ? static_cast<double>(rt) * rate / GST_SECOND : NAN;
  queue_converted(self, pad, generation, c, 0, Queued::Made);
}

gboolean sink_event(GstPad *pad, GstObject *parent, GstEvent *event) {
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
      if (!pp->in.opus || pp->in.opus->channels() != channels) {
        pp->in.opus = std::make_unique<costream::OpusReceiver>();
        if (!pp->in.opus->init(channels, &why)) {
          pp->in.opus.reset();
          post_negotiation_error(self, pad, "no Opus decoder: " + why, caps);
          gst_event_unref(event);
          return FALSE;
        }
      }
      raw = gst_caps_new_simple("audio/x-raw", "format", G_TYPE_STRING, "F32LE", "rate", G_TYPE_INT,
                                48000, "channels", G_TYPE_INT, channels, "layout", G_TYPE_STRING,
                                "interleaved", nullptr);
    } else {
      pp->in.opus.reset();
    }
    const bool ok = pp->in.converter.set_input_caps(raw ? raw : caps, &why);
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
      pp->q.has_caps = true;
      priv->upstream.changed();
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
    pp->in.segment = seg;
    return TRUE;
  }
  case GST_EVENT_GAP:
    sink_gap(self, mpad, event);
    gst_event_unref(event);
    return TRUE;
  case GST_EVENT_EOS: {
    Lock lk(priv->lock);
    GST_DEBUG_OBJECT(pad, "talker ended");
    pp->q.eos = true;
    wake_output(self, nullptr);
    gst_event_unref(event);
    return TRUE;
  }
  case GST_EVENT_FLUSH_START: {
    Lock lk(priv->lock);
    pp->q.flushing = true;
    pp->q.space_cond.notify_all();
    gst_event_unref(event);
    return TRUE;
  }
  case GST_EVENT_FLUSH_STOP: {
    flush_queue(self, mpad);
    pp->in.converter.reset();
    pp->in.shadow_meter.reset();
    if (pp->in.opus)
      pp->in.opus->reset();
    gst_event_unref(event);
    return TRUE;
  }
  default:
    /* stream-start, tags and the like belong to one talker: not forwarded */
    gst_event_unref(event);
    return TRUE;
  }
}

gboolean sink_query(GstPad *pad, GstObject *parent, GstQuery *query) {
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

gboolean sink_activate_mode(GstPad *pad, GstObject *parent, GstPadMode mode, gboolean active) {
  auto *self = GST_COSTREAM_MIXER(parent);
  auto *pp = pad_priv(GST_COSTREAM_MIXER_PAD(pad));
  if (mode != GST_PAD_MODE_PUSH)
    return FALSE;
  Lock lk(mixer_priv(self)->lock);
  pp->q.flushing = !active;
  if (active) {
    pp->q.eos = false;
  } else {
    /* let a chain waiting for room return, so the pad can stop */
    pp->q.space_cond.notify_all();
  }
  return TRUE;
}

} // namespace

namespace costream::mixer {

void setup_talker_pad(GstPad *pad) {
  gst_pad_set_chain_function(pad, GST_DEBUG_FUNCPTR(sink_chain));
  gst_pad_set_event_function(pad, GST_DEBUG_FUNCPTR(sink_event));
  gst_pad_set_query_function(pad, GST_DEBUG_FUNCPTR(sink_query));
  gst_pad_set_activatemode_function(pad, GST_DEBUG_FUNCPTR(sink_activate_mode));
}

} // namespace costream::mixer
