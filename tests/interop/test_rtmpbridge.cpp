/* costream tests
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * rtmpbridge with a real publisher (ffmpeg) and real RTP: ffmpeg publishes a file with a tone per
 * channel and a test video; the bridge's Opus and H.264 go through rtpopuspay/rtph264pay, rtpbin
 * and udpsink to 127.0.0.1, come back through udpsrc, rtpbin, depayloaders and decoders, and
 * the tones per channel, the duration and the frame count are checked. Loopback only, bounded.
 */
#include "helpers.h"
#include "process.h"
#include "rtmp/flv.h"
#include "testsig.h"

#include <gio/gio.h>

#include <catch2/catch.hpp>

#include <atomic>
#include <mutex>
#include <thread>

using namespace testgst;

namespace {

/* 3 s: 440 Hz left, 660 Hz right (0.25 each), 320x240 at 25 fps, H.264 without B-frames. */
std::string test_file() {
  static std::string path;
  if (path.empty()) {
    path = test_tmpdir() + "/av.flv";
    make_av_flv(path, "aevalsrc=0.25*sin(2*PI*440*t)|0.25*sin(2*PI*660*t):s=44100");
  }
  return path;
}

struct FirstPts {
  std::mutex lock;
  GstClockTime audio = GST_CLOCK_TIME_NONE, video = GST_CLOCK_TIME_NONE;
};

GstPadProbeReturn first_pts(GstPad *pad, GstPadProbeInfo *info, gpointer data) {
  auto *f = static_cast<FirstPts *>(data);
  GstBuffer *b = GST_PAD_PROBE_INFO_BUFFER(info);
  std::lock_guard<std::mutex> lk(f->lock);
  GstClockTime &slot = g_str_equal(GST_PAD_NAME(pad), "audio") ? f->audio : f->video;
  if (!GST_CLOCK_TIME_IS_VALID(slot))
    slot = GST_BUFFER_PTS(b);
  return GST_PAD_PROBE_OK;
}

void on_bridge_pad(GstElement *, GstPad *pad, gpointer data) {
  gst_pad_add_probe(pad, GST_PAD_PROBE_TYPE_BUFFER, first_pts, data, nullptr);
}

/* Pulls from an appsink until it has been quiet for `quiet` (bounded by `total`). */
void collect(GstElement *sink, Collected &out, GstClockTime quiet, GstClockTime total) {
  const gint64 end = g_get_monotonic_time() + total / 1000;
  while (g_get_monotonic_time() < end) {
    GstSample *s = gst_app_sink_try_pull_sample(GST_APP_SINK(sink), quiet);
    if (!s)
      break;
    out.buffers.push_back(gst_buffer_ref(gst_sample_get_buffer(s)));
    gst_sample_unref(s);
  }
}

} // namespace

TEST_CASE("OBS-style publish through rtmpbridge, RTP over loopback, decoded at the other end",
          "[rtmpbridge][interop]") {
  const guint vport = free_udp_port(), aport = free_udp_port();
  REQUIRE(vport != aport);
  GError *err = nullptr;
  /* the receiver first: a costream peer */
  const std::string recv_desc =
      "rtpbin name=rv latency=200 rtpbin name=ra latency=200 "
      "udpsrc port=" +
      std::to_string(vport) +
      " caps=\"application/x-rtp,media=video,encoding-name=H264,payload=96,clock-rate=90000\" "
      "! rv.recv_rtp_sink_0  rv. ! rtph264depay ! avdec_h264 ! appsink name=video sync=false "
      "udpsrc port=" +
      std::to_string(aport) +
      " caps=\"application/x-rtp,media=audio,encoding-name=OPUS,payload=97,clock-rate=48000\" "
      "! ra.recv_rtp_sink_0  ra. ! rtpopusdepay ! opusdec ! audioconvert "
      "! audio/x-raw,format=S16LE,channels=2 ! appsink name=audio sync=false";
  GstElement *recv = gst_parse_launch(recv_desc.c_str(), &err);
  REQUIRE(err == nullptr);
  GstElement *vsink = gst_bin_get_by_name(GST_BIN(recv), "video");
  GstElement *asink = gst_bin_get_by_name(GST_BIN(recv), "audio");
  g_object_set(vsink, "max-buffers", 0, nullptr);
  g_object_set(asink, "max-buffers", 0, nullptr);
  REQUIRE(gst_element_set_state(recv, GST_STATE_PLAYING) != GST_STATE_CHANGE_FAILURE);

  const std::string send_desc =
      "rtpbin name=r rtmpbridge name=b port=0 stream-key=obs eos-on-disconnect=true "
      "b.video ! queue ! rtph264pay config-interval=-1 pt=96 ! r.send_rtp_sink_0 "
      "r.send_rtp_src_0 ! udpsink host=127.0.0.1 port=" +
      std::to_string(vport) +
      " "
      "b.audio ! queue ! rtpopuspay pt=97 ! r.send_rtp_sink_1 "
      "r.send_rtp_src_1 ! udpsink host=127.0.0.1 port=" +
      std::to_string(aport);
  GstElement *send = gst_parse_launch(send_desc.c_str(), &err);
  REQUIRE(err == nullptr);
  GstElement *bridge = gst_bin_get_by_name(GST_BIN(send), "b");
  FirstPts first;
  g_signal_connect(bridge, "pad-added", G_CALLBACK(on_bridge_pad), &first);
  REQUIRE(gst_element_set_state(send, GST_STATE_PLAYING) != GST_STATE_CHANGE_FAILURE);
  guint port = 0;
  g_object_get(bridge, "bound-port", &port, nullptr);
  REQUIRE(port > 0);

  /* real time, as OBS would */
  REQUIRE(run_command({"timeout", "60", "ffmpeg", "-hide_banner", "-loglevel", "error", "-re", "-i",
                       test_file(), "-c", "copy", "-f", "flv",
                       "rtmp://127.0.0.1:" + std::to_string(port) + "/live/obs"}) == 0);
  CHECK(wait_eos_or_error(send, 20 * GST_SECOND).empty());

  Collected video, audio;
  collect(vsink, video, GST_SECOND, 20 * GST_SECOND);
  collect(asink, audio, GST_SECOND, 20 * GST_SECOND);

  /* every frame (the rtpjitterbuffer may hold none back: the stream ended) */
  CHECK(video.buffers.size() >= 74);
  CHECK(video.buffers.size() <= 75);
  /* 3 s of stereo audio with the right tone on each channel */
  auto left = audio.channel(0, 2), right = audio.channel(1, 2);
  INFO("audio frames " << left.size());
  CHECK(left.size() >= 48000 * 29 / 10);
  CHECK(left.size() <= 48000 * 31 / 10 + 2000);
  REQUIRE(left.size() > 96000);
  CHECK(testsig::amplitude_at(&left[24000], 72000, 440, 48000) == Approx(0.25).margin(0.015));
  CHECK(testsig::amplitude_at(&left[24000], 72000, 660, 48000) == Approx(0.0).margin(0.005));
  CHECK(testsig::amplitude_at(&right[24000], 72000, 660, 48000) == Approx(0.25).margin(0.015));
  CHECK(testsig::amplitude_at(&right[24000], 72000, 440, 48000) == Approx(0.0).margin(0.005));
  /* A/V: the offset between the first audio and the first video at the bridge's pads is the
   * file's, within 5 ms */
  {
    const std::vector<uint8_t> bytes = read_file(test_file());
    costream::flv::TagReader reader;
    std::vector<costream::flv::Tag> tags;
    std::string why;
    REQUIRE(reader.feed(bytes.data(), bytes.size(), &tags, &why));
    int64_t a_in = -1, v_in = -1;
    for (auto &t : tags) {
      if (t.type == costream::flv::kAudio && a_in < 0 && t.data.size() > 1 && t.data[1] == 1)
        a_in = t.timestamp;
      if (t.type == costream::flv::kVideo && v_in < 0 &&
          costream::flv::avc_packet_type(t.data) == 1)
        v_in = t.timestamp;
    }
    REQUIRE(a_in >= 0);
    REQUIRE(v_in >= 0);
    std::lock_guard<std::mutex> lk(first.lock);
    REQUIRE(GST_CLOCK_TIME_IS_VALID(first.audio));
    REQUIRE(GST_CLOCK_TIME_IS_VALID(first.video));
    const GstClockTimeDiff d_out = GST_CLOCK_DIFF(first.video, first.audio);
    const GstClockTimeDiff d_in = (a_in - v_in) * GST_MSECOND;
    INFO("audio - video: in the file " << d_in / 1000 << " us, at the bridge " << d_out / 1000
                                       << " us");
    CHECK(std::llabs(d_out - d_in) <= 5 * GST_MSECOND);
  }
  gst_element_set_state(send, GST_STATE_NULL);
  gst_element_set_state(recv, GST_STATE_NULL);
  gst_object_unref(bridge);
  gst_object_unref(vsink);
  gst_object_unref(asink);
  gst_object_unref(send);
  gst_object_unref(recv);
}

namespace {

/* rtmpbridge alone, each pad it adds linked to an appsink of the same name. */
struct Rig {
  GstElement *pipeline, *bridge;
  std::mutex lock;
  std::vector<std::string> added;
  guint port = 0;
  Rig() {
    pipeline = gst_pipeline_new(nullptr);
    bridge = make("rtmpbridge", "b");
    gst_bin_add(GST_BIN(pipeline), bridge);
    g_signal_connect(bridge, "pad-added", G_CALLBACK(+[](GstElement *, GstPad *pad, gpointer d) {
                       auto *rig = static_cast<Rig *>(d);
                       GstElement *sink = gst_element_factory_make("appsink", GST_PAD_NAME(pad));
                       g_object_set(sink, "sync", FALSE, "max-buffers", 0, "async", FALSE, nullptr);
                       gst_bin_add(GST_BIN(rig->pipeline), sink);
                       gst_element_sync_state_with_parent(sink);
                       GstPad *sp = gst_element_get_static_pad(sink, "sink");
                       gst_pad_link(pad, sp);
                       gst_object_unref(sp);
                       std::lock_guard<std::mutex> lk(rig->lock);
                       rig->added.push_back(GST_PAD_NAME(pad));
                     }),
                     this);
    REQUIRE(gst_element_set_state(pipeline, GST_STATE_PLAYING) != GST_STATE_CHANGE_FAILURE);
    g_object_get(bridge, "bound-port", &port, nullptr);
    REQUIRE(port > 0);
  }
  std::string url() const { return "rtmp://127.0.0.1:" + std::to_string(port) + "/live/k"; }
  GstElement *sink(const char *name) { return gst_bin_get_by_name(GST_BIN(pipeline), name); }
  ~Rig() {
    gst_element_set_state(pipeline, GST_STATE_NULL);
    gst_object_unref(pipeline);
  }
};

int publish(const std::string &url, const std::vector<std::string> &extra) {
  std::vector<std::string> args = {"timeout",   "60",    "ffmpeg", "-hide_banner",
                                   "-loglevel", "error", "-i",     test_file()};
  args.insert(args.end(), extra.begin(), extra.end());
  args.insert(args.end(), {"-f", "flv", url});
  return run_command(args);
}

} // namespace

TEST_CASE("Audio-only and video-only publishes: only their pad appears, and it flows",
          "[rtmpbridge][interop]") {
  {
    Rig rig;
    REQUIRE(publish(rig.url(), {"-vn", "-c:a", "copy"}) == 0);
    GstElement *a = nullptr;
    for (int i = 0; i < 100 && !(a = rig.sink("audio")); i++)
      g_usleep(20000);
    REQUIRE(a != nullptr);
    Collected c;
    collect(a, c, GST_SECOND, 20 * GST_SECOND);
    CHECK(c.buffers.size() >= 145); /* 3 s of 20 ms Opus packets */
    std::lock_guard<std::mutex> lk(rig.lock);
    CHECK(rig.added == std::vector<std::string>{"audio"});
    gst_object_unref(a);
  }
  {
    Rig rig;
    REQUIRE(publish(rig.url(), {"-an", "-c:v", "copy"}) == 0);
    GstElement *v = nullptr;
    for (int i = 0; i < 100 && !(v = rig.sink("video")); i++)
      g_usleep(20000);
    REQUIRE(v != nullptr);
    Collected c;
    collect(v, c, GST_SECOND, 20 * GST_SECOND);
    CHECK(c.buffers.size() == 75);
    /* byte-stream with SPS and PPS in front of every IDR */
    size_t idr = 0, idr_with_config = 0;
    for (auto *b : c.buffers) {
      GstMapInfo m;
      gst_buffer_map(b, &m, GST_MAP_READ);
      bool sps = false, pps = false, is_idr = false;
      for (size_t i = 0; i + 4 < m.size; i++) {
        if (m.data[i] == 0 && m.data[i + 1] == 0 && m.data[i + 2] == 1) {
          const int type = m.data[i + 3] & 0x1f;
          sps |= type == 7;
          pps |= type == 8;
          is_idr |= type == 5;
        }
      }
      gst_buffer_unmap(b, &m);
      idr += is_idr;
      idr_with_config += is_idr && sps && pps;
    }
    CHECK(idr == 3); /* -g 25 over 75 frames */
    CHECK(idr_with_config == idr);
    /* A viewer's keyframe request (upstream force-key-unit, what rtph264pay sends for a PLI):
     * the bridge says once, at WARNING level, that RTMP cannot forward it. */
    static std::atomic<int> warnings{0};
    static std::string said;
    GstLogFunction fn = [](GstDebugCategory *cat, GstDebugLevel level, const gchar *, const gchar *,
                           gint, GObject *, GstDebugMessage *msg, gpointer) {
      if (level == GST_LEVEL_WARNING &&
          g_str_equal(gst_debug_category_get_name(cat), "rtmpbridge")) {
        if (warnings++ == 0)
          said = gst_debug_message_get(msg);
      }
    };
    gst_debug_set_threshold_for_name("rtmpbridge", GST_LEVEL_WARNING);
    gst_debug_add_log_function(fn, nullptr, nullptr);
    for (int i = 0; i < 3; i++) /* (FALSE: nobody upstream can act on it, as said) */
      gst_element_send_event(
          v, gst_event_new_custom(GST_EVENT_CUSTOM_UPSTREAM,
                                  gst_structure_new("GstForceKeyUnit", "all-headers",
                                                    G_TYPE_BOOLEAN, TRUE, nullptr)));
    gst_debug_remove_log_function(fn);
    CHECK(warnings == 1);
    CHECK(said.find("RTMP cannot forward") != std::string::npos);
    std::lock_guard<std::mutex> lk(rig.lock);
    CHECK(rig.added == std::vector<std::string>{"video"});
    gst_object_unref(v);
  }
}

TEST_CASE("Publisher restart: the pads stay and the timeline continues", "[rtmpbridge][interop]") {
  Rig rig;
  REQUIRE(publish(rig.url(), {"-c", "copy"}) == 0);
  GstElement *a = nullptr;
  for (int i = 0; i < 100 && !(a = rig.sink("audio")); i++)
    g_usleep(20000);
  REQUIRE(a != nullptr);
  Collected first;
  collect(a, first, GST_SECOND, 20 * GST_SECOND);
  REQUIRE(publish(rig.url(), {"-c", "copy"}) == 0);
  Collected second;
  collect(a, second, GST_SECOND, 20 * GST_SECOND);
  REQUIRE(!first.buffers.empty());
  REQUIRE(!second.buffers.empty());
  CHECK(second.buffers.size() >= first.buffers.size() - 2);
  GstClockTime end1 = 0;
  for (auto *b : first.buffers)
    end1 = std::max(end1, GST_BUFFER_PTS(b));
  CHECK(GST_BUFFER_PTS(second.buffers[0]) > end1);
  {
    std::lock_guard<std::mutex> lk(rig.lock);
    CHECK(rig.added.size() == 2); /* audio and video, once each */
  }
  gst_object_unref(a);
}

/* ---- webrtcbin ------------------------------------------------------------------------- */

namespace {

/* webrtcbin's enums, found by name (no build-time dependency on the webrtc library). */
gint enum_value(const char *type, const char *nick) {
  GType t = g_type_from_name(type);
  REQUIRE(t != 0);
  auto *klass = static_cast<GEnumClass *>(g_type_class_ref(t));
  GEnumValue *v = g_enum_get_value_by_nick(klass, nick);
  REQUIRE(v != nullptr);
  const gint value = v->value;
  g_type_class_unref(klass);
  return value;
}

/* In-process signalling between a sending and a receiving webrtcbin. */
struct Peers {
  GstElement *ws = nullptr, *wr = nullptr;
  GstElement *recv_pipeline = nullptr;
  std::atomic<int> errors{0};

  static void on_answer(GstPromise *p, gpointer data) {
    auto *s = static_cast<Peers *>(data);
    const GstStructure *reply = gst_promise_get_reply(p);
    const GValue *v = reply ? gst_structure_get_value(reply, "answer") : nullptr;
    if (!v) {
      s->errors++;
    } else {
      gpointer answer = g_value_get_boxed(v);
      g_signal_emit_by_name(s->wr, "set-local-description", answer, nullptr);
      g_signal_emit_by_name(s->ws, "set-remote-description", answer, nullptr);
    }
    gst_promise_unref(p);
  }
  static void on_offer(GstPromise *p, gpointer data) {
    auto *s = static_cast<Peers *>(data);
    const GstStructure *reply = gst_promise_get_reply(p);
    const GValue *v = reply ? gst_structure_get_value(reply, "offer") : nullptr;
    if (!v) {
      s->errors++;
    } else {
      gpointer offer = g_value_get_boxed(v);
      g_signal_emit_by_name(s->ws, "set-local-description", offer, nullptr);
      g_signal_emit_by_name(s->wr, "set-remote-description", offer, nullptr);
      g_signal_emit_by_name(s->wr, "create-answer", nullptr,
                            gst_promise_new_with_change_func(on_answer, s, nullptr));
    }
    gst_promise_unref(p);
  }
  static void on_negotiation_needed(GstElement *ws, gpointer data) {
    g_signal_emit_by_name(ws, "create-offer", nullptr,
                          gst_promise_new_with_change_func(on_offer, data, nullptr));
  }
  static void ice_to_wr(GstElement *, guint mline, gchar *cand, gpointer data) {
    g_signal_emit_by_name(static_cast<Peers *>(data)->wr, "add-ice-candidate", mline, cand);
  }
  static void ice_to_ws(GstElement *, guint mline, gchar *cand, gpointer data) {
    g_signal_emit_by_name(static_cast<Peers *>(data)->ws, "add-ice-candidate", mline, cand);
  }
  /* the receiver: every incoming stream decoded into an appsink named after its media */
  static void on_decoded(GstElement *, GstPad *pad, gpointer data) {
    auto *s = static_cast<Peers *>(data);
    GstCaps *caps = gst_pad_get_current_caps(pad);
    const bool audio =
        g_str_has_prefix(gst_structure_get_name(gst_caps_get_structure(caps, 0)), "audio");
    gst_caps_unref(caps);
    GstElement *bin = gst_parse_bin_from_description(
        audio ? "audioconvert ! audioresample ! audio/x-raw,format=S16LE,rate=48000,channels=2 ! "
                "appsink name=audio sync=false max-buffers=0"
              : "appsink name=video sync=false max-buffers=0",
        TRUE, nullptr);
    gst_bin_add(GST_BIN(s->recv_pipeline), bin);
    gst_element_sync_state_with_parent(bin);
    GstPad *sink = gst_element_get_static_pad(bin, "sink");
    if (gst_pad_link(pad, sink) != GST_PAD_LINK_OK)
      s->errors++;
    gst_object_unref(sink);
  }
  static void on_incoming(GstElement *, GstPad *pad, gpointer data) {
    auto *s = static_cast<Peers *>(data);
    if (GST_PAD_DIRECTION(pad) != GST_PAD_SRC)
      return;
    GstElement *dec = gst_element_factory_make("decodebin", nullptr);
    g_signal_connect(dec, "pad-added", G_CALLBACK(on_decoded), s);
    gst_bin_add(GST_BIN(s->recv_pipeline), dec);
    gst_element_sync_state_with_parent(dec);
    GstPad *sink = gst_element_get_static_pad(dec, "sink");
    if (gst_pad_link(pad, sink) != GST_PAD_LINK_OK)
      s->errors++;
    gst_object_unref(sink);
  }
};

struct SendRig {
  GstElement *pipeline, *bridge, *ws;
};

/* The bridge's pads, payloaded into the sender's webrtcbin (video: mline 0, audio: mline 1). */
void on_bridge_pad_webrtc(GstElement *, GstPad *pad, gpointer data) {
  auto *rig = static_cast<SendRig *>(data);
  const bool audio = g_str_equal(GST_PAD_NAME(pad), "audio");
  GstElement *bin = gst_parse_bin_from_description(
      audio ? "queue ! rtpopuspay pt=97"
            : "queue ! rtph264pay config-interval=-1 pt=96 aggregate-mode=zero-latency",
      TRUE, nullptr);
  gst_bin_add(GST_BIN(rig->pipeline), bin);
  gst_element_sync_state_with_parent(bin);
  GstPad *in = gst_element_get_static_pad(bin, "sink");
  gst_pad_link(pad, in);
  gst_object_unref(in);
  GstPad *out = gst_element_get_static_pad(bin, "src");
  /* add-transceiver made a sink pad per transceiver: the one of m-line 0 (video) or 1 (audio) */
  GstPad *wsink = nullptr;
  GST_OBJECT_LOCK(rig->ws);
  for (GList *l = GST_ELEMENT(rig->ws)->sinkpads; l && !wsink; l = l->next) {
    GObject *trans = nullptr;
    g_object_get(l->data, "transceiver", &trans, nullptr);
    guint mline = G_MAXUINT;
    if (trans) {
      g_object_get(trans, "mlineindex", &mline, nullptr);
      g_object_unref(trans);
    }
    if (mline == (audio ? 1u : 0u))
      wsink = GST_PAD(gst_object_ref(l->data));
  }
  GST_OBJECT_UNLOCK(rig->ws);
  if (wsink) {
    gst_pad_link(out, wsink);
    gst_object_unref(wsink);
  }
  gst_object_unref(out);
}

} // namespace

TEST_CASE("rtmpbridge into webrtcbin (sendonly) and out of webrtcbin (recvonly), in one process",
          "[rtmpbridge][interop][webrtc]") {
  Peers peers;
  SendRig rig;
  GError *err = nullptr;
  rig.pipeline = gst_parse_launch(
      "rtmpbridge name=b port=0 stream-key=k webrtcbin name=ws bundle-policy=max-bundle", &err);
  REQUIRE(err == nullptr);
  rig.bridge = gst_bin_get_by_name(GST_BIN(rig.pipeline), "b");
  rig.ws = gst_bin_get_by_name(GST_BIN(rig.pipeline), "ws");
  /* (a launch line of one element would give the element, not a pipeline) */
  peers.recv_pipeline = gst_pipeline_new("receiver");
  peers.wr = make("webrtcbin", "wr");
  g_object_set(peers.wr, "bundle-policy", enum_value("GstWebRTCBundlePolicy", "max-bundle"),
               nullptr);
  gst_bin_add(GST_BIN(peers.recv_pipeline), GST_ELEMENT(gst_object_ref(peers.wr)));
  peers.ws = rig.ws;

  /* what the sender will send, before any media: negotiation and DTLS happen first */
  const gint sendonly = enum_value("GstWebRTCRTPTransceiverDirection", "sendonly");
  for (const char *c :
       {"application/x-rtp,media=video,encoding-name=H264,payload=96,clock-rate=90000,"
        "packetization-mode=(string)1,profile-level-id=(string)42e01f",
        "application/x-rtp,media=audio,encoding-name=OPUS,payload=97,clock-rate=48000,"
        "encoding-params=(string)2"}) {
    GstCaps *caps = gst_caps_from_string(c);
    GObject *trans = nullptr;
    g_signal_emit_by_name(rig.ws, "add-transceiver", sendonly, caps, &trans);
    REQUIRE(trans != nullptr);
    g_object_unref(trans);
    gst_caps_unref(caps);
  }
  g_signal_connect(rig.ws, "on-negotiation-needed", G_CALLBACK(Peers::on_negotiation_needed),
                   &peers);
  g_signal_connect(rig.ws, "on-ice-candidate", G_CALLBACK(Peers::ice_to_wr), &peers);
  g_signal_connect(peers.wr, "on-ice-candidate", G_CALLBACK(Peers::ice_to_ws), &peers);
  g_signal_connect(peers.wr, "pad-added", G_CALLBACK(Peers::on_incoming), &peers);
  g_signal_connect(rig.bridge, "pad-added", G_CALLBACK(on_bridge_pad_webrtc), &rig);

  REQUIRE(gst_element_set_state(peers.recv_pipeline, GST_STATE_PLAYING) !=
          GST_STATE_CHANGE_FAILURE);
  REQUIRE(gst_element_set_state(rig.pipeline, GST_STATE_PLAYING) != GST_STATE_CHANGE_FAILURE);

  /* connected (ICE on loopback, DTLS) within 20 s */
  const gint connected = enum_value("GstWebRTCPeerConnectionState", "connected");
  gint state = -1;
  const gint64 deadline = g_get_monotonic_time() + 20 * G_USEC_PER_SEC;
  while (g_get_monotonic_time() < deadline) {
    g_object_get(rig.ws, "connection-state", &state, nullptr);
    if (state == connected)
      break;
    g_usleep(50000);
  }
  REQUIRE(peers.errors == 0);
  REQUIRE(state == connected);

  guint port = 0;
  g_object_get(rig.bridge, "bound-port", &port, nullptr);
  REQUIRE(run_command({"timeout", "60", "ffmpeg", "-hide_banner", "-loglevel", "error", "-re", "-i",
                       test_file(), "-c", "copy", "-f", "flv",
                       "rtmp://127.0.0.1:" + std::to_string(port) + "/live/k"}) == 0);

  /* everything that arrived, until the receiver is quiet */
  GstElement *vsink = nullptr, *asink = nullptr;
  for (int i = 0; i < 100 && (!vsink || !asink); i++) {
    if (!vsink)
      vsink = gst_bin_get_by_name(GST_BIN(peers.recv_pipeline), "video");
    if (!asink)
      asink = gst_bin_get_by_name(GST_BIN(peers.recv_pipeline), "audio");
    g_usleep(50000);
  }
  REQUIRE(vsink != nullptr);
  REQUIRE(asink != nullptr);
  Collected video, audio;
  collect(vsink, video, 2 * GST_SECOND, 30 * GST_SECOND);
  collect(asink, audio, 2 * GST_SECOND, 30 * GST_SECOND);
  CHECK(peers.errors == 0);
  INFO("video frames " << video.buffers.size());
  CHECK(video.buffers.size() == 75);
  auto left = audio.channel(0, 2), right = audio.channel(1, 2);
  INFO("audio frames " << left.size());
  REQUIRE(left.size() > 96000);
  CHECK(testsig::amplitude_at(&left[24000], 72000, 440, 48000) == Approx(0.25).margin(0.02));
  CHECK(testsig::amplitude_at(&right[24000], 72000, 660, 48000) == Approx(0.25).margin(0.02));
  CHECK(testsig::amplitude_at(&left[24000], 72000, 660, 48000) == Approx(0.0).margin(0.005));

  gst_element_set_state(rig.pipeline, GST_STATE_NULL);
  gst_element_set_state(peers.recv_pipeline, GST_STATE_NULL);
  gst_object_unref(vsink);
  gst_object_unref(asink);
  gst_object_unref(peers.wr);
  gst_object_unref(rig.ws);
  gst_object_unref(rig.bridge);
  gst_object_unref(rig.pipeline);
  gst_object_unref(peers.recv_pipeline);
}
