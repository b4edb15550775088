/* costream
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Where a talker's streaming thread and the output thread meet: the talker's queue and flags
 * (TalkerShared), all under the element's data lock. The talker's thread queues chunks, waits for
 * room (non-live) and wakes the output when the block it waits for is complete; the output thread
 * marks whom it waits for and reads each talker's part of a block.
 */

#include "mixerprivate.h"

#include "../audio/mix.h"

#include <algorithm>

#define GST_CAT_DEFAULT gst_costream_mixer_debug

namespace costream::mixer {

TalkerQueue::Config queue_config(GstCostreamMixer *self, const Settings &s) {
  auto *priv = mixer_priv(self);
  TalkerQueue::Config cfg;
  sample_format_from_gst(GST_AUDIO_INFO_FORMAT(&priv->out_info), &cfg.layout.format);
  cfg.layout.channels = GST_AUDIO_INFO_CHANNELS(&priv->out_info);
  cfg.layout.rate = GST_AUDIO_INFO_RATE(&priv->out_info);
  cfg.drift_correction = s.drift_correction && priv->live;
  cfg.align_threshold = static_cast<int64_t>(
      gst_util_uint64_scale_round(s.alignment_threshold, cfg.layout.rate, GST_SECOND));
  cfg.max_ahead = static_cast<int64_t>(cfg.layout.rate) * 10;
  return cfg;
}

/* (data lock) The talkers' queues follow the output format and mode. */
void reconfigure_queues(GstCostreamMixer *self, const Settings &s) {
  const auto cfg = queue_config(self, s);
  for (auto *p : mixer_priv(self)->pads)
    pad_priv(p)->q.queue.configure(cfg);
}

int64_t frames_of(GstCostreamMixer *self, GstClockTime t) {
  return static_cast<int64_t>(
      gst_util_uint64_scale_round(t, GST_AUDIO_INFO_RATE(&mixer_priv(self)->out_info), GST_SECOND));
}

/* (data lock) How far a talker's data reaches beyond the output position. */
int64_t frames_ahead(GstCostreamMixer *self, GstCostreamMixerPadPrivate *pp) {
  return pp->q.queue.write_end() - mixer_priv(self)->out_index;
}

/* (data lock) Every talker waiting for room looks again (flushing, new format, live). */
void notify_space_all(GstCostreamMixer *self) {
  for (auto *p : mixer_priv(self)->pads)
    pad_priv(p)->q.space_cond.notify_all();
}

namespace {

/* (data lock) Whether a talker is one the output waits for. */
bool expected_talker(GstCostreamMixerPad *p) {
  auto *pp = pad_priv(p);
  return !pp->q.eos && (pp->q.has_caps || gst_pad_is_linked(GST_PAD(p)));
}

/* (data lock, streaming thread of the talker) Waits, non-live, until the talker may queue more:
 * GST_FLOW_OK, or why it may not. */
GstFlowReturn wait_for_room_locked(GstCostreamMixer *self, GstCostreamMixerPadPrivate *pp,
                                   Lock &lk) {
  auto *priv = mixer_priv(self);
  auto &q = pp->q;
  for (;;) {
    if (q.flushing)
      return GST_FLOW_FLUSHING;
    if (q.eos)
      return GST_FLOW_EOS;
    /* Never wait while the output still needs this talker's data (that would deadlock). Once
     * waiting, wait down to the low mark: the talker then queues a batch in one go. */
    const GstClockTime limit = q.waiting_for_space ? AHEAD_LOW : AHEAD_HIGH;
    if (priv->out_valid &&
        (priv->live || frames_ahead(self, pp) <= frames_of(self, limit) || !q.queue.has_pending() ||
         !q.queue.covers(priv->out_index, priv->block_frames)))
      break;
    /* (The output does not wait for this talker: it already covers the output's block.) */
    q.waiting_for_space = true;
    q.space_cond.wait(lk);
  }
  q.waiting_for_space = false;
  return GST_FLOW_OK;
}

} // namespace

/* (data lock, output thread) Marks every talker the output waits for that does not have the
 * block [out, out + n) yet, and counts them in priv->missing. Returns how many talkers the
 * output waits for. */
size_t mark_missing(GstCostreamMixer *self, int64_t out, uint32_t n) {
  auto *priv = mixer_priv(self);
  size_t expected = 0;
  priv->missing = 0;
  for (auto *p : priv->pads) {
    auto &q = pad_priv(p)->q;
    q.missing = false;
    if (!expected_talker(p))
      continue;
    expected++;
    if (!q.queue.covers(out, n)) {
      q.missing = true;
      priv->missing++;
    }
  }
  return expected;
}

/* (data lock) Wakes the output thread when it waits and the block became complete with this
 * talker's data (nullptr: something else changed, wake it to look again). O(1) per buffer: a
 * talker counts once, when its data first covers the block the output waits for. Waking the
 * output for every buffer would cost a context switch and a clock re-arm per talker per block. */
void wake_output(GstCostreamMixer *self, GstCostreamMixerPad *pad) {
  auto *priv = mixer_priv(self);
  if (!priv->output_waiting)
    return;
  if (pad) {
    auto &q = pad_priv(pad)->q;
    if (!q.missing || !q.queue.covers(priv->out_index, priv->block_frames))
      return;
    q.missing = false;
    if (--priv->missing > 0)
      return;
  }
  priv->data_cond.notify_one();
  if (priv->clock_id)
    gst_clock_id_unschedule(priv->clock_id);
}

GstFlowReturn wait_for_room(GstCostreamMixer *self, GstCostreamMixerPad *pad, GstAudioInfo *out,
                            guint64 *generation) {
  auto *priv = mixer_priv(self);
  auto *pp = pad_priv(pad);
  ChunkRelease::Talker::Guard done(pp->release);
  Lock lk(priv->lock);
  const GstFlowReturn ret = wait_for_room_locked(self, pp, lk);
  if (ret != GST_FLOW_OK)
    return ret;
  done.take();
  *out = priv->out_info;
  *generation = priv->generation;
  return GST_FLOW_OK;
}

void apply_opus_tally(GstCostreamMixer *self, GstCostreamMixerPadPrivate *pp, const OpusTally &t) {
  auto &st = pp->q.stats;
  st.opus_skipped += t.skipped;
  st.opus_decoded += t.decoded;
  st.opus_concealed += t.after.concealed - t.before.concealed;
  st.opus_recovered += t.after.recovered - t.before.recovered;
  st.opus_dtx += t.after.dtx - t.before.dtx;
  pp->q.in_dtx = t.in_dtx;
  pp->in.opus_live = mixer_priv(self)->live; /* the talker's own field: it holds the lock */
}

/* One data lock per buffer: the talker's thread converted it without the lock (see talker_format),
 * takes the lock here to queue it, frees what the output passed, and waits for room for its next
 * buffer (ThenWait::ForRoom) before it lets go. */
GstFlowReturn queue_converted(GstCostreamMixer *self, GstCostreamMixerPad *pad, guint64 generation,
                              TalkerConverter::Converted &c, gsize bytes, Queued what,
                              ThenWait then, const OpusTally *opus) {
  auto *priv = mixer_priv(self);
  auto *pp = pad_priv(pad);
  auto &q = pp->q;
  ChunkRelease::Talker::Guard done(pp->release);
  Lock lk(priv->lock);
  if (then == ThenWait::No)
    done.take();
  if (what == Queued::InputBuffer) {
    q.stats.buffers++;
    q.stats.bytes += bytes;
    q.stats.unheard += c.unheard;
  }
  if (opus)
    apply_opus_tally(self, pp, *opus);
  if (q.flushing)
    return GST_FLOW_FLUSHING;
  if (generation != priv->generation) {
    GST_DEBUG_OBJECT(pad, "output format changed while converting: dropping a buffer");
    q.stats.dropped++;
    return GST_FLOW_OK;
  }
  const auto r = q.queue.push(std::move(c.chunk), c.pts, c.discont);
  if (r.late_frames > 0) {
    q.stats.late++;
    q.stats.late_frames += r.late_frames;
    GST_LOG_OBJECT(pad, "%" G_GUINT64_FORMAT " frames arrived after their time", r.late_frames);
  }
  if (r.overflow_frames > 0)
    q.stats.dropped++;
  wake_output(self, pad);
  if (then == ThenWait::No)
    return GST_FLOW_OK;
  const GstFlowReturn ret = wait_for_room_locked(self, pp, lk);
  done.take();
  return ret;
}

void count_dropped_input(GstCostreamMixer *self, GstCostreamMixerPad *pad, gsize bytes,
                         const OpusTally *opus) {
  auto *pp = pad_priv(pad);
  Lock lk(mixer_priv(self)->lock);
  pp->q.stats.buffers++;
  pp->q.stats.bytes += bytes;
  pp->q.stats.dropped++;
  if (opus)
    apply_opus_tally(self, pp, *opus);
}

void flush_queue(GstCostreamMixer *self, GstCostreamMixerPad *pad) {
  auto *priv = mixer_priv(self);
  auto &q = pad_priv(pad)->q;
  Lock lk(priv->lock);
  q.flushing = false;
  q.eos = false;
  q.queue.release_into(priv->release.for_flush());
  q.queue.reset();
  q.queue.release_into(nullptr);
  q.meter.reset();
  wake_output(self, nullptr);
}

void read_talker(GstCostreamMixer *self, GstCostreamMixerPad *pad, GstCostreamMixerPadPrivate *pp,
                 const BlockPlan &plan, GstCostreamMixerBlock *block, GstCostreamMixerInput *v) {
  auto *priv = mixer_priv(self);
  auto &q = pp->q;
  const uint32_t n = plan.frames;
  v->pad = pad; /* kept by block->pads_hold */
  v->gain = pp->controls.gain.load(std::memory_order_relaxed);

  /* A block that is exactly one queued chunk is read where it lies (see TalkerConverter::wrap()
   * and to_pool()); it stays in the queue until the next block (ChunkRelease::block_read). */
  TalkerQueue::ReadResult rr;
  q.queue.release_into(pp->release.passed());
  const Chunk *exact = q.queue.take_exact(plan.out_index, n, &rr);
  if (exact) {
    if (klass_of(self)->forwards_inputs) /* then chunks are the talkers' buffers, mapped */
      v->exact = gst_buffer_ref(TalkerConverter::chunk_buffer(*exact));
    v->data = exact->data;
  } else {
    pp->scratch.resize(block->bytes);
    rr = q.queue.read(plan.out_index, n, pp->scratch.data());
    v->data = pp->scratch.data();
  }
  q.queue.release_into(nullptr);
  priv->release.after_read(pp->release, q.waiting_for_space, q.eos || q.flushing);
  if (!v->data) {
    pp->scratch.assign(block->bytes, 0);
    v->data = pp->scratch.data();
    rr.frames_with_data = 0;
  }
  v->frames_with_data = rr.frames_with_data;
  GST_LOG_OBJECT(pad,
                 "block %" G_GINT64_FORMAT ": %u/%u frames, drift loop %s rate %+.5f timing "
                 "error %.1f frames%s",
                 plan.out_index, rr.frames_with_data, n, q.queue.correcting() ? "on" : "off",
                 q.queue.rate_offset(), q.queue.time_error(),
                 block->timed_out ? " (deadline)" : "");
  if (rr.late_frames > 0) {
    q.stats.late++;
    q.stats.late_frames += rr.late_frames;
  }
  /* The level: from the chunks' powers (computed in the talker's thread, or from RTP level
   * headers) when they fit the block, so that the samples of a talker not mixed are not read. */
  double power = 0.0;
  if (v->frames_with_data > 0)
    power = rr.power >= 0.0 ? rr.power : block_power(v->data, block->samples, block->format);
  v->level = q.meter.update(power, 1000.0 * n / plan.rate);
  q.stats.level = v->level;

  /* Stall tracking. */
  if (v->frames_with_data > 0) {
    if (q.stalled)
      GST_INFO_OBJECT(pad, "talker resumed");
    q.ever_had_data = true;
    q.stalled = false;
    q.missing_frames = 0;
  } else if (q.ever_had_data && !q.eos) {
    q.missing_frames += n;
    const GstClockTime stall_after =
        q.in_dtx ? std::max<GstClockTime>(plan.timeout, DTX_STALL) : plan.timeout;
    if (!q.stalled &&
        gst_util_uint64_scale(q.missing_frames, GST_SECOND, plan.rate) >= stall_after) {
      q.stalled = true;
      q.stats.timeouts++;
      GST_INFO_OBJECT(pad, "talker stalled: no data for %" GST_TIME_FORMAT,
                      GST_TIME_ARGS(plan.timeout));
    }
  }
  v->present = q.ever_had_data && !q.stalled && (v->frames_with_data > 0 || !q.eos);
  v->eos = q.eos;
  {
    std::lock_guard<std::mutex> slk(pp->shown.lock);
    const gboolean active = pp->shown.stats.active;
    pp->shown.stats = q.stats;
    pp->shown.stats.active = active;
  }

  if (q.waiting_for_space && frames_ahead(self, pp) - n <= frames_of(self, AHEAD_LOW))
    priv->wake_talkers.push_back(pp); /* this one only: no herd waking to sleep again */
}

} // namespace costream::mixer
