/* costream
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * TalkerQueue: the per-input queue shared by the costream mixers. Plain C++, no GStreamer types.
 *
 * Input chunks arrive already in the output sample format (the element converts them) with a
 * timestamp expressed on the output timeline in frames. The queue places them on its own index:
 * continuous chunks are appended, timestamp jumps larger than the alignment threshold (or a
 * DISCONT) become silence (gaps) or trimmed overlap. The reader asks for output blocks by output
 * index; frames the reader has already passed when they arrive are dropped and counted as late.
 *
 * Drift: a talker's sample clock is never exactly the pipeline clock (browsers, cameras and phones
 * each run on their own crystal), so its chunks carry slightly more or fewer frames than their
 * timestamps span. With drift correction on (live), the queue measures that as the growing
 * difference between where chunks land on the queue index and where their timestamps say they
 * belong, and steers a read-side fractional resampler (windowed sinc, exact at integer positions)
 * with a critically damped PI loop so the reader tracks the talker's clock: no samples are
 * dropped or inserted, so there are no clicks, and latency does not grow. A talker without drift
 * never engages the resampler, and is read by plain copies (or no copy at all, see take_exact()).
 */
#pragma once

#include "sampleformat.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <deque>
#include <memory>
#include <vector>

namespace costream {

struct Chunk {
  const uint8_t *data = nullptr;
  uint32_t frames = 0;
  /* Keeps `data` valid; released when the queue drops the chunk. */
  std::shared_ptr<void> keepalive;
  /* Opaque to the queue: the owner's handle for zero-copy forwarding. */
  void *tag = nullptr;
  /* Mean power of its frames (full scale = 1), < 0 when not known. The writer computes it while
   * the samples are in its cache, so a reader wanting only a level need not touch them. */
  float power = -1.f;
  /* `power` is a level for the whole chunk from elsewhere (an RTP audio-level header), to be
   * used for every block the chunk covers. Otherwise it is used only for blocks that hold the
   * whole chunk (finer levels are computed from the samples). */
  bool power_whole = false;
};

class TalkerQueue {
public:
  struct Config {
    AudioLayout layout;
    /* Follow the talker's sample clock with the read-side resampler (live inputs). */
    bool drift_correction = false;
    /* Timestamp deviations up to this many frames are treated as jitter, larger ones as gaps. */
    int64_t align_threshold = 1920;
    /* Data further than this many frames ahead of the reader (before its first read: of the
     * first frame queued) is dropped (bounded memory). */
    int64_t max_ahead = 48000 * 10;
  };

  struct PushResult {
    uint64_t late_frames = 0;     /* behind the reader: dropped */
    uint64_t overflow_frames = 0; /* beyond max_ahead: dropped */
    int64_t gap_frames = 0;       /* > 0 silence inserted, < 0 overlap trimmed */
    bool resynced = false;
  };

  struct ReadResult {
    uint32_t frames_with_data = 0; /* frames of the block that came from the talker */
    uint64_t late_frames = 0;      /* queued frames the reader skipped (never read) */
    /* Mean power of the block from the chunks' `power` (frames without data count as silence),
     * or < 0 when a chunk in it has none that applies: compute it from the samples. */
    double power = -1.0;
  };

  static constexpr int kHalfTaps = 16;

  void configure(const Config &config);
  const Config &config() const { return config_; }
  /* Drops all data and timing state; the next chunk is placed by its timestamp again. */
  void reset();
  /* Turns drift correction on or off without touching queued data. */
  void set_drift_correction(bool on) { config_.drift_correction = on; }

  /* `pts` is the chunk's first frame on the output timeline, in frames (NAN when unknown). */
  PushResult push(Chunk chunk, double pts, bool discont);

  /* True when the block [out, out + n) can be read without waiting for more data. */
  bool covers(int64_t out, uint32_t n) const;
  /* True when anything is queued at or after the reader's next position. */
  bool has_pending() const;
  /* Queue index one past the last written frame (meaningful once something was pushed). */
  int64_t write_end() const { return write_end_; }

  /* Reads the block [out, out + n) into `dst` (n frames in the configured layout), silence where
   * the talker has no data, and advances the reader past it. */
  ReadResult read(int64_t out, uint32_t n, void *dst);

  /* If the block [out, out + n) is exactly one whole queued chunk and no resampling is needed,
   * returns it (so the caller can forward it without copying) and advances the reader; otherwise
   * returns nullptr and changes nothing. */
  const Chunk *take_exact(int64_t out, uint32_t n, ReadResult *result);

  /* Timing state, for stats and tests. */
  bool correcting() const { return engaged_; }
  /* Current read rate relative to nominal, minus one (0.005 = reading 0.5% faster). */
  double rate_offset() const { return delta_; }
  /* Reader position minus where the talker's timestamps put it, in frames (filtered). */
  double time_error() const { return have_timing_ ? correction_ - werr_filtered_ : 0.0; }
  size_t queued_chunks() const { return chunks_.size(); }
  /* While set, chunks the reader passed (or reset() drops) are not released in place: their
   * keepalives are moved to `sink`, for the caller to release later (e.g. outside a lock it holds
   * while reading, or once nobody reads them in place any more). nullptr: release in place. */
  void release_into(std::vector<std::shared_ptr<void>> *sink) { released_ = sink; }

private:
  struct Stored {
    int64_t start;
    Chunk chunk;
    int64_t end() const { return start + chunk.frames; }
  };
  /* Calls fn(stored, a, b) for every queued chunk that overlaps [from, to), in order, [a, b) being
   * the overlap. */
  template <typename Fn> void for_each_overlap(int64_t from, int64_t to, Fn fn) const {
    for (const auto &s : chunks_) {
      if (s.end() <= from)
        continue;
      if (s.start >= to)
        break;
      fn(s, std::max(from, s.start), std::min(to, s.end()));
    }
  }

  double reader_position(int64_t out) const { return static_cast<double>(out) + correction_; }
  void begin_read(int64_t out, uint32_t n);
  void finish_read(int64_t out, uint32_t n, ReadResult *result);
  void copy_frames(int64_t from, uint32_t count, uint8_t *dst) const;
  void gather_float(int64_t from, size_t count, float *dst) const;
  void drop_consumed(int64_t before);
  /* Frames with data in [from, to), and their mean power there from the chunks' powers (frames
   * without data count as silence; < 0 when a chunk in the range has no power that applies). */
  struct Coverage {
    uint32_t frames = 0;
    double power = -1.0;
  };
  Coverage coverage(int64_t from, int64_t to) const;

  Config config_;
  std::deque<Stored> chunks_;
  std::vector<std::shared_ptr<void>> *released_ = nullptr;

  bool have_written_ = false;
  int64_t first_start_ = 0; /* where the first chunk since the reset landed */
  int64_t write_end_ = 0;
  double last_pts_ = NAN;
  uint32_t last_frames_ = 0;

  /* Reader. consumed_ is the first queue index not yet passed by the reader. */
  bool reader_started_ = false;
  bool prepared_ = false; /* the drift loop already ran for block prepared_out_ */
  int64_t prepared_out_ = 0;
  int64_t next_out_ = 0;
  int64_t consumed_ = INT64_MIN;

  /* Drift loop: correction_ maps output index to queue index (x = out + correction_). */
  bool have_timing_ = false;
  double werr_filtered_ = 0.0;
  double correction_ = 0.0;
  double delta_ = 0.0;
  double integral_ = 0.0;
  bool engaged_ = false;

  std::vector<float> window_;
  std::vector<float> out_float_;
};

/* The windowed-sinc interpolator used by the queue, exposed for tests. */
class SincInterpolator {
public:
  static const SincInterpolator &get();
  /* Value between samples s[0..2H-1] at position H - 1 + frac (frac in [0, 1)). */
  const float *taps(double frac, float *scratch) const;
  static constexpr int kPhases = 256;

private:
  SincInterpolator();
  std::vector<float> table_; /* (kPhases + 1) rows of 2H taps */
};

} // namespace costream
