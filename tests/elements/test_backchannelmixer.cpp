/* costream tests
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * backchannelmixer: real pipelines (appsrc -> backchannelmixer -> appsink) for non-live content
 * checks, and pipelines on a GstTestClock for live behaviour, so nothing depends on how fast the
 * machine is: the clock only moves when the test moves it.
 */
#include "helpers.h"
#include "testsig.h"

#include "audio/opus.h"

#include <gst/audio/audio.h>
#include <gst/check/gstharness.h>
#include <gst/check/gsttestclock.h>
#include <gst/controller/gstdirectcontrolbinding.h>
#include <gst/controller/gstinterpolationcontrolsource.h>

#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <random>
#include <thread>

using namespace testgst;

namespace {

struct Pipeline {
  GstElement *pipeline = nullptr;
  GstElement *mixer = nullptr;
  GstElement *sink = nullptr;
  std::vector<GstElement *> srcs;

  explicit Pipeline(const char *out_caps, bool sync = false) {
    pipeline = gst_pipeline_new(nullptr);
    mixer = make("backchannelmixer", "m");
    GstElement *capsf = make("capsfilter");
    GstCaps *caps = gst_caps_from_string(out_caps);
    g_object_set(capsf, "caps", caps, nullptr);
    gst_caps_unref(caps);
    sink = make("appsink");
    g_object_set(sink, "sync", sync, "max-buffers", 0, nullptr);
    gst_bin_add_many(GST_BIN(pipeline), mixer, capsf, sink, nullptr);
    REQUIRE(gst_element_link_many(mixer, capsf, sink, nullptr));
  }
  GstElement *add_talker(GstCaps *caps, bool live = false) {
    GstElement *src = make("appsrc");
    g_object_set(src, "format", GST_FORMAT_TIME, "caps", caps, "is-live", live, nullptr);
    gst_caps_unref(caps);
    gst_bin_add(GST_BIN(pipeline), src);
    REQUIRE(gst_element_link(src, mixer));
    srcs.push_back(src);
    return src;
  }
  ~Pipeline() {
    gst_element_set_state(pipeline, GST_STATE_NULL);
    gst_object_unref(pipeline);
  }
};

std::vector<int16_t> random_s16(size_t n, int amp, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> d(-amp, amp);
  std::vector<int16_t> v(n);
  for (auto &s : v)
    s = static_cast<int16_t>(d(rng));
  return v;
}

/* Pushes `frames` interleaved frames of `data` in buffers of `per_buf` frames, from `start`. */
void push_s16(GstElement *src, const std::vector<int16_t> &data, unsigned channels,
              int64_t start_frame, unsigned per_buf, int rate = 48000) {
  const size_t frames = data.size() / channels;
  for (size_t f = 0; f < frames; f += per_buf) {
    const size_t n = std::min<size_t>(per_buf, frames - f);
    std::vector<int16_t> chunk(data.begin() + f * channels, data.begin() + (f + n) * channels);
    const GstClockTime pts = gst_util_uint64_scale_round(start_frame + f, GST_SECOND, rate);
    const GstClockTime end = gst_util_uint64_scale_round(start_frame + f + n, GST_SECOND, rate);
    REQUIRE(gst_app_src_push_buffer(GST_APP_SRC(src), s16_buffer(chunk, pts, end - pts)) ==
            GST_FLOW_OK);
  }
}

} // namespace

TEST_CASE("backchannelmixer is registered with docs, templates and properties",
          "[backchannelmixer]") {
  GstElementFactory *f = gst_element_factory_find("backchannelmixer");
  REQUIRE(f != nullptr);
  CHECK(std::string(gst_element_factory_get_metadata(f, GST_ELEMENT_METADATA_KLASS)) ==
        "Filter/Audio/Mixer");
  GstPlugin *plugin = gst_plugin_feature_get_plugin(GST_PLUGIN_FEATURE(f));
  REQUIRE(plugin != nullptr);
  CHECK(std::string(gst_plugin_get_name(plugin)) == "costream");
  CHECK(std::string(gst_plugin_get_license(plugin)) == "LGPL");
  gst_object_unref(plugin);
  gst_object_unref(f);

  GstElement *m = make("backchannelmixer");
  for (const char *p :
       {"output-buffer-duration", "timeout", "alignment-threshold", "drift-correction", "limiter",
        "idle-silence", "talk-threshold", "force-live", "stats", "latency"}) {
    INFO(p);
    CHECK(g_object_class_find_property(G_OBJECT_GET_CLASS(m), p) != nullptr);
  }
  guint64 dur = 0, timeout = 0;
  g_object_get(m, "output-buffer-duration", &dur, "timeout", &timeout, nullptr);
  CHECK(dur == 10 * GST_MSECOND);
  CHECK(timeout == 100 * GST_MSECOND);

  GstPad *pad = gst_element_request_pad_simple(m, "sink_%u");
  REQUIRE(pad != nullptr);
  for (const char *p :
       {"volume", "mute", "bytes", "buffers", "dropped", "late", "timeouts", "level", "active"}) {
    INFO(p);
    CHECK(g_object_class_find_property(G_OBJECT_GET_CLASS(pad), p) != nullptr);
  }
  /* child proxy: what gst-launch's `sink_0::volume=0.5` uses */
  gst_child_proxy_set(GST_CHILD_PROXY(m), "sink_0::volume", 0.25, nullptr);
  gdouble vol = 0;
  g_object_get(pad, "volume", &vol, nullptr);
  CHECK(vol == 0.25);
  gst_element_release_request_pad(m, pad);
  gst_object_unref(pad);
  gst_object_unref(m);
}

TEST_CASE("Non-live: the output is the exact, timestamp-aligned, saturated sum",
          "[backchannelmixer]") {
  Pipeline p("audio/x-raw,format=S16LE,rate=48000,channels=2");
  GstElement *a = p.add_talker(audio_caps("S16LE", 48000, 2));
  GstElement *b = p.add_talker(audio_caps("S16LE", 48000, 2));
  GstElement *c = p.add_talker(audio_caps("S16LE", 48000, 2));
  const size_t fa = 24000, fb = 12000, fc = 4800;
  const int64_t sb = 4807, sc = 9600; /* b starts mid-block, c later still */
  auto da = random_s16(fa * 2, 20000, 1);
  auto db = random_s16(fb * 2, 20000, 2);
  auto dc = random_s16(fc * 2, 20000, 3);
  REQUIRE(gst_element_set_state(p.pipeline, GST_STATE_PLAYING) != GST_STATE_CHANGE_FAILURE);
  push_s16(a, da, 2, 0, 480);
  push_s16(b, db, 2, sb, 336); /* 7 ms buffers: not aligned on the output blocks */
  push_s16(c, dc, 2, sc, 1024);
  for (auto *s : p.srcs)
    gst_app_src_end_of_stream(GST_APP_SRC(s));

  Collected out;
  pull_all(p.sink, out);
  CHECK(wait_eos_or_error(p.pipeline).empty());

  auto got = out.s16();
  REQUIRE(got.size() == fa * 2);
  size_t saturated = 0;
  for (size_t f = 0; f < fa; f++) {
    for (int ch = 0; ch < 2; ch++) {
      int32_t sum = da[f * 2 + ch];
      if (f >= (size_t)sb && f < sb + fb)
        sum += db[(f - sb) * 2 + ch];
      if (f >= (size_t)sc && f < sc + fc)
        sum += dc[(f - sc) * 2 + ch];
      const int32_t expect = std::clamp<int32_t>(sum, INT16_MIN, INT16_MAX);
      saturated += expect != sum;
      INFO("frame " << f << " channel " << ch);
      REQUIRE(got[f * 2 + ch] == expect);
    }
  }
  CHECK(saturated > 0);

  /* Timestamps are contiguous, 10 ms blocks. */
  GstClockTime next = 0;
  for (auto *buf : out.buffers) {
    REQUIRE(GST_BUFFER_PTS(buf) == next);
    next += GST_BUFFER_DURATION(buf);
  }
  CHECK(next == GST_SECOND / 2);
}

TEST_CASE("Inputs are converted to the format downstream chose", "[backchannelmixer]") {
  Pipeline p("audio/x-raw,format=S16LE,rate=8000,channels=1");
  GstElement *a = p.add_talker(audio_caps("F32LE", 16000, 1));
  GstElement *b = p.add_talker(audio_caps("S32LE", 48000, 2));
  REQUIRE(gst_element_set_state(p.pipeline, GST_STATE_PLAYING) != GST_STATE_CHANGE_FAILURE);
  /* a: 1 s of 500 Hz at 0.4 in F32 mono 16 kHz; b: 1 s of 1200 Hz at 0.2 in S32 stereo 48 kHz */
  auto ta = testsig::tone(500, 16000, 16000, 0.4);
  for (size_t f = 0; f < ta.size(); f += 320) {
    std::vector<float> chunk(ta.begin() + f, ta.begin() + f + 320);
    GstClockTime pts = gst_util_uint64_scale(f, GST_SECOND, 16000);
    REQUIRE(gst_app_src_push_buffer(GST_APP_SRC(a), f32_buffer(chunk, pts, 20 * GST_MSECOND)) ==
            GST_FLOW_OK);
  }
  auto tb = testsig::tone(1200, 48000, 48000, 0.2);
  for (size_t f = 0; f < tb.size(); f += 960) {
    std::vector<int32_t> chunk(960 * 2);
    for (size_t i = 0; i < 960; i++)
      chunk[2 * i] = chunk[2 * i + 1] = static_cast<int32_t>(tb[f + i] * 2147483647.0);
    GstBuffer *buf = gst_buffer_new_memdup(chunk.data(), chunk.size() * 4);
    GST_BUFFER_PTS(buf) = gst_util_uint64_scale(f, GST_SECOND, 48000);
    GST_BUFFER_DURATION(buf) = 20 * GST_MSECOND;
    REQUIRE(gst_app_src_push_buffer(GST_APP_SRC(b), buf) == GST_FLOW_OK);
  }
  for (auto *s : p.srcs)
    gst_app_src_end_of_stream(GST_APP_SRC(s));
  Collected out;
  pull_all(p.sink, out);
  CHECK(wait_eos_or_error(p.pipeline).empty());
  auto x = out.channel(0, 1);
  REQUIRE(x.size() >= 7900);
  std::vector<double> mid(x.begin() + 800, x.begin() + 7200);
  CHECK(testsig::amplitude_at(mid.data(), mid.size(), 500, 8000) == Approx(0.4).margin(0.01));
  /* stereo -> mono downmix averages the (identical) channels */
  CHECK(testsig::amplitude_at(mid.data(), mid.size(), 1200, 8000) == Approx(0.2).margin(0.01));
  CHECK(testsig::amplitude_at(mid.data(), mid.size(), 2000, 8000) < 0.002);
}

TEST_CASE("Volume and mute per talker, set through the child proxy", "[backchannelmixer]") {
  GError *err = nullptr;
  GstElement *pipeline = gst_parse_launch(
      "backchannelmixer name=m sink_1::volume=0.5 sink_2::mute=true "
      "! audio/x-raw,format=S16LE,rate=48000,channels=1 ! appsink name=out sync=false "
      "audiotestsrc num-buffers=50 freq=400 volume=0.5 ! m.sink_0 "
      "audiotestsrc num-buffers=50 freq=1000 volume=0.5 ! m.sink_1 "
      "audiotestsrc num-buffers=50 freq=3000 volume=0.5 ! m.sink_2",
      &err);
  REQUIRE(err == nullptr);
  GstElement *sink = gst_bin_get_by_name(GST_BIN(pipeline), "out");
  REQUIRE(gst_element_set_state(pipeline, GST_STATE_PLAYING) != GST_STATE_CHANGE_FAILURE);
  Collected out;
  pull_all(sink, out);
  CHECK(wait_eos_or_error(pipeline).empty());
  auto x = out.channel(0, 1);
  REQUIRE(x.size() > 20000);
  std::vector<double> mid(x.begin() + 4800, x.begin() + 19200);
  CHECK(testsig::amplitude_at(mid.data(), mid.size(), 400, 48000) == Approx(0.5).margin(0.005));
  CHECK(testsig::amplitude_at(mid.data(), mid.size(), 1000, 48000) == Approx(0.25).margin(0.005));
  CHECK(testsig::amplitude_at(mid.data(), mid.size(), 3000, 48000) < 0.001);
  gst_element_set_state(pipeline, GST_STATE_NULL);
  gst_object_unref(sink);
  gst_object_unref(pipeline);
}

TEST_CASE("The limiter keeps a loud sum under -1 dBFS; without it the sum saturates",
          "[backchannelmixer]") {
  for (bool limiter : {false, true}) {
    GError *err = nullptr;
    gchar *desc = g_strdup_printf(
        "backchannelmixer name=m limiter=%s ! audio/x-raw,format=S16LE,rate=48000,channels=1 "
        "! appsink name=out sync=false "
        "audiotestsrc num-buffers=50 freq=500 volume=0.8 ! m.sink_0 "
        "audiotestsrc num-buffers=50 freq=500 volume=0.8 ! m.sink_1",
        limiter ? "true" : "false");
    GstElement *pipeline = gst_parse_launch(desc, &err);
    g_free(desc);
    REQUIRE(err == nullptr);
    GstElement *sink = gst_bin_get_by_name(GST_BIN(pipeline), "out");
    REQUIRE(gst_element_set_state(pipeline, GST_STATE_PLAYING) != GST_STATE_CHANGE_FAILURE);
    Collected out;
    pull_all(sink, out);
    auto x = out.s16();
    REQUIRE(x.size() > 20000);
    int peak = 0;
    size_t at_full_scale = 0;
    for (auto v : x) {
      peak = std::max(peak, std::abs(static_cast<int>(v)));
      at_full_scale += (v == 32767 || v == -32768) ? 1 : 0;
    }
    INFO("limiter " << limiter << " peak " << peak);
    if (limiter) {
      CHECK(peak <= static_cast<int>(0.8913 * 32768) + 1);
      CHECK(peak > static_cast<int>(0.85 * 32768)); /* limited, not muted */
      CHECK(at_full_scale == 0);
    } else {
      CHECK(peak >= 32767);        /* saturated at full scale */
      CHECK(at_full_scale > 1000); /* 1.6 full scale: clipped tops */
    }
    gst_element_set_state(pipeline, GST_STATE_NULL);
    gst_object_unref(sink);
    gst_object_unref(pipeline);
  }
}

TEST_CASE("A talker's volume follows a control source", "[backchannelmixer]") {
  GError *err = nullptr;
  GstElement *pipeline = gst_parse_launch(
      "backchannelmixer name=m ! audio/x-raw,format=S16LE,rate=48000,channels=1 "
      "! appsink name=out sync=false "
      "audiotestsrc num-buffers=94 freq=500 volume=0.5 ! audio/x-raw,rate=48000 ! m.sink_0",
      &err);
  REQUIRE(err == nullptr);
  GstElement *m = gst_bin_get_by_name(GST_BIN(pipeline), "m");
  GstElement *sink = gst_bin_get_by_name(GST_BIN(pipeline), "out");
  GstPad *pad = gst_element_get_static_pad(m, "sink_0");
  REQUIRE(pad != nullptr);
  GstControlSource *cs = gst_interpolation_control_source_new();
  g_object_set(cs, "mode", GST_INTERPOLATION_MODE_NONE, nullptr);
  gst_timed_value_control_source_set(GST_TIMED_VALUE_CONTROL_SOURCE(cs), 0, 1.0);
  gst_timed_value_control_source_set(GST_TIMED_VALUE_CONTROL_SOURCE(cs), GST_SECOND, 0.2);
  REQUIRE(gst_object_add_control_binding(
      GST_OBJECT(pad), gst_direct_control_binding_new_absolute(GST_OBJECT(pad), "volume", cs)));
  REQUIRE(gst_element_set_state(pipeline, GST_STATE_PLAYING) != GST_STATE_CHANGE_FAILURE);
  Collected out;
  pull_all(sink, out);
  auto x = out.channel(0, 1);
  REQUIRE(x.size() >= 96000u);
  /* volume 1.0 for the first second, 0.2 after: tone at 0.5, then 0.1 */
  CHECK(testsig::amplitude_at(&x[9600], 28800, 500, 48000) == Approx(0.5).margin(0.003));
  CHECK(testsig::amplitude_at(&x[52800], 28800, 500, 48000) == Approx(0.1).margin(0.003));
  gst_element_set_state(pipeline, GST_STATE_NULL);
  gst_object_unref(cs);
  gst_object_unref(pad);
  gst_object_unref(m);
  gst_object_unref(sink);
  gst_object_unref(pipeline);
}

TEST_CASE("One talker in the output format is forwarded without copying", "[backchannelmixer]") {
  Pipeline p("audio/x-raw,format=S16LE,rate=48000,channels=2");
  GstElement *a = p.add_talker(audio_caps("S16LE", 48000, 2));
  REQUIRE(gst_element_set_state(p.pipeline, GST_STATE_PLAYING) != GST_STATE_CHANGE_FAILURE);
  std::vector<GstBuffer *> sent;
  for (int i = 0; i < 20; i++) {
    auto data = random_s16(960, 10000, 10 + i);
    GstBuffer *b = s16_buffer(data, i * 10 * GST_MSECOND, 10 * GST_MSECOND);
    sent.push_back(gst_buffer_ref(b));
    REQUIRE(gst_app_src_push_buffer(GST_APP_SRC(a), b) == GST_FLOW_OK);
  }
  gst_app_src_end_of_stream(GST_APP_SRC(a));
  Collected out;
  pull_all(p.sink, out);
  REQUIRE(out.buffers.size() == sent.size());
  for (size_t i = 0; i < sent.size(); i++) {
    INFO("buffer " << i);
    CHECK(gst_buffer_peek_memory(out.buffers[i], 0) == gst_buffer_peek_memory(sent[i], 0));
    CHECK(GST_BUFFER_PTS(out.buffers[i]) == i * 10 * GST_MSECOND);
  }
  GstStructure *stats = nullptr;
  g_object_get(p.mixer, "stats", &stats, nullptr);
  REQUIRE(stats != nullptr);
  guint64 pt = 0;
  CHECK(gst_structure_get_uint64(stats, "passthrough-blocks", &pt));
  CHECK(pt == sent.size());
  gst_structure_free(stats);
  for (auto *b : sent)
    gst_buffer_unref(b);
}

TEST_CASE("Caps that cannot be mixed give an error naming the pad", "[backchannelmixer]") {
  Pipeline p("audio/x-raw,format=S16LE,rate=48000,channels=1");
  p.add_talker(audio_caps("S16LE", 48000, 1));
  GstElement *bad = p.add_talker(audio_caps("U8", 48000, 1));
  REQUIRE(gst_element_set_state(p.pipeline, GST_STATE_PLAYING) != GST_STATE_CHANGE_FAILURE);
  std::vector<int16_t> u8(480, 0);
  gst_app_src_push_buffer(GST_APP_SRC(bad), s16_buffer(u8, 0, 10 * GST_MSECOND));
  auto err = wait_eos_or_error(p.pipeline);
  INFO(err);
  CHECK(err.find("sink_1") != std::string::npos);
  CHECK(err.find("U8") != std::string::npos);
}

TEST_CASE("Garbage timestamps, gaps and odd buffers on one talker disturb nobody else",
          "[backchannelmixer][robustness]") {
  Pipeline p("audio/x-raw,format=S16LE,rate=48000,channels=1");
  GstElement *good = p.add_talker(audio_caps("S16LE", 48000, 1));
  GstElement *bad = p.add_talker(audio_caps("S16LE", 48000, 1));
  REQUIRE(gst_element_set_state(p.pipeline, GST_STATE_PLAYING) != GST_STATE_CHANGE_FAILURE);

  /* the good talker: 2 s of 500 Hz at 0.25 */
  auto tone = testsig::tone(500, 48000, 96000, 0.25);
  std::vector<int16_t> t16(tone.size());
  for (size_t i = 0; i < tone.size(); i++)
    t16[i] = static_cast<int16_t>(std::lrint(tone[i] * 32767));
  push_s16(good, t16, 1, 0, 480);

  /* the bad talker: a normal buffer, then no timestamp, a jump back in time, a 1 s gap with
   * DISCONT, a buffer that is not a whole number of frames, an empty one, a wildly late one */
  auto noise = random_s16(480, 1000, 5);
  auto push_bad = [&](GstClockTime pts, size_t bytes, bool discont) {
    GstBuffer *b = gst_buffer_new_allocate(nullptr, bytes, nullptr);
    if (bytes)
      gst_buffer_fill(b, 0, noise.data(), std::min(bytes, noise.size() * 2));
    GST_BUFFER_PTS(b) = pts;
    GST_BUFFER_DURATION(b) = GST_CLOCK_TIME_NONE;
    if (discont)
      GST_BUFFER_FLAG_SET(b, GST_BUFFER_FLAG_DISCONT);
    REQUIRE(gst_app_src_push_buffer(GST_APP_SRC(bad), b) == GST_FLOW_OK);
  };
  push_bad(0, 960, false);
  push_bad(GST_CLOCK_TIME_NONE, 960, false);
  push_bad(0, 960, false); /* back in time: overlap */
  push_bad(GST_SECOND, 960, true);
  push_bad(GST_SECOND + 10 * GST_MSECOND, 3, false); /* 1.5 frames */
  push_bad(GST_SECOND + 20 * GST_MSECOND, 0, false);
  push_bad(G_GUINT64_CONSTANT(3600) * GST_SECOND, 960, false); /* an hour ahead: dropped */
  for (auto *s : p.srcs)
    gst_app_src_end_of_stream(GST_APP_SRC(s));

  Collected out;
  pull_all(p.sink, out);
  CHECK(wait_eos_or_error(p.pipeline).empty());
  GstClockTime next = 0;
  for (auto *buf : out.buffers) {
    REQUIRE(GST_BUFFER_PTS(buf) == next);
    next += GST_BUFFER_DURATION(buf);
  }
  auto x = out.channel(0, 1);
  REQUIRE(x.size() >= 96000u);
  /* the good talker's tone is intact wherever the bad one is silent */
  for (size_t w = 2; w < 20; w++) {
    if (w == 10)
      continue; /* 1.00-1.01 s: the bad talker's DISCONT buffer */
    INFO("100 ms window " << w);
    CHECK(testsig::amplitude_at(&x[w * 4800], 4800, 500, 48000) == Approx(0.25).margin(0.002));
  }
  GstPad *badpad = gst_element_get_static_pad(p.mixer, "sink_1");
  guint64 dropped = 0, buffers = 0;
  g_object_get(badpad, "dropped", &dropped, "buffers", &buffers, nullptr);
  CHECK(buffers == 7);
  CHECK(dropped >= 1); /* the hour-ahead one */
  gst_object_unref(badpad);
}

TEST_CASE("A flushing seek restarts every talker at the new position", "[backchannelmixer]") {
  GError *err = nullptr;
  GstElement *pipeline =
      gst_parse_launch("audiotestsrc freq=440 volume=0.3 ! audio/x-raw,rate=48000 ! m.sink_0 "
                       "audiotestsrc freq=1000 volume=0.2 ! audio/x-raw,rate=16000 ! m.sink_1 "
                       "backchannelmixer name=m ! audio/x-raw,format=S16LE,rate=48000,channels=1 "
                       "! appsink name=out sync=false",
                       &err);
  REQUIRE(err == nullptr);
  GstElement *sink = gst_bin_get_by_name(GST_BIN(pipeline), "out");
  REQUIRE(gst_element_set_state(pipeline, GST_STATE_PAUSED) != GST_STATE_CHANGE_FAILURE);
  REQUIRE(gst_element_get_state(pipeline, nullptr, nullptr, 10 * GST_SECOND) ==
          GST_STATE_CHANGE_SUCCESS);
  REQUIRE(gst_element_seek(pipeline, 1.0, GST_FORMAT_TIME,
                           static_cast<GstSeekFlags>(GST_SEEK_FLAG_FLUSH | GST_SEEK_FLAG_ACCURATE),
                           GST_SEEK_TYPE_SET, 2 * GST_SECOND, GST_SEEK_TYPE_SET, 3 * GST_SECOND));
  REQUIRE(gst_element_set_state(pipeline, GST_STATE_PLAYING) != GST_STATE_CHANGE_FAILURE);
  Collected out;
  pull_all(sink, out);
  CHECK(wait_eos_or_error(pipeline).empty());
  /* The prerolled buffer before the seek may come first; from the seek on, [2 s, 3 s). */
  size_t first = 0;
  while (first < out.buffers.size() && GST_BUFFER_PTS(out.buffers[first]) != 2 * GST_SECOND)
    first++;
  REQUIRE(first < out.buffers.size());
  REQUIRE(first <= 1);
  GstClockTime next = 2 * GST_SECOND;
  std::vector<double> x;
  for (size_t i = first; i < out.buffers.size(); i++) {
    REQUIRE(GST_BUFFER_PTS(out.buffers[i]) == next);
    next += GST_BUFFER_DURATION(out.buffers[i]);
    GstMapInfo m;
    gst_buffer_map(out.buffers[i], &m, GST_MAP_READ);
    auto *s = reinterpret_cast<const int16_t *>(m.data);
    for (size_t k = 0; k < m.size / 2; k++)
      x.push_back(s[k] / 32768.0);
    gst_buffer_unmap(out.buffers[i], &m);
  }
  CHECK(next == 3 * GST_SECOND);
  REQUIRE(x.size() == 48000u);
  std::vector<double> mid(x.begin() + 4800, x.end() - 4800);
  CHECK(testsig::amplitude_at(mid.data(), mid.size(), 440, 48000) == Approx(0.3).margin(0.005));
  CHECK(testsig::amplitude_at(mid.data(), mid.size(), 1000, 48000) == Approx(0.2).margin(0.005));
  gst_element_set_state(pipeline, GST_STATE_NULL);
  gst_object_unref(sink);
  gst_object_unref(pipeline);
}

TEST_CASE("idle-silence=false sends GAP events while nobody talks", "[backchannelmixer][live]") {
  GError *err = nullptr;
  GstElement *pipeline =
      gst_parse_launch("backchannelmixer name=m force-live=true idle-silence=false "
                       "! audio/x-raw,rate=8000,channels=1 ! fakesink name=out sync=false",
                       &err);
  REQUIRE(err == nullptr);
  GstElement *sink = gst_bin_get_by_name(GST_BIN(pipeline), "out");
  GstPad *pad = gst_element_get_static_pad(sink, "sink");
  struct Counts {
    std::atomic<int> gaps{0}, buffers{0};
  } counts;
  gst_pad_add_probe(
      pad,
      static_cast<GstPadProbeType>(GST_PAD_PROBE_TYPE_BUFFER | GST_PAD_PROBE_TYPE_EVENT_DOWNSTREAM),
      [](GstPad *, GstPadProbeInfo *info, gpointer data) {
        auto *c = static_cast<Counts *>(data);
        if (GST_PAD_PROBE_INFO_TYPE(info) & GST_PAD_PROBE_TYPE_BUFFER)
          c->buffers++;
        else if (GST_EVENT_TYPE(GST_PAD_PROBE_INFO_EVENT(info)) == GST_EVENT_GAP)
          c->gaps++;
        return GST_PAD_PROBE_OK;
      },
      &counts, nullptr);
  GstClock *clock = gst_test_clock_new();
  gst_pipeline_use_clock(GST_PIPELINE(pipeline), clock);
  REQUIRE(gst_element_set_state(pipeline, GST_STATE_PLAYING) != GST_STATE_CHANGE_FAILURE);
  for (int i = 0; i < 20; i++) {
    GstClockID id;
    gst_test_clock_wait_for_next_pending_id(GST_TEST_CLOCK(clock), &id);
    gst_test_clock_set_time(GST_TEST_CLOCK(clock), gst_clock_id_get_time(id));
    gst_clock_id_unref(id);
    if (GstClockID done = gst_test_clock_process_next_clock_id(GST_TEST_CLOCK(clock)))
      gst_clock_id_unref(done);
  }
  gst_element_set_state(pipeline, GST_STATE_NULL);
  CHECK(counts.buffers == 1); /* the first block carries caps and segment */
  CHECK(counts.gaps >= 18);
  gst_object_unref(pad);
  gst_object_unref(sink);
  gst_object_unref(clock);
  gst_object_unref(pipeline);
}

/* ---- live, on a test clock ---------------------------------------------------------------- */

namespace {

struct LivePipeline : Pipeline {
  GstClock *clock;
  explicit LivePipeline(const char *caps) : Pipeline(caps) {
    clock = gst_test_clock_new();
    gst_pipeline_use_clock(GST_PIPELINE(pipeline), clock);
    g_object_set(mixer, "force-live", TRUE, nullptr);
  }
  ~LivePipeline() {
    gst_element_set_state(pipeline, GST_STATE_NULL);
    gst_object_unref(clock);
  }
  /* Lets the clock reach `t` and releases the mixer's wait if it is still pending (new data may
   * have woken the mixer already). */
  void crank_to(GstClockTime t) {
    GstTestClock *tc = GST_TEST_CLOCK(clock);
    if (t > gst_clock_get_time(clock))
      gst_test_clock_set_time(tc, t);
    if (GstClockID id = gst_test_clock_process_next_clock_id(tc))
      gst_clock_id_unref(id);
  }
  /* What the mixer reports (upstream + its own): its deadlines are block start + this. */
  GstClockTime mixer_latency() {
    GstPad *src = gst_element_get_static_pad(mixer, "src");
    GstQuery *q = gst_query_new_latency();
    GstClockTime min = 0;
    if (gst_pad_query(src, q))
      gst_query_parse_latency(q, nullptr, &min, nullptr);
    gst_query_unref(q);
    gst_object_unref(src);
    return min;
  }
  bool try_pull(Collected &out) {
    GstSample *s = gst_app_sink_try_pull_sample(GST_APP_SINK(sink), 0);
    if (!s)
      return false;
    out.buffers.push_back(gst_buffer_ref(gst_sample_get_buffer(s)));
    gst_sample_unref(s);
    return true;
  }
  /* Pulls output block `out.buffers.size()`, letting the clock reach that block's deadline when
   * the mixer waits for it -- and never a later block's, so the test decides what data is there
   * when each block is mixed. */
  GstClockTime block = 10 * GST_MSECOND;
  void pull_one(Collected &out) {
    const size_t before = out.buffers.size();
    const GstClockTime block_start = before * block;
    for (int i = 0; i < 200000 && out.buffers.size() == before; i++) {
      if (try_pull(out))
        break;
      GstTestClock *tc = GST_TEST_CLOCK(clock);
      GstClockID id = nullptr;
      if (gst_test_clock_peek_next_pending_id(tc, &id)) {
        const GstClockTime t = gst_clock_id_get_time(id);
        gst_clock_id_unref(id);
        /* the mixer waits until block start + its total latency */
        const GstClockTime latency = mixer_latency();
        if (t <= block_start + latency) {
          crank_to(t);
          continue;
        }
      }
      GstSample *s = gst_app_sink_try_pull_sample(GST_APP_SINK(sink), GST_MSECOND);
      if (s) {
        out.buffers.push_back(gst_buffer_ref(gst_sample_get_buffer(s)));
        gst_sample_unref(s);
      }
    }
    REQUIRE(out.buffers.size() == before + 1);
  }
};

} // namespace

TEST_CASE("Live: talkers join, stall and leave while the output keeps flowing",
          "[backchannelmixer][live]") {
  LivePipeline p("audio/x-raw,format=S16LE,rate=48000,channels=1");
  g_object_set(p.mixer, "latency", 10 * GST_MSECOND, nullptr);
  REQUIRE(gst_element_set_state(p.pipeline, GST_STATE_PLAYING) != GST_STATE_CHANGE_FAILURE);

  Collected out;
  /* nobody there: silence, on time */
  for (int i = 0; i < 5; i++)
    p.pull_one(out);

  /* talker A joins while PLAYING */
  TalkerPad a(p.mixer, audio_caps("S16LE", 48000, 1));
  GstPad *apad = GST_PAD(gst_object_ref(a.sink));

  auto tone = testsig::tone(600, 48000, 48000 * 3, 0.5);
  auto push_block = [&](int64_t block) {
    std::vector<int16_t> s(480);
    for (int i = 0; i < 480; i++)
      s[i] = static_cast<int16_t>(std::lrint(tone[block * 480 + i] * 32767));
    /* running time == buffer time: appsrc's segment starts at 0 and base time is 0 */
    a.push(s16_buffer(s, block * 10 * GST_MSECOND, 10 * GST_MSECOND));
  };
  /* A talks for 50 blocks (from block 5 on), then stalls for 30 blocks, then talks again */
  for (int64_t blk = 5; blk < 55; blk++) {
    push_block(blk);
    p.pull_one(out);
  }
  for (int64_t blk = 55; blk < 85; blk++)
    p.pull_one(out);
  for (int64_t blk = 85; blk < 120; blk++) {
    push_block(blk);
    p.pull_one(out);
  }
  guint64 timeouts = 0, late = 0;
  gboolean active = FALSE;
  g_object_get(apad, "timeouts", &timeouts, "late", &late, "active", &active, nullptr);
  CHECK(timeouts == 1);
  CHECK(late == 0);
  CHECK(active);

  /* A leaves: release its pad while PLAYING; output continues with silence */
  a.leave();
  gst_object_unref(apad);
  for (int i = 0; i < 20; i++)
    p.pull_one(out);

  /* Content: contiguous timestamps, tone where A talked, silence elsewhere */
  REQUIRE(out.buffers.size() == 140);
  GstClockTime next = 0;
  for (auto *b : out.buffers) {
    REQUIRE(GST_BUFFER_PTS(b) == next);
    next += GST_BUFFER_DURATION(b);
  }
  auto x = out.channel(0, 1);
  auto block_amp = [&](int blk) { return testsig::amplitude_at(&x[blk * 480], 480, 600, 48000); };
  for (int blk : {0, 4, 60, 80, 125, 139})
    CHECK(block_amp(blk) < 1e-4);
  for (int blk : {6, 30, 54, 86, 119}) {
    INFO("block " << blk);
    CHECK(block_amp(blk) == Approx(0.5).margin(0.01));
  }
  /* the tone is continuous across A's joins: block-by-block phase matches the generator */
  for (int i = 6 * 480; i < 54 * 480; i++)
    REQUIRE(std::fabs(x[i] - tone[i] * 32767 / 32768.0) < 2.0 / 32768);

  /* talker messages: heard, silent (stall), heard, silent (left or released) */
  auto msgs = drain_element_messages(p.pipeline, "backchannelmixer-talker");
  std::vector<bool> seq;
  for (auto *s : msgs) {
    gboolean act;
    gst_structure_get_boolean(s, "active", &act);
    seq.push_back(act);
    gst_structure_free(s);
  }
  REQUIRE(seq.size() >= 3);
  CHECK(seq[0] == true);
  CHECK(seq[1] == false);
  CHECK(seq[2] == true);
}

TEST_CASE("Live: a talker drifting 0.5% for 12 s stays a pure tone", "[backchannelmixer][live]") {
  LivePipeline p("audio/x-raw,format=S16LE,rate=48000,channels=1");
  g_object_set(p.mixer, "latency", 10 * GST_MSECOND, nullptr);
  REQUIRE(gst_element_set_state(p.pipeline, GST_STATE_PLAYING) != GST_STATE_CHANGE_FAILURE);
  TalkerPad a(p.mixer, audio_caps("S16LE", 48000, 1));

  /* The talker's crystal is 0.5% fast: each 10 ms of pipeline time carries 482.4 samples of a
   * 1 kHz tone generated on its own clock (heard at 1005 Hz on the pipeline clock). */
  const double drift = 0.005;
  int64_t sent = 0;
  Collected out;
  const int blocks = 1200;
  for (int blk = 0; blk < blocks; blk++) {
    const int64_t end = std::llround((blk + 1) * 480 * (1 + drift));
    std::vector<int16_t> s(end - sent);
    for (size_t i = 0; i < s.size(); i++)
      s[i] = static_cast<int16_t>(
          std::lrint(16000 * std::sin(2 * M_PI * 1000 * (sent + i) / 48000.0)));
    sent = end;
    a.push(s16_buffer(s, blk * 10 * GST_MSECOND, 10 * GST_MSECOND));
    if (blk >= 1)
      p.pull_one(out);
  }
  auto x = out.channel(0, 1);
  REQUIRE(x.size() >= (blocks - 2) * 480u);
  std::vector<double> body(x.begin() + 960, x.end());
  auto pur = testsig::tone_purity(body, 1005.0, 48000, 480);
  INFO("worst window SNR " << pur.worst_snr_db << " dB at window " << pur.worst_window
                           << ", median " << pur.median_snr_db);
  CHECK(pur.worst_snr_db > 70.0);
  GstPad *pad = gst_element_get_static_pad(p.mixer, "sink_0");
  guint64 late = 1, timeouts = 1;
  g_object_get(pad, "late", &late, "timeouts", &timeouts, nullptr);
  CHECK(late == 0);
  CHECK(timeouts == 0);
  gst_object_unref(pad);
}

TEST_CASE("Live: a resampled talker is not mistaken for a drifting one",
          "[backchannelmixer][live]") {
  /* 8 kHz in, 16 kHz out: the resampler's filter delay is a constant offset, not drift. The
   * tone must keep its exact frequency (the drift loop would bend it). */
  LivePipeline p("audio/x-raw,format=S16LE,rate=16000,channels=1");
  g_object_set(p.mixer, "latency", 10 * GST_MSECOND, nullptr);
  REQUIRE(gst_element_set_state(p.pipeline, GST_STATE_PLAYING) != GST_STATE_CHANGE_FAILURE);
  TalkerPad a(p.mixer, audio_caps("S16LE", 8000, 1));
  Collected out;
  const int blocks = 400;
  for (int blk = 0; blk < blocks; blk++) {
    std::vector<int16_t> s(80);
    for (int i = 0; i < 80; i++)
      s[i] = static_cast<int16_t>(
          std::lrint(8000 * std::sin(2 * M_PI * 1250 * (blk * 80 + i) / 8000.0)));
    a.push(s16_buffer(s, blk * 10 * GST_MSECOND, 10 * GST_MSECOND));
    if (blk >= 1)
      p.pull_one(out);
  }
  auto x = out.channel(0, 1);
  REQUIRE(x.size() >= (blocks - 1) * 160u);
  for (int w = 1; w < (blocks - 1) / 10; w++) {
    INFO("100 ms window " << w);
    REQUIRE(testsig::amplitude_at(&x[w * 1600], 1600, 1250, 16000) ==
            Approx(8000 / 32768.0).margin(0.003));
  }
}

TEST_CASE("GstHarness: two talkers in, their exact sum out with exact timestamps",
          "[backchannelmixer][harness]") {
  /* The harness sink's template fixes the output format before anything flows, so negotiation
   * never depends on when the test sets caps. */
  static GstStaticPadTemplate out_templ = GST_STATIC_PAD_TEMPLATE(
      "sink", GST_PAD_SINK, GST_PAD_ALWAYS,
      GST_STATIC_CAPS("audio/x-raw,format=S16LE,rate=48000,channels=1,layout=interleaved"));
  static GstStaticPadTemplate in_templ =
      GST_STATIC_PAD_TEMPLATE("src", GST_PAD_SRC, GST_PAD_ALWAYS, GST_STATIC_CAPS("audio/x-raw"));
  GstElement *mixer = make("backchannelmixer");
  g_object_set(mixer, "output-buffer-duration", 10 * GST_MSECOND, nullptr);
  GstHarness *a = gst_harness_new_full(mixer, &in_templ, "sink_0", &out_templ, "src");
  GstHarness *b = gst_harness_new_with_element(mixer, "sink_1", nullptr);
  gst_object_unref(mixer);
  gst_harness_set_src_caps_str(a, "audio/x-raw,format=S16LE,rate=48000,channels=1,"
                                  "layout=interleaved");
  gst_harness_set_src_caps_str(b, "audio/x-raw,format=S16LE,rate=48000,channels=1,"
                                  "layout=interleaved");

  /* a: a ramp of 1000 + i in 10 ms buffers from 0; b: a constant -300 in 5 ms buffers from 0 */
  const int blocks = 20;
  for (int i = 0; i < blocks; i++) {
    std::vector<int16_t> ra(480);
    for (int k = 0; k < 480; k++)
      ra[k] = static_cast<int16_t>(1000 + ((i * 480 + k) % 5000));
    REQUIRE(gst_harness_push(a, s16_buffer(ra, i * 10 * GST_MSECOND, 10 * GST_MSECOND)) ==
            GST_FLOW_OK);
    for (int h = 0; h < 2; h++) {
      std::vector<int16_t> rb(240, -300);
      REQUIRE(gst_harness_push(b, s16_buffer(rb, (i * 10 + h * 5) * GST_MSECOND,
                                             5 * GST_MSECOND)) == GST_FLOW_OK);
    }
  }
  REQUIRE(gst_harness_push_event(a, gst_event_new_eos()));
  REQUIRE(gst_harness_push_event(b, gst_event_new_eos()));

  GstCaps *caps = gst_pad_get_current_caps(a->sinkpad);
  REQUIRE(caps != nullptr);
  GstAudioInfo info;
  REQUIRE(gst_audio_info_from_caps(&info, caps));
  CHECK(GST_AUDIO_INFO_FORMAT(&info) == GST_AUDIO_FORMAT_S16LE);
  CHECK(GST_AUDIO_INFO_RATE(&info) == 48000);
  gst_caps_unref(caps);

  int64_t frame = 0;
  for (int i = 0; i < blocks; i++) {
    GstBuffer *buf = gst_harness_pull(a);
    REQUIRE(buf != nullptr);
    CHECK(GST_BUFFER_PTS(buf) == static_cast<GstClockTime>(i) * 10 * GST_MSECOND);
    CHECK(GST_BUFFER_DURATION(buf) == 10 * GST_MSECOND);
    GstMapInfo map;
    REQUIRE(gst_buffer_map(buf, &map, GST_MAP_READ));
    REQUIRE(map.size == 480 * 2);
    const int16_t *s = reinterpret_cast<const int16_t *>(map.data);
    int mismatches = 0;
    for (int k = 0; k < 480; k++, frame++)
      mismatches += s[k] != static_cast<int16_t>(1000 + (frame % 5000) - 300);
    CHECK(mismatches == 0);
    gst_buffer_unmap(buf, &map);
    gst_buffer_unref(buf);
  }
  /* after the last block: EOS, and nothing else */
  bool saw_eos = false;
  for (GstEvent *ev; (ev = gst_harness_try_pull_event(a)) != nullptr;) {
    saw_eos |= GST_EVENT_TYPE(ev) == GST_EVENT_EOS;
    gst_event_unref(ev);
  }
  if (!saw_eos) {
    GstEvent *ev = gst_harness_pull_event(a); /* waits (bounded by the harness) */
    while (ev && GST_EVENT_TYPE(ev) != GST_EVENT_EOS) {
      gst_event_unref(ev);
      ev = gst_harness_pull_event(a);
    }
    saw_eos = ev != nullptr;
    if (ev)
      gst_event_unref(ev);
  }
  CHECK(saw_eos);
  CHECK(gst_harness_buffers_in_queue(a) == 0);
  gst_harness_teardown(b);
  gst_harness_teardown(a);
}

TEST_CASE("Latency query reports one block plus the jitter allowance", "[backchannelmixer][live]") {
  GError *err = nullptr;
  GstElement *pipeline = gst_parse_launch(
      "audiotestsrc is-live=true samplesperbuffer=480 ! audio/x-raw,rate=48000 ! m.sink_0 "
      "backchannelmixer name=m latency=20000000 output-buffer-duration=5000000 ! fakesink",
      &err);
  REQUIRE(err == nullptr);
  REQUIRE(gst_element_set_state(pipeline, GST_STATE_PLAYING) != GST_STATE_CHANGE_FAILURE);
  REQUIRE(gst_element_get_state(pipeline, nullptr, nullptr, 10 * GST_SECOND) ==
          GST_STATE_CHANGE_SUCCESS);
  GstElement *m = gst_bin_get_by_name(GST_BIN(pipeline), "m");
  GstPad *src = gst_element_get_static_pad(m, "src");
  GstQuery *q = gst_query_new_latency();
  REQUIRE(gst_pad_query(src, q));
  gboolean live;
  GstClockTime min, max;
  gst_query_parse_latency(q, &live, &min, &max);
  CHECK(live);
  /* audiotestsrc reports one buffer (10 ms); the mixer adds 5 ms block + 20 ms allowance */
  CHECK(min == 35 * GST_MSECOND);
  gst_query_unref(q);
  gst_object_unref(src);
  gst_object_unref(m);
  gst_element_set_state(pipeline, GST_STATE_NULL);
  gst_object_unref(pipeline);
}

TEST_CASE("Stress: talkers requested and released from several threads while data flows",
          "[backchannelmixer][stress]") {
  GError *err = nullptr;
  GstElement *pipeline = gst_parse_launch(
      "audiotestsrc is-live=true freq=300 volume=0.3 ! m.sink_0 "
      "backchannelmixer name=m force-live=true ! audio/x-raw,rate=16000,channels=1 "
      "! appsink name=out sync=false max-buffers=0 emit-signals=false",
      &err);
  REQUIRE(err == nullptr);
  GstElement *m = gst_bin_get_by_name(GST_BIN(pipeline), "m");
  GstElement *sink = gst_bin_get_by_name(GST_BIN(pipeline), "out");
  REQUIRE(gst_element_set_state(pipeline, GST_STATE_PLAYING) != GST_STATE_CHANGE_FAILURE);

  const auto churn = churn_talkers(pipeline, m, 4, 15, 0.1, false);
  CHECK(churn.failures == 0);
  CHECK(churn.joined == 60);
  /* Every pad is gone but the one from the launch line. */
  CHECK(GST_ELEMENT(m)->numsinkpads == 1);

  Collected out;
  pull_queued(sink, out);
  pull_all(sink, out, 2 * GST_SECOND, out.buffers.size() + 20);
  gst_element_set_state(pipeline, GST_STATE_NULL);

  /* The output timeline has no holes, and the talker that stayed was never disturbed: its tone
   * keeps its level in every block while the others come and go. */
  REQUIRE(out.buffers.size() >= 40);
  CHECK(contiguous(out));
  auto x = out.channel(0, 1);
  size_t checked = 0;
  for (size_t blk = 10; (blk + 4) * 160 <= x.size(); blk += 4) {
    INFO("block " << blk);
    REQUIRE(testsig::amplitude_at(&x[blk * 160], 640, 300, 16000) == Approx(0.3).margin(0.01));
    checked++;
  }
  CHECK(checked > 5);
  gst_object_unref(m);
  gst_object_unref(sink);
  gst_object_unref(pipeline);
}

TEST_CASE("A live talker is heard while another linked talker's source has sent nothing yet",
          "[backchannelmixer][live]") {
  /* sink_1's branch is linked but its source is not there yet (like rtpbin before a viewer's
   * first packet). The mixer must go live with talker 0 instead of waiting for talker 1. */
  Collected out;
  play_and_pull("backchannelmixer name=bc ! audio/x-raw,format=S16LE,rate=48000,channels=1 ! "
                "appsink name=out sync=false async=false "
                "audiotestsrc is-live=true freq=440 volume=0.3 ! bc.sink_0 "
                "audioconvert name=waiting ! bc.sink_1",
                "out", out, 5 * GST_SECOND, 100);
  REQUIRE(out.buffers.size() == 100);
  auto x = out.channel(0, 1);
  REQUIRE(x.size() >= 48000);
  CHECK(testsig::amplitude_at(&x[x.size() - 24000], 24000, 440, 48000) == Approx(0.3).margin(0.01));
}

TEST_CASE("Opus talkers: decoded inside, lost packets concealed", "[backchannelmixer][opus]") {
  /* 5 s of 440 Hz at 0.3 in 20 ms Opus packets, 5 % lost (holes in the timestamps, seeded). */
  costream::OpusEnc enc;
  costream::OpusSettings s;
  s.bitrate = 32000;
  REQUIRE(enc.init(s));
  auto t = testsig::tone(440, 48000, 5 * 48000, 0.3);
  std::vector<float> x(t.begin(), t.end());
  std::mt19937 rng(3);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  GError *err = nullptr;
  GstElement *p = gst_parse_launch(
      "appsrc name=op format=time "
      "caps=audio/x-opus,channel-mapping-family=0,channels=1,rate=48000 ! m.sink_0 "
      "backchannelmixer name=m ! audio/x-raw,format=S16LE,rate=48000,channels=1 ! "
      "appsink name=out sync=false",
      &err);
  REQUIRE(err == nullptr);
  GstElement *op = gst_bin_get_by_name(GST_BIN(p), "op");
  GstElement *out = gst_bin_get_by_name(GST_BIN(p), "out");
  REQUIRE(gst_element_set_state(p, GST_STATE_PLAYING) != GST_STATE_CHANGE_FAILURE);
  size_t lost = 0, sent = 0;
  for (size_t f = 0; f + 960 <= x.size(); f += 960) {
    uint8_t pkt[1500];
    const int n = enc.encode(&x[f], costream::SampleFormat::F32, 960, pkt, sizeof(pkt));
    REQUIRE(n > 0);
    const size_t i = f / 960;
    if (i >= 2 && f + 5 * 960 < x.size() && u(rng) < 0.05) {
      lost++;
      continue;
    }
    GstBuffer *b = gst_buffer_new_memdup(pkt, n);
    GST_BUFFER_PTS(b) = i * 20 * GST_MSECOND;
    GST_BUFFER_DURATION(b) = 20 * GST_MSECOND;
    REQUIRE(gst_app_src_push_buffer(GST_APP_SRC(op), b) == GST_FLOW_OK);
    sent++;
  }
  gst_app_src_end_of_stream(GST_APP_SRC(op));
  Collected c;
  pull_all(out, c);
  GstElement *m = gst_bin_get_by_name(GST_BIN(p), "m");
  GstPad *sink0 = gst_element_get_static_pad(m, "sink_0");
  guint64 concealed = 0;
  g_object_get(sink0, "concealed", &concealed, nullptr);
  gst_object_unref(sink0);
  gst_object_unref(m);
  gst_object_unref(op);
  gst_object_unref(out);
  gst_element_set_state(p, GST_STATE_NULL);
  gst_object_unref(p);

  auto y = c.channel(0, 1);
  REQUIRE(y.size() == x.size());
  std::vector<double> mid(y.begin() + 4800, y.end() - 4800);
  const double d = testsig::dropout_fraction(mid, 440, 48000, 480, 0.03);
  INFO("lost " << lost << " of " << lost + sent << ", dropout windows " << d);
  REQUIRE(lost > 5);
  CHECK(concealed == lost);
  CHECK(d < 0.025); /* left as silence: about 0.1 */
  CHECK(testsig::amplitude_at(mid.data(), mid.size(), 440, 48000) == Approx(0.3).margin(0.03));
}
