/* costream
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "level.h"

#include <algorithm>
#include <cmath>
#include <cstdint>

namespace costream {

double block_power(const void *data, size_t n, SampleFormat fmt) {
  if (n == 0)
    return 0.0;
  double sum = 0.0;
  switch (fmt) {
  case SampleFormat::S16: {
    auto *s = static_cast<const int16_t *>(data);
    int64_t acc = 0;
    for (size_t i = 0; i < n; i++)
      acc += static_cast<int32_t>(s[i]) * s[i];
    sum = static_cast<double>(acc) / (32768.0 * 32768.0);
    break;
  }
  case SampleFormat::S32: {
    auto *s = static_cast<const int32_t *>(data);
    for (size_t i = 0; i < n; i++) {
      double v = s[i] / 2147483648.0;
      sum += v * v;
    }
    break;
  }
  case SampleFormat::F32: {
    auto *s = static_cast<const float *>(data);
    for (size_t i = 0; i < n; i++)
      sum += static_cast<double>(s[i]) * s[i];
    break;
  }
  }
  return sum / static_cast<double>(n);
}

double power_to_dbov(double power) {
  if (!(power > 0.0))
    return kSilenceDbov;
  return std::clamp(10.0 * std::log10(power), kSilenceDbov, 0.0);
}

double block_level_dbov(const void *data, size_t n, SampleFormat fmt) {
  return power_to_dbov(block_power(data, n, fmt));
}

void LevelMeter::configure(double attack_ms, double decay_ms) {
  attack_ms_ = std::max(0.0, attack_ms);
  decay_ms_ = std::max(0.0, decay_ms);
  smoothed_power_ = 0.0;
}

double LevelMeter::update(double power, double duration_ms) {
  const double tau = power > smoothed_power_ ? attack_ms_ : decay_ms_;
  const double a = tau > 0.0 ? 1.0 - std::exp(-duration_ms / tau) : 1.0;
  smoothed_power_ += a * (power - smoothed_power_);
  return level_dbov();
}

} // namespace costream
