/* costream tests
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "audio/level.h"
#include "testsig.h"

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <vector>

using namespace costream;

TEST_CASE("dBov follows RFC 6464: full-scale square 0, full-scale sine -3", "[level]") {
  std::vector<int16_t> square(480);
  for (size_t i = 0; i < square.size(); i++)
    square[i] = (i / 24) % 2 ? INT16_MIN : INT16_MAX;
  CHECK(block_level_dbov(square.data(), square.size(), SampleFormat::S16) ==
        Approx(0.0).margin(0.01));

  auto t = testsig::tone(1000, 48000, 4800, 1.0);
  std::vector<float> f(t.begin(), t.end());
  CHECK(block_level_dbov(f.data(), f.size(), SampleFormat::F32) == Approx(-3.01).margin(0.02));

  std::vector<int32_t> s32(4800);
  for (size_t i = 0; i < s32.size(); i++)
    s32[i] = static_cast<int32_t>(t[i] * 0.1 * 2147483647.0);
  CHECK(block_level_dbov(s32.data(), s32.size(), SampleFormat::S32) == Approx(-23.01).margin(0.02));

  std::vector<int16_t> zero(480, 0);
  CHECK(block_level_dbov(zero.data(), zero.size(), SampleFormat::S16) == kSilenceDbov);
}

TEST_CASE("Level meter rises fast and decays slowly", "[level]") {
  LevelMeter m;
  m.configure(10.0, 300.0);
  for (int i = 0; i < 20; i++)
    m.update(0.5, 10.0); /* -3 dBov */
  CHECK(m.level_dbov() == Approx(-3.01).margin(0.1));
  m.update(0.0, 10.0);
  /* one 10 ms block of silence: power decays by exp(-10/300) */
  CHECK(m.level_dbov() ==
        Approx(-3.01 - 10 * std::log10(1.0 / std::exp(-10.0 / 300.0))).margin(0.05));
  for (int i = 0; i < 300; i++)
    m.update(0.0, 10.0);
  CHECK(m.level_dbov() < -40.0);
}
