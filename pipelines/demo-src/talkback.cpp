/* costream demo
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Talk-back: synthetic viewers join, talk, drop out and leave a live backchannelmixer while it
 * feeds a producer's back channel (here: 16 kHz mono, written to a WAV file). Prints a live
 * status line, then checks the recording: in every phase, each talker's tone is present at its
 * level when it should be heard and absent when not.
 */
#include "demo.h"

#include <atomic>
#include <cmath>

namespace demo {
namespace {

constexpr int kRate = 16000;
constexpr int kPhases = 6;

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
  std::atomic<bool> stalled{false}; /* read by the talker's streaming thread */
};

struct Talkback {
  Talker talkers[3] = {
      {"viewer-1", 350.0, 0.30, "audio/x-raw,format=S16LE,rate=48000,channels=2", 0, 4, -1},
      {"viewer-2", 620.0, 0.20, "audio/x-raw,format=F32LE,rate=16000,channels=1", 1, 6, 3},
      {"viewer-3", 1250.0, 0.25, "audio/x-raw,format=S16LE,rate=8000,channels=1", 2, 6, -1},
  };
  GstElement *pipeline = nullptr;
  GstElement *mixer = nullptr;
  GMainLoop *loop = nullptr;
  int phase = -1;
  guint64 phase_ms = 1500;
  /* running time at each phase's start (the last: when the talkers left); the timers that
   * change phases run late on a loaded machine, so the checks follow these, not the plan */
  GstClockTime starts[kPhases + 1] = {};
  Recording recorded;
  std::string error;
};

GstPadProbeReturn stall_probe(GstPad *, GstPadProbeInfo *, gpointer data) {
  /* a network drop: the packets never arrive, and no EOS either */
  return static_cast<Talker *>(data)->stalled ? GST_PAD_PROBE_DROP : GST_PAD_PROBE_OK;
}

void join(Talkback *tb, Talker &t) {
  gchar *desc =
      g_strdup_printf("audiotestsrc is-live=true wave=sine freq=%.1f volume=%.2f "
                      "samplesperbuffer=%d ! audioconvert ! "
                      "audioresample ! capsfilter caps=\"%s\"",
                      t.freq, t.volume, 44100 / 50 /* 20 ms packets, like WebRTC */, t.caps);
  GError *err = nullptr;
  t.bin = gst_parse_bin_from_description(desc, TRUE, &err);
  g_free(desc);
  if (!t.bin) {
    tb->error = err ? err->message : "cannot build talker";
    g_clear_error(&err);
    return;
  }
  gst_object_ref(t.bin);
  gst_bin_add(GST_BIN(tb->pipeline), t.bin);
  GstPad *src = gst_element_get_static_pad(t.bin, "src");
  t.mixer_pad = gst_element_request_pad_simple(tb->mixer, "sink_%u");
  gst_pad_link(src, t.mixer_pad);
  gst_pad_add_probe(src, GST_PAD_PROBE_TYPE_BUFFER, stall_probe, &t, nullptr);
  gst_object_unref(src);
  gst_element_sync_state_with_parent(t.bin);
  g_print("  + %s joins on %s (%s)\n", t.name, GST_PAD_NAME(t.mixer_pad), t.caps);
}

void leave(Talkback *tb, Talker &t) {
  if (!t.bin)
    return;
  g_print("  - %s leaves (%s released)\n", t.name, GST_PAD_NAME(t.mixer_pad));
  /* Locked first, so a pipeline-wide state update cannot restart it while it is removed. */
  gst_element_set_locked_state(t.bin, TRUE);
  gst_element_set_state(t.bin, GST_STATE_NULL);
  GstPad *src = gst_element_get_static_pad(t.bin, "src");
  gst_pad_unlink(src, t.mixer_pad);
  gst_object_unref(src);
  gst_element_release_request_pad(tb->mixer, t.mixer_pad);
  gst_object_unref(t.mixer_pad);
  t.mixer_pad = nullptr;
  gst_bin_remove(GST_BIN(tb->pipeline), t.bin);
  gst_object_unref(t.bin);
  t.bin = nullptr;
}

gboolean next_phase(gpointer data) {
  auto *tb = static_cast<Talkback *>(data);
  tb->phase++;
  tb->starts[tb->phase] = running_time(tb->pipeline);
  if (tb->phase >= kPhases) {
    for (auto &t : tb->talkers)
      leave(tb, t);
    g_main_loop_quit(tb->loop);
    return G_SOURCE_REMOVE;
  }
  g_print("phase %d (%.1f s)\n", tb->phase, tb->phase * tb->phase_ms / 1000.0);
  for (auto &t : tb->talkers) {
    if (t.join_phase == tb->phase)
      join(tb, t);
    if (t.leave_phase == tb->phase)
      leave(tb, t);
    const bool stall = t.stall_phase == tb->phase;
    if (stall != t.stalled && t.bin)
      g_print("  ~ %s %s\n", t.name, stall ? "drops out (network)" : "is back");
    t.stalled = stall;
  }
  return G_SOURCE_CONTINUE;
}

gboolean print_status(gpointer data) {
  auto *tb = static_cast<Talkback *>(data);
  GstStructure *stats = nullptr;
  g_object_get(tb->mixer, "stats", &stats, nullptr);
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
    line +=
        format("  %s %s %5.1f dBov t/o %" G_GUINT64_FORMAT " late %" G_GUINT64_FORMAT,
               gst_structure_get_string(ps, "pad"), act ? "TALK" : "----", level, timeouts, late);
  }
  g_print("    [%5.2f s] talkers %u, heard %u |%s\n", blocks * 0.01, talkers_n, active,
          line.c_str());
  gst_structure_free(stats);
  return G_SOURCE_CONTINUE;
}

gboolean on_bus(GstBus *, GstMessage *msg, gpointer data) {
  auto *tb = static_cast<Talkback *>(data);
  switch (GST_MESSAGE_TYPE(msg)) {
  case GST_MESSAGE_ERROR:
    tb->error = error_text(msg);
    g_main_loop_quit(tb->loop);
    break;
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

} // namespace

void run_talkback(const Options &opt, Report &report) {
  const std::string wav = opt.out_dir + "/backchannel.wav";
  Talkback tb;
  tb.phase_ms = static_cast<guint64>(opt.phase_s * 1000);
  g_print("\n== 2. talk-back: %zu viewers talk back to one producer through backchannelmixer "
          "(16 kHz mono back channel)\n",
          G_N_ELEMENTS(tb.talkers));
  std::string error;
  tb.pipeline =
      launch(format("backchannelmixer name=m force-live=true latency=20000000 talk-threshold=-40 "
                    "! audio/x-raw,format=S16LE,rate=%d,channels=1 ! tee name=t "
                    "t. ! queue ! wavenc ! filesink location=\"%s\" "
                    "t. ! queue ! fakesink name=rec sync=false",
                    kRate, wav.c_str()),
             &error);
  if (!tb.pipeline) {
    report.fail("talk-back", "pipeline: " + error);
    return;
  }
  tb.mixer = gst_bin_get_by_name(GST_BIN(tb.pipeline), "m");
  tb.recorded.attach(tb.pipeline, "rec", "sink");

  tb.loop = g_main_loop_new(nullptr, FALSE);
  GstBus *bus = gst_element_get_bus(tb.pipeline);
  gst_bus_add_watch(bus, on_bus, &tb);

  gst_element_set_state(tb.pipeline, GST_STATE_PLAYING);
  next_phase(&tb);
  const guint phase_timer = g_timeout_add(static_cast<guint>(tb.phase_ms), next_phase, &tb);
  const guint status_timer = g_timeout_add(500, print_status, &tb);
  g_main_loop_run(tb.loop);
  if (tb.phase < kPhases) {
    /* ended by an error: the phase timer is still there */
    g_source_remove(phase_timer);
    for (auto &t : tb.talkers)
      leave(&tb, t);
  }
  g_source_remove(status_timer);

  /* The output trails the clock by the mixer's latency, more on a loaded machine: let the
   * recording cover the last phase before it ends. */
  pump_until(
      [&] {
        const size_t n = tb.recorded.size();
        return !tb.error.empty() || (n > 0 && n >= tb.recorded.index(tb.starts[kPhases], kRate));
      },
      2.0);

  /* Ends the back channel: the mixer finishes its output with EOS. */
  gst_element_send_event(tb.mixer, gst_event_new_eos());
  GstMessage *end = gst_bus_timed_pop_filtered(
      bus, 5 * GST_SECOND, static_cast<GstMessageType>(GST_MESSAGE_EOS | GST_MESSAGE_ERROR));
  if (end && GST_MESSAGE_TYPE(end) == GST_MESSAGE_ERROR && tb.error.empty())
    tb.error = error_text(end);
  gst_clear_message(&end);
  gst_element_set_state(tb.pipeline, GST_STATE_NULL);
  gst_bus_remove_watch(bus);
  gst_object_unref(bus);
  gst_object_unref(tb.mixer);
  gst_object_unref(tb.pipeline);
  g_main_loop_unref(tb.loop);

  if (!tb.error.empty()) {
    report.fail("talk-back", tb.error);
    return;
  }

  /* Check the recording phase by phase (skipping 300 ms after each change). */
  int bad = 0, checks = 0;
  for (int ph = 0; ph < kPhases; ph++) {
    const size_t from = tb.recorded.index(tb.starts[ph] + 300 * GST_MSECOND, kRate);
    const size_t to = tb.recorded.index(tb.starts[ph + 1] - 100 * GST_MSECOND, kRate);
    if (to > tb.recorded.samples.size() || to <= from)
      break;
    std::string line = "  phase " + std::to_string(ph) + ":";
    for (auto &t : tb.talkers) {
      const bool expect = ph >= t.join_phase && ph < t.leave_phase && ph != t.stall_phase;
      const double a = amplitude(tb.recorded.samples, from, to, t.freq, kRate);
      const bool ok = expect ? std::fabs(a - t.volume) < 0.03 : a < 0.01;
      line += format(" %s expected %.2f got %.3f%s;", t.name, expect ? t.volume : 0.0, a,
                     ok ? "" : " <-- WRONG");
      checks++;
      bad += ok ? 0 : 1;
    }
    g_print("%s\n", line.c_str());
  }
  const int expected = kPhases * static_cast<int>(G_N_ELEMENTS(tb.talkers));
  report.recordings.push_back({wav, "talk-back: the producer's back channel (16 kHz mono)"});
  report.check(
      "talk-back backchannel.wav",
      format("%d talker/phase levels (heard: at its level +-0.03; not heard: < 0.01)", expected),
      format("%d of %d as expected, %.2f s recorded", checks - bad, checks,
             tb.recorded.samples.size() / static_cast<double>(kRate)),
      bad == 0 && checks == expected);
}

} // namespace demo
