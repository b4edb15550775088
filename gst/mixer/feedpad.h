/* costream
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * GstCostreamFeedPad: a mixer's src pad with a streaming thread and a bounded queue of its own,
 * so that one return feed's downstream never holds up another's.
 *
 * The mixer's output thread hands each feed its buffers and serialized events; the feed's own
 * task (started when the pad is activated, like a `queue`'s) pushes them downstream. A feed whose
 * downstream is slow, blocked or prerolling therefore costs only itself:
 *   - live: the feed queues at most `max-time` of buffers (the mixer's `feed-queue-time`); beyond
 *     it its oldest buffers are dropped and counted (`dropped-buffers`), the next buffer pushed is
 *     marked DISCONT. The output thread never waits for a feed.
 *   - non-live: the output thread waits for a full feed (back-pressure, as `tee ! queue` does:
 *     a non-live pipeline has no deadline, and a file recorder must not lose audio to a slow
 *     disk). A non-live feed queues at least 1 s. Each feed's thread still prerolls on its own,
 *     so sinks without queues preroll, and non-live feeds are pushed in batches (half the queue,
 *     or whenever the mixer is about to wait: FeedGroup::kick_all) instead of waking every
 *     feed's thread for every block.
 * Events keep their place among the buffers; FLUSH_START/FLUSH_STOP go out at once and empty the
 * queue (stream-start and caps not yet pushed are kept). EOS takes no buffer after it.
 *
 * Locks: a feed's `lock` (its queue and state) and the group's lock (the list of feeds); group
 * lock before a feed's lock. Nothing is pushed, and no other element is called, with either held.
 */
#pragma once

#include <gst/gst.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <vector>

G_BEGIN_DECLS

#define GST_TYPE_COSTREAM_FEED_PAD (gst_costream_feed_pad_get_type())
G_DECLARE_FINAL_TYPE(GstCostreamFeedPad, gst_costream_feed_pad, GST, COSTREAM_FEED_PAD, GstPad)

G_END_DECLS

namespace costream {

/* The feeds of one element: their queue policy, and waking them all before the output waits. */
class FeedGroup {
public:
  /* Output thread, once per block: live or not, and how much a feed may queue. */
  void configure(bool live, GstClockTime max_time) {
    live_.store(live, std::memory_order_relaxed);
    max_time_.store(max_time, std::memory_order_relaxed);
  }
  bool live() const { return live_.load(std::memory_order_relaxed); }
  GstClockTime max_time() const { return max_time_.load(std::memory_order_relaxed); }

  /* Non-live: every feed pushes what it has queued now (called before the output thread waits,
   * so that a feed below its batch size still prerolls its sink). */
  void kick_all();

private:
  friend void feed_group_add(FeedGroup *, GstCostreamFeedPad *);
  friend void feed_group_remove(FeedGroup *, GstCostreamFeedPad *);
  std::mutex lock_;
  std::vector<GstCostreamFeedPad *> feeds_; /* without references: a feed leaves in finalize */
  std::atomic<bool> live_{false};
  std::atomic<GstClockTime> max_time_{200 * GST_MSECOND};
};

} // namespace costream

/* A new feed pad (floating) of `group`, from a src template. */
GstPad *gst_costream_feed_pad_new(GstPadTemplate *templ, const gchar *name,
                                  std::shared_ptr<costream::FeedGroup> group);

/* Output thread. Queues `buffer` (taken) for the feed's thread. Returns the last flow the feed's
 * downstream returned (OK until it returned something else), FLUSHING while the pad is flushing
 * or inactive, EOS after EOS. Live it never waits; non-live it waits while the feed is full. */
GstFlowReturn gst_costream_feed_pad_push(GstCostreamFeedPad *pad, GstBuffer *buffer);

/* Any thread. Flushes go out at once (and empty the queue); other serialized events are queued
 * in order with the buffers; other events are pushed at once. Takes `event`. */
gboolean gst_costream_feed_pad_push_event(GstCostreamFeedPad *pad, GstEvent *event);

/* Output thread: queues stream-start (before the first caps) and `caps` unless they are what the
 * feed last queued. FALSE (nothing queued) while the pad is not active yet: try again later. */
gboolean gst_costream_feed_pad_set_caps(GstCostreamFeedPad *pad, GstCaps *caps);

/* Whether caps were queued since the pad was activated (its stream has started). */
gboolean gst_costream_feed_pad_started(GstCostreamFeedPad *pad);
