/* costream tests
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "audio/opus.h"
#include "testsig.h"

#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

using namespace costream;

namespace {

constexpr int kRate = 48000;
constexpr int kFrame = 960; /* 20 ms */

std::vector<float> tone_f(double freq, double amp, size_t n) {
  auto t = testsig::tone(freq, kRate, n, amp);
  return std::vector<float>(t.begin(), t.end());
}

std::vector<uint8_t> encode_frame(OpusEnc &enc, const float *pcm) {
  std::vector<uint8_t> pkt(1500);
  const int n =
      enc.encode(pcm, SampleFormat::F32, kFrame, pkt.data(), static_cast<int>(pkt.size()));
  REQUIRE(n > 0);
  pkt.resize(n);
  return pkt;
}

std::vector<double> decode_all(const std::vector<std::vector<uint8_t>> &packets) {
  OpusDec dec;
  REQUIRE(dec.init(kRate, 1));
  std::vector<double> out;
  std::vector<float> buf(kFrame);
  for (auto &p : packets) {
    REQUIRE(dec.decode(p.data(), p.size(), buf.data(), kFrame) == kFrame);
    out.insert(out.end(), buf.begin(), buf.end());
  }
  return out;
}

/* Worst tone SNR (dB) over 5 ms windows of decoded audio in [from, to): a seam or a click is a
 * window far from one clean sinusoid. */
double worst_tone_snr(const std::vector<double> &y, double freq, size_t from, size_t to) {
  std::vector<double> part(y.begin() + from, y.begin() + to);
  return testsig::tone_purity(part, freq, kRate, 240).worst_snr_db;
}

} // namespace

TEST_CASE("Opus encodes and decodes a tone faithfully", "[opus]") {
  OpusEnc enc;
  OpusSettings s;
  s.bitrate = 48000;
  REQUIRE(enc.init(s));
  auto x = tone_f(440, 0.3, 50 * kFrame);
  std::vector<std::vector<uint8_t>> pk;
  for (int f = 0; f < 50; f++)
    pk.push_back(encode_frame(enc, &x[f * kFrame]));
  auto y = decode_all(pk);
  const int la = enc.lookahead();
  CHECK(la > 0);
  CHECK(testsig::amplitude_at(&y[10 * kFrame], 20 * kFrame, 440, kRate) ==
        Approx(0.3).margin(0.02));
  CHECK(worst_tone_snr(y, 440, 10 * kFrame, 48 * kFrame) > 25.0);
}

TEST_CASE("A cloned encoder continues the stream seamlessly; a fresh one does not", "[opus]") {
  OpusSettings s;
  s.bitrate = 32000;
  OpusEnc a;
  REQUIRE(a.init(s));
  auto x = tone_f(440, 0.3, 60 * kFrame);
  std::vector<std::vector<uint8_t>> common, cloned_tail, fresh_tail;
  for (int f = 0; f < 30; f++)
    common.push_back(encode_frame(a, &x[f * kFrame]));
  OpusEnc b, c;
  b.clone_from(a);
  REQUIRE(c.init(s));
  for (int f = 30; f < 60; f++) {
    auto pa = encode_frame(a, &x[f * kFrame]);
    auto pb = encode_frame(b, &x[f * kFrame]);
    CHECK(pa == pb); /* the clone is the same encoder: same input, same packets */
    cloned_tail.push_back(pb);
    fresh_tail.push_back(encode_frame(c, &x[f * kFrame]));
  }
  auto with = [&](const std::vector<std::vector<uint8_t>> &tail) {
    auto all = common;
    all.insert(all.end(), tail.begin(), tail.end());
    return decode_all(all);
  };
  const double steady = worst_tone_snr(with(cloned_tail), 440, 10 * kFrame, 28 * kFrame);
  const double cloned = worst_tone_snr(with(cloned_tail), 440, 29 * kFrame, 33 * kFrame);
  const double fresh = worst_tone_snr(with(fresh_tail), 440, 29 * kFrame, 33 * kFrame);
  INFO("tone SNR: steady " << steady << " dB, at a switch to a clone " << cloned
                           << " dB, to a fresh encoder " << fresh << " dB");
  CHECK(steady > 30.0);
  CHECK(cloned > 30.0);         /* (the packets are the uninterrupted stream's, checked above) */
  CHECK(fresh < cloned - 20.0); /* what the clone avoids: a seam the listener hears */
}
