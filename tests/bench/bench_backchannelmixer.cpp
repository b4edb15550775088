/* costream benchmark
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * CPU cost of backchannelmixer against the standard mixers, measured in the same run on the same
 * audio. Not a test: it prints a table of CPU seconds and ratios.
 *
 *   bench-backchannelmixer [--seconds S] [--repeat R] [--ffmpeg PATH]
 *
 * Non-live: N appsrc inputs (10 ms S16LE 48 kHz stereo buffers, shared memory, so feeding costs
 * next to nothing) -> mixer -> fakesink, as fast as possible. The CPU of the same inputs into N
 * fakesinks without a mixer is measured too and subtracted, so the ratios compare the mixers.
 * Live: 1 to 64 live inputs fed block by block into backchannelmixer and audiomixer in live
 * mode (force-live, on a clock that never fires), reported as CPU per talker per block.
 */
#include <gst/app/gstappsrc.h>
#include <gst/gst.h>

#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
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

double children_cpu_seconds() {
  struct rusage ru;
  getrusage(RUSAGE_CHILDREN, &ru);
  return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec +
         (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

GstBuffer *noise_block(unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> d(-2000, 2000);
  std::vector<int16_t> s(480 * 2);
  for (auto &v : s)
    v = static_cast<int16_t>(d(rng));
  return gst_buffer_new_memdup(s.data(), s.size() * 2);
}

/* Runs `inputs` appsrcs through `mixer_desc` (empty: straight into fakesinks) and returns the
 * process CPU seconds from PLAYING to EOS. */
double run_pipeline(const std::string &mixer_desc, int inputs, int blocks, bool live) {
  std::string desc;
  if (mixer_desc.empty()) {
    for (int i = 0; i < inputs; i++)
      desc += "appsrc name=src" + std::to_string(i) + " ! fakesink sync=false ";
  } else {
    desc = mixer_desc + " name=m ! fakesink sync=false ";
    for (int i = 0; i < inputs; i++)
      desc += "appsrc name=src" + std::to_string(i) + " ! m. ";
  }
  GError *err = nullptr;
  GstElement *pipeline = gst_parse_launch(desc.c_str(), &err);
  if (!pipeline || err) {
    std::fprintf(stderr, "pipeline failed: %s\n", err ? err->message : "?");
    std::exit(1);
  }
  GstCaps *caps =
      gst_caps_from_string("audio/x-raw,format=S16LE,rate=48000,channels=2,layout=interleaved");
  std::vector<GstBuffer *> pattern;
  for (int i = 0; i < 8; i++)
    pattern.push_back(noise_block(static_cast<unsigned>(i + 1)));
  for (int i = 0; i < inputs; i++) {
    GstElement *src = gst_bin_get_by_name(GST_BIN(pipeline), ("src" + std::to_string(i)).c_str());
    g_object_set(src, "caps", caps, "format", GST_FORMAT_TIME, "is-live", live, "max-bytes",
                 static_cast<guint64>(0), nullptr);
    for (int b = 0; b < blocks; b++) {
      /* Each talker's buffers have memory of their own, as real inputs do (copied before the
       * timing starts). */
      GstBuffer *buf = gst_buffer_copy_deep(pattern[(b + i) % pattern.size()]);
      GST_BUFFER_PTS(buf) = b * 10 * GST_MSECOND;
      GST_BUFFER_DURATION(buf) = 10 * GST_MSECOND;
      gst_app_src_push_buffer(GST_APP_SRC(src), buf);
    }
    gst_app_src_end_of_stream(GST_APP_SRC(src));
    gst_object_unref(src);
  }
  gst_caps_unref(caps);
  for (auto *b : pattern)
    gst_buffer_unref(b);

  const double t0 = cpu_seconds();
  gst_element_set_state(pipeline, GST_STATE_PLAYING);
  GstBus *bus = gst_element_get_bus(pipeline);
  GstMessage *msg = gst_bus_timed_pop_filtered(
      bus, 600 * GST_SECOND, static_cast<GstMessageType>(GST_MESSAGE_EOS | GST_MESSAGE_ERROR));
  const double t1 = cpu_seconds();
  if (!msg || GST_MESSAGE_TYPE(msg) != GST_MESSAGE_EOS) {
    std::fprintf(stderr, "%s: did not reach EOS\n", mixer_desc.c_str());
    std::exit(1);
  }
  gst_message_unref(msg);
  gst_object_unref(bus);
  gst_element_set_state(pipeline, GST_STATE_NULL);
  gst_object_unref(pipeline);
  return t1 - t0;
}

/* Live mode, measured without waiting for real time: `talkers` live inputs (their upstream
 * answers the latency query as live) fed block by block from this thread into the mixer running
 * in live mode on a clock that never fires (so nothing depends on scheduling luck). After each
 * block the thread waits for the mixer's output of that block. `mixer_desc` empty: the same
 * pushes into fakesinks (the feeding cost). Returns process CPU seconds. */
struct Clocked {
  GMutex lock;
  GCond cond;
  guint64 out = 0;
};

GstPadProbeReturn count_output(GstPad *, GstPadProbeInfo *, gpointer data) {
  auto *c = static_cast<Clocked *>(data);
  g_mutex_lock(&c->lock);
  c->out++;
  g_cond_signal(&c->cond);
  g_mutex_unlock(&c->lock);
  return GST_PAD_PROBE_OK;
}

gboolean live_latency_query(GstPad *pad, GstObject *parent, GstQuery *q) {
  if (GST_QUERY_TYPE(q) == GST_QUERY_LATENCY) {
    gst_query_set_latency(q, TRUE, 0, GST_CLOCK_TIME_NONE);
    return TRUE;
  }
  return gst_pad_query_default(pad, parent, q);
}

double run_clocked(const std::string &mixer_desc, int talkers, int blocks) {
  GstElement *pipeline = gst_pipeline_new(nullptr);
  GstClock *clock = GST_CLOCK(g_object_new(GST_TYPE_SYSTEM_CLOCK, nullptr));
  /* A clock whose time stands still: deadlines never pass, every block is complete first. */
  gst_pipeline_use_clock(GST_PIPELINE(pipeline), clock);
  std::vector<GstPad *> sinkpads;
  GstElement *mixer = nullptr;
  Clocked counter;
  g_mutex_init(&counter.lock);
  g_cond_init(&counter.cond);
  if (!mixer_desc.empty()) {
    GError *err = nullptr;
    mixer = gst_parse_bin_from_description(mixer_desc.c_str(), FALSE, &err);
    GstElement *m = gst_bin_get_by_name(GST_BIN(mixer), "m");
    GstElement *sink = gst_element_factory_make("fakesink", nullptr);
    g_object_set(sink, "sync", FALSE, "async", FALSE, nullptr);
    gst_bin_add_many(GST_BIN(pipeline), mixer, sink, nullptr);
    GstPad *msrc = gst_element_get_static_pad(m, "src");
    GstPad *ghost = gst_ghost_pad_new("src", msrc);
    gst_element_add_pad(mixer, ghost);
    gst_object_unref(msrc);
    gst_element_link(mixer, sink);
    GstPad *ssink = gst_element_get_static_pad(sink, "sink");
    gst_pad_add_probe(ssink, GST_PAD_PROBE_TYPE_BUFFER, count_output, &counter, nullptr);
    gst_object_unref(ssink);
    for (int i = 0; i < talkers; i++)
      sinkpads.push_back(gst_element_request_pad_simple(m, "sink_%u"));
    gst_object_unref(m);
  } else {
    for (int i = 0; i < talkers; i++) {
      GstElement *sink = gst_element_factory_make("fakesink", nullptr);
      g_object_set(sink, "sync", FALSE, "async", FALSE, nullptr);
      gst_bin_add(GST_BIN(pipeline), sink);
      sinkpads.push_back(gst_element_get_static_pad(sink, "sink"));
    }
  }
  gst_element_set_state(pipeline, GST_STATE_PLAYING);
  gst_element_get_state(pipeline, nullptr, nullptr, 5 * GST_SECOND);

  GstCaps *caps =
      gst_caps_from_string("audio/x-raw,format=S16LE,rate=48000,channels=2,layout=interleaved");
  std::vector<GstPad *> srcs;
  for (int i = 0; i < talkers; i++) {
    GstPad *src = gst_pad_new(nullptr, GST_PAD_SRC);
    gst_pad_set_query_function(src, live_latency_query);
    gst_pad_set_active(src, TRUE);
    gst_pad_link(src, sinkpads[i]);
    gst_pad_push_event(src, gst_event_new_stream_start(("talker" + std::to_string(i)).c_str()));
    gst_pad_push_event(src, gst_event_new_caps(caps));
    GstSegment seg;
    gst_segment_init(&seg, GST_FORMAT_TIME);
    gst_pad_push_event(src, gst_event_new_segment(&seg));
    srcs.push_back(src);
  }
  gst_caps_unref(caps);
  GstBuffer *pattern = noise_block(7);

  const double t0 = cpu_seconds();
  for (int b = 0; b < blocks; b++) {
    for (auto *src : srcs) {
      GstBuffer *buf = gst_buffer_copy_deep(pattern);
      GST_BUFFER_PTS(buf) = b * 10 * GST_MSECOND;
      GST_BUFFER_DURATION(buf) = 10 * GST_MSECOND;
      gst_pad_push(src, buf);
    }
    if (mixer) {
      g_mutex_lock(&counter.lock);
      const gint64 until = g_get_monotonic_time() + 5 * G_TIME_SPAN_SECOND;
      while (counter.out < static_cast<guint64>(b + 1))
        if (!g_cond_wait_until(&counter.cond, &counter.lock, until))
          break;
      const bool ok = counter.out >= static_cast<guint64>(b + 1);
      g_mutex_unlock(&counter.lock);
      if (!ok) {
        std::fprintf(stderr, "%s: no output for block %d\n", mixer_desc.c_str(), b);
        std::exit(1);
      }
    }
  }
  const double t1 = cpu_seconds();

  gst_buffer_unref(pattern);
  for (auto *src : srcs) {
    gst_pad_set_active(src, FALSE);
    gst_object_unref(src);
  }
  gst_element_set_state(pipeline, GST_STATE_NULL);
  for (auto *p : sinkpads)
    gst_object_unref(p);
  gst_object_unref(pipeline);
  gst_object_unref(clock);
  return t1 - t0;
}

double best_of(int repeat, const std::string &desc, int inputs, int blocks, bool live) {
  double best = 1e9;
  for (int r = 0; r < repeat; r++)
    best = std::min(best, run_pipeline(desc, inputs, blocks, live));
  return best;
}

/* ffmpeg amix on the same amount of audio (16 raw inputs), CPU of the child process. */
double run_ffmpeg(const std::string &ffmpeg, int inputs, double seconds, const std::string &dir) {
  std::vector<std::string> files;
  for (int i = 0; i < inputs; i++) {
    std::string f = dir + "/in" + std::to_string(i) + ".raw";
    FILE *fp = std::fopen(f.c_str(), "wb");
    if (!fp)
      return -1;
    GstBuffer *b = noise_block(static_cast<unsigned>(i + 1));
    GstMapInfo m;
    gst_buffer_map(b, &m, GST_MAP_READ);
    for (int k = 0; k < static_cast<int>(seconds * 100); k++)
      std::fwrite(m.data, 1, m.size, fp);
    gst_buffer_unmap(b, &m);
    gst_buffer_unref(b);
    std::fclose(fp);
    files.push_back(f);
  }
  std::vector<std::string> args = {ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error"};
  for (auto &f : files) {
    for (const char *a : {"-f", "s16le", "-ar", "48000", "-ac", "2", "-i"})
      args.push_back(a);
    args.push_back(f);
  }
  args.push_back("-filter_complex");
  args.push_back("amix=inputs=" + std::to_string(inputs) + ":normalize=0");
  for (const char *a : {"-f", "s16le", "-y", "/dev/null"})
    args.push_back(a);
  const double c0 = children_cpu_seconds();
  pid_t pid = fork();
  if (pid == 0) {
    std::vector<char *> argv;
    for (auto &a : args)
      argv.push_back(const_cast<char *>(a.c_str()));
    argv.push_back(nullptr);
    execv(ffmpeg.c_str(), argv.data());
    _exit(127);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  for (auto &f : files)
    std::remove(f.c_str());
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    return -1;
  return children_cpu_seconds() - c0;
}

} // namespace

int main(int argc, char **argv) {
  gst_init(&argc, &argv);
  double seconds = 20.0;
  int live_blocks = 1000;
  int repeat = 3;
  std::string ffmpeg = "/usr/bin/ffmpeg";
  std::string only; /* profile one pipeline: --only backchannelmixer */
  for (int i = 1; i < argc; i++) {
    if (!std::strcmp(argv[i], "--seconds") && i + 1 < argc)
      seconds = std::atof(argv[++i]);
    else if (!std::strcmp(argv[i], "--repeat") && i + 1 < argc)
      repeat = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--ffmpeg") && i + 1 < argc)
      ffmpeg = argv[++i];
    else if (!std::strcmp(argv[i], "--live-blocks") && i + 1 < argc)
      live_blocks = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--only") && i + 1 < argc)
      only = argv[++i];
    else {
      std::fprintf(
          stderr,
          "usage: %s [--seconds S] [--repeat R] [--live-blocks N] [--ffmpeg PATH] [--only MIXER]\n",
          argv[0]);
      return 2;
    }
  }
  for (const char *f : {"backchannelmixer", "audiomixer", "liveadder"}) {
    if (!gst_element_factory_find(f)) {
      std::fprintf(stderr, "element %s not found (GST_PLUGIN_PATH?)\n", f);
      return 1;
    }
  }
  const int blocks = static_cast<int>(seconds * 100);
  const int n = 16;
  if (!only.empty()) {
    std::printf("%s: %.3f CPU s\n", only.c_str(), run_pipeline(only, n, blocks, false));
    return 0;
  }

  std::printf("# Non-live: %d inputs, 10 ms S16LE 48 kHz stereo buffers, %.0f s of audio each; "
              "CPU seconds, best of %d\n",
              n, seconds, repeat);
  const double base = best_of(repeat, "", n, blocks, false);
  const double ours = best_of(repeat, "backchannelmixer", n, blocks, false);
  const double am = best_of(repeat, "audiomixer", n, blocks, false);
  const double la = best_of(repeat, "liveadder", n, blocks, false);
  const double ours_net = std::max(1e-6, ours - base);
  std::printf("| pipeline | CPU s | CPU s less feeding | relative to backchannelmixer |\n");
  std::printf("|---|---|---|---|\n");
  std::printf("| %d appsrc -> fakesink (feeding only) | %.3f | - | - |\n", n, base);
  std::printf("| backchannelmixer | %.3f | %.3f | 1.00 |\n", ours, ours_net);
  std::printf("| audiomixer | %.3f | %.3f | %.2f |\n", am, am - base, (am - base) / ours_net);
  std::printf("| liveadder | %.3f | %.3f | %.2f |\n", la, la - base, (la - base) / ours_net);
  if (access(ffmpeg.c_str(), X_OK) == 0) {
    const char *tmp = g_get_tmp_dir();
    double ff = 1e9;
    for (int r = 0; r < repeat; r++) {
      double v = run_ffmpeg(ffmpeg, n, seconds, tmp);
      if (v >= 0)
        ff = std::min(ff, v);
    }
    if (ff < 1e9)
      std::printf(
          "| ffmpeg -filter_complex amix (own process, reads raw files) | %.3f | - | %.2f |\n", ff,
          ff / ours_net);
  } else {
    std::printf("| ffmpeg amix | not installed (%s) | | |\n", ffmpeg.c_str());
  }
  std::printf("\naudiomixer / backchannelmixer CPU ratio: %.2f (target >= 3)\n\n",
              (am - base) / ours_net);

  std::printf("# Live mode, %d blocks of 10 ms per talker (S16LE 48 kHz stereo), fed block by "
              "block; CPU less the feeding; best of %d\n",
              live_blocks, repeat);
  std::printf("| talkers | backchannelmixer CPU s | us per talker per block | audiomixer "
              "(force-live) CPU s | us per talker per block | audiomixer / backchannelmixer |\n");
  std::printf("|---|---|---|---|---|---|\n");
  for (int talkers : {1, 2, 4, 8, 16, 32, 64}) {
    double b = 1e9, v = 1e9, a = 1e9;
    for (int r = 0; r < repeat; r++) {
      b = std::min(b, run_clocked("", talkers, live_blocks));
      v = std::min(v, run_clocked("backchannelmixer name=m force-live=true", talkers, live_blocks));
      a = std::min(a, run_clocked("audiomixer name=m force-live=true", talkers, live_blocks));
    }
    const double nv = std::max(0.0, v - b), na = std::max(0.0, a - b);
    const double per = 1e6 / (static_cast<double>(talkers) * live_blocks);
    std::printf("| %d | %.3f | %.2f | %.3f | %.2f | %.2f |\n", talkers, nv, nv * per, na, na * per,
                nv > 0 ? na / nv : 0.0);
  }
  return 0;
}
