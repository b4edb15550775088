/* costream
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
/**
 * SECTION:gstcostreammixer
 * @title: GstCostreamMixer
 *
 * Base class of the costream mixers (`backchannelmixer`, `mixminus`): talker request pads with
 * conversion, timestamp placement, drift correction, stall timeouts, levels and statistics, and
 * one output task clocked live or driven by data non-live. Not an element of its own.
 *
 * Why not GstAggregator (GstAudioAggregator): an aggregator has one src pad and one streaming
 * thread that pushes it, and it reads each sink pad's buffers in the aggregate function, one
 * buffer at a time, with the pad's lock; a mixer here has hundreds of talkers that come and go
 * while PLAYING and (mixminus) one return feed per talker that must never wait for another feed. So
 * the talkers' own threads do the per-buffer work (decode, convert, level) and queue into a
 * TalkerQueue that places audio by timestamp and follows each talker's clock (drift correction by
 * resampling, not GstAudioAggregator's drop/insert), the output reads all talkers in one pass per
 * block with one lock, and each feed has its own thread (feedpad.h). The timing model (live
 * deadline = running time + upstream latency + block + `latency`) is GstAggregator's.
 *
 * The engine is split by who owns what: see mixerprivate.h for the file map and the lock order.
 */

#include "mixerprivate.h"

#include <algorithm>
#include <cstdio>

GST_DEBUG_CATEGORY(gst_costream_mixer_debug);
#define GST_CAT_DEFAULT gst_costream_mixer_debug

using namespace costream::mixer;

/* ------------------------------------------------------------------------------------------ */
/* Element                                                                                      */

enum {
  PROP_0,
  PROP_OUTPUT_BUFFER_DURATION,
  PROP_LATENCY,
  PROP_TIMEOUT,
  PROP_ALIGNMENT_THRESHOLD,
  PROP_DRIFT_CORRECTION,
  PROP_FORCE_LIVE,
};

typedef struct {
  GstCostreamMixerPrivate *priv;
} GstCostreamMixerInstancePrivate;

static void gst_costream_mixer_child_proxy_init(gpointer g_iface, gpointer iface_data);

/* (data lock) After priv->pads changed. Returns the previous hold, for the caller to drop after the
 * lock (its last reference to a pad may finalize it). */
static std::shared_ptr<PadsHold> refresh_pads_hold(GstCostreamMixerPrivate *priv) {
  auto hold = std::make_shared<PadsHold>();
  hold->pads.reserve(priv->pads.size());
  hold->privs.reserve(priv->pads.size());
  for (auto *p : priv->pads) {
    hold->pads.push_back(GST_COSTREAM_MIXER_PAD(gst_object_ref(p)));
    hold->privs.push_back(pad_priv(p));
  }
  std::swap(hold, priv->pads_hold);
  return hold;
}

G_DEFINE_ABSTRACT_TYPE_WITH_CODE(GstCostreamMixer, gst_costream_mixer, GST_TYPE_ELEMENT,
                                 G_ADD_PRIVATE(GstCostreamMixer)
                                     G_IMPLEMENT_INTERFACE(GST_TYPE_CHILD_PROXY,
                                                           gst_costream_mixer_child_proxy_init));

GstCostreamMixerPrivate *gst_costream_mixer_priv(GstCostreamMixer *self) {
  return static_cast<GstCostreamMixerInstancePrivate *>(
             gst_costream_mixer_get_instance_private(self))
      ->priv;
}

costream::mixer::Settings costream::mixer::settings(GstCostreamMixer *self) {
  return costream::locked_copy(self, mixer_priv(self)->settings);
}

/* ---- talker pads ------------------------------------------------------------------------- */

std::vector<GstCostreamMixerPad *> gst_costream_mixer_get_pads(GstCostreamMixer *self) {
  Lock lk(mixer_priv(self)->lock);
  std::vector<GstCostreamMixerPad *> pads;
  for (auto *p : mixer_priv(self)->pads)
    pads.push_back(GST_COSTREAM_MIXER_PAD(gst_object_ref(p)));
  return pads;
}

void gst_costream_mixer_release_pads(std::vector<GstCostreamMixerPad *> &pads) {
  for (auto *p : pads)
    gst_object_unref(p);
  pads.clear();
}

/* ---- task, seeks, src pads ------------------------------------------------------------- */

namespace {

/* (any thread) Stops the output thread at its next check and wakes it. */
void set_flushing(GstCostreamMixer *self, bool flushing) {
  auto *priv = mixer_priv(self);
  Lock lk(priv->lock);
  priv->flushing = flushing;
  if (flushing) {
    if (priv->clock_id)
      gst_clock_id_unschedule(priv->clock_id);
    priv->data_cond.notify_all();
    notify_space_all(self);
  }
}

void start_task(GstCostreamMixer *self) {
  auto *priv = mixer_priv(self);
  Lock lk(priv->lock);
  priv->flushing = false;
  priv->stopping = false;
  gst_task_start(priv->task);
}

void stop_task(GstCostreamMixer *self) {
  auto *priv = mixer_priv(self);
  {
    Lock lk(priv->lock);
    priv->stopping = true;
    gst_task_stop(priv->task);
  }
  set_flushing(self, true);
  gst_task_join(priv->task);
}

} // namespace

static gboolean gst_costream_mixer_do_seek(GstCostreamMixer *self, GstEvent *event) {
  auto *priv = mixer_priv(self);
  gdouble rate;
  GstFormat format;
  GstSeekFlags flags;
  GstSeekType start_type, stop_type;
  gint64 start, stop;
  gst_event_parse_seek(event, &rate, &format, &flags, &start_type, &start, &stop_type, &stop);
  if (format != GST_FORMAT_TIME || rate <= 0.0) {
    GST_WARNING_OBJECT(self, "only forward seeks in TIME are supported");
    gst_event_unref(event);
    return FALSE;
  }
  const bool flush = flags & GST_SEEK_FLAG_FLUSH;
  const guint32 seqnum = gst_event_get_seqnum(event);
  if (flush) {
    GstEvent *fs = gst_event_new_flush_start();
    gst_event_set_seqnum(fs, seqnum);
    push_event(self, fs);
    set_flushing(self, true);
  }

  /* Every talker seeks (and flushes its pad). */
  bool ok = true;
  auto pads = gst_costream_mixer_get_pads(self);
  for (auto *p : pads)
    if (gst_pad_is_linked(GST_PAD(p)))
      ok = gst_pad_push_event(GST_PAD(p), gst_event_ref(event)) && ok;
  gst_costream_mixer_release_pads(pads);

  if (flush) {
    g_rec_mutex_lock(&priv->task_lock); /* the output task has stopped */
    {
      Lock lk(priv->lock);
      gboolean update;
      gst_segment_do_seek(&priv->segment, rate, format, flags, start_type, start, stop_type, stop,
                          &update);
      priv->segment.position = priv->segment.start;
      priv->segment.base = 0;
      priv->out_index = 0;
      priv->seqnum = seqnum;
      priv->send_segment = true;
      priv->discont = true;
      /* The talkers' queues were reset by their own FLUSH_STOP and may already hold data from
       * the new position: keep it. */
      for (auto *p : priv->pads) {
        pad_priv(p)->q.stalled = false;
        pad_priv(p)->q.missing_frames = 0;
      }
      notify_space_all(self);
    }
    if (klass_of(self)->reset)
      klass_of(self)->reset(self);
    GstEvent *fstop = gst_event_new_flush_stop(TRUE);
    gst_event_set_seqnum(fstop, seqnum);
    push_event(self, fstop);
    start_task(self);
    g_rec_mutex_unlock(&priv->task_lock);
  }
  gst_event_unref(event);
  return ok;
}

/* A LATENCY event on a src pad goes to every talker's upstream, once. The pipeline sends the same
 * event (one seqnum) to every sink, so it reaches each of the P src pads; forwarding each copy to
 * the P talkers (gst_pad_event_default) would send P^2 events at every latency change, and that
 * forwarding's own bookkeeping is O(P) per pad: a tenth of a second of start-up at 256. */
static gboolean forward_latency(GstCostreamMixer *self, GstEvent *event) {
  auto *priv = mixer_priv(self);
  const guint32 seqnum = gst_event_get_seqnum(event);
  {
    Lock lk(priv->lock);
    if (seqnum == priv->latency_event_seqnum) {
      lk.unlock();
      gst_event_unref(event);
      return TRUE;
    }
    priv->latency_event_seqnum = seqnum;
    /* The pipeline's round of queries is over, and its latency may have changed: the output
     * looks again before its next block. */
    priv->upstream.changed();
    wake_output(self, nullptr);
  }
  auto pads = gst_costream_mixer_get_pads(self);
  gboolean ok = pads.empty();
  for (auto *p : pads)
    ok |= gst_pad_push_event(GST_PAD(p), gst_event_ref(event));
  gst_costream_mixer_release_pads(pads);
  gst_event_unref(event);
  return ok;
}

gboolean gst_costream_mixer_src_event(GstPad *pad, GstObject *parent, GstEvent *event) {
  auto *self = GST_COSTREAM_MIXER(parent);
  switch (GST_EVENT_TYPE(event)) {
  case GST_EVENT_LATENCY:
    return forward_latency(self, event);
  case GST_EVENT_SEEK:
    return gst_costream_mixer_do_seek(self, event);
  case GST_EVENT_RECONFIGURE:
    /* Renegotiate before the next block, even if the output thread is waiting for one. */
    gst_costream_mixer_request_reconfigure(self);
    gst_event_unref(event);
    return TRUE;
  case GST_EVENT_QOS:
  case GST_EVENT_NAVIGATION:
    gst_event_unref(event);
    return TRUE;
  default:
    return gst_pad_event_default(pad, parent, event);
  }
}

gboolean gst_costream_mixer_src_query(GstPad *pad, GstObject *parent, GstQuery *query) {
  auto *self = GST_COSTREAM_MIXER(parent);
  auto *priv = mixer_priv(self);
  switch (GST_QUERY_TYPE(query)) {
  case GST_QUERY_LATENCY: {
    /* The talkers' upstream, asked once per round of the pipeline's queries (see
     * UpstreamLatency::answer_cached), plus this element's own latency. */
    costream::UpstreamLatency::Result r;
    guint64 generation = 0;
    bool cached;
    {
      Lock lk(priv->lock);
      cached = priv->upstream.answer_cached(g_get_monotonic_time(), &r, &generation);
    }
    if (!cached) {
      std::vector<GstPad *> pads;
      for (auto *p : gst_costream_mixer_get_pads(self))
        pads.push_back(GST_PAD(p));
      r = costream::UpstreamLatency::query(pads);
      for (auto *p : pads)
        gst_object_unref(p);
      Lock lk(priv->lock);
      priv->upstream.store_answer(generation, g_get_monotonic_time(), r);
    }
    const Settings st = settings(self);
    const GstClockTime own = st.block_duration + st.latency;
    GstClockTime min = r.live ? r.min + own : own;
    GstClockTime max = r.live && GST_CLOCK_TIME_IS_VALID(r.max) ? r.max + own : GST_CLOCK_TIME_NONE;
    const gboolean live = r.live || st.force_live;
    GST_DEBUG_OBJECT(self, "latency: live %d min %" GST_TIME_FORMAT " max %" GST_TIME_FORMAT, live,
                     GST_TIME_ARGS(min), GST_TIME_ARGS(max));
    gst_query_set_latency(query, live, min, max);
    return TRUE;
  }
  case GST_QUERY_CAPS:
    gst_costream_mixer_answer_caps_query(query, gst_pad_get_pad_template_caps(pad));
    return TRUE;
  default:
    return gst_pad_query_default(pad, parent, query);
  }
}

/* ---- element ---------------------------------------------------------------------------- */

static GstPad *gst_costream_mixer_request_new_pad(GstElement *element, GstPadTemplate *templ,
                                                  const gchar *name, const GstCaps *caps) {
  auto *self = GST_COSTREAM_MIXER(element);
  auto *priv = mixer_priv(self);
  if (GST_PAD_TEMPLATE_DIRECTION(templ) != GST_PAD_SINK)
    return nullptr;
  guint index = 0;
  Settings st;
  {
    costream::ObjectLock lk(self);
    if (name && sscanf(name, "sink_%u", &index) == 1)
      priv->next_pad_index = std::max(priv->next_pad_index, index + 1);
    else
      index = priv->next_pad_index++;
    st = priv->settings;
  }
  gchar *pad_name = g_strdup_printf("sink_%u", index);
  GType type = GST_PAD_TEMPLATE_GTYPE(templ);
  if (type == G_TYPE_NONE || !g_type_is_a(type, GST_TYPE_COSTREAM_MIXER_PAD))
    type = GST_TYPE_COSTREAM_MIXER_PAD;
  auto *pad = GST_COSTREAM_MIXER_PAD(
      g_object_new(type, "name", pad_name, "direction", GST_PAD_SINK, "template", templ, nullptr));
  g_free(pad_name);
  setup_talker_pad(GST_PAD(pad));
  std::shared_ptr<PadsHold> old_hold; /* dropped after the data lock */
  {
    Lock lk(priv->lock);
    if (priv->out_valid)
      pad_priv(pad)->q.queue.configure(queue_config(self, st));
    priv->pads.push_back(GST_COSTREAM_MIXER_PAD(gst_object_ref(pad)));
    old_hold = refresh_pads_hold(priv);
    priv->upstream.changed();
  }
  old_hold.reset();
  if (!gst_element_add_pad(element, GST_PAD(pad))) {
    GST_WARNING_OBJECT(self, "could not add pad %s (name taken?)", GST_PAD_NAME(pad));
    Lock lk(priv->lock);
    priv->pads.erase(std::find(priv->pads.begin(), priv->pads.end(), pad));
    old_hold = refresh_pads_hold(priv);
    lk.unlock();
    old_hold.reset();
    gst_object_unref(pad); /* the list's reference */
    gst_object_unref(pad); /* the floating one, sunk by the failed add or not */
    return nullptr;
  }
  GST_DEBUG_OBJECT(self, "talker %s joined", GST_PAD_NAME(pad));
  gst_child_proxy_child_added(GST_CHILD_PROXY(element), G_OBJECT(pad), GST_OBJECT_NAME(pad));
  if (klass_of(self)->pad_added)
    klass_of(self)->pad_added(self, pad);
  return GST_PAD(pad);
}

static void gst_costream_mixer_release_pad(GstElement *element, GstPad *pad) {
  auto *self = GST_COSTREAM_MIXER(element);
  auto *priv = mixer_priv(self);
  auto *mpad = GST_COSTREAM_MIXER_PAD(pad);
  GST_DEBUG_OBJECT(self, "talker %s left", GST_PAD_NAME(pad));
  gst_object_ref(pad);
  if (klass_of(self)->pad_removed)
    klass_of(self)->pad_removed(self, mpad);
  bool found = false;
  std::shared_ptr<PadsHold> old_hold; /* dropped after the data lock */
  {
    Lock lk(priv->lock);
    auto it = std::find(priv->pads.begin(), priv->pads.end(), mpad);
    if (it != priv->pads.end()) {
      priv->pads.erase(it);
      old_hold = refresh_pads_hold(priv);
      found = true;
    }
    pad_priv(mpad)->q.flushing = true;
    priv->upstream.changed();
    pad_priv(mpad)->q.space_cond.notify_all();
    wake_output(self, nullptr);
  }
  gst_child_proxy_child_removed(GST_CHILD_PROXY(element), G_OBJECT(pad), GST_OBJECT_NAME(pad));
  gst_element_remove_pad(element, pad);
  if (found)
    gst_object_unref(pad); /* the list's reference */
  gst_object_unref(pad);
}

/* An application ends a live mix (with or without talkers) by sending EOS to the pipeline or the
 * mixer: the output ends with EOS after the current block. */
static gboolean gst_costream_mixer_send_event(GstElement *element, GstEvent *event) {
  auto *self = GST_COSTREAM_MIXER(element);
  if (GST_EVENT_TYPE(event) == GST_EVENT_EOS) {
    GST_DEBUG_OBJECT(self, "EOS requested");
    Lock lk(mixer_priv(self)->lock);
    mixer_priv(self)->eos_requested = true;
    wake_output(self, nullptr);
    gst_event_unref(event);
    return TRUE;
  }
  return GST_ELEMENT_CLASS(gst_costream_mixer_parent_class)->send_event(element, event);
}

static GstStateChangeReturn gst_costream_mixer_change_state(GstElement *element,
                                                            GstStateChange transition) {
  auto *self = GST_COSTREAM_MIXER(element);
  auto *priv = mixer_priv(self);
  switch (transition) {
  case GST_STATE_CHANGE_READY_TO_PAUSED: {
    {
      Lock lk(priv->lock);
      priv->out_index = 0;
      gst_segment_init(&priv->segment, GST_FORMAT_TIME);
      priv->send_segment = true;
      priv->discont = true;
      priv->eos_requested = false;
      priv->upstream.changed();
      priv->reconfigure = false;
      priv->playing = false;
      priv->seqnum = 0;
      for (auto *p : priv->pads) {
        auto *pp = pad_priv(p);
        pp->q.queue.reset();
        pp->q.ever_had_data = pp->q.stalled = false;
        pp->q.missing_frames = 0;
        pp->in.shadow_meter.reset(); /* (no talker streams in READY) */
      }
    }
    if (klass_of(self)->reset)
      klass_of(self)->reset(self);
    break;
  }
  case GST_STATE_CHANGE_PAUSED_TO_PLAYING: {
    Lock lk(priv->lock);
    priv->playing = true;
    priv->data_cond.notify_all();
    break;
  }
  case GST_STATE_CHANGE_PLAYING_TO_PAUSED: {
    Lock lk(priv->lock);
    priv->playing = false;
    if (priv->clock_id)
      gst_clock_id_unschedule(priv->clock_id);
    break;
  }
  case GST_STATE_CHANGE_PAUSED_TO_READY:
    set_flushing(self, true); /* the output thread stops waiting; joined below */
    break;
  default:
    break;
  }

  GstStateChangeReturn ret =
      GST_ELEMENT_CLASS(gst_costream_mixer_parent_class)->change_state(element, transition);
  if (ret == GST_STATE_CHANGE_FAILURE) {
    if (transition == GST_STATE_CHANGE_READY_TO_PAUSED)
      stop_task(self);
    return ret;
  }

  switch (transition) {
  case GST_STATE_CHANGE_READY_TO_PAUSED:
    start_task(self);
    /* fall through */
  case GST_STATE_CHANGE_PLAYING_TO_PAUSED: {
    if (settings(self).force_live) /* a live source of its own: no preroll */
      ret = GST_STATE_CHANGE_NO_PREROLL;
    break;
  }
  case GST_STATE_CHANGE_PAUSED_TO_READY: {
    stop_task(self);
    Lock lk(priv->lock);
    priv->out_valid = false;
    priv->published_generation.store(0, std::memory_order_release);
    priv->live = false;
    for (auto *p : priv->pads)
      pad_priv(p)->q.queue.reset();
    break;
  }
  default:
    break;
  }
  return ret;
}

guint gst_costream_mixer_pads_stats(GstCostreamMixer *self, GValue *array, guint *active) {
  gst_value_array_init(array, 0);
  guint talkers = 0;
  *active = 0;
  auto pads = gst_costream_mixer_get_pads(self);
  for (auto *p : pads) {
    GstStructure *ps = gst_costream_mixer_pad_stats(p);
    if (klass_of(self)->pad_stats)
      klass_of(self)->pad_stats(self, p, ps);
    gboolean a = FALSE;
    gst_structure_get_boolean(ps, "active", &a);
    talkers++;
    *active += a ? 1 : 0;
    GValue v = G_VALUE_INIT;
    g_value_init(&v, GST_TYPE_STRUCTURE);
    g_value_take_boxed(&v, ps);
    gst_value_array_append_and_take_value(array, &v);
  }
  gst_costream_mixer_release_pads(pads);
  return talkers;
}

static void gst_costream_mixer_set_property(GObject *object, guint prop_id, const GValue *value,
                                            GParamSpec *pspec) {
  auto *self = GST_COSTREAM_MIXER(object);
  auto &st = mixer_priv(self)->settings;
  bool latency_changed = false;
  {
    costream::ObjectLock lk(self);
    switch (prop_id) {
    case PROP_OUTPUT_BUFFER_DURATION:
      st.block_duration = g_value_get_uint64(value);
      break;
    case PROP_LATENCY:
      latency_changed = st.latency != g_value_get_uint64(value);
      st.latency = g_value_get_uint64(value);
      break;
    case PROP_TIMEOUT:
      st.timeout = g_value_get_uint64(value);
      break;
    case PROP_ALIGNMENT_THRESHOLD:
      st.alignment_threshold = g_value_get_uint64(value);
      break;
    case PROP_DRIFT_CORRECTION:
      st.drift_correction = g_value_get_boolean(value);
      break;
    case PROP_FORCE_LIVE:
      st.force_live = g_value_get_boolean(value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec);
      break;
    }
  }
  if (latency_changed)
    gst_element_post_message(GST_ELEMENT(self), gst_message_new_latency(GST_OBJECT(self)));
}

static void gst_costream_mixer_get_property(GObject *object, guint prop_id, GValue *value,
                                            GParamSpec *pspec) {
  auto *self = GST_COSTREAM_MIXER(object);
  const Settings st = settings(self);
  switch (prop_id) {
  case PROP_OUTPUT_BUFFER_DURATION:
    g_value_set_uint64(value, st.block_duration);
    break;
  case PROP_LATENCY:
    g_value_set_uint64(value, st.latency);
    break;
  case PROP_TIMEOUT:
    g_value_set_uint64(value, st.timeout);
    break;
  case PROP_ALIGNMENT_THRESHOLD:
    g_value_set_uint64(value, st.alignment_threshold);
    break;
  case PROP_DRIFT_CORRECTION:
    g_value_set_boolean(value, st.drift_correction);
    break;
  case PROP_FORCE_LIVE:
    g_value_set_boolean(value, st.force_live);
    break;
  default:
    G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec);
    break;
  }
}

static void gst_costream_mixer_finalize(GObject *object) {
  auto *self = GST_COSTREAM_MIXER(object);
  auto *ip =
      static_cast<GstCostreamMixerInstancePrivate *>(gst_costream_mixer_get_instance_private(self));
  for (auto *p : ip->priv->pads)
    gst_object_unref(p);
  gst_object_unref(ip->priv->task);
  g_rec_mutex_clear(&ip->priv->task_lock);
  delete ip->priv;
  ip->priv = nullptr;
  G_OBJECT_CLASS(gst_costream_mixer_parent_class)->finalize(object);
}

static void gst_costream_mixer_class_init(GstCostreamMixerClass *klass) {
  auto *gobject_class = G_OBJECT_CLASS(klass);
  auto *element_class = GST_ELEMENT_CLASS(klass);

  GST_DEBUG_CATEGORY_INIT(gst_costream_mixer_debug, "costreammixer", 0,
                          "costream mixers' input engine");

  gobject_class->set_property = gst_costream_mixer_set_property;
  gobject_class->get_property = gst_costream_mixer_get_property;
  gobject_class->finalize = gst_costream_mixer_finalize;

  klass->push_event = default_push_event;

  const auto rw_playing = static_cast<GParamFlags>(G_PARAM_READWRITE | GST_PARAM_MUTABLE_PLAYING |
                                                   G_PARAM_STATIC_STRINGS);
  const auto rw_ready = static_cast<GParamFlags>(G_PARAM_READWRITE | GST_PARAM_MUTABLE_READY |
                                                 G_PARAM_STATIC_STRINGS);

  /**
   * GstCostreamMixer:output-buffer-duration:
   *
   * Duration of one output block. Live, the element adds this much latency plus the jitter
   * allowance (`latency`).
   */
  g_object_class_install_property(
      gobject_class, PROP_OUTPUT_BUFFER_DURATION,
      g_param_spec_uint64("output-buffer-duration", "Output buffer duration",
                          "Duration of one output block in nanoseconds (adds this much latency)",
                          GST_MSECOND, GST_SECOND, DEFAULT_OUTPUT_BUFFER_DURATION, rw_ready));
  /**
   * GstCostreamMixer:latency:
   *
   * Jitter allowance: how much later than its reported latency a live talker's data may arrive
   * and still be mixed. Added to the element's latency.
   */
  g_object_class_install_property(
      gobject_class, PROP_LATENCY,
      g_param_spec_uint64("latency", "Jitter allowance",
                          "Live: nanoseconds a talker may be later than its reported latency "
                          "and still be mixed (added to the element's latency)",
                          0, 10 * GST_SECOND, DEFAULT_LATENCY, rw_playing));
  /**
   * GstCostreamMixer:timeout:
   *
   * A talker that sends nothing for this long (without EOS: a network drop, a closed browser
   * tab) is counted as stalled and silent until its data returns. Live, the output never waits
   * for a missing talker beyond its deadline in any case.
   */
  g_object_class_install_property(
      gobject_class, PROP_TIMEOUT,
      g_param_spec_uint64("timeout", "Stall timeout",
                          "Nanoseconds without data after which a talker counts as stalled and "
                          "silent (until its data returns)",
                          GST_MSECOND, 60 * GST_SECOND, DEFAULT_TIMEOUT, rw_playing));
  /**
   * GstCostreamMixer:alignment-threshold:
   *
   * Timestamp jitter tolerated before an input's timestamps are taken as a real gap (filled with
   * silence) or overlap (trimmed).
   */
  g_object_class_install_property(
      gobject_class, PROP_ALIGNMENT_THRESHOLD,
      g_param_spec_uint64("alignment-threshold", "Alignment threshold",
                          "Timestamp jitter in nanoseconds tolerated before a gap or overlap is "
                          "acted on",
                          0, 10 * GST_SECOND, DEFAULT_ALIGNMENT_THRESHOLD, rw_ready));
  /**
   * GstCostreamMixer:drift-correction:
   *
   * Live: follow each talker's sample clock with a fractional resampler so clock drift between
   * talker and pipeline neither clicks nor builds up latency.
   */
  g_object_class_install_property(
      gobject_class, PROP_DRIFT_CORRECTION,
      g_param_spec_boolean("drift-correction", "Drift correction",
                           "Live: resample each talker smoothly to follow its clock drift "
                           "(instead of dropping or inserting samples)",
                           DEFAULT_DRIFT_CORRECTION, rw_ready));
  /**
   * GstCostreamMixer:force-live:
   *
   * Produce output on the clock even before any live talker is linked (an output that must stay
   * open with nobody talking). The element is then a live source of its own.
   */
  g_object_class_install_property(
      gobject_class, PROP_FORCE_LIVE,
      g_param_spec_boolean("force-live", "Force live",
                           "Always run live and output on the clock, even with no live talker "
                           "linked (set before PAUSED)",
                           DEFAULT_FORCE_LIVE, rw_ready));

  element_class->request_new_pad = GST_DEBUG_FUNCPTR(gst_costream_mixer_request_new_pad);
  element_class->release_pad = GST_DEBUG_FUNCPTR(gst_costream_mixer_release_pad);
  element_class->send_event = GST_DEBUG_FUNCPTR(gst_costream_mixer_send_event);
  element_class->change_state = GST_DEBUG_FUNCPTR(gst_costream_mixer_change_state);

  gst_type_mark_as_plugin_api(GST_TYPE_COSTREAM_MIXER, static_cast<GstPluginAPIFlags>(0));
  gst_type_mark_as_plugin_api(GST_TYPE_COSTREAM_MIXER_PAD, static_cast<GstPluginAPIFlags>(0));
  gst_type_mark_as_plugin_api(GST_TYPE_COSTREAM_FEED_PAD, static_cast<GstPluginAPIFlags>(0));
}

static void gst_costream_mixer_init(GstCostreamMixer *self) {
  auto *ip =
      static_cast<GstCostreamMixerInstancePrivate *>(gst_costream_mixer_get_instance_private(self));
  auto *priv = new GstCostreamMixerPrivate();
  ip->priv = priv;
  gst_audio_info_init(&priv->out_info);
  gst_segment_init(&priv->segment, GST_FORMAT_TIME);
  g_rec_mutex_init(&priv->task_lock);
  priv->task = gst_task_new(output_loop, self, nullptr);
  gst_task_set_lock(priv->task, &priv->task_lock);
}

/* GstChildProxy: talker pads as children, so gst-launch can set `sink_0::volume=0.5`. */

static GObject *gst_costream_mixer_child_proxy_get_child_by_index(GstChildProxy *proxy,
                                                                  guint index) {
  costream::ObjectLock lk(proxy);
  auto *obj = static_cast<GObject *>(g_list_nth_data(GST_ELEMENT_CAST(proxy)->sinkpads, index));
  return obj ? G_OBJECT(gst_object_ref(obj)) : nullptr;
}

static guint gst_costream_mixer_child_proxy_get_children_count(GstChildProxy *proxy) {
  costream::ObjectLock lk(proxy);
  return GST_ELEMENT_CAST(proxy)->numsinkpads;
}

static void gst_costream_mixer_child_proxy_init(gpointer g_iface, gpointer iface_data) {
  auto *iface = static_cast<GstChildProxyInterface *>(g_iface);
  iface->get_child_by_index = gst_costream_mixer_child_proxy_get_child_by_index;
  iface->get_children_count = gst_costream_mixer_child_proxy_get_children_count;
}
