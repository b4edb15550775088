/* costream tests
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * OpusReceiver: lost packets concealed with PLC, recovered from in-band FEC, DTX holes left
 * silent; measured as the 10 ms windows in which a tone drops out.
 */
#include "audio/opusreceiver.h"
#include "testsig.h"

#include <catch2/catch.hpp>

#include <cmath>
#include <random>
#include <vector>

using namespace costream;

namespace {

constexpr int kRate = 48000;
constexpr int kFrame = 960; /* 20 ms */

struct Packet {
  std::vector<uint8_t> data;
  int64_t pos;
};

/* `seconds` of a 440 Hz tone at 0.3, 20 ms packets. */
std::vector<Packet> encode_tone(bool fec, int loss_pct, double seconds = 10.0,
                                double silent_until = 0.0, bool dtx = false) {
  OpusEnc enc;
  OpusSettings s;
  s.bitrate = 32000;
  s.inband_fec = fec;
  s.packet_loss_percentage = loss_pct;
  s.dtx = dtx;
  REQUIRE(enc.init(s));
  const size_t n = static_cast<size_t>(seconds * kRate);
  auto t = testsig::tone(440, kRate, n, 0.3);
  std::vector<float> x(t.begin(), t.end());
  for (size_t i = 0; i < static_cast<size_t>(silent_until * kRate) && i < n; i++)
    x[i] = 0.f;
  std::vector<Packet> out;
  for (size_t f = 0; f + kFrame <= n; f += kFrame) {
    std::vector<uint8_t> pkt(1500);
    const int len = enc.encode(&x[f], SampleFormat::F32, kFrame, pkt.data(), 1500);
    REQUIRE(len > 0);
    pkt.resize(len);
    out.push_back({pkt, static_cast<int64_t>(f)});
  }
  return out;
}

/* Which packets are lost: random at `pct` %, or in bursts of `burst` (seeded: runs repeat). */
std::vector<bool> losses(size_t n, double pct, int burst, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  std::vector<bool> lost(n, false);
  for (size_t i = 2; i + 5 < n;) { /* the first and last packets arrive */
    if (u(rng) < pct / 100.0 / burst) {
      for (int k = 0; k < burst && i < n; k++)
        lost[i++] = true;
    } else {
      i++;
    }
  }
  return lost;
}

/* Plays the packets that are not lost through a receiver into a timeline (holes stay zero). */
std::vector<double> receive(OpusReceiver &rx, const std::vector<Packet> &pk,
                            const std::vector<bool> &lost, bool announce_gaps = false) {
  std::vector<double> y(pk.size() * kFrame, 0.0);
  std::vector<float> pcm;
  OpusReceiver::Output out;
  auto place = [&] {
    for (int64_t i = 0; i < out.frames; i++)
      if (out.start + i >= 0 && out.start + i < static_cast<int64_t>(y.size()))
        y[out.start + i] = pcm[i];
  };
  for (size_t i = 0; i < pk.size(); i++) {
    if (lost[i]) {
      if (announce_gaps) { /* the jitter buffer's GAP for this packet */
        rx.gap(pk[i].pos, kFrame, &pcm, &out);
        place();
      }
      continue;
    }
    REQUIRE(rx.packet(pk[i].data.data(), pk[i].data.size(), kFrame, pk[i].pos, true, &pcm, &out));
    place();
  }
  return y;
}

double dropouts(const std::vector<double> &y) {
  std::vector<double> from(y.begin() + 2 * kFrame, y.end());
  return testsig::dropout_fraction(from, 440, kRate, 480, 0.03); /* 20 dB under the tone */
}

} // namespace

TEST_CASE("The FEC flag is read from the packet", "[opusreceiver]") {
  auto with = encode_tone(true, 10, 1.0);
  auto without = encode_tone(false, 0, 1.0);
  size_t n_with = 0, n_without = 0;
  for (size_t i = 5; i < with.size(); i++) {
    n_with += opus_packet_has_fec(with[i].data.data(), with[i].data.size());
    n_without += opus_packet_has_fec(without[i].data.data(), without[i].data.size());
  }
  CHECK(n_with >= (with.size() - 5) / 2);
  CHECK(n_without == 0);
  /* Bounds: nothing, a TOC alone, a truncated packet, a CELT-only packet. */
  CHECK_FALSE(opus_packet_has_fec(nullptr, 0));
  const uint8_t toc_only[1] = {0x08};
  CHECK_FALSE(opus_packet_has_fec(toc_only, 1));
  const uint8_t bad[3] = {0x0b, 0xff, 0xff}; /* code 3, 63 frames: does not parse */
  CHECK_FALSE(opus_packet_has_fec(bad, 3));
  const uint8_t celt[4] = {0xf8, 0xff, 0xff, 0xff};
  CHECK_FALSE(opus_packet_has_fec(celt, 4));
}

TEST_CASE("5% random loss: PLC keeps a tone, FEC brings packets back", "[opusreceiver]") {
  auto plain = encode_tone(false, 0);
  auto lost = losses(plain.size(), 5.0, 1, 42);
  size_t n_lost = 0;
  for (bool l : lost)
    n_lost += l;

  OpusReceiver none;
  REQUIRE(none.init(1));
  none.set_conceal(false);
  const double d_none = dropouts(receive(none, plain, lost));

  OpusReceiver plc;
  REQUIRE(plc.init(1));
  const double d_plc = dropouts(receive(plc, plain, lost));

  auto coded = encode_tone(true, 10); /* a sender planning for 10 % loss (LBRR on at 32 kbit/s) */
  OpusReceiver fec;
  REQUIRE(fec.init(1));
  const double d_fec = dropouts(receive(fec, coded, lost));

  /* FEC can bring back only a loss whose next packet carries it: libopus codes LBRR only for
   * frames its VAD finds active (about 1 in 6 for a steady tone, most frames of speech). */
  size_t n_fec = 0;
  for (size_t i = 0; i + 1 < coded.size(); i++)
    n_fec += lost[i] && !lost[i + 1] &&
             opus_packet_has_fec(coded[i + 1].data.data(), coded[i + 1].data.size());
  INFO("lost " << n_lost << " of " << plain.size() << " (" << n_fec
               << " followed by FEC); dropout windows (20 dB under the tone): none " << d_none
               << ", PLC " << d_plc << ", FEC " << d_fec);
  CHECK(d_none > 0.03);
  CHECK(d_plc < d_none / 2);
  CHECK(d_fec <= d_plc);
  CHECK(plc.counters().concealed == n_lost);
  CHECK(plc.counters().recovered == 0);
  CHECK(fec.counters().recovered == n_fec);
  CHECK(fec.counters().recovered + fec.counters().concealed == n_lost);
}

TEST_CASE("Losses announced by GAP events are concealed, the last packet's worth by FEC",
          "[opusreceiver]") {
  auto coded = encode_tone(true, 20);
  auto lost = losses(coded.size(), 20.0, 3, 7); /* bursts of three */
  OpusReceiver rx;
  REQUIRE(rx.init(1));
  auto y = receive(rx, coded, lost, true);
  size_t n_lost = 0;
  for (bool l : lost)
    n_lost += l;
  INFO("lost " << n_lost << ": concealed " << rx.counters().concealed << ", recovered "
               << rx.counters().recovered);
  size_t n_fec = 0; /* bursts whose next packet carries FEC: their last packet comes back */
  for (size_t i = 0; i + 1 < coded.size(); i++)
    n_fec += lost[i] && !lost[i + 1] &&
             opus_packet_has_fec(coded[i + 1].data.data(), coded[i + 1].data.size());
  CHECK(rx.counters().concealed + rx.counters().recovered == n_lost);
  CHECK(rx.counters().recovered == n_fec);
  /* Concealed, never a burst louder than the talker: no 10 ms window more than 2 dB above the
   * loudest window of the same stream received without loss. (libopus' decoder overshoots by
   * about 1.2 dB in the second packet after a burst while its gains settle; a click or a burst
   * of noise would be far above.) */
  auto worst_window = [](const std::vector<double> &x) {
    double worst = 0;
    for (size_t w = 0; w + 480 <= x.size(); w += 480) {
      double e = 0;
      for (size_t k = w; k < w + 480; k++)
        e += x[k] * x[k];
      worst = std::max(worst, std::sqrt(e / 480));
    }
    return worst;
  };
  OpusReceiver clean;
  REQUIRE(clean.init(1));
  const double reference = worst_window(receive(clean, coded, std::vector<bool>(coded.size())));
  INFO("worst window " << worst_window(y) << ", without loss " << reference);
  CHECK(worst_window(y) <= reference * 1.26);
}

TEST_CASE("A long pause is not concealed; DTX silence is not a loss", "[opusreceiver]") {
  auto pk = encode_tone(false, 0, 3.0);
  std::vector<bool> lost(pk.size(), false);
  for (size_t i = 50; i < 100; i++) /* 1 s without packets */
    lost[i] = true;
  OpusReceiver rx;
  REQUIRE(rx.init(1));
  auto y = receive(rx, pk, lost);
  CHECK(rx.counters().concealed == 0);
  CHECK(testsig::amplitude_near(&y[75 * kFrame], kFrame, 440, kRate) < 0.01); /* silence */
  CHECK(testsig::amplitude_near(&y[120 * kFrame], kFrame, 440, kRate) == Approx(0.3).margin(0.05));

  /* DTX: 2 s of silence then the tone; the encoder's tiny DTX packets are not sent, as
   * rtpopuspay dtx=true does, except the first. The holes between are silence, not losses. */
  auto d = encode_tone(false, 0, 4.0, 2.0, true);
  OpusReceiver drx;
  REQUIRE(drx.init(1));
  std::vector<bool> skip(d.size(), false);
  size_t tiny = 0;
  for (size_t i = 1; i < d.size(); i++)
    if (d[i].data.size() <= 2 && d[i - 1].data.size() <= 2) {
      skip[i] = true;
      tiny++;
    }
  REQUIRE(tiny > 50); /* the encoder did go into DTX */
  auto dy = receive(drx, d, skip);
  CHECK(drx.counters().dtx > 0);
  CHECK(drx.counters().concealed == 0);
  CHECK(testsig::amplitude_near(&dy[3 * kRate], kRate / 2, 440, kRate) == Approx(0.3).margin(0.05));
}

TEST_CASE("Packets not decoded keep the timeline; the decoder starts over after them",
          "[opusreceiver]") {
  auto pk = encode_tone(false, 0, 2.0);
  OpusReceiver rx;
  REQUIRE(rx.init(1));
  std::vector<float> pcm;
  OpusReceiver::Output out;
  for (size_t i = 0; i < pk.size(); i++) {
    const bool decode = i < 20 || i >= 40;
    REQUIRE(rx.packet(pk[i].data.data(), pk[i].data.size(), kFrame, pk[i].pos, decode, &pcm, &out));
    CHECK(out.start == pk[i].pos);
    CHECK(out.frames == kFrame);
    if (!decode)
      CHECK(*std::max_element(pcm.begin(), pcm.end()) == 0.f);
  }
  CHECK(rx.counters().decoded == pk.size() - 20);
  CHECK(rx.counters().concealed == 0);
  /* Garbage does not decode and changes nothing. */
  const uint8_t junk[3] = {0x0b, 0xff, 0xff};
  CHECK_FALSE(rx.packet(junk, 3, kFrame, pk.back().pos + kFrame, true, &pcm, &out));
}

TEST_CASE("GAPs announced packet by packet are concealed for 120 ms, then it is a pause",
          "[opusreceiver]") {
  auto pk = encode_tone(false, 0, 3.0);
  std::vector<bool> lost(pk.size(), false);
  for (size_t i = 50; i < 60; i++) /* 200 ms lost, a GAP for each packet */
    lost[i] = true;
  OpusReceiver rx;
  REQUIRE(rx.init(1));
  auto y = receive(rx, pk, lost, true);
  CHECK(rx.counters().concealed == 6); /* 120 ms */
  CHECK(rx.counters().concealed_frames == 6 * kFrame);
  /* concealment fades out; the last 80 ms stay silent; the tone is back after */
  CHECK(testsig::amplitude_near(&y[57 * kFrame], kFrame, 440, kRate) < 0.01);
  CHECK(testsig::amplitude_near(&y[62 * kFrame], kFrame, 440, kRate) == Approx(0.3).margin(0.05));
}

TEST_CASE("A hole a little short of a packet (live timestamps) is still recovered by FEC",
          "[opusreceiver]") {
  auto pk = encode_tone(true, 20, 3.0);
  size_t at = 0; /* a packet with FEC, past the start */
  for (size_t i = 20; i < pk.size() && !at; i++)
    if (opus_packet_has_fec(pk[i].data.data(), pk[i].data.size()))
      at = i;
  REQUIRE(at != 0);
  OpusReceiver rx;
  REQUIRE(rx.init(1));
  std::vector<float> pcm;
  OpusReceiver::Output out;
  for (size_t i = 0; i + 1 < at; i++)
    REQUIRE(rx.packet(pk[i].data.data(), pk[i].data.size(), kFrame, pk[i].pos, true, &pcm, &out));
  /* packet at-1 lost; packet `at` arrives 1 ms early on its timeline */
  const int64_t early = kRate / 1000;
  REQUIRE(rx.packet(pk[at].data.data(), pk[at].data.size(), kFrame, pk[at].pos - early, true, &pcm,
                    &out));
  CHECK(rx.counters().recovered == 1);
  CHECK(rx.counters().concealed == 0);
  CHECK(out.start == pk[at - 1].pos);
  CHECK(out.frames == 2 * kFrame - early); /* the recovered packet, trimmed, then the packet */
  std::vector<double> d(pcm.begin(), pcm.end());
  CHECK(testsig::amplitude_near(d.data(), kFrame - early, 440, kRate) == Approx(0.3).margin(0.08));
}

TEST_CASE("A hole announced in uneven GAPs (live timestamps) counts its packets once",
          "[opusreceiver]") {
  /* Packets 50-52 lost. The jitter buffer's GAPs do not fall on packet boundaries: the first
   * conceals 0.55 of a packet, the second 0.55 more, the next packet the remaining 1.9. Rounded
   * per call that was 1 + 1 + 2 = 4 lost packets; the hole is 3. */
  auto pk = encode_tone(false, 0, 2.0);
  OpusReceiver rx;
  REQUIRE(rx.init(1));
  std::vector<float> pcm;
  OpusReceiver::Output out;
  for (size_t i = 0; i < 50; i++)
    REQUIRE(rx.packet(pk[i].data.data(), pk[i].data.size(), kFrame, pk[i].pos, true, &pcm, &out));
  const int64_t f = kFrame, p50 = pk[50].pos;
  rx.gap(p50, f + f * 55 / 100, &pcm, &out);
  CHECK(out.frames == f * 55 / 100);
  rx.gap(p50 + f + f * 55 / 100, f * 55 / 100, &pcm, &out);
  CHECK(out.frames == f * 55 / 100);
  REQUIRE(rx.packet(pk[53].data.data(), pk[53].data.size(), kFrame, pk[53].pos, true, &pcm, &out));
  CHECK(rx.counters().concealed == 3);
  CHECK(rx.counters().concealed_frames == static_cast<uint64_t>(3 * f));
}
