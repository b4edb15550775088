/* costream tests
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "mixminus/opusfeeds.h"

#include <catch2/catch.hpp>

#include <cmath>
#include <map>

using namespace costream;

namespace {

constexpr int kRate = 48000;
constexpr int kBlock = 480; /* 10 ms */

/* `frames` of a sine from absolute frame `at`, S16 mono. */
std::vector<uint8_t> sine(double freq, double amp, int64_t at, int frames) {
  std::vector<uint8_t> out(static_cast<size_t>(frames) * 2);
  auto *s = reinterpret_cast<int16_t *>(out.data());
  for (int i = 0; i < frames; i++)
    s[i] = static_cast<int16_t>(
        std::lround(amp * 32767.0 * std::sin(2 * M_PI * freq * (at + i) / kRate)));
  return out;
}

struct Run {
  OpusFeeds feeds;
  OpusFeeds::Config cfg;
  AudioLayout layout{SampleFormat::S16, 1, kRate};
  int64_t at = 0;
  /* per listener id: the packets it got, in order */
  std::map<uint64_t, std::vector<std::vector<uint8_t>>> got;
  std::vector<int64_t> starts;
  int encodes = 0, frames = 0, shared_refs = 0;

  Run() {
    cfg.settings.bitrate = 32000;
    cfg.settings.complexity = 5;
    cfg.frame_ms = 20;
    cfg.handover_ms = 200;
  }
  /* One block of `block` frames: the common mix is a 440 Hz tone; a holder's own mix a 660 Hz one
   * (unless `own_is_common`). */
  void block(const std::vector<OpusFeeds::Listener> &ls, bool own_is_common = false,
             int block = kBlock) {
    const auto common = sine(440, 0.3, at, block);
    const auto own = sine(660, 0.3, at, block);
    std::string why;
    REQUIRE(feeds.block(
        cfg, layout, common.data(), common.size(), ls,
        [&](size_t) { return own_is_common ? common.data() : own.data(); },
        [&](const OpusFeeds::Frame &f) {
          frames++;
          encodes += f.encodes;
          starts.push_back(at + f.start);
          REQUIRE(f.packets.size() == ls.size());
          for (size_t i = 0; i < ls.size(); i++) {
            const auto &p = f.packets[i];
            REQUIRE(p.size > 0);
            if (p.shared) {
              CHECK(p.data == f.shared.data); /* the same bytes: one buffer for all */
              shared_refs++;
            }
            got[ls[i].id].emplace_back(p.data, p.data + p.size);
          }
        },
        &why));
    at += block;
  }
};

/* Decodes a listener's packets into one signal. */
std::vector<float> decode(const std::vector<std::vector<uint8_t>> &packets) {
  OpusDec dec;
  REQUIRE(dec.init(kRate, 1));
  std::vector<float> out;
  std::vector<float> pcm(5760);
  for (const auto &p : packets) {
    const int n = dec.decode(p.data(), p.size(), pcm.data(), 5760);
    REQUIRE(n > 0);
    out.insert(out.end(), pcm.begin(), pcm.begin() + n);
  }
  return out;
}

} // namespace

TEST_CASE("listeners without a slot share one encode and one packet") {
  Run r;
  const std::vector<OpusFeeds::Listener> ls{{1, false}, {2, false}, {3, false}};
  for (int b = 0; b < 10; b++)
    r.block(ls);
  CHECK(r.frames == 5); /* 100 ms in 20 ms frames */
  CHECK(r.encodes == 5);
  CHECK(r.shared_refs == 15);
  CHECK(r.feeds.own_streams() == 0);
  CHECK(r.got[1] == r.got[2]);
  CHECK(r.got[2] == r.got[3]);
}

TEST_CASE("frames are timed from the block they complete in") {
  Run r;
  const std::vector<OpusFeeds::Listener> ls{{1, false}};
  SECTION("blocks shorter than a frame") {
    for (int b = 0; b < 6; b++)
      r.block(ls);
    CHECK(r.starts == std::vector<int64_t>{0, 960, 1920});
  }
  SECTION("blocks longer than a frame") {
    r.cfg.frame_ms = 10;
    r.block(ls, false, 4 * kBlock);
    r.block(ls, false, 4 * kBlock);
    CHECK(r.starts == std::vector<int64_t>{0, 480, 960, 1440, 1920, 2400, 2880, 3360});
  }
  SECTION("a block that ends mid-frame") {
    r.block(ls, false, 720); /* 15 ms */
    r.block(ls, false, 720);
    CHECK(r.starts == std::vector<int64_t>{0});
    r.block(ls, false, 720);
    r.block(ls, false, 720);
    CHECK(r.starts == std::vector<int64_t>{0, 960, 1920});
  }
}

TEST_CASE("a new holder's encoder starts as an exact copy of the shared one") {
  Run r;
  std::vector<OpusFeeds::Listener> ls{{1, false}, {2, false}};
  for (int b = 0; b < 10; b++)
    r.block(ls);
  ls[0].holder = true; /* listener 1 takes a slot mid-frame... */
  r.block(ls, true);   /* ...and its own mix happens to be the common one */
  CHECK(r.feeds.has_own(1));
  for (int b = 0; b < 9; b++)
    r.block(ls, true);
  /* Same state, same audio: its own packets are the shared packets, byte for byte. */
  REQUIRE(r.got[1].size() == r.got[2].size());
  CHECK(r.got[1] == r.got[2]);
  CHECK(r.encodes == 5 + 5 * 2);
}

TEST_CASE("a former holder is handed back to the shared stream without a seam") {
  /* Listener 1 holds a slot (its own mix: 660 Hz, the common mix 440 Hz), then loses it; listener 2
   * always hears the shared stream. Once listener 1 gets the shared packets too, the two decoders
   * are fed the same bytes: what still differs between their outputs is the seam, the state
   * listener 1's decoder kept from its own stream. */
  auto seam = [](int handover_ms, size_t *blocks_to_switch) {
    Run r;
    r.cfg.handover_ms = handover_ms;
    std::vector<OpusFeeds::Listener> ls{{1, true}, {2, false}};
    for (int b = 0; b < 50; b++)
      r.block(ls);
    ls[0].holder = false;
    size_t blocks = 0;
    while (r.feeds.has_own(1)) {
      r.block(ls);
      blocks++;
      REQUIRE(blocks < 100);
    }
    *blocks_to_switch = blocks;
    const size_t at = r.got[1].size() * 960; /* the first shared packet, in decoded samples */
    for (int b = 0; b < 30; b++)
      r.block(ls);
    REQUIRE(r.got[1].size() == r.got[2].size());
    for (size_t k = at / 960; k < r.got[1].size(); k++)
      REQUIRE(r.got[1][k] == r.got[2][k]); /* the shared packets themselves */
    const auto a = decode(r.got[1]);
    const auto b = decode(r.got[2]);
    double diff = 0, sig = 0;
    for (size_t i = at; i < at + 960; i++) { /* the first shared frame */
      diff += (a[i] - b[i]) * (a[i] - b[i]);
      sig += b[i] * b[i];
    }
    return 10 * std::log10(diff / sig); /* dB below the signal */
  };
  size_t blocks200 = 0, blocks20 = 0;
  const double handed = seam(200, &blocks200);
  const double abrupt = seam(20, &blocks20);
  INFO("seam in the first shared frame: " << handed << " dB after 200 ms of handover, " << abrupt
                                          << " dB after one frame");
  CHECK(blocks200 == 20); /* 200 ms of 10 ms blocks */
  CHECK(blocks20 == 2);
  CHECK(handed < -30.0); /* measured: -39 dB; after one frame: -8 dB */
  CHECK(handed < abrupt - 10.0);
}

TEST_CASE("a participant who stops listening in Opus loses its own stream") {
  Run r;
  r.block({{1, true}, {2, false}});
  r.block({{1, true}, {2, false}});
  CHECK(r.feeds.has_own(1));
  r.block({{2, false}});
  CHECK_FALSE(r.feeds.has_own(1));
  CHECK(r.feeds.own_streams() == 0);
  r.feeds.reset();
  r.block({{2, false}});
  r.block({{2, false}});
  CHECK(r.frames == 2);
}
