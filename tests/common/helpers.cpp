/* costream tests
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "helpers.h"

#include <catch2/catch.hpp>

#include <atomic>
#include <cstring>
#include <fstream>
#include <thread>

namespace testgst {

GstElement *make(const char *factory, const char *name) {
  GstElement *e = gst_element_factory_make(factory, name);
  INFO("element factory " << factory);
  REQUIRE(e != nullptr);
  return e;
}

GstCaps *audio_caps(const char *format, int rate, int channels) {
  return gst_caps_new_simple("audio/x-raw", "format", G_TYPE_STRING, format, "rate", G_TYPE_INT,
                             rate, "channels", G_TYPE_INT, channels, "layout", G_TYPE_STRING,
                             "interleaved", nullptr);
}

GstBuffer *s16_buffer(const std::vector<int16_t> &samples, GstClockTime pts, GstClockTime dur) {
  GstBuffer *b = gst_buffer_new_memdup(samples.data(), samples.size() * sizeof(int16_t));
  GST_BUFFER_PTS(b) = pts;
  GST_BUFFER_DURATION(b) = dur;
  return b;
}

GstBuffer *f32_buffer(const std::vector<float> &samples, GstClockTime pts, GstClockTime dur) {
  GstBuffer *b = gst_buffer_new_memdup(samples.data(), samples.size() * sizeof(float));
  GST_BUFFER_PTS(b) = pts;
  GST_BUFFER_DURATION(b) = dur;
  return b;
}

Collected::~Collected() {
  for (auto *b : buffers)
    gst_buffer_unref(b);
}

std::vector<int16_t> Collected::s16() const {
  std::vector<int16_t> v;
  for (auto *b : buffers) {
    GstMapInfo m;
    gst_buffer_map(b, &m, GST_MAP_READ);
    const auto *s = reinterpret_cast<const int16_t *>(m.data);
    v.insert(v.end(), s, s + m.size / 2);
    gst_buffer_unmap(b, &m);
  }
  return v;
}

std::vector<double> Collected::channel(unsigned ch, unsigned channels) const {
  auto all = s16();
  std::vector<double> v;
  for (size_t i = ch; i < all.size(); i += channels)
    v.push_back(all[i] / 32768.0);
  return v;
}

void pull_all(GstElement *appsink, Collected &out, GstClockTime timeout, size_t max_buffers) {
  while (out.buffers.size() < max_buffers) {
    GstSample *s = gst_app_sink_try_pull_sample(GST_APP_SINK(appsink), timeout);
    if (!s) {
      REQUIRE(gst_app_sink_is_eos(GST_APP_SINK(appsink)));
      return;
    }
    out.buffers.push_back(gst_buffer_ref(gst_sample_get_buffer(s)));
    gst_sample_unref(s);
  }
}

std::string wait_eos_or_error(GstElement *pipeline, GstClockTime timeout) {
  GstBus *bus = gst_element_get_bus(pipeline);
  GstMessage *msg = gst_bus_timed_pop_filtered(
      bus, timeout, static_cast<GstMessageType>(GST_MESSAGE_EOS | GST_MESSAGE_ERROR));
  gst_object_unref(bus);
  REQUIRE(msg != nullptr); /* timed out: a hang */
  std::string err;
  if (GST_MESSAGE_TYPE(msg) == GST_MESSAGE_ERROR) {
    GError *e = nullptr;
    gchar *dbg = nullptr;
    gst_message_parse_error(msg, &e, &dbg);
    err = std::string(e->message) + " | " + (dbg ? dbg : "");
    g_error_free(e);
    g_free(dbg);
  }
  gst_message_unref(msg);
  return err;
}

std::vector<GstStructure *> drain_element_messages(GstElement *pipeline, const char *name) {
  std::vector<GstStructure *> out;
  GstBus *bus = gst_element_get_bus(pipeline);
  while (GstMessage *m = gst_bus_pop_filtered(bus, GST_MESSAGE_ELEMENT)) {
    const GstStructure *s = gst_message_get_structure(m);
    if (s && gst_structure_has_name(s, name))
      out.push_back(gst_structure_copy(s));
    gst_message_unref(m);
  }
  gst_object_unref(bus);
  return out;
}

int run_command(const std::vector<std::string> &args, std::string *out) {
  std::vector<char *> argv;
  for (auto &a : args)
    argv.push_back(const_cast<char *>(a.c_str()));
  argv.push_back(nullptr);
  gchar *stdout_text = nullptr;
  gint status = -1;
  if (!g_spawn_sync(nullptr, argv.data(), nullptr, G_SPAWN_SEARCH_PATH, nullptr, nullptr,
                    out ? &stdout_text : nullptr, nullptr, &status, nullptr))
    return -1;
  if (out)
    *out = stdout_text ? stdout_text : "";
  g_free(stdout_text);
  return g_spawn_check_wait_status(status, nullptr) ? 0 : 1;
}

const std::string &test_tmpdir() {
  static std::string dir;
  if (dir.empty()) {
    gchar *d = g_dir_make_tmp("costream-test-XXXXXX", nullptr);
    REQUIRE(d != nullptr);
    dir = d;
    g_free(d);
  }
  return dir;
}

std::vector<uint8_t> read_file(const std::string &path) {
  std::ifstream f(path, std::ios::binary);
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(f)),
                              std::istreambuf_iterator<char>());
}

void make_av_flv(const std::string &path, const std::string &audio) {
  INFO("making " << path);
  REQUIRE(run_command({"timeout",
                       "60",
                       "ffmpeg",
                       "-hide_banner",
                       "-loglevel",
                       "error",
                       "-y",
                       "-f",
                       "lavfi",
                       "-i",
                       "testsrc=size=320x240:rate=25:duration=3",
                       "-f",
                       "lavfi",
                       "-i",
                       audio + ":d=3",
                       "-c:v",
                       "libx264",
                       "-preset",
                       "ultrafast",
                       "-g",
                       "25",
                       "-bf",
                       "0",
                       "-pix_fmt",
                       "yuv420p",
                       "-c:a",
                       "aac",
                       "-b:a",
                       "192k",
                       "-shortest",
                       path}) == 0);
}

void play_and_pull(const std::string &desc, const char *sink, Collected &out, GstClockTime timeout,
                   size_t max_buffers) {
  GError *err = nullptr;
  GstElement *p = gst_parse_launch(desc.c_str(), &err);
  INFO(desc);
  REQUIRE(err == nullptr);
  GstElement *a = gst_bin_get_by_name(GST_BIN(p), sink);
  REQUIRE(a != nullptr);
  g_object_set(a, "max-buffers", 0, nullptr);
  REQUIRE(gst_element_set_state(p, GST_STATE_PLAYING) != GST_STATE_CHANGE_FAILURE);
  pull_all(a, out, timeout, max_buffers);
  gst_element_set_state(p, GST_STATE_NULL);
  gst_object_unref(a);
  gst_object_unref(p);
}

std::vector<double> wav_samples(const std::string &path) {
  Collected c;
  play_and_pull("filesrc location=\"" + path +
                    "\" ! wavparse ! audioconvert ! audio/x-raw,format=S16LE,channels=1 ! "
                    "appsink name=a sync=false",
                "a", c);
  return c.channel(0, 1);
}

TalkerPad::TalkerPad(GstElement *m, GstCaps *caps) : mixer(m) {
  src = gst_pad_new("talker", GST_PAD_SRC);
  gst_pad_set_query_function(src, [](GstPad *pad, GstObject *, GstQuery *q) -> gboolean {
    if (GST_QUERY_TYPE(q) == GST_QUERY_LATENCY) {
      gst_query_set_latency(q, TRUE, 0, GST_CLOCK_TIME_NONE);
      return TRUE;
    }
    return gst_pad_query_default(pad, nullptr, q);
  });
  gst_pad_set_active(src, TRUE);
  sink = gst_element_request_pad_simple(mixer, "sink_%u");
  REQUIRE(sink != nullptr);
  REQUIRE(gst_pad_link(src, sink) == GST_PAD_LINK_OK);
  gst_pad_push_event(src, gst_event_new_stream_start("talker"));
  gst_pad_push_event(src, gst_event_new_caps(caps));
  gst_caps_unref(caps);
  GstSegment seg;
  gst_segment_init(&seg, GST_FORMAT_TIME);
  gst_pad_push_event(src, gst_event_new_segment(&seg));
}

void TalkerPad::push(GstBuffer *b) {
  REQUIRE(gst_pad_push(src, b) == GST_FLOW_OK);
}

void TalkerPad::leave() {
  if (!sink)
    return;
  gst_pad_unlink(src, sink);
  gst_element_release_request_pad(mixer, sink);
  gst_object_unref(sink);
  sink = nullptr;
}

TalkerPad::~TalkerPad() {
  leave();
  gst_pad_set_active(src, FALSE);
  gst_object_unref(src);
}

Churn churn_talkers(GstElement *pipeline, GstElement *mixer, int threads, int rounds, double volume,
                    bool return_feeds) {
  std::atomic<int> joined{0}, failures{0};
  auto worker = [&](int id) {
    for (int round = 0; round < rounds; round++) {
      GError *e = nullptr;
      gchar *desc = g_strdup_printf("audiotestsrc is-live=true samplesperbuffer=441 freq=1000 "
                                    "volume=%g ! capsfilter caps=audio/x-raw,rate=44100",
                                    volume);
      GstElement *bin = gst_parse_bin_from_description(desc, TRUE, &e);
      g_free(desc);
      GstElement *rsink = return_feeds ? gst_element_factory_make("fakesink", nullptr) : nullptr;
      if (!bin || e || (return_feeds && !rsink)) {
        failures++;
        g_clear_error(&e);
        return;
      }
      gst_bin_add(GST_BIN(pipeline), bin);
      GstPad *sinkpad = gst_element_request_pad_simple(mixer, "sink_%u");
      GstPad *srcpad = gst_element_get_static_pad(bin, "src");
      GstPad *ret = nullptr, *rsinkpad = nullptr;
      if (rsink) {
        g_object_set(rsink, "async", FALSE, nullptr);
        gst_bin_add(GST_BIN(pipeline), rsink);
        gchar *rname = g_strdup_printf("src_%s", GST_PAD_NAME(sinkpad) + 5);
        ret = gst_element_get_static_pad(mixer, rname);
        g_free(rname);
        rsinkpad = gst_element_get_static_pad(rsink, "sink");
        if (!ret || gst_pad_link(ret, rsinkpad) != GST_PAD_LINK_OK)
          failures++;
      }
      if (gst_pad_link(srcpad, sinkpad) != GST_PAD_LINK_OK)
        failures++;
      if (rsink)
        gst_element_sync_state_with_parent(rsink);
      gst_element_sync_state_with_parent(bin);
      joined++;
      g_usleep(5000 + 3000 * id);
      /* Lock its state first: while still in the PLAYING pipeline, a pipeline-wide state
       * update (latency, async-done) could set it back to PLAYING behind our back. */
      gst_element_set_locked_state(bin, TRUE);
      if (rsink)
        gst_element_set_locked_state(rsink, TRUE);
      if (gst_element_set_state(bin, GST_STATE_NULL) != GST_STATE_CHANGE_SUCCESS)
        failures++;
      gst_pad_unlink(srcpad, sinkpad);
      gst_element_release_request_pad(mixer, sinkpad);
      gst_bin_remove(GST_BIN(pipeline), bin);
      if (rsink) {
        gst_element_set_state(rsink, GST_STATE_NULL);
        gst_bin_remove(GST_BIN(pipeline), rsink);
        gst_object_unref(rsinkpad);
        if (ret)
          gst_object_unref(ret);
      }
      gst_object_unref(srcpad);
      gst_object_unref(sinkpad);
    }
  };
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; t++)
    workers.emplace_back(worker, t);
  for (auto &t : workers)
    t.join();
  return Churn{joined.load(), failures.load()};
}

bool contiguous(const Collected &out) {
  for (size_t i = 1; i < out.buffers.size(); i++)
    if (GST_BUFFER_PTS(out.buffers[i]) !=
        GST_BUFFER_PTS(out.buffers[i - 1]) + GST_BUFFER_DURATION(out.buffers[i - 1]))
      return false;
  return true;
}

void pull_queued(GstElement *appsink, Collected &out) {
  while (GstSample *smp = gst_app_sink_try_pull_sample(GST_APP_SINK(appsink), 0)) {
    out.buffers.push_back(gst_buffer_ref(gst_sample_get_buffer(smp)));
    gst_sample_unref(smp);
  }
}

guint64 stats_uint64(GstElement *element, const char *field) {
  GstStructure *s = nullptr;
  g_object_get(element, "stats", &s, nullptr);
  guint64 v = 0;
  gst_structure_get_uint64(s, field, &v);
  gst_structure_free(s);
  return v;
}

std::vector<guint64> pads_stat(GstElement *mixer, const char *field) {
  GstStructure *stats = nullptr;
  g_object_get(mixer, "stats", &stats, nullptr);
  REQUIRE(stats != nullptr);
  const GValue *pads = gst_structure_get_value(stats, "pads");
  std::vector<guint64> values;
  for (guint i = 0; pads && i < gst_value_array_get_size(pads); i++) {
    const GstStructure *ps = gst_value_get_structure(gst_value_array_get_value(pads, i));
    guint64 v = G_MAXUINT64;
    CHECK(gst_structure_get_uint64(ps, field, &v));
    values.push_back(v);
  }
  gst_structure_free(stats);
  return values;
}

} // namespace testgst
