/* costream
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "mix.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

namespace costream {

void MixAccumulator::reset(SampleFormat fmt, size_t samples) {
  fmt_ = fmt;
  samples_ = samples;
  switch (fmt) {
  case SampleFormat::S16:
    acc32_.assign(samples, 0);
    break;
  case SampleFormat::S32:
    acc64_.assign(samples, 0);
    break;
  case SampleFormat::F32:
    accf_.assign(samples, 0.f);
    break;
  }
}

namespace {

template <typename In, typename Acc>
void add_kernel(Acc *__restrict acc, const In *__restrict in, size_t n, float gain, int sign) {
  if (gain == 1.f) {
    if (sign > 0)
      for (size_t i = 0; i < n; i++)
        acc[i] += in[i];
    else
      for (size_t i = 0; i < n; i++)
        acc[i] -= in[i];
    return;
  }
  const float g = gain * sign;
  if constexpr (std::is_floating_point<Acc>::value) {
    for (size_t i = 0; i < n; i++)
      acc[i] += in[i] * g;
  } else if constexpr (sizeof(In) == 2) {
    for (size_t i = 0; i < n; i++)
      acc[i] += static_cast<Acc>(std::lrint(in[i] * g));
  } else {
    const double gd = g;
    for (size_t i = 0; i < n; i++)
      acc[i] += static_cast<Acc>(std::llrint(in[i] * gd));
  }
}

} // namespace

void MixAccumulator::add(const void *in, size_t n, float gain, size_t offset) {
  n = std::min(n, samples_ > offset ? samples_ - offset : 0);
  switch (fmt_) {
  case SampleFormat::S16:
    add_kernel(acc32_.data() + offset, static_cast<const int16_t *>(in), n, gain, 1);
    break;
  case SampleFormat::S32:
    add_kernel(acc64_.data() + offset, static_cast<const int32_t *>(in), n, gain, 1);
    break;
  case SampleFormat::F32:
    add_kernel(accf_.data() + offset, static_cast<const float *>(in), n, gain, 1);
    break;
  }
}

void MixAccumulator::subtract(const void *in, size_t n, float gain, size_t offset) {
  n = std::min(n, samples_ > offset ? samples_ - offset : 0);
  switch (fmt_) {
  case SampleFormat::S16:
    add_kernel(acc32_.data() + offset, static_cast<const int16_t *>(in), n, gain, -1);
    break;
  case SampleFormat::S32:
    add_kernel(acc64_.data() + offset, static_cast<const int32_t *>(in), n, gain, -1);
    break;
  case SampleFormat::F32:
    add_kernel(accf_.data() + offset, static_cast<const float *>(in), n, gain, -1);
    break;
  }
}

void MixAccumulator::store(void *out) const {
  switch (fmt_) {
  case SampleFormat::S16: {
    auto *o = static_cast<int16_t *>(out);
    for (size_t i = 0; i < samples_; i++)
      o[i] = static_cast<int16_t>(std::clamp<int32_t>(acc32_[i], INT16_MIN, INT16_MAX));
    break;
  }
  case SampleFormat::S32: {
    auto *o = static_cast<int32_t *>(out);
    for (size_t i = 0; i < samples_; i++)
      o[i] = static_cast<int32_t>(std::clamp<int64_t>(acc64_[i], INT32_MIN, INT32_MAX));
    break;
  }
  case SampleFormat::F32:
    /* Float output is not clipped: like audiomixer, the exact sum is passed on and the
     * consumer (or the limiter) decides. */
    std::memcpy(out, accf_.data(), samples_ * sizeof(float));
    break;
  }
}

void PeakLimiter::configure(unsigned rate, unsigned channels, float ceiling, float release_ms) {
  channels_ = std::max(1u, channels);
  ceiling_ = ceiling;
  release_coef_ = std::exp(-1.f / (std::max(1.f, release_ms) * 1e-3f * std::max(1u, rate)));
  env_ = 0.f;
}

void PeakLimiter::process(MixAccumulator &acc) {
  float scale;
  switch (acc.format()) {
  case SampleFormat::S16:
    scale = 32768.f;
    break;
  case SampleFormat::S32:
    scale = 2147483648.f;
    break;
  default:
    scale = 1.f;
  }
  const size_t frames = acc.samples() / channels_;
  for (size_t f = 0; f < frames; f++) {
    float peak = 0.f;
    for (unsigned c = 0; c < channels_; c++) {
      size_t i = f * channels_ + c;
      float v;
      switch (acc.format()) {
      case SampleFormat::S16:
        v = static_cast<float>(acc.s16_acc()[i]);
        break;
      case SampleFormat::S32:
        v = static_cast<float>(acc.s32_acc()[i]);
        break;
      default:
        v = acc.f32_acc()[i];
      }
      peak = std::max(peak, std::fabs(v) / scale);
    }
    /* instant attack, exponential release */
    env_ = peak > env_ ? peak : peak + release_coef_ * (env_ - peak);
    if (env_ <= ceiling_)
      continue;
    const float g = ceiling_ / env_;
    for (unsigned c = 0; c < channels_; c++) {
      size_t i = f * channels_ + c;
      switch (acc.format()) {
      case SampleFormat::S16:
        acc.s16_acc()[i] = static_cast<int32_t>(std::lrint(acc.s16_acc()[i] * g));
        break;
      case SampleFormat::S32:
        acc.s32_acc()[i] = static_cast<int64_t>(std::llrint(acc.s32_acc()[i] * (double)g));
        break;
      default:
        acc.f32_acc()[i] *= g;
      }
    }
  }
}

void fill_silence(void *out, size_t bytes) {
  std::memset(out, 0, bytes);
}

} // namespace costream
