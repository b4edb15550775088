/* costream tests
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * mixminus: rooms of appsrc participants with one appsink per return feed, checked sample by
 * sample (non-live, so the content is exact), plus slot behaviour over time, launch-line order
 * and a multi-threaded join/leave stress test.
 */
#include "helpers.h"
#include "testsig.h"

#include "audio/opus.h"

#include <gst/audio/audio.h>
#include <gst/check/gsttestclock.h>

#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <map>
#include <mutex>
#include <thread>

using namespace testgst;

namespace {

constexpr int kRate = 48000;

std::vector<int16_t> tone_s16(double freq, double amp, size_t frames, size_t silent_before = 0) {
  auto t = testsig::tone(freq, kRate, frames, amp);
  std::vector<int16_t> v(frames);
  for (size_t i = 0; i < frames; i++)
    v[i] = i < silent_before ? 0 : static_cast<int16_t>(std::lround(t[i] * 32767.0));
  return v;
}

/* A non-live room: participant i is appsrc -> mm.sink_i, mm.src_i -> queue -> appsink. */
struct SlotMsg {
  bool pin;
  int slot;
  std::string pad;
  GstClockTime running_time;
};

/* Records mixminus-pin/unpin messages in the posting thread, in order, without taking them off
 * the bus (so EOS and errors are still there for wait_eos_or_error). */
struct SlotLog {
  std::mutex lock;
  std::vector<SlotMsg> msgs;
  static GstBusSyncReply handler(GstBus *, GstMessage *m, gpointer data) {
    auto *log = static_cast<SlotLog *>(data);
    const GstStructure *s = gst_message_get_structure(m);
    if (GST_MESSAGE_TYPE(m) == GST_MESSAGE_ELEMENT && s &&
        (gst_structure_has_name(s, "mixminus-pin") ||
         gst_structure_has_name(s, "mixminus-unpin"))) {
      SlotMsg msg;
      msg.pin = gst_structure_has_name(s, "mixminus-pin");
      gst_structure_get_int(s, "slot", &msg.slot);
      msg.pad = gst_structure_get_string(s, "pad-name");
      guint64 rt = GST_CLOCK_TIME_NONE;
      gst_structure_get_uint64(s, "running-time", &rt);
      msg.running_time = rt;
      std::lock_guard<std::mutex> lk(log->lock);
      log->msgs.push_back(msg);
    }
    return GST_BUS_PASS;
  }
  std::vector<SlotMsg> get() {
    std::lock_guard<std::mutex> lk(lock);
    return msgs;
  }
};

struct Room {
  SlotLog log;
  GstElement *pipeline = nullptr;
  GstElement *mm = nullptr;
  std::vector<GstElement *> srcs, sinks;
  std::vector<GstPad *> sinkpads;

  explicit Room(int participants, const char *props = "") {
    pipeline = gst_pipeline_new(nullptr);
    GstBus *bus = gst_element_get_bus(pipeline);
    gst_bus_set_sync_handler(bus, &SlotLog::handler, &log, nullptr);
    gst_object_unref(bus);
    mm = make("mixminus", "mm");
    gst_util_set_object_arg(G_OBJECT(mm), "name", "mm");
    if (*props) {
      gchar **kv = g_strsplit(props, " ", -1);
      for (gchar **p = kv; *p; p++) {
        gchar **pair = g_strsplit(*p, "=", 2);
        gst_util_set_object_arg(G_OBJECT(mm), pair[0], pair[1]);
        g_strfreev(pair);
      }
      g_strfreev(kv);
    }
    gst_bin_add(GST_BIN(pipeline), mm);
    for (int i = 0; i < participants; i++)
      add();
  }
  void add() {
    GstElement *src = make("appsrc");
    GstCaps *caps = audio_caps("S16LE", kRate, 1);
    g_object_set(src, "format", GST_FORMAT_TIME, "caps", caps, nullptr);
    gst_caps_unref(caps);
    GstElement *q = make("queue");
    g_object_set(q, "max-size-buffers", 0, "max-size-bytes", 0, "max-size-time",
                 G_GUINT64_CONSTANT(0), nullptr);
    GstElement *sink = make("appsink");
    g_object_set(sink, "sync", FALSE, "max-buffers", 0, nullptr);
    gst_bin_add_many(GST_BIN(pipeline), src, q, sink, nullptr);
    GstPad *sp = gst_element_request_pad_simple(mm, "sink_%u");
    REQUIRE(sp != nullptr);
    GstPad *srcpad = gst_element_get_static_pad(src, "src");
    REQUIRE(gst_pad_link(srcpad, sp) == GST_PAD_LINK_OK);
    gst_object_unref(srcpad);
    gchar *name = g_strdup_printf("src_%s", GST_PAD_NAME(sp) + 5);
    REQUIRE(gst_element_link_pads(mm, name, q, "sink"));
    g_free(name);
    REQUIRE(gst_element_link(q, sink));
    srcs.push_back(src);
    sinks.push_back(sink);
    sinkpads.push_back(sp);
  }
  void push(int who, const std::vector<int16_t> &data, size_t per_buf = 480) {
    for (size_t f = 0; f < data.size(); f += per_buf) {
      const size_t n = std::min(per_buf, data.size() - f);
      std::vector<int16_t> chunk(data.begin() + f, data.begin() + f + n);
      const GstClockTime pts = gst_util_uint64_scale_round(f, GST_SECOND, kRate);
      const GstClockTime end = gst_util_uint64_scale_round(f + n, GST_SECOND, kRate);
      REQUIRE(gst_app_src_push_buffer(GST_APP_SRC(srcs[who]), s16_buffer(chunk, pts, end - pts)) ==
              GST_FLOW_OK);
    }
    gst_app_src_end_of_stream(GST_APP_SRC(srcs[who]));
  }
  /* Plays the room with participant i sending in[i], collects every return feed into `out`
   * (one per participant) and waits for the end. */
  void play(const std::vector<std::vector<int16_t>> &in, std::vector<Collected> &out) {
    REQUIRE(gst_element_set_state(pipeline, GST_STATE_PLAYING) != GST_STATE_CHANGE_FAILURE);
    for (size_t i = 0; i < in.size(); i++)
      push(static_cast<int>(i), in[i]);
    for (size_t i = 0; i < out.size(); i++)
      pull_all(sinks[i], out[i]);
    CHECK(wait_eos_or_error(pipeline).empty());
  }
  /* 20 ms buffers carrying a GstAudioLevelMeta of level(first frame) (-dBov, as RTP sends it). */
  template <typename Level>
  void push_leveled(int who, const std::vector<int16_t> &data, Level level) {
    for (size_t f = 0; f + 960 <= data.size(); f += 960) {
      std::vector<int16_t> chunk(data.begin() + f, data.begin() + f + 960);
      GstBuffer *b =
          s16_buffer(chunk, gst_util_uint64_scale(f, GST_SECOND, kRate), 20 * GST_MSECOND);
      gst_buffer_add_audio_level_meta(b, level(f), FALSE);
      REQUIRE(gst_app_src_push_buffer(GST_APP_SRC(srcs[who]), b) == GST_FLOW_OK);
    }
    gst_app_src_end_of_stream(GST_APP_SRC(srcs[who]));
  }
  ~Room() {
    gst_element_set_state(pipeline, GST_STATE_NULL);
    for (auto *p : sinkpads)
      gst_object_unref(p);
    gst_object_unref(pipeline);
  }
};

int pad_slot(GstPad *pad) {
  gint slot = -2;
  g_object_get(pad, "slot", &slot, nullptr);
  return slot;
}

} // namespace

TEST_CASE("mixminus is registered; requesting sink_N adds src_N, releasing removes it",
          "[mixminus]") {
  GstElement *mm = make("mixminus");
  for (const char *p :
       {"max-speakers", "speech-threshold", "switch-threshold", "switch-hold", "slot-timeout",
        "output-buffer-duration", "latency", "timeout", "force-live", "stats"}) {
    INFO(p);
    CHECK(g_object_class_find_property(G_OBJECT_GET_CLASS(mm), p) != nullptr);
  }
  guint max_speakers = 0;
  g_object_get(mm, "max-speakers", &max_speakers, nullptr);
  CHECK(max_speakers == 3);

  GstPad *s3 = gst_element_request_pad_simple(mm, "sink_3");
  REQUIRE(s3 != nullptr);
  GstPad *s4 = gst_element_request_pad_simple(mm, "sink_%u");
  REQUIRE(s4 != nullptr);
  CHECK(std::string(GST_PAD_NAME(s4)) == "sink_4");
  for (const char *p : {"volume", "mute", "level", "speaking", "slot", "active"}) {
    INFO(p);
    CHECK(g_object_class_find_property(G_OBJECT_GET_CLASS(s3), p) != nullptr);
  }
  CHECK(pad_slot(s3) == -1);
  GstPad *r3 = gst_element_get_static_pad(mm, "src_3");
  GstPad *r4 = gst_element_get_static_pad(mm, "src_4");
  CHECK(r3 != nullptr);
  CHECK(r4 != nullptr);
  CHECK(gst_element_request_pad_simple(mm, "src_5") == nullptr); /* src pads come with sinks */
  gst_element_release_request_pad(mm, s3);
  GstPad *gone = gst_element_get_static_pad(mm, "src_3");
  CHECK(gone == nullptr);
  CHECK(GST_ELEMENT(mm)->numsrcpads == 1);
  gst_object_unref(r3);
  gst_object_unref(r4);
  gst_object_unref(s3);
  gst_object_unref(s4);
  gst_object_unref(mm);
}

TEST_CASE("Five participants, three slots: everyone hears exactly the holders but themselves",
          "[mixminus]") {
  Room room(5);
  const size_t frames = kRate; /* 1 s */
  const double freq[5] = {300, 500, 700, 900, 1100};
  const double amp[5] = {0.4, 0.3, 0.2, 0.05, 0.02}; /* all above -45 dBov: all speak */
  std::vector<std::vector<int16_t>> in;
  for (int i = 0; i < 5; i++)
    in.push_back(tone_s16(freq[i], amp[i], frames));
  std::vector<Collected> out(5);
  room.play(in, out);

  /* The three loudest hold slots 0, 1, 2; the two others none. */
  CHECK(pad_slot(room.sinkpads[0]) == 0);
  CHECK(pad_slot(room.sinkpads[1]) == 1);
  CHECK(pad_slot(room.sinkpads[2]) == 2);
  CHECK(pad_slot(room.sinkpads[3]) == -1);
  CHECK(pad_slot(room.sinkpads[4]) == -1);
  auto msgs = room.log.get();
  REQUIRE(msgs.size() == 3);
  for (int i = 0; i < 3; i++) {
    CHECK(msgs[i].pin);
    CHECK(msgs[i].running_time == 0);
  }

  for (int who = 0; who < 5; who++) {
    INFO("participant " << who);
    auto got = out[who].s16();
    REQUIRE(got.size() == frames);
    /* exact: the sum of the holders other than `who`, sample by sample */
    size_t mismatches = 0;
    for (size_t f = 0; f < frames; f++) {
      int32_t sum = 0;
      for (int h = 0; h < 3; h++)
        if (h != who)
          sum += in[h][f];
      mismatches += got[f] != std::clamp<int32_t>(sum, INT16_MIN, INT16_MAX);
    }
    CHECK(mismatches == 0);
    /* and as tones: holders' tones at their amplitudes, nobody else's */
    auto x = out[who].channel(0, 1);
    for (int h = 0; h < 5; h++) {
      const double expect = (h < 3 && h != who) ? amp[h] : 0.0;
      INFO("tone of participant " << h);
      CHECK(testsig::amplitude_at(x.data() + 4800, 38400, freq[h], kRate) ==
            Approx(expect).margin(0.002));
    }
    GstClockTime next = 0;
    for (auto *b : out[who].buffers) {
      REQUIRE(GST_BUFFER_PTS(b) == next);
      next += GST_BUFFER_DURATION(b);
    }
    CHECK(next == GST_SECOND);
  }
  /* The non-holders got the very same buffers: one mix, referenced, not copied. */
  REQUIRE(out[3].buffers.size() == out[4].buffers.size());
  for (size_t i = 0; i < out[3].buffers.size(); i++)
    REQUIRE(out[3].buffers[i] == out[4].buffers[i]);
}

TEST_CASE("A new loud speaker takes the quietest slot within switch-hold plus one block",
          "[mixminus]") {
  Room room(4, "max-speakers=3 switch-hold=300 switch-threshold=6");
  const size_t frames = 2 * kRate;
  std::vector<std::vector<int16_t>> in = {
      tone_s16(300, 0.3, frames), tone_s16(500, 0.2, frames), tone_s16(700, 0.05, frames),
      tone_s16(900, 0.5, frames, kRate) /* silent for 1 s, then the loudest */};
  REQUIRE(gst_element_set_state(room.pipeline, GST_STATE_PLAYING) != GST_STATE_CHANGE_FAILURE);
  for (int i = 0; i < 4; i++)
    room.push(i, in[i]);
  std::vector<Collected> out(4);
  for (int i = 0; i < 4; i++)
    pull_all(room.sinks[i], out[i]);
  CHECK(wait_eos_or_error(room.pipeline).empty());

  auto msgs = room.log.get();
  REQUIRE(msgs.size() == 5);
  const auto &unpin = msgs[3].pin ? msgs[4] : msgs[3];
  const auto &pin = msgs[3].pin ? msgs[3] : msgs[4];
  CHECK_FALSE(unpin.pin);
  CHECK(unpin.pad == "sink_2"); /* the quietest holder */
  CHECK(pin.pad == "sink_3");
  CHECK(pin.slot == unpin.slot);
  CHECK(pin.running_time >= GST_SECOND + 300 * GST_MSECOND - 10 * GST_MSECOND);
  CHECK(pin.running_time <= GST_SECOND + 300 * GST_MSECOND + 10 * GST_MSECOND);
  CHECK(pad_slot(room.sinkpads[3]) == 2);
  CHECK(pad_slot(room.sinkpads[2]) == -1);

  /* participant 0 hears 700 Hz before the switch and 900 Hz after it, not both */
  auto x = out[0].channel(0, 1);
  CHECK(testsig::amplitude_at(&x[kRate / 2], 9600, 700, kRate) == Approx(0.05).margin(0.002));
  CHECK(testsig::amplitude_at(&x[kRate / 2], 9600, 900, kRate) == Approx(0.0).margin(0.002));
  CHECK(testsig::amplitude_at(&x[kRate * 3 / 2], 9600, 900, kRate) == Approx(0.5).margin(0.002));
  CHECK(testsig::amplitude_at(&x[kRate * 3 / 2], 9600, 700, kRate) == Approx(0.0).margin(0.002));
  /* the new speaker never hears itself */
  auto y = out[3].channel(0, 1);
  CHECK(testsig::amplitude_at(&y[kRate * 3 / 2], 9600, 900, kRate) == Approx(0.0).margin(0.002));
}

TEST_CASE("Two participants 1 dB apart at the slot boundary do not flap", "[mixminus]") {
  Room room(4, "max-speakers=3");
  const size_t frames = 10 * kRate;
  /* 3 and 4 sit 1 dB apart and wobble by +-0.5 dB (slowly, out of step): their levels cross */
  auto wobble = [&](double freq, double amp, double mod_hz, double phase) {
    std::vector<int16_t> v(frames);
    for (size_t i = 0; i < frames; i++) {
      const double g = std::pow(10.0, 0.5 * std::sin(2 * M_PI * mod_hz * i / kRate + phase) / 20);
      v[i] = static_cast<int16_t>(
          std::lround(32767.0 * amp * g * std::sin(2 * M_PI * freq * i / kRate)));
    }
    return v;
  };
  std::vector<std::vector<int16_t>> in = {tone_s16(300, 0.3, frames), tone_s16(500, 0.25, frames),
                                          wobble(700, 0.1, 0.7, 0.0),
                                          wobble(900, 0.1 / 1.122, 0.9, 2.0)};
  REQUIRE(gst_element_set_state(room.pipeline, GST_STATE_PLAYING) != GST_STATE_CHANGE_FAILURE);
  for (int i = 0; i < 4; i++)
    room.push(i, in[i], 960);
  std::vector<Collected> out(4);
  for (int i = 0; i < 4; i++)
    pull_all(room.sinks[i], out[i]);
  CHECK(wait_eos_or_error(room.pipeline).empty());
  auto msgs = room.log.get();
  CHECK(msgs.size() == 3); /* the three first pins, nothing after */
  CHECK(pad_slot(room.sinkpads[2]) == 2);
  CHECK(pad_slot(room.sinkpads[3]) == -1);
}

TEST_CASE("A level from GstAudioLevelMeta is used instead of the samples'", "[mixminus]") {
  Room room(3, "max-speakers=3");
  const size_t frames = kRate / 2;
  auto loud = tone_s16(300, 0.3, frames);
  REQUIRE(gst_element_set_state(room.pipeline, GST_STATE_PLAYING) != GST_STATE_CHANGE_FAILURE);
  room.push(0, loud);
  room.push(1, tone_s16(500, 0.3, frames));
  /* participant 2 sends loud samples but its RTP level extension says silence (-127 dBov) */
  room.push_leveled(2, tone_s16(700, 0.3, frames), [](size_t) { return 127; });
  std::vector<Collected> out(3);
  for (int i = 0; i < 3; i++)
    pull_all(room.sinks[i], out[i]);
  CHECK(wait_eos_or_error(room.pipeline).empty());
  CHECK(pad_slot(room.sinkpads[2]) == -1);
  gdouble level = 0;
  g_object_get(room.sinkpads[2], "level", &level, nullptr);
  CHECK(level < -100.0);
  auto x = out[0].channel(0, 1);
  CHECK(testsig::amplitude_at(&x[4800], 9600, 700, kRate) == Approx(0.0).margin(0.002));
  CHECK(testsig::amplitude_at(&x[4800], 9600, 500, kRate) == Approx(0.3).margin(0.002));
}

TEST_CASE("Levels from GstAudioLevelMeta follow each packet while talkers queue ahead",
          "[mixminus]") {
  /* Non-live, talkers queue far ahead of the output: the level must still be the one of the
   * packet being mixed, not of the last one queued. */
  Room room(3, "max-speakers=3");
  const size_t frames = 2 * kRate;
  REQUIRE(gst_element_set_state(room.pipeline, GST_STATE_PLAYING) != GST_STATE_CHANGE_FAILURE);
  room.push(0, tone_s16(300, 0.3, frames));
  room.push(1, tone_s16(500, 0.3, frames));
  /* participant 2: the same loud samples throughout; its RTP level extension says silence for
   * the first second and -20 dBov after it */
  room.push_leveled(2, tone_s16(700, 0.3, frames),
                    [](size_t f) { return f < static_cast<size_t>(kRate) ? 127 : 20; });
  std::vector<Collected> out(3);
  for (int i = 0; i < 3; i++)
    pull_all(room.sinks[i], out[i]);
  CHECK(wait_eos_or_error(room.pipeline).empty());
  const auto msgs = room.log.get();
  const SlotMsg *pin = nullptr;
  for (const auto &m : msgs)
    if (m.pin && m.pad == "sink_2")
      pin = &m;
  REQUIRE(pin != nullptr);
  /* a free slot is taken at once: in the first block of the loud second */
  CHECK(pin->running_time >= GST_SECOND);
  CHECK(pin->running_time <= GST_SECOND + 20 * GST_MSECOND);
}

TEST_CASE("A LATENCY event reaches every talker's upstream once, not once per return feed",
          "[mixminus]") {
  Room room(4);
  std::atomic<int> seen[4];
  const guint32 seqnum = gst_util_seqnum_next();
  struct Probe {
    std::atomic<int> *count;
    guint32 seqnum;
  };
  std::vector<Probe> probes(4);
  for (int i = 0; i < 4; i++) {
    seen[i] = 0;
    probes[i] = {&seen[i], seqnum};
    GstPad *pad = gst_element_get_static_pad(room.srcs[i], "src");
    gst_pad_add_probe(
        pad, GST_PAD_PROBE_TYPE_EVENT_UPSTREAM,
        [](GstPad *, GstPadProbeInfo *info, gpointer data) {
          auto *p = static_cast<Probe *>(data);
          GstEvent *e = GST_PAD_PROBE_INFO_EVENT(info);
          if (GST_EVENT_TYPE(e) == GST_EVENT_LATENCY && gst_event_get_seqnum(e) == p->seqnum)
            (*p->count)++;
          return GST_PAD_PROBE_OK;
        },
        &probes[i], nullptr);
    gst_object_unref(pad);
  }
  for (auto *sink : room.sinks) /* paused without data, ready for a latency query */
    g_object_set(sink, "async", FALSE, nullptr);
  REQUIRE(gst_element_set_state(room.pipeline, GST_STATE_PAUSED) != GST_STATE_CHANGE_FAILURE);
  /* as the pipeline does when it goes to PLAYING: query, then configure (a sink forwards the
   * event only once it has answered a query) */
  GstQuery *query = gst_query_new_latency();
  CHECK(gst_element_query(room.pipeline, query));
  gst_query_unref(query);
  GstEvent *latency = gst_event_new_latency(30 * GST_MSECOND);
  gst_event_set_seqnum(latency, seqnum);
  /* the pipeline hands it to each of the four sinks, each sends it up its return feed */
  CHECK(gst_element_send_event(room.pipeline, latency));
  for (int i = 0; i < 4; i++)
    CHECK(seen[i] == 1);
  gst_element_set_state(room.pipeline, GST_STATE_NULL);
}

TEST_CASE("Latency queries on every return feed ask each talker's upstream once per round",
          "[mixminus]") {
  Room room(4);
  struct Count {
    std::atomic<int> n{0};
    GThread *thread = g_thread_self(); /* the output thread's own queries do not count */
  };
  Count asked[4];
  for (int i = 0; i < 4; i++) {
    g_object_set(room.srcs[i], "is-live", TRUE, "min-latency", gint64(10 * GST_MSECOND), nullptr);
    GstPad *pad = gst_element_get_static_pad(room.srcs[i], "src");
    gst_pad_add_probe(
        pad,
        static_cast<GstPadProbeType>(GST_PAD_PROBE_TYPE_QUERY_UPSTREAM |
                                     GST_PAD_PROBE_TYPE_PUSH), /* not again with the answer */
        [](GstPad *, GstPadProbeInfo *info, gpointer data) {
          auto *c = static_cast<Count *>(data);
          if (GST_QUERY_TYPE(GST_PAD_PROBE_INFO_QUERY(info)) == GST_QUERY_LATENCY &&
              g_thread_self() == c->thread)
            c->n++;
          return GST_PAD_PROBE_OK;
        },
        &asked[i], nullptr);
    gst_object_unref(pad);
  }
  for (auto *sink : room.sinks)
    g_object_set(sink, "async", FALSE, nullptr);
  REQUIRE(gst_element_set_state(room.pipeline, GST_STATE_PAUSED) != GST_STATE_CHANGE_FAILURE);
  std::vector<GstPad *> feeds;
  for (int i = 0; i < 4; i++) {
    gchar *name = g_strdup_printf("src_%d", i);
    feeds.push_back(gst_element_get_static_pad(room.mm, name));
    g_free(name);
    REQUIRE(feeds.back() != nullptr);
  }
  /* What a pipeline does: every sink asks its return feed, then gets the LATENCY event (one
   * event, one seqnum) that it sends up the same feed. */
  auto round = [&](GstClockTime *min) {
    int before[4];
    for (int i = 0; i < 4; i++)
      before[i] = asked[i].n;
    for (int i = 0; i < 4; i++) {
      GstQuery *query = gst_query_new_latency();
      REQUIRE(gst_pad_query(feeds[i], query));
      gboolean live;
      gst_query_parse_latency(query, &live, min, nullptr);
      gst_query_unref(query);
      CHECK(live);
    }
    for (int i = 0; i < 4; i++)
      CHECK(asked[i].n - before[i] == 1);
    GstEvent *event = gst_event_new_latency(*min);
    for (auto *f : feeds)
      gst_pad_send_event(f, gst_event_ref(event));
    gst_event_unref(event);
  };
  guint64 block = 0, jitter = 0;
  g_object_get(room.mm, "output-buffer-duration", &block, "latency", &jitter, nullptr);
  GstClockTime min = 0;
  round(&min);
  CHECK(min == 10 * GST_MSECOND + block + jitter);
  /* the next round asks again, and sees a talker's upstream latency change */
  g_object_set(room.srcs[2], "min-latency", gint64(80 * GST_MSECOND), nullptr);
  round(&min);
  CHECK(min == 80 * GST_MSECOND + block + jitter);
  for (auto *f : feeds)
    gst_object_unref(f);
  gst_element_set_state(room.pipeline, GST_STATE_NULL);
}

TEST_CASE("gst-launch order does not matter: src_N may be named before sink_N", "[mixminus]") {
  const char *lines[] = {
      "mixminus name=mm  mm.src_0 ! queue ! appsink name=out sync=false "
      "audiotestsrc num-buffers=50 freq=440 ! mm.sink_0 "
      "audiotestsrc num-buffers=50 freq=660 volume=0.5 ! mm.sink_1  mm.src_1 ! queue ! fakesink",
      "mixminus name=mm  audiotestsrc num-buffers=50 freq=440 ! mm.sink_0 "
      "mm.src_0 ! queue ! appsink name=out sync=false "
      "audiotestsrc num-buffers=50 freq=660 volume=0.5 ! mm.sink_1  mm.src_1 ! queue ! fakesink"};
  for (const char *line : lines) {
    INFO(line);
    GError *err = nullptr;
    GstElement *pipeline = gst_parse_launch(line, &err);
    REQUIRE(err == nullptr);
    GstElement *sink = gst_bin_get_by_name(GST_BIN(pipeline), "out");
    REQUIRE(gst_element_set_state(pipeline, GST_STATE_PLAYING) != GST_STATE_CHANGE_FAILURE);
    Collected out;
    pull_all(sink, out);
    CHECK(wait_eos_or_error(pipeline).empty());
    auto x = out.channel(0, 1);
    REQUIRE(x.size() >= 48000);
    CHECK(testsig::amplitude_at(&x[4800], 38400, 660, kRate) == Approx(0.5).margin(0.005));
    CHECK(testsig::amplitude_at(&x[4800], 38400, 440, kRate) == Approx(0.0).margin(0.002));
    gst_element_set_state(pipeline, GST_STATE_NULL);
    gst_object_unref(sink);
    gst_object_unref(pipeline);
  }
}

TEST_CASE("A talker flushing again and again while the room mixes its buffers in place",
          "[mixminus][stress]") {
  /* Blocks that are exactly one talker buffer are mixed from that buffer where it lies in the
   * talker's queue; a flush empties the queue from the talker's thread meanwhile. Under the
   * sanitizers this checks that no buffer is freed while a block still reads it. */
  Room room(2, "max-speakers=2");
  struct Counts {
    std::atomic<int> pushed{0}, flushes{0};
  } counts;
  GstPad *src1 = gst_element_get_static_pad(room.srcs[1], "src");
  gst_pad_add_probe(
      src1, GST_PAD_PROBE_TYPE_BUFFER,
      [](GstPad *pad, GstPadProbeInfo *, gpointer data) {
        auto *c = static_cast<Counts *>(data);
        if (++c->pushed % 7 == 0) { /* every 7th buffer: flush the talker first */
          gst_pad_push_event(pad, gst_event_new_flush_start());
          gst_pad_push_event(pad, gst_event_new_flush_stop(FALSE));
          GstSegment seg; /* a flush drops the segment: the same one again */
          gst_segment_init(&seg, GST_FORMAT_TIME);
          gst_pad_push_event(pad, gst_event_new_segment(&seg));
          c->flushes++;
        }
        return GST_PAD_PROBE_OK;
      },
      &counts, nullptr);
  const size_t frames = 4 * kRate;
  REQUIRE(gst_element_set_state(room.pipeline, GST_STATE_PLAYING) != GST_STATE_CHANGE_FAILURE);
  room.push(0, tone_s16(300, 0.3, frames));
  room.push(1, tone_s16(500, 0.2, frames));
  std::vector<Collected> out(2);
  for (int i = 0; i < 2; i++)
    pull_all(room.sinks[i], out[i]);
  CHECK(wait_eos_or_error(room.pipeline).empty());
  gst_object_unref(src1);
  CHECK(counts.flushes > 50);
  /* participant 1 keeps hearing participant 0 throughout */
  auto x = out[1].channel(0, 1);
  REQUIRE(x.size() >= frames);
  CHECK(testsig::amplitude_at(&x[kRate], 9600, 300, kRate) == Approx(0.3).margin(0.01));
  CHECK(testsig::amplitude_at(&x[3 * kRate], 9600, 300, kRate) == Approx(0.3).margin(0.01));
}

TEST_CASE("Stress: participants join and leave from several threads while the room runs",
          "[mixminus][stress]") {
  GError *err = nullptr;
  GstElement *pipeline =
      gst_parse_launch(/* a generous jitter allowance: 4 threads rebuilding pipelines (and the
                        * sanitizers) load the machine; the check is about joins and leaves,
                        * not deadlines */
                       "mixminus name=mm force-live=true max-speakers=2 latency=300000000 "
                       "audiotestsrc is-live=true freq=300 volume=0.3 ! mm.sink_0 "
                       "audiotestsrc is-live=true freq=500 volume=0.2 ! mm.sink_1 "
                       "mm.src_1 ! queue ! appsink name=out sync=false max-buffers=0  mm.src_0 ! "
                       "fakesink async=false",
                       &err);
  REQUIRE(err == nullptr);
  GstElement *mm = gst_bin_get_by_name(GST_BIN(pipeline), "mm");
  GstElement *sink = gst_bin_get_by_name(GST_BIN(pipeline), "out");
  REQUIRE(gst_element_set_state(pipeline, GST_STATE_PLAYING) != GST_STATE_CHANGE_FAILURE);

  const auto churn = churn_talkers(pipeline, mm, 4, 10, 0.01, true);
  CHECK(churn.failures == 0);
  CHECK(churn.joined == 40);
  CHECK(GST_ELEMENT(mm)->numsinkpads == 2);
  CHECK(GST_ELEMENT(mm)->numsrcpads == 2);

  Collected out;
  pull_queued(sink, out);
  pull_all(sink, out, 5 * GST_SECOND, std::max<size_t>(out.buffers.size() + 20, 60));
  gst_element_set_state(pipeline, GST_STATE_NULL);

  /* Participant 1 kept hearing participant 0 (both hold the two slots; the quiet visitors never
   * beat them), with a timeline without holes. */
  REQUIRE(out.buffers.size() >= 40);
  CHECK(contiguous(out));
  auto x = out.channel(0, 1);
  size_t checked = 0;
  for (size_t blk = 10; (blk + 4) * 480 <= x.size(); blk += 4) {
    INFO("block " << blk);
    REQUIRE(testsig::amplitude_at(&x[blk * 480], 1920, 300, kRate) == Approx(0.3).margin(0.01));
    REQUIRE(testsig::amplitude_at(&x[blk * 480], 1920, 1000, kRate) == Approx(0.0).margin(0.01));
    checked++;
  }
  CHECK(checked > 5);
  gst_object_unref(mm);
  gst_object_unref(sink);
  gst_object_unref(pipeline);
}

/* ---- Opus return feeds ------------------------------------------------------------------- */

namespace {

/* Residual of the best fit of tones at `freqs` (any amplitude and phase) plus DC, in dB below the
 * window's energy: a seam, click or dropout is a window far from the expected tones. */
double tones_fit_snr_db(const float *x, size_t n, const std::vector<double> &freqs) {
  const size_t k = 2 * freqs.size() + 1;
  std::vector<std::vector<double>> basis(k, std::vector<double>(n));
  for (size_t i = 0; i < n; i++) {
    basis[0][i] = 1.0;
    for (size_t f = 0; f < freqs.size(); f++) {
      basis[1 + 2 * f][i] = std::sin(2 * M_PI * freqs[f] * i / kRate);
      basis[2 + 2 * f][i] = std::cos(2 * M_PI * freqs[f] * i / kRate);
    }
  }
  std::vector<std::vector<double>> a(k, std::vector<double>(k + 1, 0.0));
  for (size_t r = 0; r < k; r++) {
    for (size_t c = 0; c < k; c++)
      for (size_t i = 0; i < n; i++)
        a[r][c] += basis[r][i] * basis[c][i];
    for (size_t i = 0; i < n; i++)
      a[r][k] += basis[r][i] * x[i];
  }
  for (size_t c = 0; c < k; c++) { /* Gauss-Jordan */
    size_t piv = c;
    for (size_t r = c + 1; r < k; r++)
      if (std::fabs(a[r][c]) > std::fabs(a[piv][c]))
        piv = r;
    std::swap(a[c], a[piv]);
    for (size_t r = 0; r < k; r++) {
      if (r == c || a[c][c] == 0.0)
        continue;
      const double m = a[r][c] / a[c][c];
      for (size_t cc = c; cc <= k; cc++)
        a[r][cc] -= m * a[c][cc];
    }
  }
  double e = 0, p = 0;
  for (size_t i = 0; i < n; i++) {
    double fit = 0;
    for (size_t r = 0; r < k; r++)
      fit += a[r][k] / a[r][r] * basis[r][i];
    e += (x[i] - fit) * (x[i] - fit);
    p += double(x[i]) * x[i];
  }
  return 10 * std::log10((p + 1e-12) / (e + 1e-12));
}

/* A room whose return feeds are Opus (appsinks that take only audio/x-opus), decoded here. */
struct OpusRoom : Room {
  explicit OpusRoom(int participants, const char *props) : Room(0, props) {
    for (int i = 0; i < participants; i++) {
      add();
      GstCaps *caps = gst_caps_from_string("audio/x-opus");
      g_object_set(sinks.back(), "caps", caps, nullptr);
      gst_caps_unref(caps);
    }
  }
};

std::vector<float> decode_feed(const Collected &c) {
  costream::OpusDec dec;
  REQUIRE(dec.init(kRate, 1));
  std::vector<float> out, buf(5760);
  for (auto *b : c.buffers) {
    GstMapInfo map;
    REQUIRE(gst_buffer_map(b, &map, GST_MAP_READ));
    const int n = dec.decode(map.data, map.size, buf.data(), 5760);
    gst_buffer_unmap(b, &map);
    REQUIRE(n > 0);
    out.insert(out.end(), buf.begin(), buf.begin() + n);
  }
  return out;
}

} // namespace

TEST_CASE("Opus feeds: N+1 encodes for the room, and they decode to the right voices",
          "[mixminus][opus]") {
  OpusRoom room(5, "max-speakers=3 bitrate=64000");
  const size_t frames = kRate;
  const double freq[5] = {300, 500, 700, 900, 1100};
  const double amp[5] = {0.3, 0.25, 0.2, 0.05, 0.02};
  REQUIRE(gst_element_set_state(room.pipeline, GST_STATE_PLAYING) != GST_STATE_CHANGE_FAILURE);
  for (int i = 0; i < 5; i++)
    room.push(i, tone_s16(freq[i], amp[i], frames));
  std::vector<Collected> out(5);
  for (int i = 0; i < 5; i++)
    pull_all(room.sinks[i], out[i]);
  CHECK(wait_eos_or_error(room.pipeline).empty());

  for (int who = 0; who < 5; who++) {
    INFO("participant " << who);
    GstCaps *caps =
        gst_pad_get_current_caps(GST_ELEMENT(room.sinks[who])->sinkpads->data
                                     ? GST_PAD(GST_ELEMENT(room.sinks[who])->sinkpads->data)
                                     : nullptr);
    REQUIRE(caps != nullptr);
    CHECK(gst_structure_has_name(gst_caps_get_structure(caps, 0), "audio/x-opus"));
    gst_caps_unref(caps);
    REQUIRE(out[who].buffers.size() == 50); /* 20 ms packets */
    CHECK(GST_BUFFER_PTS(out[who].buffers[1]) == 20 * GST_MSECOND);
    auto y = decode_feed(out[who]);
    REQUIRE(y.size() >= frames);
    std::vector<double> yd(y.begin() + 9600, y.begin() + 48000);
    for (int h = 0; h < 5; h++) {
      INFO("tone of participant " << h);
      const double expect = (h < 3 && h != who) ? amp[h] : 0.0;
      CHECK(testsig::amplitude_at(yd.data(), yd.size(), freq[h], kRate) ==
            Approx(expect).margin(0.015));
    }
  }
  /* Non-holders get the very same packets; 3 holders + 1 shared stream = 4 encodes a frame. */
  for (size_t i = 0; i < out[3].buffers.size(); i++)
    REQUIRE(out[3].buffers[i] == out[4].buffers[i]);
  GstStructure *stats = nullptr;
  g_object_get(room.mm, "stats", &stats, nullptr);
  guint64 f = 0, e = 0;
  gst_structure_get_uint64(stats, "opus-frames", &f);
  gst_structure_get_uint64(stats, "opus-encodes", &e);
  gst_structure_free(stats);
  CHECK(f == 50);
  CHECK(e == 4 * f);
}

TEST_CASE("Opus feeds: a listener taking and leaving a slot decodes without a seam",
          "[mixminus][opus]") {
  OpusRoom room(3, "max-speakers=3 bitrate=48000 slot-timeout=500");
  const size_t frames = 6 * kRate;
  /* participant 2 is silent, speaks (700 Hz) from 1 s to 2 s, then is silent again: it takes a
   * free slot at ~1 s and gives it up about 2 s after 2 s (its smoothed level needs ~1.5 s to
   * fall below the speech threshold, then the 500 ms slot timeout). What it hears is 300 + 500 Hz
   * all along: first from the shared stream, then from its own, then from the shared one again. */
  auto c = tone_s16(700, 0.1, frames, kRate);
  std::fill(c.begin() + 2 * kRate, c.end(), 0);
  REQUIRE(gst_element_set_state(room.pipeline, GST_STATE_PLAYING) != GST_STATE_CHANGE_FAILURE);
  room.push(0, tone_s16(300, 0.3, frames));
  room.push(1, tone_s16(500, 0.2, frames));
  room.push(2, c);
  std::vector<Collected> out(3);
  for (int i = 0; i < 3; i++)
    pull_all(room.sinks[i], out[i]);
  CHECK(wait_eos_or_error(room.pipeline).empty());

  auto msgs = room.log.get();
  int pins_c = 0, unpins_c = 0;
  GstClockTime unpin_at = 0;
  for (auto &m : msgs) {
    if (m.pad == "sink_2") {
      (m.pin ? pins_c : unpins_c)++;
      if (!m.pin)
        unpin_at = m.running_time;
    }
  }
  REQUIRE(pins_c == 1);
  REQUIRE(unpins_c == 1);
  CHECK(unpin_at < 5 * GST_SECOND); /* both switches happen well inside the stream */

  auto y = decode_feed(out[2]);
  REQUIRE(y.size() >= frames);
  double worst = 1e9, sum = 0;
  size_t windows = 0, worst_at = 0;
  for (size_t s = 9600; s + 480 <= frames; s += 480) {
    const double snr = tones_fit_snr_db(&y[s], 480, {300, 500});
    if (snr < worst) {
      worst = snr;
      worst_at = s;
    }
    sum += snr;
    windows++;
  }
  INFO("tone fit: mean " << sum / windows << " dB, worst " << worst << " dB at "
                         << 1000.0 * worst_at / kRate << " ms");
  CHECK(worst > 20.0);
}

/* ---- Opus input ------------------------------------------------------------------------- */

TEST_CASE("Opus input is decoded inside", "[mixminus][opus]") {
  GError *err = nullptr;
  GstElement *pipeline = gst_parse_launch(
      "mixminus name=mm "
      "audiotestsrc num-buffers=100 freq=440 volume=0.4 ! opusenc bitrate=64000 ! mm.sink_0 "
      "audiotestsrc num-buffers=100 freq=660 volume=0.3 ! mm.sink_1 "
      "mm.src_0 ! queue ! appsink name=out0 sync=false "
      "mm.src_1 ! queue ! appsink name=out1 sync=false",
      &err);
  REQUIRE(err == nullptr);
  GstElement *out0 = gst_bin_get_by_name(GST_BIN(pipeline), "out0");
  GstElement *out1 = gst_bin_get_by_name(GST_BIN(pipeline), "out1");
  REQUIRE(gst_element_set_state(pipeline, GST_STATE_PLAYING) != GST_STATE_CHANGE_FAILURE);
  Collected c0, c1;
  pull_all(out0, c0);
  pull_all(out1, c1);
  CHECK(wait_eos_or_error(pipeline).empty());
  auto x1 = c1.channel(0, 1); /* participant 1 hears participant 0's Opus, decoded */
  REQUIRE(x1.size() >= 38400);
  CHECK(testsig::amplitude_at(&x1[9600], 28800, 440, kRate) == Approx(0.4).margin(0.02));
  CHECK(testsig::amplitude_at(&x1[9600], 28800, 660, kRate) == Approx(0.0).margin(0.002));
  auto x0 = c0.channel(0, 1);
  CHECK(testsig::amplitude_at(&x0[9600], 28800, 660, kRate) == Approx(0.3).margin(0.005));
  CHECK(testsig::amplitude_at(&x0[9600], 28800, 440, kRate) == Approx(0.0).margin(0.002));
  gst_element_set_state(pipeline, GST_STATE_NULL);
  gst_object_unref(out0);
  gst_object_unref(out1);
  gst_object_unref(pipeline);
}

TEST_CASE("Opus input with RFC 6464 levels: only what can be heard is decoded",
          "[mixminus][opus]") {
  /* Participants 0 and 1 talk (their metas say -20 dBov), 2 and 3 are silent (-127 dBov): the
   * silent ones' packets are never decoded, the talkers' always. */
  Room room(0, "max-speakers=3");
  for (int i = 0; i < 4; i++) {
    room.add();
    GstCaps *caps = gst_caps_from_string(
        "audio/x-opus,channel-mapping-family=0,channels=1,rate=48000,stream-count=1,"
        "coupled-count=0");
    g_object_set(room.srcs.back(), "caps", caps, nullptr);
    gst_caps_unref(caps);
  }
  const int packets = 50; /* 1 s of 20 ms packets */
  REQUIRE(gst_element_set_state(room.pipeline, GST_STATE_PLAYING) != GST_STATE_CHANGE_FAILURE);
  const double freq[4] = {300, 500, 700, 900};
  for (int who = 0; who < 4; who++) {
    costream::OpusEnc enc;
    costream::OpusSettings s;
    s.bitrate = 64000;
    REQUIRE(enc.init(s));
    const bool talks = who < 2;
    auto pcm = tone_s16(freq[who], talks ? 0.2 : 0.0005, packets * 960);
    uint8_t pkt[1500];
    for (int p = 0; p < packets; p++) {
      const int n = enc.encode(&pcm[p * 960], costream::SampleFormat::S16, 960, pkt, sizeof(pkt));
      REQUIRE(n > 0);
      GstBuffer *b = gst_buffer_new_memdup(pkt, n);
      GST_BUFFER_PTS(b) = p * 20 * GST_MSECOND;
      GST_BUFFER_DURATION(b) = 20 * GST_MSECOND;
      gst_buffer_add_audio_level_meta(b, talks ? 20 : 127, talks);
      REQUIRE(gst_app_src_push_buffer(GST_APP_SRC(room.srcs[who]), b) == GST_FLOW_OK);
    }
    gst_app_src_end_of_stream(GST_APP_SRC(room.srcs[who]));
  }
  std::vector<Collected> out(4);
  for (int i = 0; i < 4; i++)
    pull_all(room.sinks[i], out[i]);
  CHECK(wait_eos_or_error(room.pipeline).empty());

  const auto decoded = pads_stat(room.mm, "opus-decoded");
  const auto skipped = pads_stat(room.mm, "opus-skipped");
  REQUIRE(decoded.size() == 4);
  REQUIRE(skipped.size() == 4);
  for (size_t i = 0; i < 4; i++) {
    INFO("pad sink_" << i);
    CHECK(decoded[i] == (i < 2 ? packets : 0));
    CHECK(skipped[i] == (i < 2 ? 0 : packets));
  }
  /* and what is heard is right: participant 2 hears 0 and 1 */
  auto x = out[2].channel(0, 1);
  REQUIRE(x.size() >= 38400);
  CHECK(testsig::amplitude_at(&x[9600], 28800, 300, kRate) == Approx(0.2).margin(0.015));
  CHECK(testsig::amplitude_at(&x[9600], 28800, 500, kRate) == Approx(0.2).margin(0.015));
  CHECK(pad_slot(room.sinkpads[2]) == -1);
}

TEST_CASE("Samples nobody can hear are not kept, and a participant is heard exactly once it "
          "speaks",
          "[mixminus]") {
  Room room(4, "max-speakers=3");
  const size_t frames = 5 * kRate, quiet = 3 * kRate;
  std::vector<std::vector<int16_t>> in = {tone_s16(300, 0.3, frames), tone_s16(500, 0.2, frames),
                                          tone_s16(700, 0.001, frames), /* -63 dBov... */
                                          std::vector<int16_t>(frames, 0)};
  auto loud = tone_s16(700, 0.25, frames);
  std::copy(loud.begin() + quiet, loud.end(), in[2].begin() + quiet); /* ... then loud at 3 s */
  std::vector<Collected> out(4);
  room.play(in, out);

  /* participants 2 (quiet for 3 s) and 3 (silent) were not kept once they had been under the
   * threshold for the slot timeout; the two talkers always were */
  const auto unheard = pads_stat(room.mm, "unheard");
  REQUIRE(unheard.size() == 4);
  CHECK(unheard[0] == 0);
  CHECK(unheard[1] == 0);
  CHECK(unheard[2] >= 100); /* 10 ms buffers from about 1.6 s to 3 s */
  CHECK(unheard[2] <= 150);
  CHECK(unheard[3] >= 300);

  /* participant 2 takes the free slot when it speaks; from then on participant 0 hears exactly
   * 1 + 2, sample for sample */
  const SlotMsg *pin = nullptr;
  const auto msgs = room.log.get();
  for (const auto &m : msgs)
    if (m.pin && m.pad == "sink_2")
      pin = &m;
  REQUIRE(pin != nullptr);
  CHECK(pin->running_time >= 3 * GST_SECOND);
  CHECK(pin->running_time <= 3 * GST_SECOND + 20 * GST_MSECOND);
  const auto o = out[0].s16();
  REQUIRE(o.size() >= frames);
  const size_t from = gst_util_uint64_scale(pin->running_time, kRate, GST_SECOND);
  size_t wrong = 0;
  for (size_t f = from; f < frames; f++)
    wrong += o[f] != in[1][f] + in[2][f];
  CHECK(wrong == 0);
  auto x = out[0].channel(0, 1);
  CHECK(testsig::amplitude_at(&x[4 * kRate], 9600, 700, kRate) == Approx(0.25).margin(0.002));
}

TEST_CASE("A live participant is heard while another's source has sent nothing yet",
          "[mixminus][live]") {
  /* sink_1's branch is linked but its source is not there yet (like rtpbin before a peer's
   * first packet: the depayloader's sink pad is unlinked). The room must go live with
   * participant 0 alone instead of waiting for participant 1. */
  Collected out;
  play_and_pull("mixminus name=mm  audiotestsrc is-live=true freq=440 volume=0.3 ! mm.sink_0 "
                "audioconvert name=waiting ! mm.sink_1 "
                "mm.src_0 ! queue ! fakesink sync=false async=false "
                "mm.src_1 ! queue ! appsink name=out sync=false async=false",
                "out", out, 5 * GST_SECOND, 100);
  REQUIRE(out.buffers.size() == 100);
  auto x = out.channel(0, 1);
  REQUIRE(x.size() >= 48000);
  CHECK(testsig::amplitude_at(&x[x.size() - 24000], 24000, 440, kRate) == Approx(0.3).margin(0.01));
}

/* ---- live, on a test clock ---------------------------------------------------------------- */

TEST_CASE("Live on a test clock: blocks go out at their deadline, a stalled participant holds up "
          "nobody",
          "[mixminus][live]") {
  GstElement *pipeline = gst_pipeline_new(nullptr);
  GstElement *mm = make("mixminus");
  g_object_set(mm, "force-live", TRUE, "latency", 10 * GST_MSECOND, nullptr);
  gst_bin_add(GST_BIN(pipeline), mm);
  GstClock *clock = gst_test_clock_new();
  GstTestClock *tc = GST_TEST_CLOCK(clock);
  gst_pipeline_use_clock(GST_PIPELINE(pipeline), clock);
  REQUIRE(gst_element_set_state(pipeline, GST_STATE_PLAYING) != GST_STATE_CHANGE_FAILURE);

  /* Two participants join while PLAYING (the clock stands still at 0: the room waits at block 0's
   * deadline), each with an appsink on its return feed. */
  TalkerPad a(mm, audio_caps("S16LE", kRate, 1));
  TalkerPad b(mm, audio_caps("S16LE", kRate, 1));
  GstElement *feed[2];
  for (int i = 0; i < 2; i++) {
    feed[i] = make("appsink");
    g_object_set(feed[i], "sync", FALSE, "async", FALSE, "max-buffers", 0, nullptr);
    gst_bin_add(GST_BIN(pipeline), feed[i]);
    gchar *name = g_strdup_printf("src_%s", GST_PAD_NAME(i == 0 ? a.sink : b.sink) + 5);
    REQUIRE(gst_element_link_pads(mm, name, feed[i], "sink"));
    g_free(name);
    gst_element_sync_state_with_parent(feed[i]);
  }

  const auto tone_a = tone_s16(300, 0.3, 100 * 480);
  const auto tone_b = tone_s16(500, 0.3, 100 * 480);
  auto block_of = [](const std::vector<int16_t> &t, int k) {
    return s16_buffer(std::vector<int16_t>(t.begin() + k * 480, t.begin() + (k + 1) * 480),
                      k * 10 * GST_MSECOND, 10 * GST_MSECOND);
  };
  Collected out[2];
  std::vector<GstClockTime> deadlines; /* of the blocks mixed without b */
  for (int k = 0; k < 100; k++) {
    const bool b_talks = k < 40 || k >= 70;
    a.push(block_of(tone_a, k));
    if (b_talks) {
      b.push(block_of(tone_b, k)); /* the block is complete: no wait on the clock */
    } else {
      /* b is missing: the room waits for block k's deadline, and only that long. */
      GstClockID id;
      gst_test_clock_wait_for_next_pending_id(tc, &id);
      deadlines.push_back(gst_clock_id_get_time(id));
      gst_clock_id_unref(id);
      gst_test_clock_set_time(tc, std::max(gst_clock_get_time(clock), deadlines.back()));
      if (GstClockID done = gst_test_clock_process_next_clock_id(tc))
        gst_clock_id_unref(done);
    }
    for (int i = 0; i < 2; i++) {
      GstSample *s = gst_app_sink_try_pull_sample(GST_APP_SINK(feed[i]), 10 * GST_SECOND);
      INFO("block " << k << " feed " << i);
      REQUIRE(s != nullptr);
      out[i].buffers.push_back(gst_buffer_ref(gst_sample_get_buffer(s)));
      gst_sample_unref(s);
    }
  }

  /* Deadline of block k = its running time + one block + the `latency` allowance (the talkers
   * report no latency of their own), to the nanosecond. */
  REQUIRE(deadlines.size() == 30);
  for (size_t i = 0; i < deadlines.size(); i++)
    CHECK(deadlines[i] == (40 + i) * 10 * GST_MSECOND + 20 * GST_MSECOND);

  for (int i = 0; i < 2; i++) {
    CHECK(contiguous(out[i]));
    CHECK(GST_BUFFER_PTS(out[i].buffers.front()) == 0);
  }
  auto xa = out[0].channel(0, 1); /* what a hears: b only */
  auto xb = out[1].channel(0, 1); /* what b hears: a only */
  REQUIRE(xa.size() == 100 * 480);
  auto amp = [](const std::vector<double> &x, int from_block, int blocks, double freq) {
    return testsig::amplitude_at(&x[from_block * 480], blocks * 480, freq, kRate);
  };
  CHECK(amp(xa, 10, 30, 500) == Approx(0.3).margin(0.01));
  CHECK(amp(xa, 10, 30, 300) == Approx(0.0).margin(0.005));
  CHECK(amp(xa, 41, 29, 500) == Approx(0.0).margin(0.005)); /* b stalled: silence, on time */
  CHECK(amp(xa, 72, 28, 500) == Approx(0.3).margin(0.01));  /* b back, still holding its slot */
  CHECK(amp(xb, 10, 90, 300) == Approx(0.3).margin(0.01));  /* a was never held up */
  CHECK(amp(xb, 10, 90, 500) == Approx(0.0).margin(0.005));

  guint64 timeouts = 0;
  g_object_get(b.sink, "timeouts", &timeouts, nullptr);
  CHECK(timeouts == 1);
  a.leave();
  b.leave();
  gst_element_set_state(pipeline, GST_STATE_NULL);
  gst_object_unref(clock);
  gst_object_unref(pipeline);
}
