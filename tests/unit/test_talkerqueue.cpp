/* costream tests
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "audio/chunkpool.h"
#include "audio/talkerqueue.h"
#include "testsig.h"

#include <catch2/catch.hpp>

#include <atomic>
#include <cmath>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <numeric>
#include <thread>
#include <vector>

using namespace costream;

namespace {

/* A chunk that owns its samples. */
Chunk make_chunk(std::vector<int16_t> samples, void *tag = nullptr) {
  auto owner = std::make_shared<std::vector<int16_t>>(std::move(samples));
  Chunk c;
  c.data = reinterpret_cast<const uint8_t *>(owner->data());
  c.frames = static_cast<uint32_t>(owner->size());
  c.keepalive = owner;
  c.tag = tag;
  return c;
}

std::vector<int16_t> ramp(int16_t start, size_t n) {
  std::vector<int16_t> v(n);
  std::iota(v.begin(), v.end(), start);
  return v;
}

TalkerQueue::Config mono48k(bool drift = false) {
  TalkerQueue::Config c;
  c.layout = {SampleFormat::S16, 1, 48000};
  c.drift_correction = drift;
  c.align_threshold = 1920; /* 40 ms */
  return c;
}

std::vector<int16_t> read_block(TalkerQueue &q, int64_t out, uint32_t n,
                                TalkerQueue::ReadResult *rr = nullptr) {
  std::vector<int16_t> v(n);
  auto r = q.read(out, n, v.data());
  if (rr)
    *rr = r;
  return v;
}

} // namespace

TEST_CASE("Chunks are placed by timestamp and read back exactly", "[talkerqueue]") {
  TalkerQueue q;
  q.configure(mono48k());
  q.push(make_chunk(ramp(0, 480)), 1000.0, false);
  q.push(make_chunk(ramp(480, 480)), 1480.0, false);
  CHECK_FALSE(q.covers(1000, 1000));
  CHECK(q.covers(1000, 960));

  TalkerQueue::ReadResult rr;
  auto a = read_block(q, 900, 200, &rr); /* starts 100 frames before the talker */
  CHECK(rr.frames_with_data == 100);
  for (int i = 0; i < 100; i++)
    REQUIRE(a[i] == 0);
  for (int i = 100; i < 200; i++)
    REQUIRE(a[i] == i - 100);
  auto b = read_block(q, 1100, 860, &rr);
  CHECK(rr.frames_with_data == 860);
  for (int i = 0; i < 860; i++)
    REQUIRE(b[i] == 100 + i);
  CHECK(rr.late_frames == 0);
}

TEST_CASE("Timestamp jitter is absorbed, real gaps become silence, overlaps are trimmed",
          "[talkerqueue]") {
  TalkerQueue q;
  q.configure(mono48k());
  q.push(make_chunk(ramp(0, 480)), 0.0, false);
  auto r1 = q.push(make_chunk(ramp(480, 480)), 480.0, false);
  CHECK_FALSE(r1.resynced);
  auto r2 = q.push(make_chunk(ramp(960, 480)), 960.0 + 4800, false); /* 100 ms gap */
  CHECK(r2.resynced);
  CHECK(r2.gap_frames == 4800);
  auto blk = read_block(q, 0, 960 + 4800 + 480);
  for (int i = 0; i < 960; i++)
    REQUIRE(blk[i] == i);
  for (int i = 960; i < 960 + 4800; i++)
    REQUIRE(blk[i] == 0);
  for (int i = 0; i < 480; i++)
    REQUIRE(blk[960 + 4800 + i] == 960 + i);

  /* jitter well inside the alignment threshold is absorbed: the data stays contiguous */
  TalkerQueue j;
  j.configure(mono48k());
  j.push(make_chunk(ramp(0, 480)), 0.0, false);
  CHECK_FALSE(j.push(make_chunk(ramp(480, 480)), 480.0 + 300, false).resynced); /* +6 ms */
  CHECK_FALSE(j.push(make_chunk(ramp(960, 480)), 960.0 - 200, false).resynced); /* -4 ms */
  auto jb = read_block(j, 0, 1440);
  for (int i = 0; i < 1440; i++)
    REQUIRE(jb[i] == i);

  /* overlap: a chunk that repeats the last 2400 frames of the talker's timeline */
  TalkerQueue o;
  o.configure(mono48k());
  o.push(make_chunk(ramp(0, 4800)), 0.0, false);
  auto r3 = o.push(make_chunk(ramp(2400, 4800)), 2400.0, false);
  CHECK(r3.gap_frames == -2400);
  auto ob = read_block(o, 0, 7200);
  for (int i = 0; i < 7200; i++)
    REQUIRE(ob[i] == i);
}

TEST_CASE("Data that arrives after the reader passed is dropped and counted as late",
          "[talkerqueue]") {
  TalkerQueue q;
  q.configure(mono48k());
  q.push(make_chunk(ramp(0, 480)), 0.0, false);
  read_block(q, 0, 480);
  TalkerQueue::ReadResult rr;
  auto silent = read_block(q, 480, 480, &rr); /* the talker stalls */
  CHECK(rr.frames_with_data == 0);
  /* The stalled block arrives late, together with the next one. */
  auto p1 = q.push(make_chunk(ramp(480, 480)), 480.0, false);
  CHECK(p1.late_frames == 480);
  auto p2 = q.push(make_chunk(ramp(960, 480)), 960.0, false);
  CHECK(p2.late_frames == 0);
  auto blk = read_block(q, 960, 480, &rr);
  CHECK(rr.frames_with_data == 480);
  for (int i = 0; i < 480; i++)
    REQUIRE(blk[i] == 960 + i);

  /* Data queued but skipped by a reader that jumps ahead is counted too. */
  TalkerQueue s;
  s.configure(mono48k());
  s.push(make_chunk(ramp(0, 960)), 0.0, false);
  read_block(s, 480, 480, &rr);
  CHECK(rr.late_frames == 480);
}

TEST_CASE("Data too far ahead is dropped, also before the first read", "[talkerqueue]") {
  auto cfg = mono48k();
  cfg.max_ahead = 4800; /* 100 ms */
  for (bool read_first : {false, true}) {
    INFO((read_first ? "reader started" : "nothing read yet"));
    TalkerQueue q;
    q.configure(cfg);
    q.push(make_chunk(ramp(0, 480)), 0.0, false);
    if (read_first)
      read_block(q, 0, 480); /* the reader is at 480 */
    const int64_t base = read_first ? 480 : 0;
    /* a chunk an hour ahead (with DISCONT, so it is placed where its timestamp says) */
    auto far = q.push(make_chunk(ramp(0, 480)), 3600.0 * 48000, true);
    CHECK(far.overflow_frames == 480);
    /* one reaching past the limit keeps the part before it */
    auto edge = q.push(make_chunk(ramp(0, 480)), static_cast<double>(base + 4800 - 100), true);
    CHECK(edge.overflow_frames == 380);
    CHECK(q.write_end() <= base + 4800);
  }
}

TEST_CASE("An aligned whole chunk is handed out without copying", "[talkerqueue]") {
  TalkerQueue q;
  q.configure(mono48k(true));
  int tag_a = 0, tag_b = 0;
  q.push(make_chunk(ramp(0, 480), &tag_a), 0.0, false);
  q.push(make_chunk(ramp(480, 480), &tag_b), 480.0, false);
  TalkerQueue::ReadResult rr;
  const Chunk *c = q.take_exact(0, 480, &rr);
  REQUIRE(c != nullptr);
  CHECK(c->tag == &tag_a);
  CHECK(rr.frames_with_data == 480);
  CHECK(q.take_exact(480, 240, &rr) == nullptr); /* not a whole chunk */
  auto blk = read_block(q, 480, 480);
  CHECK(blk[0] == 480);
}

TEST_CASE("The interpolator is exact at integer positions", "[talkerqueue]") {
  float scratch[2 * TalkerQueue::kHalfTaps];
  const float *t = SincInterpolator::get().taps(0.0, scratch);
  for (int j = 0; j < 2 * TalkerQueue::kHalfTaps; j++)
    CHECK(t[j] == Approx(j == TalkerQueue::kHalfTaps - 1 ? 1.0 : 0.0).margin(1e-6));
}

namespace {

struct DriftRun {
  std::vector<double> out;
  uint64_t late = 0;
  double final_rate_offset = 0;
  double max_abs_time_error_after_settle = 0;
  size_t max_chunks = 0;
  bool engaged = false;
};

/* A live talker whose clock runs `drift` fast (0.005 = 0.5%) sends 10 ms chunks timestamped by
 * the pipeline clock; the reader pulls 10 ms blocks one block plus 10 ms after their time. */
DriftRun run_drift(double drift, double seconds, double freq) {
  const double rate = 48000;
  TalkerQueue q;
  q.configure(mono48k(true));
  DriftRun run;
  const uint32_t n = 480;
  const int64_t blocks = static_cast<int64_t>(seconds * 100);
  int64_t talker_sample = 0;
  int64_t chunk = 0;
  const double per_chunk = 480.0 * (1.0 + drift);
  for (int64_t b = 0; b < blocks; b++) {
    const double now = (b + 2) * 480.0; /* block end + 10 ms allowance */
    while (chunk * 480.0 + 480.0 <= now) {
      const int64_t end = static_cast<int64_t>(std::floor((chunk + 1) * per_chunk));
      std::vector<int16_t> s(static_cast<size_t>(end - talker_sample));
      for (size_t i = 0; i < s.size(); i++)
        s[i] = static_cast<int16_t>(
            std::lrint(16000 * std::sin(2 * M_PI * freq * (talker_sample + i) / rate)));
      talker_sample = end;
      run.late += q.push(make_chunk(std::move(s)), chunk * 480.0, false).late_frames;
      chunk++;
    }
    TalkerQueue::ReadResult rr;
    auto blk = read_block(q, b * n, n, &rr);
    run.late += rr.late_frames;
    for (auto v : blk)
      run.out.push_back(v / 32768.0);
    if (b > 600)
      run.max_abs_time_error_after_settle =
          std::max(run.max_abs_time_error_after_settle, std::fabs(q.time_error()));
    run.max_chunks = std::max(run.max_chunks, q.queued_chunks());
  }
  run.final_rate_offset = q.rate_offset();
  run.engaged = q.correcting();
  return run;
}

} // namespace

TEST_CASE("A talker drifting 0.5% over 12 s stays a pure tone", "[talkerqueue][drift]") {
  auto run = run_drift(0.005, 12.0, 1000.0);
  CHECK(run.engaged);
  CHECK(run.late == 0);
  CHECK(run.final_rate_offset == Approx(0.005).margin(0.0005));
  /* latency does not grow: the timing error settles within 1 ms and the queue stays short */
  CHECK(run.max_abs_time_error_after_settle < 48.0);
  CHECK(run.max_chunks <= 6);
  /* skip the first 20 ms (the talker starting) */
  std::vector<double> body(run.out.begin() + 960, run.out.end());
  auto p = testsig::tone_purity(body, 1005.0, 48000, 480);
  INFO("worst window SNR " << p.worst_snr_db << " dB (window " << p.worst_window << "), median "
                           << p.median_snr_db);
  CHECK(p.worst_snr_db > 70.0);
  CHECK(testsig::max_step(body) < 2 * M_PI * 1005 / 48000 * 0.5 * 1.05);
}

TEST_CASE("Slow and fast drift up to 1% are absorbed without late data", "[talkerqueue][drift]") {
  for (double drift : {-0.01, -0.002, 0.01}) {
    auto run = run_drift(drift, 20.0, 440.0);
    INFO("drift " << drift);
    CHECK(run.late == 0);
    CHECK(run.final_rate_offset == Approx(drift).margin(0.0008));
    CHECK(run.max_chunks <= 6);
    std::vector<double> body(run.out.begin() + 960, run.out.end());
    auto p = testsig::tone_purity(body, 440.0 * (1 + drift), 48000, 480);
    INFO("worst window SNR " << p.worst_snr_db);
    CHECK(p.worst_snr_db > 70.0);
  }
}

TEST_CASE("A talker without drift is never resampled and comes out bit-exact",
          "[talkerqueue][drift]") {
  auto run = run_drift(0.0, 5.0, 1000.0);
  CHECK_FALSE(run.engaged);
  for (size_t i = 0; i < run.out.size(); i++) {
    const double expect = std::lrint(16000 * std::sin(2 * M_PI * 1000 * i / 48000.0)) / 32768.0;
    REQUIRE(run.out[i] == expect);
  }
}

TEST_CASE("A block's power comes from its chunks' powers where they fit it", "[talkerqueue]") {
  auto with_power = [](Chunk c, float power, bool whole = false) {
    c.power = power;
    c.power_whole = whole;
    return c;
  };
  TalkerQueue q;
  q.configure(mono48k());
  q.push(with_power(make_chunk(ramp(0, 480), &q), 0.25f), 0.0, false);
  q.push(with_power(make_chunk(ramp(0, 240)), 0.5f), 480.0, false);
  q.push(with_power(make_chunk(ramp(0, 240)), 0.1f), 720.0, false);
  /* nothing from 960 to 3360 (a gap: longer than the alignment threshold), then two chunks of
   * 960 frames (the second with a level for the whole chunk) and one without a power */
  q.push(with_power(make_chunk(ramp(0, 960)), 0.3f), 3360.0, false);
  q.push(with_power(make_chunk(ramp(0, 960)), 0.2f, true), 4320.0, false);
  q.push(make_chunk(ramp(0, 480)), 5280.0, false);

  TalkerQueue::ReadResult rr;
  REQUIRE(q.take_exact(0, 480, &rr) != nullptr); /* a whole chunk: its power */
  CHECK(rr.power == Approx(0.25));
  read_block(q, 480, 480, &rr); /* two whole chunks: the frame-weighted mean */
  CHECK(rr.power == Approx(0.3));
  read_block(q, 960, 1920, &rr); /* silence */
  CHECK(rr.power == Approx(0.0));
  CHECK(rr.frames_with_data == 0);
  read_block(q, 2880, 960, &rr); /* 480 frames of silence, then half of a 960-frame chunk */
  CHECK(rr.frames_with_data == 480);
  CHECK(rr.power < 0.0);         /* ... whose power is of frames outside the block: unknown */
  read_block(q, 3840, 480, &rr); /* the rest of it */
  CHECK(rr.power < 0.0);
  read_block(q, 4320, 480, &rr); /* a level for the whole chunk (RTP header) holds in part */
  CHECK(rr.power == Approx(0.2));
  read_block(q, 4800, 480, &rr);
  CHECK(rr.power == Approx(0.2));
  read_block(q, 5280, 480, &rr); /* a chunk without a power */
  CHECK(rr.power < 0.0);
  read_block(q, 5760, 480, &rr); /* nothing at all */
  CHECK(rr.power == Approx(0.0));
  CHECK(rr.frames_with_data == 0);

  /* A chunk trimmed where it overlaps the previous one loses its power (not whole any more). */
  TalkerQueue t;
  t.configure(mono48k());
  t.push(with_power(make_chunk(ramp(0, 480)), 0.5f), 0.0, false);
  t.push(with_power(make_chunk(ramp(0, 480)), 0.5f), 240.0, true); /* discont: placed at 240 */
  read_block(t, 0, 480, &rr);
  CHECK(rr.power == Approx(0.5));
  read_block(t, 480, 240, &rr);
  CHECK(rr.power < 0.0);
}

TEST_CASE("A reset hands the chunks to the release sink when one is set", "[talkerqueue]") {
  TalkerQueue q;
  q.configure(mono48k());
  auto a = make_chunk(ramp(0, 480), &q); /* tagged: may be read in place */
  std::weak_ptr<void> alive = a.keepalive;
  q.push(std::move(a), 0.0, false);
  const Chunk *c = q.take_exact(0, 480, nullptr);
  REQUIRE(c != nullptr);
  const uint8_t *data = c->data;
  std::vector<std::shared_ptr<void>> sink;
  q.release_into(&sink);
  q.reset(); /* e.g. a flush while the block is being mixed from `data` in place */
  q.release_into(nullptr);
  REQUIRE(sink.size() == 1);
  CHECK_FALSE(alive.expired());
  CHECK(reinterpret_cast<const int16_t *>(data)[479] == 479);
  sink.clear();
  CHECK(alive.expired());
  CHECK(q.queued_chunks() == 0);
}

TEST_CASE("The chunk pool reuses a slot only once nobody else holds it", "[chunkpool]") {
  ChunkPool pool;
  uint8_t *a = nullptr, *b = nullptr, *c = nullptr;
  auto ka = pool.take(960, &a);
  auto kb = pool.take(960, &b);
  CHECK(a != b);
  CHECK(pool.slots() == 2);
  a[0] = 1;
  b[0] = 2;
  auto kc = pool.take(960, &c); /* both held: a new slot */
  CHECK(pool.slots() == 3);
  CHECK(c != a);
  CHECK(c != b);
  CHECK(a[0] == 1);
  ka.reset(); /* released (by any thread): its slot comes back */
  uint8_t *d = nullptr;
  auto kd = pool.take(480, &d);
  CHECK(d == a);
  CHECK(pool.slots() == 3);
  kb.reset();
  uint8_t *e = nullptr;
  auto ke = pool.take(4000, &e); /* bigger than the free slot: it grows in place */
  CHECK(pool.slots() == 3);
  e[3999] = 7;
  CHECK(e[3999] == 7);
}

TEST_CASE("Chunks from the pool go round while a reader releases them in another thread",
          "[chunkpool]") {
  ChunkPool pool;
  std::deque<std::shared_ptr<void>> in_flight;
  std::mutex lock;
  std::atomic<bool> done{false};
  std::atomic<uint64_t> bad{0};
  std::deque<std::pair<std::shared_ptr<void>, uint8_t *>> q;
  std::thread reader([&] {
    while (!done || !q.empty()) {
      std::pair<std::shared_ptr<void>, uint8_t *> item;
      {
        std::lock_guard<std::mutex> lk(lock);
        if (q.empty())
          continue;
        item = std::move(q.front());
        q.pop_front();
      }
      const uint8_t v = item.second[0];
      for (int i = 1; i < 256; i++)
        if (item.second[i] != v)
          bad++;
    }
  });
  for (int n = 0; n < 20000; n++) {
    uint8_t *data = nullptr;
    auto keep = pool.take(256, &data);
    std::fill(data, data + 256, static_cast<uint8_t>(n));
    std::lock_guard<std::mutex> lk(lock);
    q.emplace_back(std::move(keep), data);
  }
  done = true;
  reader.join();
  CHECK(bad == 0);
  CHECK(pool.slots() < 20000);
}
