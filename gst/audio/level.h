/* costream
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Audio level in dBov as RFC 6464 means it: RMS relative to the overload point (a full-scale
 * square wave is 0 dBov, a full-scale sine -3 dBov), clamped to [-127, 0]. A smoothed level
 * follows rises quickly and decays slowly, as a level meter should.
 */
#pragma once

#include "sampleformat.h"

#include <cstddef>

namespace costream {

constexpr double kSilenceDbov = -127.0;

/* RMS level in dBov of `samples` interleaved samples of `fmt`. */
double block_level_dbov(const void *data, size_t samples, SampleFormat fmt);
/* Mean power (RMS^2, full scale = 1) of a block; summing powers of blocks then converting keeps
 * the meter exact across blocks of different sizes. */
double block_power(const void *data, size_t samples, SampleFormat fmt);
double power_to_dbov(double power);

class LevelMeter {
public:
  /* attack/decay: time constants in ms of the power smoothing. */
  void configure(double attack_ms = 10.0, double decay_ms = 300.0);
  void reset() { smoothed_power_ = 0.0; }
  /* Feeds the power of a block of `duration_ms`; returns the smoothed level in dBov. */
  double update(double power, double duration_ms);
  double level_dbov() const { return power_to_dbov(smoothed_power_); }

private:
  double attack_ms_ = 10.0;
  double decay_ms_ = 300.0;
  double smoothed_power_ = 0.0;
};

} // namespace costream
