/* costream
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * The output thread (the element's task): one block per iteration.
 *   1. refresh the upstream latency and renegotiate when asked;
 *   2. wait_for_block: until every expected talker covers the block (non-live), or its deadline
 *      on the clock (live), or everyone ended;
 *   3. read_block: every talker's part, under the data lock (talkerqueueside.cpp);
 *   4. the subclass mixes and pushes (no lock held): GstCostreamMixerClass::output;
 *   5. finish_block: chunks read in place may go, flow errors end the stream.
 * Also what subclasses use to push: caps, segment, feed pads.
 */

#include "mixerprivate.h"

#include <algorithm>

#define GST_CAT_DEFAULT gst_costream_mixer_debug

using namespace costream::mixer;

namespace costream::mixer {

void pause_task(GstCostreamMixer *self, const char *why) {
  auto *priv = mixer_priv(self);
  Lock lk(priv->lock);
  if (priv->stopping) /* pausing now would undo the stop and leave the thread waiting forever */
    return;
  GST_DEBUG_OBJECT(self, "pausing output: %s", why);
  gst_task_pause(priv->task);
}

gboolean push_event(GstCostreamMixer *self, GstEvent *event) {
  return klass_of(self)->push_event(self, event);
}

} // namespace costream::mixer

namespace {

void push_eos(GstCostreamMixer *self) {
  GstEvent *eos = gst_event_new_eos();
  if (mixer_priv(self)->seqnum)
    gst_event_set_seqnum(eos, mixer_priv(self)->seqnum);
  push_event(self, eos);
}

/* Output thread: asks the subclass for the mix format and adopts it. */
bool negotiate(GstCostreamMixer *self, const Settings &s) {
  auto *priv = mixer_priv(self);
  GstAudioInfo info;
  gst_audio_info_init(&info);
  if (!klass_of(self)->negotiate(self, &info))
    return false;
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
        1, gst_util_uint64_scale_round(s.block_duration, GST_AUDIO_INFO_RATE(&info), GST_SECOND)));
    reconfigure_queues(self, s);
    notify_space_all(self);
  }
  return true;
}

/* Output thread: live or not, and the upstream latency the deadlines allow for. The only writer
 * of both (see UpstreamLatency). */
void refresh_latency(GstCostreamMixer *self, const Settings &s) {
  auto *priv = mixer_priv(self);
  std::vector<GstPad *> pads;
  for (auto *p : gst_costream_mixer_get_pads(self))
    pads.push_back(GST_PAD(p));
  const auto r = costream::UpstreamLatency::query(pads);
  for (auto *p : pads)
    gst_object_unref(p);
  Lock lk(priv->lock);
  const bool now_live = r.live || s.force_live;
  if (now_live != priv->live) {
    GST_DEBUG_OBJECT(self, "live: %d", now_live);
    priv->live = now_live;
    /* Queued data stays: only whether the talkers' clocks are followed changes. */
    for (auto *p : priv->pads)
      pad_priv(p)->q.queue.set_drift_correction(s.drift_correction && now_live);
    notify_space_all(self);
  }
  priv->upstream.set_deadline(r);
}

/* How wait_for_block ended. */
enum class Waited {
  Complete, /* every expected talker covers the block */
  Deadline, /* live: the block's time came first */
  AllEnded, /* every talker ended: `data_end` is where the last data ends */
  Stop,     /* nothing to output now (flushing, EOS, renegotiation or new latency first) */
};

/* Output thread, data lock held (`lk`; released when it returns Stop). */
Waited wait_for_block(GstCostreamMixer *self, Lock &lk, const BlockPlan &plan, GstClockTime jitter,
                      int64_t *data_end) {
  auto *priv = mixer_priv(self);
  bool feeds_kicked = false;
  for (;;) {
    if (priv->flushing) {
      lk.unlock();
      pause_task(self, "flushing");
      return Waited::Stop;
    }
    if (priv->reconfigure || priv->upstream.dirty())
      return Waited::Stop; /* the next iteration renegotiates, or finds out whether it is live,
                            * first: a live talker that starts while the output waits on talkers
                            * that never sent (linked to a source that has no data yet) makes the
                            * output live */
    if (priv->eos_requested) {
      lk.unlock();
      GST_DEBUG_OBJECT(self, "EOS requested by the application");
      push_eos(self);
      pause_task(self, "EOS requested");
      return Waited::Stop;
    }
    bool all_eos = !priv->pads.empty();
    *data_end = INT64_MIN;
    for (auto *p : priv->pads) {
      auto &q = pad_priv(p)->q;
      if (q.eos) {
        if (q.queue.has_pending())
          *data_end = std::max(*data_end, q.queue.write_end());
        continue;
      }
      all_eos = false;
    }
    /* With nobody to wait for, a live output still keeps to the clock. */
    if (all_eos)
      return Waited::AllEnded;
    const size_t expected = mark_missing(self, plan.out_index, plan.frames);
    if (expected > 0 && priv->missing == 0)
      return Waited::Complete;
    priv->output_waiting = true;
    if (priv->live) {
      GstClock *clock = GST_ELEMENT_CLOCK(self);
      if (!priv->playing || !clock) {
        priv->data_cond.wait(lk);
        priv->output_waiting = false;
        continue;
      }
      gst_object_ref(clock);
      const GstClockTime deadline = GST_ELEMENT_CAST(self)->base_time + plan.running_time +
                                    priv->upstream.deadline() + plan.block_time + jitter;
      GstClockID id = gst_clock_new_single_shot_id(clock, deadline);
      gst_object_unref(clock);
      priv->clock_id = id;
      lk.unlock();
      const GstClockReturn cret = gst_clock_id_wait(id, nullptr);
      lk.lock();
      priv->clock_id = nullptr;
      gst_clock_id_unref(id);
      priv->output_waiting = false;
      if (cret == GST_CLOCK_OK || cret == GST_CLOCK_EARLY)
        return Waited::Deadline;
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
}

/* Output thread, data lock held: reads the block from every talker (the queues are shared with
 * the talkers' threads) and moves the output on. What the queues pass is freed by the talker's
 * own thread or after the lock (ChunkRelease), not while every talker waits for it. Returns the
 * segment event to send first, if any. */
GstEvent *read_block(GstCostreamMixer *self, const BlockPlan &plan, GstCostreamMixerBlock *block) {
  auto *priv = mixer_priv(self);
  const guint rate = plan.rate;
  block->info = priv->out_info;
  costream::sample_format_from_gst(GST_AUDIO_INFO_FORMAT(&priv->out_info), &block->format);
  block->frames = plan.frames;
  block->samples = static_cast<size_t>(plan.frames) * GST_AUDIO_INFO_CHANNELS(&priv->out_info);
  block->bytes = static_cast<size_t>(plan.frames) * GST_AUDIO_INFO_BPF(&priv->out_info);
  block->offset = plan.out_index;
  block->pts = plan.pts;
  block->duration = gst_util_uint64_scale_round(plan.out_index + plan.frames, GST_SECOND, rate) -
                    plan.running_time;

  const PadsHold empty_hold;
  const PadsHold &hold = priv->pads_hold ? *priv->pads_hold : empty_hold;
  block->pads_hold = priv->pads_hold;
  block->inputs.resize(hold.pads.size());
  for (size_t i = 0; i < hold.pads.size(); i++)
    read_talker(self, hold.pads[i], hold.privs[i], plan, block, &block->inputs[i]);

  priv->out_index = plan.out_index + plan.frames;
  priv->release.block_read();
  block->discont = priv->discont;
  priv->discont = false;
  GstEvent *segment = nullptr;
  if (priv->send_segment) {
    segment = gst_event_new_segment(&priv->segment);
    if (priv->seqnum)
      gst_event_set_seqnum(segment, priv->seqnum);
  }
  priv->send_segment = false;
  return segment;
}

/* Output thread, no lock: the block is mixed and pushed. */
void finish_block(GstCostreamMixer *self, GstCostreamMixerBlock *block, GstFlowReturn ret) {
  auto *priv = mixer_priv(self);
  for (auto &v : block->inputs) {
    if (v.exact)
      gst_buffer_unref(v.exact);
  }
  costream::KeepaliveList deferred; /* freed after the lock */
  {
    Lock lk(priv->lock);
    deferred = priv->release.block_done();
  }
  if (ret == GST_FLOW_OK)
    return;
  if (ret == GST_FLOW_FLUSHING || ret == GST_FLOW_EOS) {
    pause_task(self, gst_flow_get_name(ret));
  } else {
    GST_ELEMENT_FLOW_ERROR(self, ret);
    push_eos(self);
    pause_task(self, gst_flow_get_name(ret));
  }
}

} // namespace

void costream::mixer::output_loop(gpointer user_data) {
  auto *self = GST_COSTREAM_MIXER(user_data);
  auto *priv = mixer_priv(self);
  const Settings s = settings(self);

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
    need_latency = priv->upstream.take_dirty();
  }
  /* Live or not decides how talkers are queued: know it before they can queue anything. */
  if (need_latency)
    refresh_latency(self, s);
  if (need_negotiate && !negotiate(self, s)) {
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

  Lock lk(priv->lock);
  priv->feeds->configure(priv->live, s.feed_queue_time);
  BlockPlan plan;
  plan.rate = GST_AUDIO_INFO_RATE(&priv->out_info);
  plan.frames = priv->block_frames;
  plan.out_index = priv->out_index;
  plan.running_time = gst_util_uint64_scale_round(plan.out_index, GST_SECOND, plan.rate);
  plan.pts = priv->segment.start + plan.running_time;
  plan.block_time = gst_util_uint64_scale_round(plan.frames, GST_SECOND, plan.rate);
  plan.timeout = s.timeout;
  if (GST_CLOCK_TIME_IS_VALID(priv->segment.stop) && plan.pts >= priv->segment.stop) {
    lk.unlock();
    push_eos(self);
    pause_task(self, "segment done");
    return;
  }

  int64_t data_end = INT64_MIN;
  const Waited waited = wait_for_block(self, lk, plan, s.latency, &data_end);
  if (waited == Waited::Stop)
    return;
  if (waited == Waited::AllEnded) {
    if (data_end <= plan.out_index) {
      lk.unlock();
      GST_DEBUG_OBJECT(self, "every talker ended");
      push_eos(self);
      pause_task(self, "all talkers ended");
      return;
    }
    plan.frames = static_cast<uint32_t>(std::min<int64_t>(plan.frames, data_end - plan.out_index));
  }

  GstCostreamMixerBlock block;
  block.timed_out = waited == Waited::Deadline;
  GstEvent *segment = read_block(self, plan, &block);
  lk.unlock();
  /* Woken after the lock: woken under it, each would run only to wait for the lock. (The block
   * holds their pads.) */
  for (auto *pp : priv->wake_talkers)
    pp->q.space_cond.notify_one();
  priv->wake_talkers.clear();
  priv->release.free_read();

  /* Controlled properties follow the stream time of the block. */
  for (auto &v : block.inputs)
    gst_object_sync_values(GST_OBJECT(v.pad), plan.pts);
  if (segment)
    push_event(self, segment);
  finish_block(self, &block, klass_of(self)->output(self, &block));
}

/* ---- for subclasses: pushing to src pads --------------------------------------------------- */

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

std::vector<GstPad *> gst_costream_mixer_get_src_pads(GstCostreamMixer *self) {
  std::vector<GstPad *> pads;
  costream::ObjectLock lk(self);
  for (GList *l = GST_ELEMENT(self)->srcpads; l; l = l->next)
    pads.push_back(GST_PAD(gst_object_ref(l->data)));
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
  costream::ObjectLock lk(self);
  mixer_priv(self)->settings.feed_queue_time = t;
}

GstClockTime gst_costream_mixer_get_feed_queue_time(GstCostreamMixer *self) {
  return settings(self).feed_queue_time;
}

gboolean costream::mixer::default_push_event(GstCostreamMixer *self, GstEvent *event) {
  gboolean ok = TRUE;
  for (auto *p : gst_costream_mixer_get_src_pads(self)) {
    ok = gst_costream_mixer_pad_push_event(p, gst_event_ref(event)) && ok;
    gst_object_unref(p);
  }
  gst_event_unref(event);
  return ok;
}
