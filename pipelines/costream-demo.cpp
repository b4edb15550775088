/* costream demo
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * The talk-back demo: synthetic viewers join, talk, drop out and leave a live
 * backchannelmixer while it feeds a producer's back channel (here: 16 kHz mono, written to a WAV
 * file). Prints a live status line, then checks the recording: in every phase, each talker's
 * tone is present at its level when it should be heard and absent when not.
 *
 *   costream-demo [--out DIR] [--seconds-per-phase S]
 */
#include <gst/gst.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <vector>

namespace {

constexpr int kRate = 16000;

struct Talker {
  const char *name;
  double freq;
  double volume;
  const char *caps; /* each viewer's browser/phone sends something different */
  int join_phase;
  int leave_phase;
  int stall_phase; /* drops its packets for this phase (-1: never) */
  GstElement *bin = nullptr;
  GstPad *mixer_pad = nullptr;
  gulong probe = 0;
  bool stalled = false;
};

Talker talkers[] = {
    {"viewer-1", 350.0, 0.30, "audio/x-raw,format=S16LE,rate=48000,channels=2", 0, 4, -1},
    {"viewer-2", 620.0, 0.20, "audio/x-raw,format=F32LE,rate=16000,channels=1", 1, 6, 3},
    {"viewer-3", 1250.0, 0.25, "audio/x-raw,format=S16LE,rate=8000,channels=1", 2, 6, -1},
};
constexpr int kPhases = 6;

struct Demo {
  GstElement *pipeline = nullptr;
  GstElement *mixer = nullptr;
  GMainLoop *loop = nullptr;
  int phase = -1;
  guint64 phase_ms = 1500;
  std::vector<int16_t> recorded;
  GMutex lock;
  std::string error;
};

GstPadProbeReturn record_probe(GstPad *, GstPadProbeInfo *info, gpointer data) {
  auto *demo = static_cast<Demo *>(data);
  GstBuffer *buf = GST_PAD_PROBE_INFO_BUFFER(info);
  GstMapInfo map;
  if (gst_buffer_map(buf, &map, GST_MAP_READ)) {
    g_mutex_lock(&demo->lock);
    auto *s = reinterpret_cast<const int16_t *>(map.data);
    demo->recorded.insert(demo->recorded.end(), s, s + map.size / 2);
    g_mutex_unlock(&demo->lock);
    gst_buffer_unmap(buf, &map);
  }
  return GST_PAD_PROBE_OK;
}

GstPadProbeReturn stall_probe(GstPad *, GstPadProbeInfo *, gpointer data) {
  /* a network drop: the packets never arrive, and no EOS either */
  return static_cast<Talker *>(data)->stalled ? GST_PAD_PROBE_DROP : GST_PAD_PROBE_OK;
}

void join(Demo *demo, Talker &t) {
  gchar *desc =
      g_strdup_printf("audiotestsrc is-live=true wave=sine freq=%.1f volume=%.2f "
                      "samplesperbuffer=%d ! audioconvert ! "
                      "audioresample ! capsfilter caps=\"%s\"",
                      t.freq, t.volume, 44100 / 50 /* 20 ms packets, like WebRTC */, t.caps);
  GError *err = nullptr;
  t.bin = gst_parse_bin_from_description(desc, TRUE, &err);
  g_free(desc);
  if (!t.bin) {
    demo->error = err ? err->message : "cannot build talker";
    g_clear_error(&err);
    return;
  }
  gst_object_ref(t.bin);
  gst_bin_add(GST_BIN(demo->pipeline), t.bin);
  GstPad *src = gst_element_get_static_pad(t.bin, "src");
  t.mixer_pad = gst_element_request_pad_simple(demo->mixer, "sink_%u");
  gst_pad_link(src, t.mixer_pad);
  t.probe = gst_pad_add_probe(src, GST_PAD_PROBE_TYPE_BUFFER, stall_probe, &t, nullptr);
  gst_object_unref(src);
  gst_element_sync_state_with_parent(t.bin);
  g_print("  + %s joins on %s (%s)\n", t.name, GST_PAD_NAME(t.mixer_pad), t.caps);
}

void leave(Demo *demo, Talker &t) {
  if (!t.bin)
    return;
  g_print("  - %s leaves (%s released)\n", t.name, GST_PAD_NAME(t.mixer_pad));
  /* Locked first, so a pipeline-wide state update cannot restart it while it is removed. */
  gst_element_set_locked_state(t.bin, TRUE);
  gst_element_set_state(t.bin, GST_STATE_NULL);
  GstPad *src = gst_element_get_static_pad(t.bin, "src");
  gst_pad_unlink(src, t.mixer_pad);
  gst_object_unref(src);
  gst_element_release_request_pad(demo->mixer, t.mixer_pad);
  gst_object_unref(t.mixer_pad);
  t.mixer_pad = nullptr;
  gst_bin_remove(GST_BIN(demo->pipeline), t.bin);
  gst_object_unref(t.bin);
  t.bin = nullptr;
}

gboolean next_phase(gpointer data) {
  auto *demo = static_cast<Demo *>(data);
  demo->phase++;
  if (demo->phase >= kPhases) {
    for (auto &t : talkers)
      leave(demo, t);
    g_main_loop_quit(demo->loop);
    return G_SOURCE_REMOVE;
  }
  g_print("phase %d (%.1f s)\n", demo->phase, demo->phase * demo->phase_ms / 1000.0);
  for (auto &t : talkers) {
    if (t.join_phase == demo->phase)
      join(demo, t);
    if (t.leave_phase == demo->phase)
      leave(demo, t);
    const bool stall = t.stall_phase == demo->phase;
    if (stall != t.stalled && t.bin)
      g_print("  ~ %s %s\n", t.name, stall ? "drops out (network)" : "is back");
    t.stalled = stall;
  }
  return G_SOURCE_CONTINUE;
}

gboolean print_status(gpointer data) {
  auto *demo = static_cast<Demo *>(data);
  GstStructure *stats = nullptr;
  g_object_get(demo->mixer, "stats", &stats, nullptr);
  if (!stats)
    return G_SOURCE_CONTINUE;
  guint talkers_n = 0, active = 0;
  guint64 blocks = 0;
  gst_structure_get_uint(stats, "talkers", &talkers_n);
  gst_structure_get_uint(stats, "active-talkers", &active);
  gst_structure_get_uint64(stats, "blocks", &blocks);
  std::string line;
  const GValue *pads = gst_structure_get_value(stats, "pads");
  for (guint i = 0; pads && i < gst_value_array_get_size(pads); i++) {
    const GstStructure *ps = gst_value_get_structure(gst_value_array_get_value(pads, i));
    double level = -127;
    gboolean act = FALSE;
    guint64 timeouts = 0, late = 0;
    gst_structure_get_double(ps, "level", &level);
    gst_structure_get_boolean(ps, "active", &act);
    gst_structure_get_uint64(ps, "timeouts", &timeouts);
    gst_structure_get_uint64(ps, "late", &late);
    char buf[160];
    g_snprintf(buf, sizeof buf,
               "  %s %s %5.1f dBov t/o %" G_GUINT64_FORMAT " late %" G_GUINT64_FORMAT,
               gst_structure_get_string(ps, "pad"), act ? "TALK" : "----", level, timeouts, late);
    line += buf;
  }
  g_print("    [%5.2f s] talkers %u, heard %u |%s\n", blocks * 0.01, talkers_n, active,
          line.c_str());
  gst_structure_free(stats);
  return G_SOURCE_CONTINUE;
}

gboolean on_bus(GstBus *, GstMessage *msg, gpointer data) {
  auto *demo = static_cast<Demo *>(data);
  switch (GST_MESSAGE_TYPE(msg)) {
  case GST_MESSAGE_ERROR: {
    GError *err = nullptr;
    gchar *dbg = nullptr;
    gst_message_parse_error(msg, &err, &dbg);
    demo->error = std::string(err->message) + (dbg ? std::string(" (") + dbg + ")" : "");
    g_clear_error(&err);
    g_free(dbg);
    g_main_loop_quit(demo->loop);
    break;
  }
  case GST_MESSAGE_ELEMENT: {
    const GstStructure *s = gst_message_get_structure(msg);
    if (gst_structure_has_name(s, "backchannelmixer-talker")) {
      gboolean active = FALSE;
      double level = 0;
      gst_structure_get_boolean(s, "active", &active);
      gst_structure_get_double(s, "level", &level);
      g_print("  * %s %s (%.1f dBov)\n", gst_structure_get_string(s, "pad-name"),
              active ? "is heard" : "went quiet", level);
    }
    break;
  }
  default:
    break;
  }
  return TRUE;
}

double amplitude(const std::vector<int16_t> &x, size_t from, size_t to, double freq) {
  double s = 0, c = 0;
  const double w = 2 * M_PI * freq / kRate;
  for (size_t i = from; i < to; i++) {
    s += x[i] / 32768.0 * std::sin(w * i);
    c += x[i] / 32768.0 * std::cos(w * i);
  }
  const double n = static_cast<double>(to - from);
  return 2.0 * std::sqrt(s * s + c * c) / n;
}

} // namespace

int main(int argc, char **argv) {
  gst_init(&argc, &argv);
  std::string out_dir = "out";
  double phase_s = 1.5;
  for (int i = 1; i < argc; i++) {
    if (!std::strcmp(argv[i], "--out") && i + 1 < argc)
      out_dir = argv[++i];
    else if (!std::strcmp(argv[i], "--seconds-per-phase") && i + 1 < argc)
      phase_s = g_ascii_strtod(argv[++i], nullptr);
    else {
      g_printerr("usage: %s [--out DIR] [--seconds-per-phase S]\n", argv[0]);
      return 2;
    }
  }
  g_mkdir_with_parents(out_dir.c_str(), 0755);
  const std::string wav = out_dir + "/backchannel.wav";

  if (!gst_element_factory_find("backchannelmixer")) {
    g_printerr("backchannelmixer not found: build costream and set GST_PLUGIN_PATH to its "
               "build/gst directory (pipelines/demo does this)\n");
    return 1;
  }

  Demo demo;
  g_mutex_init(&demo.lock);
  demo.phase_ms = static_cast<guint64>(phase_s * 1000);
  gchar *desc =
      g_strdup_printf("backchannelmixer name=m force-live=true latency=20000000 talk-threshold=-40 "
                      "! audio/x-raw,format=S16LE,rate=%d,channels=1 ! tee name=t "
                      "t. ! queue ! wavenc ! filesink location=\"%s\" "
                      "t. ! queue ! fakesink name=rec sync=false",
                      kRate, wav.c_str());
  GError *err = nullptr;
  demo.pipeline = gst_parse_launch(desc, &err);
  g_free(desc);
  if (!demo.pipeline) {
    g_printerr("pipeline: %s\n", err ? err->message : "?");
    return 1;
  }
  demo.mixer = gst_bin_get_by_name(GST_BIN(demo.pipeline), "m");
  GstElement *rec = gst_bin_get_by_name(GST_BIN(demo.pipeline), "rec");
  GstPad *recpad = gst_element_get_static_pad(rec, "sink");
  gst_pad_add_probe(recpad, GST_PAD_PROBE_TYPE_BUFFER, record_probe, &demo, nullptr);
  gst_object_unref(recpad);
  gst_object_unref(rec);

  demo.loop = g_main_loop_new(nullptr, FALSE);
  GstBus *bus = gst_element_get_bus(demo.pipeline);
  gst_bus_add_watch(bus, on_bus, &demo);

  g_print("costream talk-back demo: %d viewers talk back to one producer through "
          "backchannelmixer (16 kHz mono back channel)\n",
          static_cast<int>(G_N_ELEMENTS(talkers)));
  gst_element_set_state(demo.pipeline, GST_STATE_PLAYING);
  next_phase(&demo);
  g_timeout_add(static_cast<guint>(demo.phase_ms), next_phase, &demo);
  g_timeout_add(500, print_status, &demo);
  g_main_loop_run(demo.loop);

  /* Ends the back channel: the mixer finishes its output with EOS. */
  gst_element_send_event(demo.mixer, gst_event_new_eos());
  gst_bus_timed_pop_filtered(bus, 5 * GST_SECOND,
                             static_cast<GstMessageType>(GST_MESSAGE_EOS | GST_MESSAGE_ERROR));
  gst_element_set_state(demo.pipeline, GST_STATE_NULL);
  gst_bus_remove_watch(bus);
  gst_object_unref(bus);

  if (!demo.error.empty()) {
    g_printerr("error: %s\n", demo.error.c_str());
    return 1;
  }

  /* Check the recording phase by phase (skipping 300 ms after each change). */
  g_print("\nrecording: %s (%.2f s)\n", wav.c_str(),
          demo.recorded.size() / static_cast<double>(kRate));
  const size_t phase_len = static_cast<size_t>(phase_s * kRate);
  int bad = 0, checks = 0;
  for (int ph = 0; ph < kPhases; ph++) {
    const size_t from = ph * phase_len + static_cast<size_t>(0.3 * kRate);
    const size_t to = (ph + 1) * phase_len - static_cast<size_t>(0.1 * kRate);
    if (to > demo.recorded.size())
      break;
    std::string line = "  phase " + std::to_string(ph) + ":";
    for (auto &t : talkers) {
      const bool expect = ph >= t.join_phase && ph < t.leave_phase && ph != t.stall_phase;
      const double a = amplitude(demo.recorded, from, to, t.freq);
      const bool ok = expect ? std::fabs(a - t.volume) < 0.03 : a < 0.01;
      char buf[128];
      g_snprintf(buf, sizeof buf, " %s expected %.2f got %.3f%s;", t.name, expect ? t.volume : 0.0,
                 a, ok ? "" : " <-- WRONG");
      line += buf;
      checks++;
      bad += ok ? 0 : 1;
    }
    g_print("%s\n", line.c_str());
  }
  g_print("check: %d of %d talker/phase levels as expected -> %s\n", checks - bad, checks,
          bad == 0 && checks > 0 ? "OK" : "FAILED");
  gst_object_unref(demo.mixer);
  gst_object_unref(demo.pipeline);
  g_main_loop_unref(demo.loop);
  return bad == 0 && checks > 0 ? 0 : 1;
}
