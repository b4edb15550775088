/* costream
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Mixing kernels on plain arrays: accumulate inputs into a wide accumulator (so the sum is exact
 * and saturates once, at the end, not after every pairwise add), then store with saturation and an
 * optional peak limiter. No GStreamer types.
 */
#pragma once

#include "sampleformat.h"

#include <cstddef>
#include <cstdint>
#include <vector>

namespace costream {

/* Accumulator for one output block. S16 sums in int32, S32 in int64, F32 in float: exact for
 * integer inputs at unity gain, and far from overflow for any realistic number of talkers. */
class MixAccumulator {
public:
  void reset(SampleFormat fmt, size_t samples);
  SampleFormat format() const { return fmt_; }
  size_t samples() const { return samples_; }

  /* acc += in * gain, for `samples` interleaved samples in the accumulator's format. */
  void add(const void *in, size_t samples, float gain, size_t offset = 0);
  /* acc -= in * gain (mix-minus: remove one talker from a common sum). */
  void subtract(const void *in, size_t samples, float gain, size_t offset = 0);

  /* Writes the accumulator to `out` in its format, saturating integer formats. */
  void store(void *out) const;

  int32_t *s16_acc() { return acc32_.data(); }
  int64_t *s32_acc() { return acc64_.data(); }
  float *f32_acc() { return accf_.data(); }

private:
  SampleFormat fmt_ = SampleFormat::S16;
  size_t samples_ = 0;
  std::vector<int32_t> acc32_;
  std::vector<int64_t> acc64_;
  std::vector<float> accf_;
};

/* Peak limiter with instant attack and exponential release: never lets a sample exceed the
 * ceiling (so nothing clips), and recovers the gain smoothly instead of distorting the peaks. */
class PeakLimiter {
public:
  void configure(unsigned rate, unsigned channels, float ceiling = 0.891f /* -1 dBFS */,
                 float release_ms = 80.f);
  void reset() { env_ = 0.f; }
  /* Limits the accumulator in place; values are in full-scale units of the accumulator format. */
  void process(MixAccumulator &acc);
  float current_gain() const { return env_ > ceiling_ ? ceiling_ / env_ : 1.f; }

private:
  unsigned channels_ = 1;
  float ceiling_ = 0.891f;
  float release_coef_ = 0.999f;
  float env_ = 0.f;
};

/* Stores silence of the given format (all formats: zero bytes). */
void fill_silence(void *out, size_t bytes);

} // namespace costream
