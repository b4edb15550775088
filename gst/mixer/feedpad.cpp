/* costream
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
/**
 * SECTION:gstcostreamfeedpad
 * @title: GstCostreamFeedPad
 *
 * A costream mixer's src pad (a return feed) with its own streaming thread and bounded queue:
 * a slow or blocked downstream costs that feed its own buffers (`dropped-buffers`), never another
 * feed's. See feedpad.h.
 */

#include "feedpad.h"

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <vector>

GST_DEBUG_CATEGORY_STATIC(gst_costream_feed_pad_debug);
#define GST_CAT_DEFAULT gst_costream_feed_pad_debug

using Lock = std::unique_lock<std::mutex>;

namespace {

struct Item {
  GstMiniObject *obj;    /* a GstBuffer or a GstEvent */
  GstClockTime duration; /* a buffer's (0 when unknown), 0 for events */
  bool is_buffer() const { return GST_IS_BUFFER(obj); }
};

/* How long a non-live output waits for room before it looks again (flushing, deactivation and
 * room all wake it at once; this only bounds a missed wake-up). */
constexpr auto kRoomRecheck = std::chrono::milliseconds(100);

/* Non-live feeds queue at least this much: nothing is dropped non-live, and each wake-up of a
 * feed's thread pushes half of it (fewer wake-ups: 256 feeds cost about a third less CPU with
 * 1 s than with 200 ms). */
constexpr GstClockTime kNonLiveQueue = GST_SECOND;

} // namespace

struct FeedPrivate {
  std::shared_ptr<costream::FeedGroup> group;

  /* lock: everything below */
  std::mutex lock;
  std::condition_variable cond;      /* the feed's thread: items, kick, deactivation */
  std::condition_variable room_cond; /* the output thread (non-live): room, flush, deactivation */
  std::deque<Item> items;
  GstClockTime queued = 0; /* duration of the buffers in `items` */
  bool kicked = false;     /* push what is queued now (non-live batches) */
  bool task_waiting = false;
  bool active = false;
  bool flushing = true;    /* inactive, or between FLUSH_START and FLUSH_STOP */
  bool eos = false;        /* EOS queued: no buffer after it */
  bool discont = false;    /* buffers were dropped: mark the next one */
  bool started = false;    /* stream-start queued */
  GstCaps *caps = nullptr; /* last caps queued */
  guint64 dropped = 0;
  GstClockTime dropped_time = 0;

  /* Written by the feed's thread, read by anyone. */
  std::atomic<int> last_flow{GST_FLOW_OK};
  /* Bumped by every flush and deactivation: a batch taken before it is not pushed. */
  std::atomic<guint64> flush_seq{0};

  ~FeedPrivate() {
    for (auto &it : items)
      gst_mini_object_unref(it.obj);
    gst_clear_caps(&caps);
  }
};

struct _GstCostreamFeedPad {
  GstPad parent;
  FeedPrivate *priv;
};

G_DEFINE_TYPE(GstCostreamFeedPad, gst_costream_feed_pad, GST_TYPE_PAD);

enum {
  PROP_0,
  PROP_DROPPED_BUFFERS,
  PROP_DROPPED_TIME,
  PROP_QUEUED_TIME,
};

/* (feed lock) Wakes the feed's thread if it waits. */
static void wake_task(FeedPrivate *fp) {
  fp->kicked = true;
  if (fp->task_waiting)
    fp->cond.notify_one();
}

namespace costream {

void feed_group_add(FeedGroup *group, GstCostreamFeedPad *pad) {
  std::lock_guard<std::mutex> lk(group->lock_);
  group->feeds_.push_back(pad);
}

void feed_group_remove(FeedGroup *group, GstCostreamFeedPad *pad) {
  std::lock_guard<std::mutex> lk(group->lock_);
  auto it = std::find(group->feeds_.begin(), group->feeds_.end(), pad);
  if (it != group->feeds_.end())
    group->feeds_.erase(it);
}

void FeedGroup::kick_all() {
  std::lock_guard<std::mutex> lk(lock_);
  for (auto *pad : feeds_) {
    auto *fp = pad->priv;
    std::lock_guard<std::mutex> flk(fp->lock);
    if (!fp->items.empty() && !fp->kicked)
      wake_task(fp);
  }
}

} // namespace costream

namespace {

/* (feed lock) Drops what is queued; keeps stream-start and caps not yet pushed when
 * `keep_sticky` (a flush keeps them; a deactivation starts the stream over). */
void clear_items(FeedPrivate *fp, bool keep_sticky) {
  std::deque<Item> kept;
  for (auto &it : fp->items) {
    if (keep_sticky && !it.is_buffer()) {
      const GstEventType t = GST_EVENT_TYPE(GST_EVENT_CAST(it.obj));
      if (t == GST_EVENT_STREAM_START || t == GST_EVENT_CAPS) {
        kept.push_back(it);
        continue;
      }
    }
    gst_mini_object_unref(it.obj);
  }
  fp->items.swap(kept);
  fp->queued = 0;
}

/* (feed lock) Live: drops the oldest buffers until `incoming` more fits. */
void drop_oldest(GstCostreamFeedPad *pad, FeedPrivate *fp, GstClockTime incoming,
                 GstClockTime max_time) {
  bool dropped = false;
  while (fp->queued > 0 && fp->queued + incoming > max_time) {
    auto it = std::find_if(fp->items.begin(), fp->items.end(),
                           [](const Item &i) { return i.is_buffer(); });
    if (it == fp->items.end())
      break;
    fp->queued -= std::min(fp->queued, it->duration);
    fp->dropped++;
    fp->dropped_time += it->duration;
    GST_LOG_OBJECT(pad, "downstream is behind: dropping %" GST_PTR_FORMAT, it->obj);
    gst_mini_object_unref(it->obj);
    fp->items.erase(it);
    dropped = true;
  }
  if (dropped) { /* the gap lies before the oldest buffer left, or the incoming one */
    auto next = std::find_if(fp->items.begin(), fp->items.end(),
                             [](const Item &i) { return i.is_buffer(); });
    if (next != fp->items.end()) {
      GstBuffer *b = gst_buffer_make_writable(GST_BUFFER_CAST(next->obj));
      GST_BUFFER_FLAG_SET(b, GST_BUFFER_FLAG_DISCONT);
      next->obj = GST_MINI_OBJECT_CAST(b);
    } else {
      fp->discont = true;
    }
  }
  if (dropped && (fp->dropped == 1 || (fp->dropped % 500) == 0))
    GST_INFO_OBJECT(pad,
                    "downstream does not keep up: %" G_GUINT64_FORMAT " buffers dropped so far "
                    "(%" GST_TIME_FORMAT ")",
                    fp->dropped, GST_TIME_ARGS(fp->dropped_time));
}

bool is_sticky_start(GstMiniObject *obj) {
  if (!GST_IS_EVENT(obj))
    return false;
  const GstEventType t = GST_EVENT_TYPE(GST_EVENT_CAST(obj));
  return t == GST_EVENT_STREAM_START || t == GST_EVENT_CAPS;
}

/* (feed lock) Stream-start and caps a flush kept the feed's thread from pushing go back to the
 * front of the queue (unless newer ones are queued): the feed believes they were sent. */
void restore_sticky(FeedPrivate *fp, std::vector<GstMiniObject *> &stale) {
  for (auto it = stale.rbegin(); it != stale.rend(); ++it) {
    const GstEventType t = GST_EVENT_TYPE(GST_EVENT_CAST(*it));
    const bool newer = std::any_of(fp->items.begin(), fp->items.end(), [t](const Item &i) {
      return GST_IS_EVENT(i.obj) && GST_EVENT_TYPE(GST_EVENT_CAST(i.obj)) == t;
    });
    if (newer || !fp->active)
      gst_mini_object_unref(*it);
    else
      fp->items.push_front({*it, 0});
  }
  stale.clear();
}

/* The feed's task (the pad's stream lock held). Pauses itself while flushing or inactive: a flush
 * restarts it after FLUSH_STOP (as `queue` does), so nothing from before a flush follows it. */
void feed_loop(gpointer user_data) {
  auto *pad = GST_COSTREAM_FEED_PAD(user_data);
  auto *fp = pad->priv;
  std::deque<Item> batch;
  guint64 seq;
  {
    Lock lk(fp->lock);
    while (fp->active && !fp->flushing && (fp->items.empty() || !fp->kicked)) {
      fp->task_waiting = true;
      fp->cond.wait(lk);
      fp->task_waiting = false;
    }
    if (!fp->active || fp->flushing) {
      lk.unlock();
      gst_pad_pause_task(GST_PAD(pad));
      return;
    }
    batch.swap(fp->items);
    fp->queued = 0;
    fp->kicked = false;
    seq = fp->flush_seq.load();
    fp->room_cond.notify_all();
  }
  std::vector<GstMiniObject *> stale;
  for (auto &it : batch) {
    GstMiniObject *obj = it.obj;
    it.obj = nullptr;
    if (fp->flush_seq.load() != seq) { /* flushed or deactivated meanwhile */
      if (is_sticky_start(obj))
        stale.push_back(obj);
      else
        gst_mini_object_unref(obj);
      continue;
    }
    if (GST_IS_BUFFER(obj)) {
      const GstFlowReturn ret = gst_pad_push(GST_PAD(pad), GST_BUFFER_CAST(obj));
      const GstFlowReturn prev = static_cast<GstFlowReturn>(fp->last_flow.exchange(ret));
      if (ret != prev && ret != GST_FLOW_OK)
        GST_DEBUG_OBJECT(pad, "downstream returned %s", gst_flow_get_name(ret));
    } else {
      GstEvent *ev = GST_EVENT_CAST(obj);
      const GstEventType type = GST_EVENT_TYPE(ev);
      if (!gst_pad_push_event(GST_PAD(pad), ev) && type == GST_EVENT_CAPS)
        GST_DEBUG_OBJECT(pad, "downstream refused the caps");
    }
  }
  if (!stale.empty()) {
    Lock lk(fp->lock);
    restore_sticky(fp, stale);
  }
}

gboolean feed_activate_mode(GstPad *pad, GstObject *parent, GstPadMode mode, gboolean active) {
  (void)parent;
  if (mode != GST_PAD_MODE_PUSH)
    return FALSE;
  auto *fp = GST_COSTREAM_FEED_PAD(pad)->priv;
  if (active) {
    {
      Lock lk(fp->lock);
      fp->active = true;
      fp->flushing = false;
      fp->eos = false;
      fp->last_flow = GST_FLOW_OK;
      if (!fp->items.empty()) /* stream-start and caps queued before activation */
        fp->kicked = true;
    }
    return gst_pad_start_task(pad, feed_loop, pad, nullptr);
  }
  {
    Lock lk(fp->lock);
    fp->active = false;
    fp->flushing = true;
    fp->flush_seq++;
    clear_items(fp, false);
    fp->started = false;
    gst_clear_caps(&fp->caps);
    fp->eos = false;
    fp->discont = false;
    fp->last_flow = GST_FLOW_FLUSHING;
    fp->cond.notify_all();
    fp->room_cond.notify_all();
  }
  return gst_pad_stop_task(pad);
}

} // namespace

GstFlowReturn gst_costream_feed_pad_push(GstCostreamFeedPad *pad, GstBuffer *buffer) {
  auto *fp = pad->priv;
  const bool live = fp->group->live();
  const GstClockTime max_time =
      live ? fp->group->max_time() : std::max(fp->group->max_time(), kNonLiveQueue);
  const GstClockTime dur = GST_BUFFER_DURATION_IS_VALID(buffer) ? GST_BUFFER_DURATION(buffer) : 0;
  Lock lk(fp->lock);
  if (!live) {
    /* Back-pressure: wait while the feed is full (its thread drains it, or a flush or
     * deactivation ends the wait). */
    while (fp->active && !fp->flushing && !fp->eos && fp->queued > 0 &&
           fp->queued + dur > max_time) {
      wake_task(fp);
      lk.unlock();
      fp->group->kick_all(); /* the others may be what this feed's sink waits for (preroll) */
      lk.lock();
      if (fp->active && !fp->flushing && !fp->eos && fp->queued > 0 && fp->queued + dur > max_time)
        fp->room_cond.wait_for(lk, kRoomRecheck);
    }
  }
  if (fp->flushing || fp->eos) {
    const GstFlowReturn ret = fp->flushing ? GST_FLOW_FLUSHING : GST_FLOW_EOS;
    lk.unlock();
    gst_buffer_unref(buffer);
    return ret;
  }
  if (live)
    drop_oldest(pad, fp, dur, max_time);
  if (fp->discont) {
    buffer = gst_buffer_make_writable(buffer);
    GST_BUFFER_FLAG_SET(buffer, GST_BUFFER_FLAG_DISCONT);
    fp->discont = false;
  }
  fp->items.push_back({GST_MINI_OBJECT_CAST(buffer), dur});
  fp->queued += dur;
  if (live || fp->queued >= max_time / 2)
    wake_task(fp);
  return static_cast<GstFlowReturn>(fp->last_flow.load());
}

gboolean gst_costream_feed_pad_push_event(GstCostreamFeedPad *pad, GstEvent *event) {
  auto *fp = pad->priv;
  switch (GST_EVENT_TYPE(event)) {
  case GST_EVENT_FLUSH_START: {
    {
      Lock lk(fp->lock);
      fp->flushing = true;
      fp->flush_seq++;
      clear_items(fp, true);
      fp->cond.notify_all();
      fp->room_cond.notify_all();
    }
    const gboolean ret = gst_pad_push_event(GST_PAD(pad), event);
    /* Waits for the task's iteration to end (downstream is flushing, so a push returns). */
    gst_pad_pause_task(GST_PAD(pad));
    return ret;
  }
  case GST_EVENT_FLUSH_STOP: {
    /* The task is paused: nothing it held from before the flush can follow FLUSH_STOP. */
    GST_PAD_STREAM_LOCK(GST_PAD(pad));
    const gboolean ret = gst_pad_push_event(GST_PAD(pad), event);
    bool restart = false;
    {
      Lock lk(fp->lock);
      if (fp->active) {
        fp->flushing = false;
        fp->eos = false;
        fp->discont = false;
        fp->last_flow = GST_FLOW_OK;
        if (!fp->items.empty())
          fp->kicked = true;
        restart = true;
      }
    }
    if (restart)
      gst_pad_start_task(GST_PAD(pad), feed_loop, pad, nullptr);
    GST_PAD_STREAM_UNLOCK(GST_PAD(pad));
    return ret;
  }
  default:
    break;
  }
  if (!GST_EVENT_IS_SERIALIZED(event))
    return gst_pad_push_event(GST_PAD(pad), event);
  Lock lk(fp->lock);
  const GstEventType type = GST_EVENT_TYPE(event);
  const bool sticky_start = type == GST_EVENT_STREAM_START || type == GST_EVENT_CAPS;
  if ((fp->flushing && !sticky_start) || (fp->eos && type != GST_EVENT_STREAM_START)) {
    lk.unlock();
    gst_event_unref(event);
    return FALSE;
  }
  if (type == GST_EVENT_EOS)
    fp->eos = true;
  fp->items.push_back({GST_MINI_OBJECT_CAST(event), 0});
  wake_task(fp);
  return TRUE;
}

gboolean gst_costream_feed_pad_set_caps(GstCostreamFeedPad *pad, GstCaps *caps) {
  auto *fp = pad->priv;
  bool need_start, need_caps;
  {
    Lock lk(fp->lock);
    if (!fp->active)
      return FALSE; /* not added to the element yet: the caller tries again */
    need_start = !fp->started;
    need_caps = !fp->caps || !gst_caps_is_equal(fp->caps, caps);
    fp->started = true;
    gst_caps_replace(&fp->caps, caps);
  }
  if (need_start) {
    /* The mix is a new stream, not any one talker's. */
    GstObject *parent = gst_object_get_parent(GST_OBJECT(pad));
    gchar *id = g_strdup_printf("%s-%s-%08x", parent ? GST_OBJECT_NAME(parent) : "mixer",
                                GST_PAD_NAME(pad), g_random_int());
    gst_clear_object(&parent);
    gst_costream_feed_pad_push_event(pad, gst_event_new_stream_start(id));
    g_free(id);
  }
  if (need_caps)
    gst_costream_feed_pad_push_event(pad, gst_event_new_caps(caps));
  return TRUE;
}

gboolean gst_costream_feed_pad_started(GstCostreamFeedPad *pad) {
  Lock lk(pad->priv->lock);
  return pad->priv->caps != nullptr;
}

GstPad *gst_costream_feed_pad_new(GstPadTemplate *templ, const gchar *name,
                                  std::shared_ptr<costream::FeedGroup> group) {
  auto *pad =
      GST_COSTREAM_FEED_PAD(g_object_new(GST_TYPE_COSTREAM_FEED_PAD, "name", name, "direction",
                                         GST_PAD_SRC, "template", templ, nullptr));
  pad->priv->group = std::move(group);
  costream::feed_group_add(pad->priv->group.get(), pad);
  return GST_PAD(pad);
}

static void gst_costream_feed_pad_get_property(GObject *object, guint prop_id, GValue *value,
                                               GParamSpec *pspec) {
  auto *fp = GST_COSTREAM_FEED_PAD(object)->priv;
  Lock lk(fp->lock);
  switch (prop_id) {
  case PROP_DROPPED_BUFFERS:
    g_value_set_uint64(value, fp->dropped);
    break;
  case PROP_DROPPED_TIME:
    g_value_set_uint64(value, fp->dropped_time);
    break;
  case PROP_QUEUED_TIME:
    g_value_set_uint64(value, fp->queued);
    break;
  default:
    G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec);
    break;
  }
}

static void gst_costream_feed_pad_finalize(GObject *object) {
  auto *pad = GST_COSTREAM_FEED_PAD(object);
  if (pad->priv->group)
    costream::feed_group_remove(pad->priv->group.get(), pad);
  delete pad->priv;
  pad->priv = nullptr;
  G_OBJECT_CLASS(gst_costream_feed_pad_parent_class)->finalize(object);
}

static void gst_costream_feed_pad_class_init(GstCostreamFeedPadClass *klass) {
  auto *gobject_class = G_OBJECT_CLASS(klass);
  gobject_class->get_property = gst_costream_feed_pad_get_property;
  gobject_class->finalize = gst_costream_feed_pad_finalize;
  GST_DEBUG_CATEGORY_INIT(gst_costream_feed_pad_debug, "costreamfeed", 0,
                          "costream mixers' return feeds");
  const auto ro = static_cast<GParamFlags>(G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);
  /**
   * GstCostreamFeedPad:dropped-buffers:
   *
   * Live: buffers this feed dropped because its downstream did not take them within the
   * mixer's `feed-queue-time` (the other feeds are not affected).
   */
  g_object_class_install_property(
      gobject_class, PROP_DROPPED_BUFFERS,
      g_param_spec_uint64("dropped-buffers", "Dropped buffers",
                          "Buffers this return feed dropped because its downstream did not take "
                          "them in time (live)",
                          0, G_MAXUINT64, 0, ro));
  /**
   * GstCostreamFeedPad:dropped-time:
   *
   * The audio those dropped buffers held, in nanoseconds.
   */
  g_object_class_install_property(
      gobject_class, PROP_DROPPED_TIME,
      g_param_spec_uint64("dropped-time", "Dropped time",
                          "Nanoseconds of audio this return feed dropped (live)", 0, G_MAXUINT64, 0,
                          ro));
  /**
   * GstCostreamFeedPad:queued-time:
   *
   * Audio queued for the downstream right now, in nanoseconds.
   */
  g_object_class_install_property(
      gobject_class, PROP_QUEUED_TIME,
      g_param_spec_uint64("queued-time", "Queued time",
                          "Nanoseconds of audio queued for this feed's downstream", 0, G_MAXUINT64,
                          0, ro));
}

static void gst_costream_feed_pad_init(GstCostreamFeedPad *pad) {
  pad->priv = new FeedPrivate();
  gst_pad_set_activatemode_function(GST_PAD(pad), GST_DEBUG_FUNCPTR(feed_activate_mode));
}
