/* costream tests
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * aac2opus on AAC files made by ffmpeg (ADTS, 44.1 kHz stereo with a different tone per channel):
 * content per channel after decoding the Opus, sample-accurate timestamps over minutes, a
 * discontinuity, latency, and the missing-decoder error.
 */
#include "helpers.h"
#include "testsig.h"

#include "audio/opus.h"

#include <catch2/catch.hpp>

using namespace testgst;

namespace {

/* An ADTS AAC-LC file: 440 Hz left, 660 Hz right (amplitude 0.25 each), `seconds` long. */
std::string aac_file(int seconds, int rate = 44100) {
  const std::string path =
      test_tmpdir() + "/tones-" + std::to_string(seconds) + "-" + std::to_string(rate) + ".aac";
  if (!g_file_test(path.c_str(), G_FILE_TEST_EXISTS)) {
    const std::string d = std::to_string(seconds);
    const std::string filter =
        "aevalsrc=0.25*sin(2*PI*440*t)|0.25*sin(2*PI*660*t):s=" + std::to_string(rate) + ":d=" + d;
    REQUIRE(run_command({"timeout", "120", "ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
                         "-f", "lavfi", "-i", filter, "-c:a", "aac", "-b:a", "192k", path}) == 0);
  }
  return path;
}

struct Run {
  GstElement *pipeline = nullptr, *conv = nullptr, *sink = nullptr;
  Collected out;
  explicit Run(const std::string &desc) {
    GError *err = nullptr;
    pipeline = gst_parse_launch(desc.c_str(), &err);
    REQUIRE(err == nullptr);
    conv = gst_bin_get_by_name(GST_BIN(pipeline), "c");
    sink = gst_bin_get_by_name(GST_BIN(pipeline), "out");
  }
  void play() {
    REQUIRE(gst_element_set_state(pipeline, GST_STATE_PLAYING) != GST_STATE_CHANGE_FAILURE);
    pull_all(sink, out, 120 * GST_SECOND);
    CHECK(wait_eos_or_error(pipeline).empty());
  }
  ~Run() {
    gst_element_set_state(pipeline, GST_STATE_NULL);
    if (conv)
      gst_object_unref(conv);
    gst_object_unref(sink);
    gst_object_unref(pipeline);
  }
};

/* Decodes the Opus packets (stereo, 48 kHz). */
std::vector<float> decode(const Collected &c, int channels) {
  costream::OpusDec dec;
  REQUIRE(dec.init(48000, channels));
  std::vector<float> out, buf(5760 * channels);
  for (auto *b : c.buffers) {
    GstMapInfo m;
    gst_buffer_map(b, &m, GST_MAP_READ);
    const int n = dec.decode(m.data, m.size, buf.data(), 5760);
    gst_buffer_unmap(b, &m);
    REQUIRE(n > 0);
    out.insert(out.end(), buf.begin(), buf.begin() + n * channels);
  }
  return out;
}

std::vector<double> channel(const std::vector<float> &x, int ch, int channels, size_t from,
                            size_t n) {
  std::vector<double> v;
  for (size_t i = from; i < from + n && (i * channels + ch) < x.size(); i++)
    v.push_back(x[i * channels + ch]);
  return v;
}

} // namespace

TEST_CASE("aac2opus: stereo AAC at 44.1 kHz becomes 48 kHz Opus with each channel's tone",
          "[aac2opus]") {
  /* framed (after aacparse: straight to the decoder) and an ADTS byte stream (through the
   * element's own aacparse) */
  const std::string parsed = GENERATE(std::string(" ! aacparse"), std::string(""));
  INFO("filesrc" << parsed << " ! aac2opus");
  Run r("filesrc location=" + aac_file(3) + parsed +
        " ! aac2opus name=c bitrate=128000 ! appsink name=out sync=false");
  r.play();
  /* which way the input went */
  GstElement *inner = gst_bin_get_by_name(GST_BIN(r.conv), "parse");
  REQUIRE(inner != nullptr);
  GstPad *inner_src = gst_element_get_static_pad(inner, "src");
  CHECK(gst_pad_is_linked(inner_src) == parsed.empty());
  gst_object_unref(inner_src);
  gst_object_unref(inner);
  gchar *decoder = nullptr;
  g_object_get(r.conv, "decoder", &decoder, nullptr);
  REQUIRE(decoder != nullptr);
  CHECK(std::string(decoder) == "avdec_aac"); /* gst-libav's, the best ranked */
  g_free(decoder);
  GstPad *pad = gst_element_get_static_pad(r.sink, "sink");
  GstCaps *caps = gst_pad_get_current_caps(pad);
  REQUIRE(caps != nullptr);
  GstStructure *s = gst_caps_get_structure(caps, 0);
  CHECK(gst_structure_has_name(s, "audio/x-opus"));
  gint rate = 0, channels = 0;
  gst_structure_get_int(s, "rate", &rate);
  gst_structure_get_int(s, "channels", &channels);
  CHECK(rate == 48000);
  CHECK(channels == 2);
  gst_caps_unref(caps);
  gst_object_unref(pad);

  /* 20 ms packets, back to back from 0 */
  REQUIRE(r.out.buffers.size() >= 149);
  for (size_t i = 0; i < r.out.buffers.size() - 1; i++) {
    INFO("packet " << i);
    REQUIRE(GST_BUFFER_PTS(r.out.buffers[i]) == i * 20 * GST_MSECOND);
    REQUIRE(GST_BUFFER_DURATION(r.out.buffers[i]) == 20 * GST_MSECOND);
  }
  auto y = decode(r.out, 2);
  auto left = channel(y, 0, 2, 24000, 96000);
  auto right = channel(y, 1, 2, 24000, 96000);
  CHECK(testsig::amplitude_at(left.data(), left.size(), 440, 48000) == Approx(0.25).margin(0.01));
  CHECK(testsig::amplitude_at(left.data(), left.size(), 660, 48000) == Approx(0.0).margin(0.005));
  CHECK(testsig::amplitude_at(right.data(), right.size(), 660, 48000) == Approx(0.25).margin(0.01));
  CHECK(testsig::amplitude_at(right.data(), right.size(), 440, 48000) == Approx(0.0).margin(0.005));
}

TEST_CASE("aac2opus: timestamps stay sample-accurate over two minutes", "[aac2opus]") {
  Run r("filesrc location=" + aac_file(120) +
        " ! aacparse ! aac2opus name=c complexity=0 ! appsink name=out sync=false");
  r.play();
  const size_t n = r.out.buffers.size();
  REQUIRE(n >= 5999);
  size_t off = 0;
  for (size_t i = 0; i < n; i++)
    off += GST_BUFFER_PTS(r.out.buffers[i]) != i * 20 * GST_MSECOND;
  CHECK(off == 0); /* not one packet off the 20 ms grid after 6000 packets */
}

TEST_CASE("aac2opus: a discontinuity (a gap in the AAC timeline) resets cleanly", "[aac2opus]") {
  /* 1 s of AAC, then the same again 500 ms after its end, flagged DISCONT */
  Run src("filesrc location=" + aac_file(1) + " ! aacparse ! appsink name=out sync=false");
  src.play();
  const size_t n = src.out.buffers.size();
  REQUIRE(n > 40);
  GstClockTime end = 0;
  for (auto *b : src.out.buffers)
    end = std::max(end, GST_BUFFER_PTS(b) + GST_BUFFER_DURATION(b));
  GstPad *srcpad = gst_element_get_static_pad(src.sink, "sink");
  GstCaps *caps = gst_pad_get_current_caps(srcpad);
  gst_object_unref(srcpad);

  GError *err = nullptr;
  GstElement *p = gst_parse_launch("appsrc name=in format=time ! aac2opus ! appsink name=out "
                                   "sync=false",
                                   &err);
  REQUIRE(err == nullptr);
  GstElement *in = gst_bin_get_by_name(GST_BIN(p), "in");
  GstElement *out = gst_bin_get_by_name(GST_BIN(p), "out");
  g_object_set(in, "caps", caps, nullptr);
  gst_caps_unref(caps);
  REQUIRE(gst_element_set_state(p, GST_STATE_PLAYING) != GST_STATE_CHANGE_FAILURE);
  const GstClockTime gap = 500 * GST_MSECOND;
  for (int round = 0; round < 2; round++) {
    for (size_t i = 0; i < n; i++) {
      GstBuffer *b = gst_buffer_copy(src.out.buffers[i]);
      GST_BUFFER_PTS(b) += round * (end + gap);
      GST_BUFFER_DTS(b) = GST_CLOCK_TIME_NONE;
      if (round == 1 && i == 0)
        GST_BUFFER_FLAG_SET(b, GST_BUFFER_FLAG_DISCONT);
      REQUIRE(gst_app_src_push_buffer(GST_APP_SRC(in), b) == GST_FLOW_OK);
    }
  }
  gst_app_src_end_of_stream(GST_APP_SRC(in));
  Collected c;
  pull_all(out, c);
  CHECK(wait_eos_or_error(p).empty());
  /* packets on the grid before the gap; after it, the timeline resumes at the new timestamps */
  size_t jump = 0;
  for (size_t i = 1; i < c.buffers.size(); i++) {
    const GstClockTime d = GST_BUFFER_PTS(c.buffers[i]) - GST_BUFFER_PTS(c.buffers[i - 1]);
    if (d != 20 * GST_MSECOND) {
      jump++;
      CHECK(d >= gap);
      CHECK(d <= gap + 60 * GST_MSECOND);
      CHECK(GST_BUFFER_PTS(c.buffers[i]) >= end + gap);
      CHECK(GST_BUFFER_PTS(c.buffers[i]) <= end + gap + 20 * GST_MSECOND);
    }
  }
  CHECK(jump == 1);
  gst_element_set_state(p, GST_STATE_NULL);
  gst_object_unref(in);
  gst_object_unref(out);
  gst_object_unref(p);
}

TEST_CASE("aac2opus: the latency query reports a frame plus the encoder's lookahead",
          "[aac2opus]") {
  GError *err = nullptr;
  GstElement *p =
      gst_parse_launch("audiotestsrc is-live=true ! avenc_aac ! aac2opus name=c ! fakesink", &err);
  if (err) { /* no AAC encoder in GStreamer here: build the chain from a file instead */
    g_clear_error(&err);
    p = gst_parse_launch(
        ("filesrc location=" + aac_file(1) + " ! aacparse ! aac2opus name=c ! fakesink").c_str(),
        &err);
  }
  REQUIRE(err == nullptr);
  REQUIRE(gst_element_set_state(p, GST_STATE_PLAYING) != GST_STATE_CHANGE_FAILURE);
  REQUIRE(gst_element_get_state(p, nullptr, nullptr, 10 * GST_SECOND) != GST_STATE_CHANGE_FAILURE);
  GstElement *c = gst_bin_get_by_name(GST_BIN(p), "c");
  GstPad *src = gst_element_get_static_pad(c, "src");
  GstQuery *q = gst_query_new_latency();
  REQUIRE(gst_pad_query(src, q));
  gboolean live;
  GstClockTime min, max;
  gst_query_parse_latency(q, &live, &min, &max);
  INFO("latency ns " << min);
  CHECK(live);
  /* 20 ms frame + 6.5 ms lookahead (plus the source's and the AAC encoder's and decoder's) */
  CHECK(min >= 26 * GST_MSECOND);
  CHECK(min <= 200 * GST_MSECOND);
  gst_query_unref(q);
  gst_object_unref(src);
  gst_object_unref(c);
  gst_element_set_state(p, GST_STATE_NULL);
  gst_object_unref(p);
}

namespace {

/* The first error the pipeline posted (already on its bus), or null; the caller frees it. */
GError *posted_error(GstElement *pipeline) {
  GstBus *bus = gst_element_get_bus(pipeline);
  GstMessage *m = gst_bus_pop_filtered(bus, GST_MESSAGE_ERROR);
  gst_object_unref(bus);
  if (!m)
    return nullptr;
  GError *e = nullptr;
  gst_message_parse_error(m, &e, nullptr);
  gst_message_unref(m);
  return e;
}

} // namespace

TEST_CASE("aac2opus: no AAC decoder gives an error naming the package to install", "[aac2opus]") {
  /* Hide every AAC decoder by rank, as on a machine without them. */
  std::vector<std::pair<GstPluginFeature *, guint>> hidden;
  for (const char *name : {"avdec_aac", "avdec_aac_fixed", "avdec_aac_latm", "faad", "fdkaacdec"}) {
    if (GstPluginFeature *f = gst_registry_lookup_feature(gst_registry_get(), name)) {
      hidden.push_back({f, gst_plugin_feature_get_rank(f)});
      gst_plugin_feature_set_rank(f, GST_RANK_NONE);
    }
  }
  GstElement *p = gst_pipeline_new(nullptr);
  GstElement *c = make("aac2opus");
  gst_bin_add(GST_BIN(p), c);
  CHECK(gst_element_set_state(p, GST_STATE_READY) == GST_STATE_CHANGE_FAILURE);
  GError *e = posted_error(p);
  REQUIRE(e != nullptr);
  CHECK(std::string(e->message).find("gstreamer1.0-libav") != std::string::npos);
  g_error_free(e);
  gst_element_set_state(p, GST_STATE_NULL);
  gst_object_unref(p);
  for (auto &[f, rank] : hidden) {
    gst_plugin_feature_set_rank(f, rank);
    gst_object_unref(f);
  }
}

TEST_CASE("aac2opus: HE-AAC signalling (SBR, 22.05 kHz core) decodes at 44.1 kHz and keeps the "
          "tones",
          "[aac2opus][he-aac]") {
  /* Debian has no HE-AAC encoder (ffmpeg's makes LC; fdk-aac is non-free), so the stream is
   * LC at 22.05 kHz whose AudioSpecificConfig signals SBR explicitly (audio object type 5, core
   * 22.05 kHz, extension 44.1 kHz, then LC): what an HE-AAC v1 publisher sends. The decoder
   * then runs its SBR stage and outputs 44.1 kHz, which aac2opus must take like any rate. */
  Run src("filesrc location=" + aac_file(2, 22050) +
          " ! aacparse ! audio/mpeg,stream-format=raw ! appsink name=out sync=false");
  src.play();
  REQUIRE(src.out.buffers.size() > 40);
  /* AOT 5 | core index 7 (22050) | 2 channels | extension index 4 (44100) | AOT 2 | GASpecific 0 */
  const guint8 asc[] = {0x2B, 0x92, 0x08, 0x00};
  GstBuffer *codec_data = gst_buffer_new_memdup(asc, sizeof asc);
  GstCaps *caps = gst_caps_new_simple("audio/mpeg", "mpegversion", G_TYPE_INT, 4, "stream-format",
                                      G_TYPE_STRING, "raw", "framed", G_TYPE_BOOLEAN, TRUE, "rate",
                                      G_TYPE_INT, 44100, "channels", G_TYPE_INT, 2, "codec_data",
                                      GST_TYPE_BUFFER, codec_data, nullptr);
  gst_buffer_unref(codec_data);

  GError *err = nullptr;
  GstElement *p = gst_parse_launch(
      "appsrc name=in format=time ! aac2opus name=c ! appsink name=out sync=false", &err);
  REQUIRE(err == nullptr);
  GstElement *in = gst_bin_get_by_name(GST_BIN(p), "in");
  GstElement *out = gst_bin_get_by_name(GST_BIN(p), "out");
  GstElement *conv = gst_bin_get_by_name(GST_BIN(p), "c");
  g_object_set(in, "caps", caps, nullptr);
  gst_caps_unref(caps);
  REQUIRE(gst_element_set_state(p, GST_STATE_PLAYING) != GST_STATE_CHANGE_FAILURE);
  for (auto *b : src.out.buffers)
    REQUIRE(gst_app_src_push_buffer(GST_APP_SRC(in), gst_buffer_ref(b)) == GST_FLOW_OK);
  gst_app_src_end_of_stream(GST_APP_SRC(in));
  Collected c;
  pull_all(out, c);
  CHECK(wait_eos_or_error(p).empty());

  /* the decoder ran its SBR stage: 44.1 kHz out of a 22.05 kHz core */
  GstElement *decoder = gst_bin_get_by_name(GST_BIN(conv), "decoder");
  REQUIRE(decoder != nullptr);
  GstPad *dsrc = gst_element_get_static_pad(decoder, "src");
  GstCaps *dcaps = gst_pad_get_current_caps(dsrc);
  REQUIRE(dcaps != nullptr);
  gint rate = 0;
  gst_structure_get_int(gst_caps_get_structure(dcaps, 0), "rate", &rate);
  CHECK(rate == 44100);
  gst_caps_unref(dcaps);
  gst_object_unref(dsrc);
  gst_object_unref(decoder);

  /* 2 s in, about 2 s of Opus out, each channel's tone at its level */
  CHECK(c.buffers.size() >= 95);
  CHECK(c.buffers.size() <= 105);
  auto y = decode(c, 2);
  auto left = channel(y, 0, 2, 24000, 48000);
  auto right = channel(y, 1, 2, 24000, 48000);
  CHECK(testsig::amplitude_at(left.data(), left.size(), 440, 48000) == Approx(0.25).margin(0.02));
  CHECK(testsig::amplitude_at(left.data(), left.size(), 660, 48000) == Approx(0.0).margin(0.01));
  CHECK(testsig::amplitude_at(right.data(), right.size(), 660, 48000) == Approx(0.25).margin(0.02));
  CHECK(testsig::amplitude_at(right.data(), right.size(), 440, 48000) == Approx(0.0).margin(0.01));
  gst_element_set_state(p, GST_STATE_NULL);
  gst_object_unref(conv);
  gst_object_unref(in);
  gst_object_unref(out);
  gst_object_unref(p);
}

TEST_CASE("rtmpbridge: no h264parse fails the change to READY with an error naming the package",
          "[aac2opus][rtmpbridge]") {
  /* Take h264parse out of this process's registry, as on a machine without plugins-bad; put it
   * back afterwards. */
  GstRegistry *reg = gst_registry_get();
  GstPluginFeature *f = gst_registry_lookup_feature(reg, "h264parse");
  REQUIRE(f != nullptr);
  gst_registry_remove_feature(reg, f);
  GstElement *p = gst_pipeline_new(nullptr);
  GstElement *b = make("rtmpbridge");
  g_object_set(b, "port", 0, nullptr);
  gst_bin_add(GST_BIN(p), b);
  CHECK(gst_element_set_state(p, GST_STATE_READY) == GST_STATE_CHANGE_FAILURE);
  GError *e = posted_error(p);
  REQUIRE(e != nullptr);
  CHECK(e->domain == GST_CORE_ERROR);
  CHECK(e->code == GST_CORE_ERROR_MISSING_PLUGIN);
  CHECK(std::string(e->message).find("h264parse") != std::string::npos);
  CHECK(std::string(e->message).find("gstreamer1.0-plugins-bad") != std::string::npos);
  g_error_free(e);
  gst_element_set_state(p, GST_STATE_NULL);
  gst_object_unref(p);
  gst_registry_add_feature(reg, f); /* the registry takes its own reference (ref_sink) */
  gst_object_unref(f);
  /* and with it, the bridge reaches READY */
  GstElement *ok = make("rtmpbridge");
  g_object_set(ok, "port", 0, nullptr);
  CHECK(gst_element_set_state(ok, GST_STATE_READY) == GST_STATE_CHANGE_SUCCESS);
  gst_element_set_state(ok, GST_STATE_NULL);
  gst_object_unref(ok);
}
