/* costream demo
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Ingest, the product's main job: an OBS-style publisher (test video, a tone per channel, H.264
 * and AAC in FLV) publishes over RTMP with rtmp2sink into rtmpbridge, which sends H.264 and Opus
 * in costream's RTP layout to a peer on 127.0.0.1; the peer records what arrives to Matroska.
 * Afterwards the recording is decoded and checked: frames received against frames sent, and each
 * channel's tone at its amplitude. Three pipelines in this process, shaped like
 * pipelines/obs-to-peer (the bridge) and pipelines/costream-recv --out (the peer).
 */
#include "demo.h"

#include <algorithm>
#include <atomic>
#include <cmath>

namespace demo {
namespace {

constexpr int kRate = 48000;
constexpr double kToneLeft = 440, kToneRight = 660, kToneVolume = 0.25;
constexpr int kFps = 30;

const char *const kVideoCaps =
    "application/x-rtp,media=video,clock-rate=90000,encoding-name=H264,payload=96";
const char *const kAudioCaps =
    "application/x-rtp,media=audio,clock-rate=48000,encoding-name=OPUS,payload=97";

struct Ingest {
  GstElement *peer = nullptr, *bridge_pipe = nullptr, *publisher = nullptr;
  GstElement *bridge = nullptr;
  std::atomic<guint64> frames_sent{0}, audio_sent{0};    /* publisher: encoded */
  std::atomic<guint64> bridge_video{0}, bridge_audio{0}; /* bridge: H.264 AUs, Opus packets */
  std::atomic<guint64> rtp_video{0}, rtp_audio{0};       /* peer: RTP packets received */
  std::atomic<bool> published{false}; /* EOS reached rtmp2sink: everything was sent */
  std::atomic<bool> bridge_video_eos{false}, bridge_audio_eos{false}; /* at the RTP udpsinks */
  std::atomic<bool> recorded{false}; /* EOS reached the peer's filesink */
  std::string error;                 /* main thread only (bus watches) */
};

struct BusContext {
  Ingest *ingest;
  const char *who;
};

GstPadProbeReturn count_probe(GstPad *, GstPadProbeInfo *info, gpointer data) {
  if (info->type & GST_PAD_PROBE_TYPE_BUFFER)
    static_cast<std::atomic<guint64> *>(data)->fetch_add(1);
  else if (info->type & GST_PAD_PROBE_TYPE_BUFFER_LIST)
    static_cast<std::atomic<guint64> *>(data)->fetch_add(
        gst_buffer_list_length(GST_PAD_PROBE_INFO_BUFFER_LIST(info)));
  return GST_PAD_PROBE_OK;
}

GstPadProbeReturn eos_probe(GstPad *, GstPadProbeInfo *info, gpointer data) {
  if (GST_EVENT_TYPE(GST_PAD_PROBE_INFO_EVENT(info)) == GST_EVENT_EOS)
    static_cast<std::atomic<bool> *>(data)->store(true);
  return GST_PAD_PROBE_OK;
}

constexpr auto kBuffers =
    static_cast<GstPadProbeType>(GST_PAD_PROBE_TYPE_BUFFER | GST_PAD_PROBE_TYPE_BUFFER_LIST);

void on_bridge_pad(GstElement *, GstPad *pad, gpointer data) {
  auto *in = static_cast<Ingest *>(data);
  const bool video = g_str_equal(GST_PAD_NAME(pad), "video");
  gst_pad_add_probe(pad, kBuffers, count_probe, video ? &in->bridge_video : &in->bridge_audio,
                    nullptr);
  g_print("  bridge: '%s' pad added (%s)\n", GST_PAD_NAME(pad),
          video ? "H.264 byte-stream, SPS/PPS before every IDR" : "Opus, 48 kHz");
}

gboolean on_bus(GstBus *, GstMessage *msg, gpointer data) {
  auto *ctx = static_cast<BusContext *>(data);
  Ingest *in = ctx->ingest;
  switch (GST_MESSAGE_TYPE(msg)) {
  case GST_MESSAGE_ERROR: {
    if (in->error.empty()) {
      in->error = std::string(ctx->who) + ": " + error_text(msg);
    }
    break;
  }
  case GST_MESSAGE_WARNING: {
    GError *err = nullptr;
    gst_message_parse_warning(msg, &err, nullptr);
    g_print("  %s: warning from %s: %s\n", ctx->who, GST_OBJECT_NAME(GST_MESSAGE_SRC(msg)),
            err ? err->message : "?");
    g_clear_error(&err);
    break;
  }
  case GST_MESSAGE_ELEMENT: {
    const GstStructure *s = gst_message_get_structure(msg);
    if (gst_structure_has_name(s, "rtmp-publish-start")) {
      g_print("  bridge: publish started from %s (application '%s')\n",
              gst_structure_get_string(s, "remote-address"),
              gst_structure_get_string(s, "application"));
    } else if (gst_structure_has_name(s, "rtmp-publish-stop")) {
      guint64 bytes = 0, duration = 0;
      gst_structure_get_uint64(s, "bytes", &bytes);
      gst_structure_get_uint64(s, "duration", &duration);
      g_print("  bridge: publish stopped (%s): %" G_GUINT64_FORMAT " bytes in %.2f s\n",
              gst_structure_get_string(s, "reason"), bytes, duration / 1e9);
    }
    break;
  }
  default:
    break;
  }
  return TRUE;
}

gboolean print_status(gpointer data) {
  auto *in = static_cast<Ingest *>(data);
  std::string bridge = "-";
  GstStructure *stats = nullptr;
  g_object_get(in->bridge, "stats", &stats, nullptr);
  if (stats) {
    double bitrate = 0;
    gst_structure_get_double(stats, "bitrate", &bitrate);
    bridge = format("%s %.0f kbit/s", gst_structure_get_string(stats, "state"), bitrate / 1000.0);
    gst_structure_free(stats);
  }
  g_print("    [%4.1f s] sent %3" G_GUINT64_FORMAT " frames, %3" G_GUINT64_FORMAT
          " AAC | bridge %s, out %3" G_GUINT64_FORMAT " H.264, %3" G_GUINT64_FORMAT
          " Opus | peer got RTP: video %4" G_GUINT64_FORMAT ", audio %3" G_GUINT64_FORMAT "\n",
          running_time(in->bridge_pipe) / 1e9, in->frames_sent.load(), in->audio_sent.load(),
          bridge.c_str(), in->bridge_video.load(), in->bridge_audio.load(), in->rtp_video.load(),
          in->rtp_audio.load());
  return G_SOURCE_CONTINUE;
}

/* The first of `names` that is installed, or "". */
std::string first_factory(std::initializer_list<const char *> names) {
  for (const char *n : names) {
    if (GstElementFactory *f = gst_element_factory_find(n)) {
      gst_object_unref(f);
      return n;
    }
  }
  return "";
}

/* The settings of pipelines/lib.sh's costream_h264_encoder: keyframe every 30 frames, no
 * B-frames. */
std::string h264_encoder(int kbps) {
  const std::string f = first_factory({"x264enc", "openh264enc"});
  if (f == "x264enc")
    return format("x264enc tune=zerolatency speed-preset=veryfast bitrate=%d key-int-max=30 "
                  "bframes=0",
                  kbps);
  if (f == "openh264enc")
    return format("openh264enc bitrate=%d complexity=low gop-size=30 rate-control=bitrate",
                  kbps * 1000);
  return "";
}

/* The decoded recording: frames, and interleaved S16 stereo audio. */
struct Decoded {
  std::atomic<guint64> frames{0};
  Recording audio;
};

/* Decodes the peer's Matroska file as fast as possible; "" or what went wrong. */
std::string decode(const std::string &path, Decoded &out) {
  std::string error;
  GstElement *p =
      launch(format("filesrc location=\"%s\" ! matroskademux name=d "
                    "d.video_0 ! queue ! h264parse ! avdec_h264 ! fakesink name=v sync=false "
                    "d.audio_0 ! queue ! opusdec ! audioconvert "
                    "! audio/x-raw,format=S16LE,rate=%d,channels=2 ! fakesink name=a sync=false",
                    path.c_str(), kRate),
             &error);
  if (!p)
    return "decoder: " + error;
  add_probe(p, "v", "sink", GST_PAD_PROBE_TYPE_BUFFER, count_probe, &out.frames);
  out.audio.attach(p, "a", "sink");
  gst_element_set_state(p, GST_STATE_PLAYING);
  GstBus *bus = gst_element_get_bus(p);
  GstMessage *msg = gst_bus_timed_pop_filtered(
      bus, 15 * GST_SECOND, static_cast<GstMessageType>(GST_MESSAGE_EOS | GST_MESSAGE_ERROR));
  if (!msg)
    error = "decoding " + path + " did not finish within 15 s (a track missing?)";
  else if (GST_MESSAGE_TYPE(msg) == GST_MESSAGE_ERROR)
    error = "decoding " + path + ": " + error_text(msg);
  gst_clear_message(&msg);
  gst_object_unref(bus);
  gst_element_set_state(p, GST_STATE_NULL);
  gst_object_unref(p);
  return error;
}

void stop(GstElement *&pipeline, GstBus *&bus) {
  if (!pipeline)
    return;
  gst_element_set_state(pipeline, GST_STATE_NULL);
  gst_bus_remove_watch(bus);
  gst_object_unref(bus);
  gst_object_unref(pipeline);
  pipeline = nullptr;
  bus = nullptr;
}

} // namespace

void run_ingest(const Options &opt, Report &report) {
  const guint base = opt.rtp_base;
  const std::string mkv = opt.out_dir + "/rtmp-peer.mkv";
  const std::string url = format("rtmp://127.0.0.1:%u/live/demo-key", opt.rtmp_port);
  const int frames = static_cast<int>(std::lround(opt.publish_s * kFps));
  const int audio_buffers = static_cast<int>(std::lround(opt.publish_s * 50)); /* 20 ms each */

  g_print("\n== 1. ingest: RTMP -> rtmpbridge -> RTP -> peer (%.0f s of 320x240@%d H.264 and "
          "AAC stereo, %.0f Hz left / %.0f Hz right)\n",
          opt.publish_s, kFps, kToneLeft, kToneRight);
  const std::string h264 = h264_encoder(600);
  std::string aac = first_factory({"avenc_aac", "fdkaacenc", "voaacenc"});
  /* gst-libav turns ffmpeg's automatic M/S stereo into "always"; forced M/S with intensity
   * stereo leaks each channel's tone into the other (0.08 of 0.25 at 128 kbit/s). OBS's AAC
   * encoders keep the channels apart, and so does this. */
  aac += aac == "avenc_aac" ? " bitrate=128000 aac-is=false aac-ms=false" : " bitrate=128000";
  if (h264.empty() || aac.empty()) {
    report.fail("ingest", std::string("no ") + (h264.empty() ? "H.264" : "AAC") +
                              " encoder (install gstreamer1.0-plugins-bad/-ugly or -libav)");
    return;
  }
  g_print("  publisher: rtmp2sink to %s (%s, %s); bridge on port %u; RTP to 127.0.0.1:%u-%u\n",
          url.c_str(), h264.substr(0, h264.find(' ')).c_str(), aac.substr(0, aac.find(' ')).c_str(),
          opt.rtmp_port, base, base + 7);

  Ingest in;
  BusContext peer_ctx{&in, "peer"}, bridge_ctx{&in, "bridge"}, pub_ctx{&in, "publisher"};
  GstBus *peer_bus = nullptr, *bridge_bus = nullptr, *pub_bus = nullptr;
  std::string error;
  /* The peer first (pipelines/costream-recv --out): it listens before anything is sent. Its
   * ports are bound to loopback without SO_REUSEADDR, so a port in use fails loudly. */
  const std::string udp = "udpsrc address=127.0.0.1 reuse=false";
  in.peer =
      launch(format("rtpbin name=r latency=100 matroskamux name=mux ! filesink name=file "
                    "location=\"%s\" "
                    "%s name=rtpv port=%u caps=\"%s\" ! r.recv_rtp_sink_0 "
                    "%s port=%u ! r.recv_rtcp_sink_0 "
                    "r.send_rtcp_src_0 ! udpsink host=127.0.0.1 port=%u sync=false async=false "
                    "r. ! rtph264depay ! h264parse ! queue ! mux. "
                    "%s name=rtpa port=%u caps=\"%s\" ! r.recv_rtp_sink_1 "
                    "%s port=%u ! r.recv_rtcp_sink_1 "
                    "r.send_rtcp_src_1 ! udpsink host=127.0.0.1 port=%u sync=false async=false "
                    "r. ! rtpopusdepay ! opusparse ! queue ! mux.",
                    mkv.c_str(), udp.c_str(), base, kVideoCaps, udp.c_str(), base + 1, base + 5,
                    udp.c_str(), base + 2, kAudioCaps, udp.c_str(), base + 3, base + 7),
             &error);
  if (!in.peer) {
    report.fail("ingest", "peer pipeline: " + error);
    return;
  }
  add_probe(in.peer, "rtpv", "src", kBuffers, count_probe, &in.rtp_video);
  add_probe(in.peer, "rtpa", "src", kBuffers, count_probe, &in.rtp_audio);
  add_probe(in.peer, "file", "sink", GST_PAD_PROBE_TYPE_EVENT_DOWNSTREAM, eos_probe, &in.recorded);
  peer_bus = gst_element_get_bus(in.peer);
  gst_bus_add_watch(peer_bus, on_bus, &peer_ctx);

  /* The bridge (pipelines/obs-to-peer), ending its streams when the publisher leaves. */
  in.bridge_pipe =
      launch(format("rtpbin name=r rtmpbridge name=b address=127.0.0.1 port=%u stream-key=demo-key "
                    "eos-on-disconnect=true "
                    "b.video ! queue ! rtph264pay pt=96 config-interval=-1 ! r.send_rtp_sink_0 "
                    "r.send_rtp_src_0 ! udpsink name=outv host=127.0.0.1 port=%u "
                    "r.send_rtcp_src_0 ! udpsink host=127.0.0.1 port=%u sync=false async=false "
                    "%s port=%u ! r.recv_rtcp_sink_0 "
                    "b.audio ! queue ! rtpopuspay pt=97 ! r.send_rtp_sink_1 "
                    "r.send_rtp_src_1 ! udpsink name=outa host=127.0.0.1 port=%u "
                    "r.send_rtcp_src_1 ! udpsink host=127.0.0.1 port=%u sync=false async=false "
                    "%s port=%u ! r.recv_rtcp_sink_1",
                    opt.rtmp_port, base, base + 1, udp.c_str(), base + 5, base + 2, base + 3,
                    udp.c_str(), base + 7),
             &error);
  if (in.bridge_pipe) {
    in.bridge = gst_bin_get_by_name(GST_BIN(in.bridge_pipe), "b");
    g_signal_connect(in.bridge, "pad-added", G_CALLBACK(on_bridge_pad), &in);
    add_probe(in.bridge_pipe, "outv", "sink", GST_PAD_PROBE_TYPE_EVENT_DOWNSTREAM, eos_probe,
              &in.bridge_video_eos);
    add_probe(in.bridge_pipe, "outa", "sink", GST_PAD_PROBE_TYPE_EVENT_DOWNSTREAM, eos_probe,
              &in.bridge_audio_eos);
    bridge_bus = gst_element_get_bus(in.bridge_pipe);
    gst_bus_add_watch(bridge_bus, on_bus, &bridge_ctx);
  }

  /* The publisher, as OBS would be: live test sources, a keyframe a second, no B-frames. Each
   * channel carries its own tone (mono sources placed left and right, then mixed). */
  const std::string tone =
      "audiotestsrc is-live=true freq=%.0f volume=%.2f samplesperbuffer=960 num-buffers=%d "
      "! audio/x-raw,format=F32LE,rate=%d,channels=1 ! audioconvert mix-matrix=\"%s\" "
      "! audio/x-raw,channels=2,channel-mask=(bitmask)0x3 ! am. ";
  if (in.bridge_pipe)
    in.publisher = launch(
        format("flvmux name=mux streamable=true ! rtmp2sink name=rtmp2sink location=\"%s\" "
               "videotestsrc is-live=true pattern=ball num-buffers=%d "
               "! video/x-raw,width=320,height=240,framerate=%d/1 ! videoconvert "
               "! video/x-raw,format=I420 ! queue ! %s ! h264parse name=vparse ! queue ! mux.video "
               "audiomixer name=am ! audioconvert ! %s ! aacparse name=aparse "
               "! queue ! mux.audio ",
               url.c_str(), frames, kFps, h264.c_str(), aac.c_str()) +
            format(tone.c_str(), kToneLeft, kToneVolume, audio_buffers, kRate,
                   "<<(float)1.0>, <(float)0.0>>") +
            format(tone.c_str(), kToneRight, kToneVolume, audio_buffers, kRate,
                   "<<(float)0.0>, <(float)1.0>>"),
        &error);
  if (!in.bridge_pipe || !in.publisher) {
    report.fail("ingest", (in.bridge_pipe ? "publisher pipeline: " : "bridge pipeline: ") + error);
    stop(in.bridge_pipe, bridge_bus);
    gst_clear_object(&in.bridge);
    stop(in.peer, peer_bus);
    return;
  }
  add_probe(in.publisher, "vparse", "src", kBuffers, count_probe, &in.frames_sent);
  add_probe(in.publisher, "aparse", "src", kBuffers, count_probe, &in.audio_sent);
  add_probe(in.publisher, "rtmp2sink", "sink", GST_PAD_PROBE_TYPE_EVENT_DOWNSTREAM, eos_probe,
            &in.published);
  pub_bus = gst_element_get_bus(in.publisher);
  gst_bus_add_watch(pub_bus, on_bus, &pub_ctx);

  const guint status = g_timeout_add(1000, print_status, &in);
  bool ok = gst_element_set_state(in.peer, GST_STATE_PLAYING) != GST_STATE_CHANGE_FAILURE &&
            gst_element_set_state(in.bridge_pipe, GST_STATE_PLAYING) != GST_STATE_CHANGE_FAILURE;
  guint bound = 0;
  if (ok) {
    g_object_get(in.bridge, "bound-port", &bound, nullptr);
    ok = bound == opt.rtmp_port;
  }
  if (ok)
    ok = gst_element_set_state(in.publisher, GST_STATE_PLAYING) != GST_STATE_CHANGE_FAILURE;
  if (!ok) {
    pump_until([&] { return !in.error.empty(); }, 1.0); /* collect the reason from the bus */
    if (in.error.empty())
      in.error = "a pipeline did not start";
    if (in.error.find("Could not listen on port") != std::string::npos)
      in.error += format(" (another program has RTMP port %u: try --rtmp-port)", opt.rtmp_port);
    else if (in.error.find("already in use") != std::string::npos)
      in.error +=
          format(" (another program has one of UDP %u-%u: try --rtp-port-base)", base, base + 7);
  }

  /* 1. publish: until everything reached rtmp2sink and the bridge passed on its ends */
  const auto published = [&] {
    return !in.error.empty() || (in.published && in.bridge_video_eos && in.bridge_audio_eos);
  };
  if (in.error.empty() && !pump_until(published, opt.publish_s + 15))
    in.error = format("the publish did not end within %.0f s (publisher sent %" G_GUINT64_FORMAT
                      " frames%s; the bridge's video %s, its audio %s)",
                      opt.publish_s + 15, in.frames_sent.load(),
                      in.published ? " and finished" : ", not finished",
                      in.bridge_video_eos ? "ended" : "did not end",
                      in.bridge_audio_eos ? "ended" : "did not end");
  /* 2. the last packets are in flight on loopback and in the peer's jitter buffers (100 ms) */
  if (in.error.empty())
    pump_until([&] { return !in.error.empty(); }, 0.5);
  g_source_remove(status);
  print_status(&in);
  /* 3. the peer ends its recording */
  if (in.error.empty()) {
    gst_element_send_event(in.peer, gst_event_new_eos());
    if (!pump_until([&] { return !in.error.empty() || in.recorded; }, 10))
      in.error = "the peer's recording did not finish within 10 s";
  }
  const guint64 sent = in.frames_sent, rtp_v = in.rtp_video, rtp_a = in.rtp_audio;
  stop(in.publisher, pub_bus);
  gst_clear_object(&in.bridge);
  stop(in.bridge_pipe, bridge_bus);
  stop(in.peer, peer_bus);
  if (!in.error.empty()) {
    report.fail("ingest", in.error);
    return;
  }

  Decoded d;
  const std::string derr = decode(mkv, d);
  if (!derr.empty()) {
    report.fail("ingest", derr);
    return;
  }
  report.recordings.push_back(
      {mkv, "ingest: what the peer received over RTP (H.264 + Opus stereo, Matroska)"});
  const guint64 got = d.frames;
  const guint64 need = (static_cast<guint64>(frames) * 9 + 9) / 10;
  report.check("ingest video",
               format("%d frames published, at least 90%% (%" G_GUINT64_FORMAT
                      ") decoded at the peer",
                      frames, need),
               format("%" G_GUINT64_FORMAT " sent, %" G_GUINT64_FORMAT
                      " decoded (%" G_GUINT64_FORMAT " RTP packets)",
                      sent, got, rtp_v),
               got >= need && got <= sent);

  const size_t n = d.audio.samples.size() / 2;
  const double seconds = n / static_cast<double>(kRate);
  /* Median over 200 ms windows, skipping the first and last half second (encoder start-up,
   * the stream's end): a packet lost on the way shifts the tone's phase after it, which would
   * spoil one long measurement but only one short window. */
  const auto median = [&](double freq, int ch) {
    std::vector<double> a;
    for (size_t from = kRate / 2; from + kRate / 5 + kRate / 2 <= n; from += kRate / 5)
      a.push_back(amplitude(d.audio.samples, from, from + kRate / 5, freq, kRate, 2, ch));
    if (a.empty())
      return 0.0;
    std::nth_element(a.begin(), a.begin() + a.size() / 2, a.end());
    return a[a.size() / 2];
  };
  const double l = median(kToneLeft, 0), r = median(kToneRight, 1);
  const double lx = median(kToneRight, 0), rx = median(kToneLeft, 1);
  const bool long_enough = seconds >= 0.9 * opt.publish_s;
  const bool tones = std::fabs(l - kToneVolume) < 0.03 && std::fabs(r - kToneVolume) < 0.03 &&
                     lx < 0.01 && rx < 0.01;
  report.check("ingest audio",
               format("%.1f s stereo, left %.0f Hz and right %.0f Hz at %.2f +-0.03, each "
                      "absent (< 0.01) on the other side (medians of 200 ms windows)",
                      opt.publish_s, kToneLeft, kToneRight, kToneVolume),
               format("%.2f s (%" G_GUINT64_FORMAT " RTP packets), left %.3f (%.0f Hz %.3f), "
                      "right %.3f (%.0f Hz %.3f)",
                      seconds, rtp_a, l, kToneRight, lx, r, kToneLeft, rx),
               long_enough && tones);
}

} // namespace demo
