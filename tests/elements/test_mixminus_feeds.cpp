/* costream tests
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * mixminus return feeds (GstCostreamFeedPad): the gst-launch lines users write first, without
 * queues, live into udpsink and non-live into file recorders; one participant's downstream
 * blocked while the others play on time; flushing seeks through the feeds' queues.
 */
#include "helpers.h"
#include "testsig.h"

#include <gst/audio/audio.h>

#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <mutex>
#include <thread>

using namespace testgst;

namespace {

constexpr int kRate = 48000;

GstElement *launch(const std::string &desc) {
  GError *err = nullptr;
  GstElement *p = gst_parse_launch(desc.c_str(), &err);
  INFO(desc << (err ? err->message : ""));
  REQUIRE(err == nullptr);
  return p;
}

/* What one return feed's sink received: per buffer its running time, duration, flags, the
 * pipeline's running time when it arrived, and its samples (S16 mono). */
struct FeedLog {
  struct Entry {
    GstClockTime pts, duration, arrival;
    bool discont, gap;
  };
  std::mutex lock;
  std::vector<Entry> entries;
  std::vector<double> samples;
  GstElement *pipeline = nullptr;
  /* Block the streaming thread once, at the first buffer at or after `block_at`, for
   * `block_for`. */
  GstClockTime block_at = GST_CLOCK_TIME_NONE;
  GstClockTime block_for = 0;
  std::atomic<bool> blocked_once{false};

  static GstPadProbeReturn probe(GstPad *, GstPadProbeInfo *info, gpointer data) {
    auto *log = static_cast<FeedLog *>(data);
    GstBuffer *b = GST_PAD_PROBE_INFO_BUFFER(info);
    GstClockTime now = GST_CLOCK_TIME_NONE;
    if (GstClock *clock = gst_element_get_clock(log->pipeline)) {
      now = gst_clock_get_time(clock) - gst_element_get_base_time(log->pipeline);
      gst_object_unref(clock);
    }
    {
      std::lock_guard<std::mutex> lk(log->lock);
      log->entries.push_back({GST_BUFFER_PTS(b), GST_BUFFER_DURATION(b), now,
                              GST_BUFFER_FLAG_IS_SET(b, GST_BUFFER_FLAG_DISCONT),
                              GST_BUFFER_FLAG_IS_SET(b, GST_BUFFER_FLAG_GAP)});
      GstMapInfo m;
      gst_buffer_map(b, &m, GST_MAP_READ);
      auto *s = reinterpret_cast<const int16_t *>(m.data);
      for (size_t i = 0; i < m.size / 2; i++)
        log->samples.push_back(s[i] / 32768.0);
      gst_buffer_unmap(b, &m);
    }
    if (GST_CLOCK_TIME_IS_VALID(log->block_at) && GST_BUFFER_PTS(b) >= log->block_at &&
        !log->blocked_once.exchange(true))
      g_usleep(log->block_for / GST_USECOND); /* a stuck consumer */
    return GST_PAD_PROBE_OK;
  }
  void attach(GstElement *pipe, const char *sink) {
    pipeline = pipe;
    GstElement *e = gst_bin_get_by_name(GST_BIN(pipe), sink);
    REQUIRE(e != nullptr);
    GstPad *pad = gst_element_get_static_pad(e, "sink");
    gst_pad_add_probe(pad, GST_PAD_PROBE_TYPE_BUFFER, probe, this, nullptr);
    gst_object_unref(pad);
    gst_object_unref(e);
  }
  size_t size() {
    std::lock_guard<std::mutex> lk(lock);
    return entries.size();
  }
};

/* Every buffer starts where the one before ended. */
void check_contiguous(const std::vector<FeedLog::Entry> &e) {
  for (size_t i = 1; i < e.size(); i++) {
    INFO("buffer " << i);
    REQUIRE(e[i].pts == e[i - 1].pts + e[i - 1].duration);
  }
}

/* Waits (bounded) until `log` holds `n` buffers. */
void wait_for_buffers(FeedLog &log, size_t n, GstClockTime timeout = 30 * GST_SECOND) {
  const gint64 end = g_get_monotonic_time() + static_cast<gint64>(timeout / GST_USECOND);
  while (log.size() < n && g_get_monotonic_time() < end)
    g_usleep(10000);
  REQUIRE(log.size() >= n);
}

guint64 dropped_buffers(GstElement *pipeline, const char *src) {
  GstElement *mm = gst_bin_get_by_name(GST_BIN(pipeline), "mm");
  GstPad *pad = gst_element_get_static_pad(mm, src);
  REQUIRE(pad != nullptr);
  guint64 dropped = G_MAXUINT64;
  g_object_get(pad, "dropped-buffers", &dropped, nullptr);
  gst_object_unref(pad);
  gst_object_unref(mm);
  return dropped;
}

} // namespace

TEST_CASE("Live room without queues: each return feed straight into rtpopuspay ! udpsink",
          "[mixminus][feeds][live]") {
  /* Receivers first, on ports the kernel picks (udpsrc port=0), then the launch line. */
  const char *caps = "application/x-rtp,media=audio,encoding-name=OPUS,clock-rate=48000,payload=96";
  std::string rx_desc;
  for (int i = 0; i < 3; i++)
    rx_desc += "udpsrc name=u" + std::to_string(i) + " port=0 address=127.0.0.1 caps=\"" + caps +
               "\" ! rtpopusdepay ! opusdec ! audioconvert ! audio/x-raw,format=S16LE,channels=1 "
               "! appsink name=r" +
               std::to_string(i) + " sync=false max-buffers=0 ";
  GstElement *rx = launch(rx_desc);
  REQUIRE(gst_element_set_state(rx, GST_STATE_PLAYING) != GST_STATE_CHANGE_FAILURE);
  int ports[3];
  for (int i = 0; i < 3; i++) {
    GstElement *u = gst_bin_get_by_name(GST_BIN(rx), ("u" + std::to_string(i)).c_str());
    g_object_get(u, "port", &ports[i], nullptr);
    gst_object_unref(u);
    REQUIRE(ports[i] > 0);
  }
  const int freqs[3] = {300, 500, 700};
  std::string tx_desc = "mixminus name=mm ";
  for (int i = 0; i < 3; i++)
    tx_desc += "audiotestsrc is-live=true volume=0.2 freq=" + std::to_string(freqs[i]) +
               " ! mm.sink_" + std::to_string(i) + " mm.src_" + std::to_string(i) +
               " ! rtpopuspay ! udpsink host=127.0.0.1 port=" + std::to_string(ports[i]) + " ";
  GstElement *tx = launch(tx_desc);
  REQUIRE(gst_element_set_state(tx, GST_STATE_PLAYING) != GST_STATE_CHANGE_FAILURE);

  /* 2 s of each participant's return feed (opusdec: 20 ms buffers). */
  std::vector<Collected> got(3);
  for (int i = 0; i < 3; i++) {
    GstElement *r = gst_bin_get_by_name(GST_BIN(rx), ("r" + std::to_string(i)).c_str());
    pull_all(r, got[i], 10 * GST_SECOND, 150);
    gst_object_unref(r);
  }
  gst_element_set_state(tx, GST_STATE_NULL);
  gst_element_set_state(rx, GST_STATE_NULL);
  gst_object_unref(tx);
  gst_object_unref(rx);

  for (int i = 0; i < 3; i++) {
    INFO("participant " << i);
    REQUIRE(got[i].buffers.size() == 150);
    auto x = got[i].channel(0, 1);
    std::vector<double> last(x.end() - kRate, x.end()); /* the last second */
    for (int j = 0; j < 3; j++) {
      const double a = testsig::amplitude_near(last.data(), last.size(), freqs[j], kRate);
      INFO("hears " << freqs[j] << " Hz at " << a);
      if (j == i)
        CHECK(a < 0.01);
      else
        CHECK(a == Approx(0.2).margin(0.03));
    }
  }
}

TEST_CASE("Non-live room without queues: five return feeds into wavenc ! filesink",
          "[mixminus][feeds]") {
  const int freqs[5] = {300, 400, 500, 600, 700};
  std::string desc = "mixminus name=mm max-speakers=0 ";
  std::vector<std::string> files;
  for (int i = 0; i < 5; i++) {
    files.push_back(test_tmpdir() + "/feed-" + std::to_string(i) + ".wav");
    desc += "audiotestsrc num-buffers=200 samplesperbuffer=480 volume=0.1 freq=" +
            std::to_string(freqs[i]) + " ! audio/x-raw,rate=48000 ! mm.sink_" + std::to_string(i) +
            " mm.src_" + std::to_string(i) + " ! wavenc ! filesink location=" + files.back() + " ";
  }
  GstElement *p = launch(desc);
  REQUIRE(gst_element_set_state(p, GST_STATE_PLAYING) != GST_STATE_CHANGE_FAILURE);
  CHECK(wait_eos_or_error(p, 30 * GST_SECOND).empty());
  gst_element_set_state(p, GST_STATE_NULL);
  gst_object_unref(p);

  for (int i = 0; i < 5; i++) {
    INFO("participant " << i);
    auto x = wav_samples(files[i]);
    REQUIRE(x.size() == 200u * 480u); /* every block, none lost */
    std::vector<double> mid(x.begin() + 4800, x.end() - 4800);
    for (int j = 0; j < 5; j++) {
      const double a = testsig::amplitude_at(mid.data(), mid.size(), freqs[j], kRate);
      INFO("hears " << freqs[j] << " Hz at " << a);
      if (j == i)
        CHECK(a < 0.001);
      else
        CHECK(a == Approx(0.1).margin(0.002));
    }
  }
}

TEST_CASE("Live: one participant's downstream blocked for 2 s costs only that feed",
          "[mixminus][feeds][live]") {
  /* Real sinks on the clock, no queues. src_1's sink blocks its streaming thread for 2 s at 1 s;
   * src_0 and src_2 must go on arriving on time, contiguous and with their tones, while src_1
   * drops what it cannot queue (counted) and comes back when unblocked. */
  const int freqs[3] = {300, 500, 700};
  std::string desc = "mixminus name=mm ";
  for (int i = 0; i < 3; i++)
    desc += "audiotestsrc is-live=true samplesperbuffer=480 volume=0.2 freq=" +
            std::to_string(freqs[i]) + " ! audio/x-raw,rate=48000 ! mm.sink_" + std::to_string(i) +
            " mm.src_" + std::to_string(i) +
            " ! audio/x-raw,format=S16LE,channels=1 ! fakesink sync=true name=s" +
            std::to_string(i) + " ";
  GstElement *p = launch(desc);
  FeedLog logs[3];
  for (int i = 0; i < 3; i++)
    logs[i].attach(p, ("s" + std::to_string(i)).c_str());
  logs[1].block_at = 1 * GST_SECOND;
  logs[1].block_for = 2 * GST_SECOND;
  REQUIRE(gst_element_set_state(p, GST_STATE_PLAYING) != GST_STATE_CHANGE_FAILURE);
  wait_for_buffers(logs[0], 500); /* 5 s */
  wait_for_buffers(logs[2], 500);
  wait_for_buffers(logs[1], 300); /* whatever src_1 kept, and a second after it came back */
  const guint64 dropped = dropped_buffers(p, "src_1");
  const guint64 dropped_others = dropped_buffers(p, "src_0") + dropped_buffers(p, "src_2");
  gst_element_set_state(p, GST_STATE_NULL);
  gst_object_unref(p);

  for (int i : {0, 2}) {
    INFO("participant " << i);
    std::vector<FeedLog::Entry> e(logs[i].entries.begin(), logs[i].entries.begin() + 500);
    check_contiguous(e);
    /* On time: never later than the mixer's latency (one block + 20 ms) and a margin for a
     * loaded machine, whereas src_1 was 2 s late. */
    GstClockTimeDiff worst = 0;
    for (auto &en : e)
      worst = std::max(worst, GST_CLOCK_DIFF(en.pts, en.arrival));
    INFO("latest arrival " << GST_TIME_AS_MSECONDS(worst) << " ms after its running time");
    CHECK(worst < 500 * GST_MSECOND);
    /* They hear the other two all along (100 ms windows from 0.5 s). */
    const auto &x = logs[i].samples;
    REQUIRE(x.size() >= 500u * 480u);
    for (size_t w = 24000; w + 4800 <= 500u * 480u; w += 4800) {
      for (int j = 0; j < 3; j++) {
        if (j == i)
          continue;
        INFO("window at " << w / 48 << " ms, " << freqs[j] << " Hz");
        CHECK(testsig::amplitude_near(&x[w], 4800, freqs[j], kRate) > 0.1);
      }
    }
  }
  CHECK(dropped_others == 0);
  /* About 2 s less what fits in the feed's queue (200 ms), in 10 ms blocks. */
  INFO("src_1 dropped " << dropped);
  CHECK(dropped >= 150);
  CHECK(dropped <= 200);
  /* src_1 came back: after its block, a DISCONT buffer, then on time again. */
  auto &e1 = logs[1].entries;
  size_t disc = 0;
  for (size_t k = 1; k < e1.size(); k++)
    if (e1[k].discont) {
      disc = k;
      break;
    }
  REQUIRE(disc > 0);
  CHECK(e1[disc].pts > e1[disc - 1].pts + e1[disc - 1].duration); /* the drop shows */
  const auto &last = e1.back();
  CHECK(GST_CLOCK_DIFF(last.pts, last.arrival) < 500 * GST_MSECOND);
  std::vector<FeedLog::Entry> after(e1.begin() + disc, e1.end());
  check_contiguous(after);
}

TEST_CASE("Non-live: a blocked feed holds the room back but nothing is lost", "[mixminus][feeds]") {
  const int freqs[3] = {300, 500, 700};
  std::string desc = "mixminus name=mm ";
  for (int i = 0; i < 3; i++)
    desc += "audiotestsrc num-buffers=300 samplesperbuffer=480 volume=0.2 freq=" +
            std::to_string(freqs[i]) + " ! audio/x-raw,rate=48000 ! mm.sink_" + std::to_string(i) +
            " mm.src_" + std::to_string(i) +
            " ! audio/x-raw,format=S16LE,channels=1 ! fakesink sync=false name=s" +
            std::to_string(i) + " ";
  GstElement *p = launch(desc);
  FeedLog logs[3];
  for (int i = 0; i < 3; i++)
    logs[i].attach(p, ("s" + std::to_string(i)).c_str());
  logs[1].block_at = 1 * GST_SECOND;
  logs[1].block_for = 1 * GST_SECOND;
  REQUIRE(gst_element_set_state(p, GST_STATE_PLAYING) != GST_STATE_CHANGE_FAILURE);
  CHECK(wait_eos_or_error(p, 30 * GST_SECOND).empty());
  CHECK(dropped_buffers(p, "src_1") == 0);
  gst_element_set_state(p, GST_STATE_NULL);
  gst_object_unref(p);
  for (int i = 0; i < 3; i++) {
    INFO("participant " << i);
    REQUIRE(logs[i].entries.size() == 300u);
    check_contiguous(logs[i].entries);
    CHECK(logs[i].entries.back().pts + logs[i].entries.back().duration == 3 * GST_SECOND);
  }
}

TEST_CASE("A flushing seek empties every return feed's queue", "[mixminus][feeds]") {
  GstElement *p =
      launch("mixminus name=mm max-speakers=0 "
             "audiotestsrc freq=440 volume=0.3 ! audio/x-raw,rate=48000 ! mm.sink_0 "
             "audiotestsrc freq=1000 volume=0.2 ! audio/x-raw,rate=16000 ! mm.sink_1 "
             "mm.src_0 ! audio/x-raw,format=S16LE,rate=48000,channels=1 ! appsink name=o0 "
             "sync=false mm.src_1 ! audio/x-raw,format=S16LE,rate=48000,channels=1 ! appsink "
             "name=o1 sync=false");
  REQUIRE(gst_element_set_state(p, GST_STATE_PAUSED) != GST_STATE_CHANGE_FAILURE);
  REQUIRE(gst_element_get_state(p, nullptr, nullptr, 10 * GST_SECOND) == GST_STATE_CHANGE_SUCCESS);
  REQUIRE(gst_element_seek(p, 1.0, GST_FORMAT_TIME,
                           static_cast<GstSeekFlags>(GST_SEEK_FLAG_FLUSH | GST_SEEK_FLAG_ACCURATE),
                           GST_SEEK_TYPE_SET, 2 * GST_SECOND, GST_SEEK_TYPE_SET, 3 * GST_SECOND));
  REQUIRE(gst_element_set_state(p, GST_STATE_PLAYING) != GST_STATE_CHANGE_FAILURE);
  const double heard[2] = {1000, 440}; /* each hears the other */
  const double amp[2] = {0.2, 0.3};
  for (int i = 0; i < 2; i++) {
    INFO("participant " << i);
    GstElement *sink = gst_bin_get_by_name(GST_BIN(p), ("o" + std::to_string(i)).c_str());
    Collected out;
    pull_all(sink, out);
    gst_object_unref(sink);
    /* The prerolled buffer may come first; from the seek on, exactly [2 s, 3 s). */
    size_t first = 0;
    while (first < out.buffers.size() && GST_BUFFER_PTS(out.buffers[first]) != 2 * GST_SECOND)
      first++;
    REQUIRE(first <= 1);
    GstClockTime next = 2 * GST_SECOND;
    std::vector<double> x;
    for (size_t k = first; k < out.buffers.size(); k++) {
      REQUIRE(GST_BUFFER_PTS(out.buffers[k]) == next);
      next += GST_BUFFER_DURATION(out.buffers[k]);
      GstMapInfo m;
      gst_buffer_map(out.buffers[k], &m, GST_MAP_READ);
      auto *s = reinterpret_cast<const int16_t *>(m.data);
      for (size_t j = 0; j < m.size / 2; j++)
        x.push_back(s[j] / 32768.0);
      gst_buffer_unmap(out.buffers[k], &m);
    }
    CHECK(next == 3 * GST_SECOND);
    REQUIRE(x.size() == 48000u);
    std::vector<double> mid(x.begin() + 4800, x.end() - 4800);
    CHECK(testsig::amplitude_at(mid.data(), mid.size(), heard[i], kRate) ==
          Approx(amp[i]).margin(0.005));
  }
  CHECK(wait_eos_or_error(p).empty());
  gst_element_set_state(p, GST_STATE_NULL);
  gst_object_unref(p);
}
