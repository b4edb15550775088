/* costream tests
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "audio/mix.h"

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

using namespace costream;

TEST_CASE("S16 sum is exact and saturates once, at the end", "[mix]") {
  std::mt19937 rng(1);
  std::uniform_int_distribution<int> d(-20000, 20000);
  const size_t n = 960;
  std::vector<std::vector<int16_t>> inputs(5, std::vector<int16_t>(n));
  for (auto &in : inputs)
    for (auto &s : in)
      s = static_cast<int16_t>(d(rng));

  MixAccumulator acc;
  acc.reset(SampleFormat::S16, n);
  for (auto &in : inputs)
    acc.add(in.data(), n, 1.f);
  std::vector<int16_t> out(n);
  acc.store(out.data());

  size_t saturated = 0;
  for (size_t i = 0; i < n; i++) {
    int32_t sum = 0;
    for (auto &in : inputs)
      sum += in[i];
    const int32_t expect = std::clamp<int32_t>(sum, INT16_MIN, INT16_MAX);
    REQUIRE(out[i] == expect);
    saturated += expect != sum;
  }
  CHECK(saturated > 0); /* the data did exercise saturation */

  /* Saturating once at the end differs from pairwise saturation: +30000 +30000 -30000 = 30000. */
  int16_t a[1] = {30000}, b[1] = {30000}, c[1] = {-30000};
  acc.reset(SampleFormat::S16, 1);
  acc.add(a, 1, 1.f);
  acc.add(b, 1, 1.f);
  acc.add(c, 1, 1.f);
  int16_t o[1];
  acc.store(o);
  CHECK(o[0] == 30000);
}

TEST_CASE("S32 and F32 sums", "[mix]") {
  int32_t a[3] = {INT32_MAX, -5, INT32_MIN}, b[3] = {INT32_MAX, 7, -1};
  MixAccumulator acc;
  acc.reset(SampleFormat::S32, 3);
  acc.add(a, 3, 1.f);
  acc.add(b, 3, 1.f);
  int32_t o[3];
  acc.store(o);
  CHECK(o[0] == INT32_MAX);
  CHECK(o[1] == 2);
  CHECK(o[2] == INT32_MIN);

  float fa[2] = {0.25f, -0.5f}, fb[2] = {0.5f, 0.125f};
  acc.reset(SampleFormat::F32, 2);
  acc.add(fa, 2, 1.f);
  acc.add(fb, 2, 2.f);
  float fo[2];
  acc.store(fo);
  CHECK(fo[0] == Approx(1.25f));
  CHECK(fo[1] == Approx(-0.25f));
}

TEST_CASE("Gain and subtract (mix-minus)", "[mix]") {
  int16_t a[4] = {1000, -1000, 20000, 3};
  int16_t b[4] = {500, 500, 20000, 4};
  MixAccumulator acc;
  acc.reset(SampleFormat::S16, 4);
  acc.add(a, 4, 0.5f);
  acc.add(b, 4, 1.f);
  acc.subtract(b, 4, 1.f);
  int16_t o[4];
  acc.store(o);
  CHECK(o[0] == 500);
  CHECK(o[1] == -500);
  CHECK(o[2] == 10000);
  CHECK(o[3] == 2); /* 1.5 rounds to even */
}

TEST_CASE("Peak limiter keeps the sum under the ceiling and recovers", "[mix]") {
  const unsigned rate = 48000;
  PeakLimiter lim;
  lim.configure(rate, 1, 0.5f, 50.f);
  const size_t n = 480;
  MixAccumulator acc;
  double max_out = 0;
  for (int block = 0; block < 100; block++) {
    acc.reset(SampleFormat::F32, n);
    std::vector<float> x(n);
    const float amp = block < 20 ? 1.5f : 0.25f; /* loud, then quiet */
    for (size_t i = 0; i < n; i++)
      x[i] = amp * static_cast<float>(std::sin(2 * M_PI * 440 * (block * n + i) / rate));
    acc.add(x.data(), n, 1.f);
    lim.process(acc);
    for (size_t i = 0; i < n; i++)
      max_out = std::max(max_out, static_cast<double>(std::fabs(acc.f32_acc()[i])));
  }
  CHECK(max_out <= 0.5 + 1e-6);
  CHECK(lim.current_gain() == Approx(1.0f)); /* quiet again: gain fully recovered */
}
