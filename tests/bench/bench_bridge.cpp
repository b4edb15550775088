/* costream benchmark
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * aac2opus and rtmpbridge, measured in one run against the standard ways. Not a test.
 *
 *   bench-bridge [--seconds S] [--bridges N]
 *
 * 1. CPU per stream, non-live, on the same AAC file (stereo, 44.1 kHz, 128 kbit/s, made by
 *    ffmpeg): `aac2opus` against `aacparse ! avdec_aac ! audioconvert ! audioresample ! opusenc`
 *    and against an `ffmpeg -c:a libopus` process, all at 96 kbit/s, complexity 5, 20 ms.
 * 2. Added audio latency through rtmpbridge, live: ffmpeg publishes in real time (-re); for each
 *    Opus packet, the time from the arrival of the last AAC message it needs (at rtmpserversrc's
 *    output) to the packet leaving the bridge. Percentiles.
 * 3. Bridges per core: N bridges in this process, each fed by its own real-time ffmpeg publisher
 *    (128 kbit/s stereo AAC, no video); this process's CPU per bridge per second of audio.
 */
#include <gst/gst.h>

#include <sys/resource.h>
#include <sys/wait.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace {

double cpu_self() {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec +
         (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}
double cpu_children() {
  struct rusage ru;
  getrusage(RUSAGE_CHILDREN, &ru);
  return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec +
         (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

int run(const std::vector<std::string> &args) {
  std::vector<char *> argv;
  for (auto &a : args)
    argv.push_back(const_cast<char *>(a.c_str()));
  argv.push_back(nullptr);
  gint status = -1;
  if (!g_spawn_sync(nullptr, argv.data(), nullptr, G_SPAWN_SEARCH_PATH, nullptr, nullptr, nullptr,
                    nullptr, &status, nullptr))
    return -1;
  return g_spawn_check_wait_status(status, nullptr) ? 0 : 1;
}

double run_pipeline(const std::string &desc) {
  GError *err = nullptr;
  GstElement *p = gst_parse_launch(desc.c_str(), &err);
  if (!p || err) {
    std::fprintf(stderr, "%s: %s\n", desc.c_str(), err ? err->message : "?");
    std::exit(1);
  }
  const double t0 = cpu_self();
  gst_element_set_state(p, GST_STATE_PLAYING);
  GstBus *bus = gst_element_get_bus(p);
  GstMessage *m = gst_bus_timed_pop_filtered(
      bus, 600 * GST_SECOND, static_cast<GstMessageType>(GST_MESSAGE_EOS | GST_MESSAGE_ERROR));
  const double t1 = cpu_self();
  if (!m || GST_MESSAGE_TYPE(m) != GST_MESSAGE_EOS) {
    std::fprintf(stderr, "%s: no EOS\n", desc.c_str());
    std::exit(1);
  }
  gst_message_unref(m);
  gst_object_unref(bus);
  gst_element_set_state(p, GST_STATE_NULL);
  gst_object_unref(p);
  return t1 - t0;
}

/* ---- latency --------------------------------------------------------------------------- */

struct Latency {
  std::mutex lock;
  std::map<GstClockTime, gint64> aac_arrival; /* AAC message PTS -> arrival (monotonic us) */
  GstClockTime aac_duration = 23219955;       /* 1024 samples at 44.1 kHz */
  std::vector<double> ms;
};

GstPadProbeReturn on_tag(GstPad *, GstPadProbeInfo *info, gpointer data) {
  auto *l = static_cast<Latency *>(data);
  GstBuffer *b = GST_PAD_PROBE_INFO_BUFFER(info);
  guint8 type = 0;
  if (gst_buffer_get_size(b) > 13 && gst_buffer_extract(b, 0, &type, 1) == 1 && type == 8) {
    std::lock_guard<std::mutex> lk(l->lock);
    l->aac_arrival[GST_BUFFER_PTS(b)] = g_get_monotonic_time();
  }
  return GST_PAD_PROBE_OK;
}

GstPadProbeReturn on_opus(GstPad *, GstPadProbeInfo *info, gpointer data) {
  auto *l = static_cast<Latency *>(data);
  GstBuffer *b = GST_PAD_PROBE_INFO_BUFFER(info);
  const gint64 now = g_get_monotonic_time();
  const GstClockTime end = GST_BUFFER_PTS(b) + GST_BUFFER_DURATION(b);
  std::lock_guard<std::mutex> lk(l->lock);
  /* the last AAC message overlapping the packet: the latest one starting before its end */
  auto it = l->aac_arrival.lower_bound(end);
  if (it == l->aac_arrival.begin())
    return GST_PAD_PROBE_OK;
  --it;
  /* tag PTS are in ms (the FLV clock): match them to the packet's ns timeline with that slack */
  l->ms.push_back((now - it->second) / 1000.0);
  return GST_PAD_PROBE_OK;
}

void on_bridge_pad(GstElement *, GstPad *pad, gpointer data) {
  if (g_str_equal(GST_PAD_NAME(pad), "audio"))
    gst_pad_add_probe(pad, GST_PAD_PROBE_TYPE_BUFFER, on_opus, data, nullptr);
}

} // namespace

int main(int argc, char **argv) {
  gst_init(&argc, &argv);
  int seconds = 60, bridges = 8, repeat = 5, resample_quality = -1;
  bool cpu_only = false;
  for (int i = 1; i < argc; i++) {
    if (!std::strcmp(argv[i], "--seconds") && i + 1 < argc)
      seconds = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--bridges") && i + 1 < argc)
      bridges = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--repeat") && i + 1 < argc)
      repeat = std::max(1, std::atoi(argv[++i]));
    else if (!std::strcmp(argv[i], "--cpu-only"))
      cpu_only = true;
    else if (!std::strcmp(argv[i], "--resample-quality") && i + 1 < argc)
      resample_quality = std::atoi(argv[++i]);
    else {
      std::fprintf(stderr,
                   "usage: %s [--seconds S] [--bridges N] [--repeat R] [--cpu-only] "
                   "[--resample-quality Q]\n",
                   argv[0]);
      return 2;
    }
  }
  gchar *dir = g_dir_make_tmp("costream-bench-XXXXXX", nullptr);
  const std::string aac = std::string(dir) + "/in.aac", flv = std::string(dir) + "/in.flv";
  const std::string secs = std::to_string(seconds);
  if (run({"ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
           "aevalsrc=0.2*sin(2*PI*440*t)+0.05*sin(2*PI*3000*t)|0.2*sin(2*PI*660*t):s=44100:d=" +
               secs,
           "-c:a", "aac", "-b:a", "128k", aac}) != 0 ||
      run({"ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-i", aac, "-c", "copy", flv}) !=
          0) {
    std::fprintf(stderr, "ffmpeg could not make the input files\n");
    return 1;
  }

  /* 1. CPU per stream: the three chains in turn, `repeat` rounds (this machine is a shared VM:
   * one run of each can be off by 20 %); the median of each, and the ratios of the medians. */
  std::vector<double> ours_runs, generic_runs, ff_runs;
  for (int r = 0; r < repeat; r++) {
    ours_runs.push_back(run_pipeline(
        "filesrc location=" + aac + " ! aacparse ! aac2opus bitrate=96000 complexity=5 " +
        (resample_quality >= 0 ? "resample-quality=" + std::to_string(resample_quality) : "") +
        " frame-duration=20 ! fakesink"));
    generic_runs.push_back(run_pipeline(
        "filesrc location=" + aac +
        " ! aacparse ! avdec_aac ! audioconvert ! audioresample ! audio/x-raw,rate=48000 "
        "! opusenc bitrate=96000 complexity=5 frame-size=20 ! fakesink"));
    const double c0 = cpu_children();
    run({"ffmpeg",    "-hide_banner",
         "-loglevel", "error",
         "-y",        "-i",
         aac,         "-c:a",
         "libopus",   "-b:a",
         "96k",       "-compression_level",
         "5",         "-frame_duration",
         "20",        "-ar",
         "48000",     "-f",
         "null",      "-"});
    ff_runs.push_back(cpu_children() - c0);
  }
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  auto spread = [](const std::vector<double> &v) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.3f-%.3f", *std::min_element(v.begin(), v.end()),
                  *std::max_element(v.begin(), v.end()));
    return std::string(buf);
  };
  const double ours = median(ours_runs), generic = median(generic_runs), ff = median(ff_runs);
  std::printf("# aac2opus: %d s of stereo 44.1 kHz AAC at 128 kbit/s -> Opus 96 kbit/s, "
              "complexity 5, 20 ms; median of %d rounds\n\n",
              seconds, repeat);
  std::printf("| chain | CPU s (median) | range | %% of a core in real time | ratio to aac2opus "
              "|\n|---|---|---|---|---|\n");
  std::printf("| aac2opus | %.3f | %s | %.2f %% | 1.00 |\n", ours, spread(ours_runs).c_str(),
              100 * ours / seconds);
  std::printf("| aacparse ! avdec_aac ! audioconvert ! audioresample ! opusenc | %.3f | %s | "
              "%.2f %% | %.2f |\n",
              generic, spread(generic_runs).c_str(), 100 * generic / seconds, generic / ours);
  std::printf("| ffmpeg -c:a libopus (own process) | %.3f | %s | %.2f %% | %.2f |\n\n", ff,
              spread(ff_runs).c_str(), 100 * ff / seconds, ff / ours);
  std::printf("aac2opus / ffmpeg = %.2f (target <= 0.7); aac2opus / generic chain = %.2f "
              "(target <= 1)\n\n",
              ours / ff, ours / generic);
  if (cpu_only)
    return 0;

  /* 2. latency, live */
  {
    Latency lat;
    GError *err = nullptr;
    GstElement *p =
        gst_parse_launch("rtmpbridge name=b port=0 b.audio ! fakesink sync=false", &err);
    GstElement *b = gst_bin_get_by_name(GST_BIN(p), "b");
    GstElement *src = gst_bin_get_by_name(GST_BIN(b), "src");
    GstPad *srcpad = gst_element_get_static_pad(src, "src");
    gst_pad_add_probe(srcpad, GST_PAD_PROBE_TYPE_BUFFER, on_tag, &lat, nullptr);
    g_signal_connect(b, "pad-added", G_CALLBACK(on_bridge_pad), &lat);
    gst_element_set_state(p, GST_STATE_PLAYING);
    guint port = 0;
    g_object_get(b, "bound-port", &port, nullptr);
    const int n = std::min(seconds, 20);
    run({"timeout", std::to_string(n + 30), "ffmpeg", "-hide_banner", "-loglevel", "error", "-re",
         "-t", std::to_string(n), "-i", flv, "-c", "copy", "-f", "flv",
         "rtmp://127.0.0.1:" + std::to_string(port) + "/live/x"});
    g_usleep(500000);
    gst_element_set_state(p, GST_STATE_NULL);
    std::vector<double> v;
    {
      std::lock_guard<std::mutex> lk(lat.lock);
      v = lat.ms;
    }
    std::sort(v.begin(), v.end());
    auto pct = [&](double q) {
      return v.empty() ? -1.0 : v[static_cast<size_t>(q * (v.size() - 1))];
    };
    std::printf("# Added audio latency through rtmpbridge (live, ffmpeg -re, %d s, %zu Opus "
                "packets): RTMP message in -> Opus packet out\n\n",
                n, v.size());
    std::printf(
        "| p50 | p95 | p99 | max |\n|---|---|---|---|\n| %.2f ms | %.2f ms | %.2f ms | %.2f "
        "ms |\n\n",
        pct(0.5), pct(0.95), pct(0.99), v.empty() ? -1.0 : v.back());
    gst_object_unref(srcpad);
    gst_object_unref(src);
    gst_object_unref(b);
    gst_object_unref(p);
  }

  /* 3. bridges per core */
  {
    std::vector<GstElement *> pipes;
    std::vector<guint> ports;
    for (int i = 0; i < bridges; i++) {
      GError *err = nullptr;
      GstElement *p = gst_parse_launch(
          "rtmpbridge name=b port=0 b.audio ! fakesink sync=false async=false", &err);
      gst_element_set_state(p, GST_STATE_PLAYING);
      GstElement *b = gst_bin_get_by_name(GST_BIN(p), "b");
      guint port = 0;
      g_object_get(b, "bound-port", &port, nullptr);
      gst_object_unref(b);
      pipes.push_back(p);
      ports.push_back(port);
    }
    const int n = std::min(seconds, 20);
    const double t0 = cpu_self();
    std::vector<std::thread> pubs;
    for (int i = 0; i < bridges; i++)
      pubs.emplace_back([&, i] {
        run({"timeout", std::to_string(n + 30), "ffmpeg", "-hide_banner", "-loglevel", "error",
             "-re", "-t", std::to_string(n), "-i", flv, "-c", "copy", "-f", "flv",
             "rtmp://127.0.0.1:" + std::to_string(ports[i]) + "/live/x"});
      });
    for (auto &t : pubs)
      t.join();
    const double used = cpu_self() - t0;
    for (auto *p : pipes) {
      gst_element_set_state(p, GST_STATE_NULL);
      gst_object_unref(p);
    }
    const double per_bridge = used / (bridges * static_cast<double>(n));
    std::printf("# Bridges per core: %d bridges, each a real-time 128 kbit/s stereo AAC publisher, "
                "%d s\n\n",
                bridges, n);
    std::printf("this process: %.3f CPU s = %.2f %% of a core per bridge -> about %.0f bridges per "
                "core\n",
                used, 100 * per_bridge, 1.0 / per_bridge);
  }
  return 0;
}
