/* costream
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * costream::UpstreamLatency: the talkers' combined upstream latency, as the mixer's output
 * deadlines and its src pads' LATENCY answers use it. Each value has one writer:
 *   - what the live deadlines use (deadline()): the output thread, which queries the talkers
 *     itself (refresh in output.cpp) whenever changed() was called since it last looked: a talker
 *     joined, left or changed caps, the pipeline sent a new LATENCY, the stream restarted;
 *   - the cached answer for src pad LATENCY queries (see answer_cached()): the query's thread.
 * Every method is called with the mixer's data lock held; the querying itself (query()) without.
 */
#pragma once

#include <gst/gst.h>

#include <vector>

namespace costream {

class UpstreamLatency {
public:
  struct Result {
    gboolean live = FALSE;
    GstClockTime min = 0;
    GstClockTime max = GST_CLOCK_TIME_NONE;
  };

  /* Asks every linked pad's upstream (no lock held): live when any talker is, the largest minimum
   * and the smallest maximum of the live ones. */
  static Result query(const std::vector<GstPad *> &pads);

  /* Something that may change it happened: the output refreshes before its next block, and the
   * cached query answer is dropped. */
  void changed() {
    dirty_ = true;
    cache_generation_++;
    cache_valid_ = false;
  }
  /* Output thread: whether to refresh, clearing the request. */
  bool take_dirty() {
    const bool d = dirty_;
    dirty_ = false;
    return d;
  }
  bool dirty() const { return dirty_; }
  /* Output thread: what it found. */
  void set_deadline(const Result &r) { deadline_ = r.live ? r.min : 0; }
  /* Output thread: the upstream latency a live block's deadline allows for. */
  GstClockTime deadline() const { return deadline_; }

  /* Src pad LATENCY queries: the pipeline asks each of the P src pads in turn and each answer
   * needs all P talkers' upstreams (P^2 queries: half the start-up of a 256-participant room).
   * The first answer of a round is reused until changed() (the pipeline's LATENCY event ends the
   * round) or for kCacheUsec at most (an application's own query between rounds gets no LATENCY
   * event after it). */
  static constexpr gint64 kCacheUsec = 200 * 1000;
  bool answer_cached(gint64 now, Result *r, guint64 *generation) const {
    if (cache_valid_ && now - cache_when_ < kCacheUsec) {
      *r = cache_;
      return true;
    }
    *generation = cache_generation_;
    return false;
  }
  /* Stores an answer queried since answer_cached() returned `generation`, unless it changed
   * meanwhile. */
  void store_answer(guint64 generation, gint64 now, const Result &r) {
    if (generation != cache_generation_)
      return;
    cache_valid_ = true;
    cache_when_ = now;
    cache_ = r;
  }

private:
  bool dirty_ = true;
  GstClockTime deadline_ = 0;
  guint64 cache_generation_ = 0;
  bool cache_valid_ = false;
  gint64 cache_when_ = 0; /* g_get_monotonic_time() */
  Result cache_;
};

} // namespace costream
