/* costream benchmark
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * CPU cost of mixminus against the standard elements, measured in the same run on the same audio.
 * Not a test: it prints tables of CPU seconds and ratios.
 *
 *   bench-mixminus [--seconds S] [--naive-chains K] [--repeat R] [--raw-only] [--only P]
 *                  [--live] [--prequeued]
 *
 * Inputs: P appsrc participants of 10 ms S16LE 48 kHz mono buffers (made as the appsrc asks for
 * them, each with memory of its own; --prequeued: all queued before the run); 3 of them talk
 * (noise at -20 dBov), the rest are near-silent room noise (-65 dBov). Non-live, as fast as
 * possible, process CPU from PLAYING to EOS.
 *  - Raw: mixminus (max-speakers=3) with P raw outputs into fakesinks, P = 64 and 256, against
 *    one audiomixer mixing the same 64 inputs into one output, and the feeding alone; R rounds
 *    of all of them, ratios per round, medians.
 *  - Opus: mixminus with P = 100 Opus outputs (32 kbit/s, complexity 5, 20 ms) against the naive
 *    graph: per participant an audiomixer of the 99 others plus opusenc (same settings). The
 *    naive graph's 100 chains are identical and independent; K of them are run one after the
 *    other and their mean cost is multiplied by 100 (running 9900 mixer inputs at once would
 *    measure thread scheduling, not mixing).
 */
#include <gst/app/gstappsrc.h>
#include <gst/gst.h>

#include <sys/resource.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

namespace {

double cpu_seconds() {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec +
         (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

GstBuffer *noise_block(unsigned seed, double amp) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> d(0.0, amp * 32767.0);
  std::vector<int16_t> s(480);
  for (auto &v : s)
    v = static_cast<int16_t>(std::max(-32767.0, std::min(32767.0, d(rng))));
  return gst_buffer_new_memdup(s.data(), s.size() * 2);
}

/* How the appsrcs are fed: generated as they are consumed (default), or every buffer queued in
 * the appsrc before the run (--prequeued: 10 s x 256 participants holds 245 MB of audio, and
 * freeing that much cold memory grows faster than the participants, in every pipeline). */
bool g_prequeued = false;

/* One participant's audio: 8 blocks of noise repeated, each pushed buffer a copy with memory of
 * its own (as a depayloader or decoder would hand over). */
struct Feed {
  std::vector<GstBuffer *> pattern;
  int blocks = 0;
  int next = 0;
  ~Feed() {
    for (auto *b : pattern)
      gst_buffer_unref(b);
  }
  GstBuffer *make(int b) const {
    GstBuffer *buf = gst_buffer_copy_deep(pattern[b % pattern.size()]);
    GST_BUFFER_PTS(buf) = b * 10 * GST_MSECOND;
    GST_BUFFER_DURATION(buf) = 10 * GST_MSECOND;
    return buf;
  }
};

/* appsrc's streaming thread, its queue empty: the next 10 buffers (100 ms), or end of stream. */
void feed_need_data(GstAppSrc *src, guint, gpointer user_data) {
  auto *f = static_cast<Feed *>(user_data);
  for (int i = 0; i < 10 && f->next < f->blocks; i++)
    gst_app_src_push_buffer(src, f->make(f->next++));
  if (f->next >= f->blocks)
    gst_app_src_end_of_stream(src);
}

void fill(GstElement *src, int participant, int blocks) {
  const double amp = participant < 3 ? 0.1 : 0.0006; /* -20 / -65 dBov */
  auto *f = new Feed;
  for (int i = 0; i < 8; i++)
    f->pattern.push_back(noise_block(participant * 8 + i + 1, amp));
  f->blocks = blocks;
  GstCaps *caps =
      gst_caps_from_string("audio/x-raw,format=S16LE,rate=48000,channels=1,layout=interleaved");
  g_object_set(src, "caps", caps, "format", GST_FORMAT_TIME, "max-bytes", (guint64)0, nullptr);
  gst_caps_unref(caps);
  if (g_prequeued) {
    for (int b = 0; b < blocks; b++)
      gst_app_src_push_buffer(GST_APP_SRC(src), f->make(b));
    gst_app_src_end_of_stream(GST_APP_SRC(src));
    delete f;
    return;
  }
  GstAppSrcCallbacks cb{};
  cb.need_data = feed_need_data;
  gst_app_src_set_callbacks(GST_APP_SRC(src), &cb, f,
                            [](gpointer p) { delete static_cast<Feed *>(p); });
}

double run(GstElement *pipeline) {
  const double t0 = cpu_seconds();
  gst_element_set_state(pipeline, GST_STATE_PLAYING);
  GstBus *bus = gst_element_get_bus(pipeline);
  GstMessage *msg = gst_bus_timed_pop_filtered(
      bus, 1200 * GST_SECOND, static_cast<GstMessageType>(GST_MESSAGE_EOS | GST_MESSAGE_ERROR));
  const double t1 = cpu_seconds();
  if (!msg || GST_MESSAGE_TYPE(msg) != GST_MESSAGE_EOS) {
    std::fprintf(stderr, "pipeline did not reach EOS\n");
    std::exit(1);
  }
  gst_message_unref(msg);
  gst_object_unref(bus);
  gst_element_set_state(pipeline, GST_STATE_NULL);
  gst_object_unref(pipeline);
  return t1 - t0;
}

/* mixminus with P participants; outputs raw (fakesink) or Opus (capsfilter ! fakesink). */
double run_mixminus(int p, int blocks, bool opus) {
  GstElement *pipeline = gst_pipeline_new(nullptr);
  GstElement *mm = gst_element_factory_make("mixminus", nullptr);
  g_object_set(mm, "max-speakers", 3u, nullptr);
  gst_bin_add(GST_BIN(pipeline), mm);
  for (int i = 0; i < p; i++) {
    GstElement *src = gst_element_factory_make("appsrc", nullptr);
    GstElement *sink = gst_element_factory_make("fakesink", nullptr);
    g_object_set(sink, "sync", FALSE, "async", FALSE, nullptr);
    gst_bin_add_many(GST_BIN(pipeline), src, sink, nullptr);
    gchar *sname = g_strdup_printf("sink_%d", i), *rname = g_strdup_printf("src_%d", i);
    gst_element_link_pads(src, "src", mm, sname);
    if (opus) {
      GstElement *cf = gst_element_factory_make("capsfilter", nullptr);
      GstCaps *caps = gst_caps_from_string("audio/x-opus");
      g_object_set(cf, "caps", caps, nullptr);
      gst_caps_unref(caps);
      gst_bin_add(GST_BIN(pipeline), cf);
      gst_element_link_pads(mm, rname, cf, "sink");
      gst_element_link(cf, sink);
    } else {
      gst_element_link_pads(mm, rname, sink, "sink");
    }
    g_free(sname);
    g_free(rname);
    fill(src, i, blocks);
  }
  return run(pipeline);
}

/* Live: participant i as a real-time source of 10 ms buffers (3 talking at -20 dBov, the rest
 * silent: generating noise for hundreds of sources would cost more than the room), `blocks`
 * buffers long. */
GstElement *live_source(GstElement *pipeline, int i, int blocks) {
  GstElement *src = gst_element_factory_make("audiotestsrc", nullptr);
  g_object_set(src, "is-live", TRUE, "samplesperbuffer", 480, "num-buffers", blocks, "wave",
               i < 3 ? 0 /* sine */ : 4 /* silence */, "freq", 200.0 + 100 * i, "volume", 0.1,
               nullptr);
  GstElement *cf = gst_element_factory_make("capsfilter", nullptr);
  GstCaps *caps = gst_caps_from_string("audio/x-raw,format=S16LE,rate=48000,channels=1");
  g_object_set(cf, "caps", caps, nullptr);
  gst_caps_unref(caps);
  gst_bin_add_many(GST_BIN(pipeline), src, cf, nullptr);
  gst_element_link(src, cf);
  return cf;
}

/* Live: mixminus with P participants (raw outputs), or the sources alone (feeding). */
double run_live(int p, int blocks, bool feeding_only) {
  GstElement *pipeline = gst_pipeline_new(nullptr);
  GstElement *mm = nullptr;
  if (!feeding_only) {
    mm = gst_element_factory_make("mixminus", nullptr);
    g_object_set(mm, "max-speakers", 3u, nullptr);
    gst_bin_add(GST_BIN(pipeline), mm);
  }
  for (int i = 0; i < p; i++) {
    GstElement *src = live_source(pipeline, i, blocks);
    GstElement *sink = gst_element_factory_make("fakesink", nullptr);
    g_object_set(sink, "sync", FALSE, "async", FALSE, nullptr);
    gst_bin_add(GST_BIN(pipeline), sink);
    if (feeding_only) {
      gst_element_link(src, sink);
      continue;
    }
    gchar *sname = g_strdup_printf("sink_%d", i), *rname = g_strdup_printf("src_%d", i);
    gst_element_link_pads(src, "src", mm, sname);
    gst_element_link_pads(mm, rname, sink, "sink");
    g_free(sname);
    g_free(rname);
  }
  return run(pipeline);
}

/* The feeding alone: P appsrcs straight into fakesinks. */
double run_feeding(int p, int blocks) {
  GstElement *pipeline = gst_pipeline_new(nullptr);
  for (int i = 0; i < p; i++) {
    GstElement *src = gst_element_factory_make("appsrc", nullptr);
    GstElement *sink = gst_element_factory_make("fakesink", nullptr);
    g_object_set(sink, "sync", FALSE, nullptr);
    gst_bin_add_many(GST_BIN(pipeline), src, sink, nullptr);
    gst_element_link(src, sink);
    fill(src, i, blocks);
  }
  return run(pipeline);
}

/* P appsrcs into one audiomixer (-> opusenc when `opus`) -> fakesink. */
double run_audiomixer(int p, int blocks, bool opus, int first = 0) {
  std::string desc = "audiomixer name=m ! ";
  if (opus)
    desc += "audioconvert ! opusenc bitrate=32000 complexity=5 frame-size=20 "
            "bitrate-type=vbr audio-type=voice ! ";
  desc += "fakesink sync=false";
  GError *err = nullptr;
  GstElement *pipeline = gst_parse_launch(desc.c_str(), &err);
  if (!pipeline || err) {
    std::fprintf(stderr, "pipeline failed: %s\n", err ? err->message : "?");
    std::exit(1);
  }
  GstElement *m = gst_bin_get_by_name(GST_BIN(pipeline), "m");
  for (int i = 0; i < p; i++) {
    GstElement *src = gst_element_factory_make("appsrc", nullptr);
    gst_bin_add(GST_BIN(pipeline), src);
    gst_element_link(src, m);
    fill(src, first + i, blocks);
  }
  gst_object_unref(m);
  return run(pipeline);
}

} // namespace

int main(int argc, char **argv) {
  gst_init(&argc, &argv);
  double seconds = 10;
  int naive_chains = 3;
  bool raw_only = false;
  int repeat = 5;
  int only = 0;
  bool live = false;
  for (int i = 1; i < argc; i++) {
    if (!std::strcmp(argv[i], "--seconds") && i + 1 < argc)
      seconds = std::atof(argv[++i]);
    else if (!std::strcmp(argv[i], "--naive-chains") && i + 1 < argc)
      naive_chains = std::max(1, std::atoi(argv[++i]));
    else if (!std::strcmp(argv[i], "--repeat") && i + 1 < argc)
      repeat = std::max(1, std::atoi(argv[++i]));
    else if (!std::strcmp(argv[i], "--raw-only"))
      raw_only = true;
    else if (!std::strcmp(argv[i], "--only") && i + 1 < argc)
      only = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--live"))
      live = true;
    else if (!std::strcmp(argv[i], "--prequeued"))
      g_prequeued = true;
    else {
      std::fprintf(
          stderr,
          "usage: %s [--seconds S] [--naive-chains K] [--repeat R] [--raw-only] [--only P] "
          "[--live] [--prequeued]\n",
          argv[0]);
      return 2;
    }
  }
  for (const char *f : {"mixminus", "audiomixer", "opusenc"}) {
    if (GstElementFactory *fac = gst_element_factory_find(f)) {
      gst_object_unref(fac);
    } else {
      std::fprintf(stderr, "element %s not found (GST_PLUGIN_PATH?)\n", f);
      return 1;
    }
  }
  const int blocks = static_cast<int>(seconds * 100);
  if (only > 0) { /* one raw mixminus run, for profiling */
    std::printf("mixminus, %d participants: %.3f CPU s\n", only, run_mixminus(only, blocks, false));
    return 0;
  }

  if (live) {
    /* Real time: every participant a live source, the room on the clock, as in a call. CPU over
     * `seconds` of wall time; the median of `repeat` runs. */
    auto median = [&](auto fn) {
      std::vector<double> v;
      for (int r = 0; r < repeat; r++)
        v.push_back(fn());
      std::sort(v.begin(), v.end());
      return v[v.size() / 2];
    };
    std::printf("# Raw, live: %.0f s in real time, 10 ms buffers, 3 talking; median of %d runs\n\n",
                seconds, repeat);
    const double f64 = median([&] { return run_live(64, blocks, true); });
    const double f256 = median([&] { return run_live(256, blocks, true); });
    const double m64 = median([&] { return run_live(64, blocks, false); });
    const double m256 = median([&] { return run_live(256, blocks, false); });
    std::printf("| pipeline | CPU s | CPU s less feeding | ratio (total) | ratio (less feeding) |\n"
                "|---|---|---|---|---|\n");
    std::printf("| 64 live sources -> fakesink (feeding only) | %.3f | - | - | - |\n", f64);
    std::printf("| 256 live sources -> fakesink (feeding only) | %.3f | - | - | - |\n", f256);
    std::printf("| mixminus live, 64 participants | %.3f | %.3f | 1.00 | 1.00 |\n", m64, m64 - f64);
    std::printf("| mixminus live, 256 participants | %.3f | %.3f | %.2f | %.2f |\n\n", m256,
                m256 - f256, m256 / m64, (m256 - f256) / (m64 - f64));
    return 0;
  }

  std::printf("# Raw: %.0f s of 10 ms S16LE 48 kHz mono per participant, 3 talking; %d rounds\n\n",
              seconds, repeat);
  /* The machine's speed drifts (a shared VM: +-30 % over minutes), so a ratio is only taken
   * between runs made side by side: every round runs each pipeline once, gives one ratio of
   * each kind, and the median over rounds is reported with the range. */
  std::vector<double> feed64, feed256, mm64, mm256, am64, r256, r256e, ram, rfeed;
  for (int r = 0; r < repeat; r++) {
    feed64.push_back(run_feeding(64, blocks));
    mm64.push_back(run_mixminus(64, blocks, false));
    am64.push_back(run_audiomixer(64, blocks, false));
    feed256.push_back(run_feeding(256, blocks));
    mm256.push_back(run_mixminus(256, blocks, false));
    r256.push_back(mm256.back() / mm64.back());
    /* the element alone: the sources' own cost (the feeding rows) taken off both */
    r256e.push_back((mm256.back() - feed256.back()) / (mm64.back() - feed64.back()));
    ram.push_back(am64.back() / mm64.back());
    rfeed.push_back(feed256.back() / feed64.back());
  }
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    const size_t n = v.size();
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
  };
  auto range = [&](const std::vector<double> &v, int digits = 2) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.*f (%.*f-%.*f)", digits, median(v), digits,
                  *std::min_element(v.begin(), v.end()), digits,
                  *std::max_element(v.begin(), v.end()));
    return std::string(buf);
  };

  std::printf("| pipeline | CPU s, median (range) | ratio, median of rounds (range) |\n"
              "|---|---|---|\n");
  std::printf("| 64 appsrc -> fakesink (feeding only) | %s | |\n", range(feed64, 3).c_str());
  std::printf("| 256 appsrc -> fakesink (feeding only) | %s | %s x feeding-64 |\n",
              range(feed256, 3).c_str(), range(rfeed).c_str());
  std::printf("| mixminus, 64 participants, 64 outputs | %s | 1.00 |\n", range(mm64, 3).c_str());
  std::printf("| audiomixer, 64 inputs, 1 output | %s | %s x mixminus-64 (target >= 1) |\n",
              range(am64, 3).c_str(), range(ram).c_str());
  std::printf("| mixminus, 256 participants, 256 outputs | %s | %s x mixminus-64 (linear = 4, "
              "target <= 4.5) |\n",
              range(mm256, 3).c_str(), range(r256).c_str());
  std::printf("| the same, less the feeding rows (the element alone) | | %s x |\n\n",
              range(r256e).c_str());
  if (raw_only)
    return 0;

  std::printf("# Opus: 100 participants, 32 kbit/s, complexity 5, 20 ms frames\n\n");
  const double mmo = run_mixminus(100, blocks, true);
  double naive_one = 0;
  for (int k = 0; k < naive_chains; k++)
    naive_one += run_audiomixer(99, blocks, true, k + 1);
  naive_one /= naive_chains;
  const double naive = naive_one * 100;
  std::printf("| pipeline | CPU s | ratio |\n|---|---|---|\n");
  std::printf("| mixminus, 100 Opus outputs (N+1 = 4 encodes a frame) | %.3f | 1.00 |\n", mmo);
  std::printf("| naive: 100 x (audiomixer of 99 + opusenc), from %d chains measured | %.3f | %.1f "
              "(naive / mixminus) |\n\n",
              naive_chains, naive, naive / mmo);
  std::printf("participants per core (Opus, real time): %.0f\n", 100.0 * seconds / mmo);
  std::printf("participants per core (raw, real time, from the 256 runs): %.0f\n",
              256.0 * seconds / median(mm256));
  return 0;
}
