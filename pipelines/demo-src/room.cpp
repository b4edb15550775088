/* costream demo
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * A four-person mix-minus room: four participants (tones at 300, 500, 700 and 900 Hz, each at
 * its own level) talk into mixminus with three speaker slots; each one's return feed is written
 * to a WAV file. In three phases the quiet participant holds a slot, loses it to a louder late
 * talker, and gets it back when that talker mutes. Pins and unpins are printed as they happen;
 * afterwards every feed is checked phase by phase: never its own tone, the slot holders' tones
 * at their levels, the non-holder's tone absent.
 */
#include "demo.h"

#include <cmath>
#include <set>

namespace demo {
namespace {

constexpr int kRate = 48000;
constexpr int kParticipants = 4;
const double kFreq[kParticipants] = {300, 500, 700, 900};
/* -17, -20, -29 and -13.5 dBov: all speaking (over -45 dBov); the third is more than
 * switch-threshold (6 dB) under the fourth, which therefore takes its slot */
const double kVolume[kParticipants] = {0.20, 0.14, 0.05, 0.30};

struct Phase {
  const char *name;
  double seconds;
  double skip;    /* seconds not checked after the change: slot switch, level attack */
  double volume3; /* participant 3's source volume */
  bool mute3;     /* participant 3's mixminus pad muted */
  std::set<int> holders;
  const char *what;
};

const Phase kPhases[] = {
    {"A", 2.5, 0.6, 0.0, false, {0, 1, 2}, "participants 0, 1, 2 talk; 3 listens"},
    {"B", 3.0, 1.0, 0.3, false, {0, 1, 3}, "3 talks, louder: takes the quietest holder's slot"},
    {"C", 2.5, 0.6, 0.3, true, {0, 1, 2}, "3 mutes: loses its slot at once, 2 takes it back"},
};
constexpr int kPhaseCount = G_N_ELEMENTS(kPhases);

struct Room {
  GstElement *pipeline = nullptr, *mixer = nullptr;
  GstElement *source[kParticipants] = {};
  GstPad *sink[kParticipants] = {};
  Recording feeds[kParticipants];
  std::string error; /* main thread only */
  int phase = 0;
};

int participant_of(const char *pad_name) {
  int i = -1;
  if (pad_name && std::sscanf(pad_name, "sink_%d", &i) == 1 && i >= 0 && i < kParticipants)
    return i;
  return -1;
}

gboolean on_bus(GstBus *, GstMessage *msg, gpointer data) {
  auto *room = static_cast<Room *>(data);
  switch (GST_MESSAGE_TYPE(msg)) {
  case GST_MESSAGE_ERROR:
    if (room->error.empty())
      room->error = error_text(msg);
    break;
  case GST_MESSAGE_ELEMENT: {
    const GstStructure *s = gst_message_get_structure(msg);
    const bool pin = gst_structure_has_name(s, "mixminus-pin");
    if (pin || gst_structure_has_name(s, "mixminus-unpin")) {
      int slot = -1;
      guint64 rt = GST_CLOCK_TIME_NONE;
      gst_structure_get_int(s, "slot", &slot);
      gst_structure_get_uint64(s, "running-time", &rt);
      const char *pad = gst_structure_get_string(s, "pad-name");
      const int p = participant_of(pad);
      g_print("  * %s: participant-%d (%s, %.0f Hz) %s slot %d at %.2f s\n",
              pin ? "pin  " : "unpin", p, pad, p >= 0 ? kFreq[p] : 0.0, pin ? "takes" : "gives up",
              slot, GST_CLOCK_TIME_IS_VALID(rt) ? rt / 1e9 : -1.0);
    }
    break;
  }
  default:
    break;
  }
  return TRUE;
}

std::set<int> holders(Room &room) {
  std::set<int> h;
  for (int i = 0; i < kParticipants; i++) {
    gint slot = -1;
    g_object_get(room.sink[i], "slot", &slot, nullptr);
    if (slot >= 0)
      h.insert(i);
  }
  return h;
}

std::string set_text(const std::set<int> &s) {
  std::string t = "{";
  for (int i : s)
    t += (t.size() > 1 ? "," : "") + std::to_string(i);
  return t + "}";
}

gboolean print_status(gpointer data) {
  auto *room = static_cast<Room *>(data);
  GstStructure *stats = nullptr;
  g_object_get(room->mixer, "stats", &stats, nullptr);
  if (!stats)
    return G_SOURCE_CONTINUE;
  std::string line;
  const GValue *pads = gst_structure_get_value(stats, "pads");
  for (guint i = 0; pads && i < gst_value_array_get_size(pads); i++) {
    const GstStructure *ps = gst_value_get_structure(gst_value_array_get_value(pads, i));
    const int p = participant_of(gst_structure_get_string(ps, "pad"));
    double level = -127;
    gboolean mute = FALSE;
    gst_structure_get_double(ps, "level", &level);
    gst_structure_get_boolean(ps, "mute", &mute);
    gint slot = -1;
    if (p >= 0)
      g_object_get(room->sink[p], "slot", &slot, nullptr);
    const std::string state = mute ? "muted " : slot >= 0 ? format("slot %d", slot) : "----  ";
    line += format(" | p%d %6.1f dBov %s", p, level, state.c_str());
  }
  guint64 pins = 0;
  gst_structure_get_uint64(stats, "pins", &pins);
  g_print("    [%4.1f s] phase %s, slot changes %" G_GUINT64_FORMAT "%s\n",
          running_time(room->pipeline) / 1e9, kPhases[room->phase].name, pins, line.c_str());
  gst_structure_free(stats);
  return G_SOURCE_CONTINUE;
}

void apply(Room &room, const Phase &ph) {
  g_object_set(room.source[3], "volume", ph.volume3, nullptr);
  g_object_set(room.sink[3], "mute", ph.mute3, nullptr);
}

} // namespace

void run_room(const Options &opt, Report &report) {
  const std::string dir = opt.out_dir + "/room";
  g_mkdir_with_parents(dir.c_str(), 0755);
  g_print("\n== 3. a four-person mix-minus room: mixminus, 3 speaker slots, speech threshold "
          "-45 dBov\n");
  std::string desc = "mixminus name=mm max-speakers=3 speech-threshold=-45 ";
  for (int i = 0; i < kParticipants; i++) {
    desc += format("audiotestsrc name=p%d is-live=true freq=%.0f volume=%.2f samplesperbuffer=480 "
                   "! audio/x-raw,rate=%d,channels=1 ! mm.sink_%d "
                   "mm.src_%d ! queue ! capsfilter name=feed%d "
                   "caps=audio/x-raw,format=S16LE,rate=%d,channels=1 "
                   "! wavenc ! filesink location=\"%s/participant-%d.wav\" ",
                   i, kFreq[i], i == 3 ? kPhases[0].volume3 : kVolume[i], kRate, i, i, i, kRate,
                   dir.c_str(), i);
    g_print("  participant-%d: %.0f Hz at %.2f (%.1f dBov) -> return feed %s/participant-%d.wav\n",
            i, kFreq[i], kVolume[i], 20 * std::log10(kVolume[i]) - 3.01, dir.c_str(), i);
  }
  Room room;
  std::string error;
  room.pipeline = launch(desc, &error);
  if (!room.pipeline) {
    report.fail("room", "pipeline: " + error);
    return;
  }
  room.mixer = gst_bin_get_by_name(GST_BIN(room.pipeline), "mm");
  for (int i = 0; i < kParticipants; i++) {
    room.source[i] = gst_bin_get_by_name(GST_BIN(room.pipeline), format("p%d", i).c_str());
    room.sink[i] = gst_element_get_static_pad(room.mixer, format("sink_%d", i).c_str());
    room.feeds[i].attach(room.pipeline, format("feed%d", i).c_str(), "src");
  }
  GstBus *bus = gst_element_get_bus(room.pipeline);
  gst_bus_add_watch(bus, on_bus, &room);

  /* running time at each phase's start, and the slot holders seen at its end */
  GstClockTime starts[kPhaseCount + 1] = {};
  std::set<int> seen[kPhaseCount];
  apply(room, kPhases[0]);
  if (gst_element_set_state(room.pipeline, GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE)
    pump_until([&] { return !room.error.empty(); }, 1.0);
  const guint status = g_timeout_add(1000, print_status, &room);
  for (int k = 0; k < kPhaseCount && room.error.empty(); k++) {
    room.phase = k;
    apply(room, kPhases[k]);
    starts[k] = running_time(room.pipeline);
    g_print("phase %s (%.1f s): %s\n", kPhases[k].name, starts[k] / 1e9, kPhases[k].what);
    pump_until([&] { return !room.error.empty(); }, kPhases[k].seconds);
    seen[k] = holders(room);
  }
  starts[kPhaseCount] = running_time(room.pipeline);
  g_source_remove(status);

  /* The return feeds end with EOS from the mixer; the WAV files are finished then. */
  gst_element_send_event(room.mixer, gst_event_new_eos());
  GstMessage *end = gst_bus_timed_pop_filtered(
      bus, 5 * GST_SECOND, static_cast<GstMessageType>(GST_MESSAGE_EOS | GST_MESSAGE_ERROR));
  if (!end && room.error.empty())
    room.error = "the return feeds did not end within 5 s";
  else if (end && GST_MESSAGE_TYPE(end) == GST_MESSAGE_ERROR && room.error.empty())
    room.error = error_text(end);
  gst_clear_message(&end);
  gst_element_set_state(room.pipeline, GST_STATE_NULL);
  gst_bus_remove_watch(bus);
  gst_object_unref(bus);
  for (int i = 0; i < kParticipants; i++) {
    gst_clear_object(&room.source[i]);
    gst_clear_object(&room.sink[i]);
  }
  gst_clear_object(&room.mixer);
  gst_clear_object(&room.pipeline);
  if (!room.error.empty()) {
    report.fail("room", room.error);
    return;
  }

  /* Slot holders at the end of each phase. */
  {
    std::string expected, measured;
    bool ok = true;
    for (int k = 0; k < kPhaseCount; k++) {
      expected +=
          format("%s%s %s", k ? ", " : "", kPhases[k].name, set_text(kPhases[k].holders).c_str());
      measured += format("%s%s %s", k ? ", " : "", kPhases[k].name, set_text(seen[k]).c_str());
      ok = ok && seen[k] == kPhases[k].holders;
    }
    report.check("room slots", "holders by phase " + expected, measured, ok);
  }

  /* Each feed, phase by phase: the windows follow the feed's own timestamps. */
  for (int i = 0; i < kParticipants; i++) {
    Recording &f = room.feeds[i];
    int good = 0, total = 0;
    double own_max = 0, absent_max = 0;
    std::string problems;
    for (int k = 0; k < kPhaseCount; k++) {
      const Phase &ph = kPhases[k];
      const GstClockTime from_t = starts[k] + static_cast<GstClockTime>(ph.skip * GST_SECOND);
      const GstClockTime to_t = starts[k + 1] - 100 * GST_MSECOND;
      const size_t from = f.index(from_t, kRate), to = f.index(to_t, kRate);
      std::string line = format("  phase %s, participant-%d hears:", ph.name, i);
      if (to > f.samples.size() || to < from + kRate / 2) {
        line += " (recording too short)";
        problems += format(" phase %s: recording too short;", ph.name);
        total += kParticipants;
        g_print("%s\n", line.c_str());
        continue;
      }
      for (int j = 0; j < kParticipants; j++) {
        const bool heard = j != i && ph.holders.count(j);
        const double expect = heard ? kVolume[j] : 0.0;
        const double a = amplitude(f.samples, from, to, kFreq[j], kRate);
        const bool ok = heard ? std::fabs(a - expect) < std::max(0.02, 0.1 * expect) : a < 0.01;
        if (j == i)
          own_max = std::max(own_max, a);
        else if (!heard)
          absent_max = std::max(absent_max, a);
        line += format(" %.0f Hz %.3f (%s%.2f)%s", kFreq[j], a,
                       heard    ? ""
                       : j == i ? "own: "
                                : "not held: ",
                       expect, ok ? "" : " <-- WRONG");
        total++;
        good += ok ? 1 : 0;
      }
      g_print("%s\n", line.c_str());
    }
    const std::string wav = format("%s/participant-%d.wav", dir.c_str(), i);
    report.recordings.push_back(
        {wav, format("room: participant-%d's return feed (48 kHz mono)", i)});
    report.check(format("room participant-%d.wav", i),
                 format("in %d phases: never its own %.0f Hz (< 0.01), the other slot holders at "
                        "their level (+-10%%), non-holders < 0.01",
                        kPhaseCount, kFreq[i]),
                 format("%d of %d tone levels as expected (own at most %.3f, non-holders at most "
                        "%.3f;%s %.2f s)",
                        good, total, own_max, absent_max, problems.c_str(),
                        f.samples.size() / static_cast<double>(kRate)),
                 good == total && total == kPhaseCount * kParticipants);
  }
}

} // namespace demo
