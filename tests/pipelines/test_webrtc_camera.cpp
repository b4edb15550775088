/* costream tests
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * The browser talk-back server with an IP camera as the producer: GStreamer's own ONVIF RTSP
 * server (costream-test-camera: H.264, PCMA audio at 1 kHz, a PCMA back channel it decodes and
 * records) behind `serve --camera door=rtsp://user:pass@...`, and two headless Chromium tabs on
 * the stream talking with different tones (440 Hz fake microphone, 660 Hz page tone). Checked:
 * each tab decodes the camera's video and receives its audio (getStats), the camera's recording
 * holds both tabs' tones; the camera restarted mid-run comes back by itself and video and
 * talk-back resume for the same pages; a tab leaving leaves the other's tone; GET /api/streams
 * and the webhook deliveries (a local HTTP receiver) match what happened; the password appears
 * nowhere (server output, API, webhook bodies).
 */
#include "testsig.h"
#include "webrtc_harness.h"

#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <mutex>
#include <regex>
#include <thread>

using namespace testgst;

#ifdef COSTREAM_TEST_CAMERA

namespace {

/* The camera's recording (S16LE mono 8 kHz) as doubles. */
std::vector<double> camera_recording(const std::string &path) {
  const auto bytes = read_file(path);
  std::vector<double> x(bytes.size() / 2);
  for (size_t i = 0; i < x.size(); i++)
    x[i] = static_cast<int16_t>(bytes[2 * i] | (bytes[2 * i + 1] << 8)) / 32768.0;
  return x;
}

/* 100 ms windows of `x` in which both tones are heard, and the medians of each tone's level
 * over the last `tail_s` seconds. */
struct Tones {
  int both = 0;
  double tail440 = 0, tail660 = 0;
};
Tones tones(const std::vector<double> &x, double tail_s) {
  const size_t w = 800;
  Tones t;
  std::vector<double> a440, a660;
  for (size_t s = 0; s + w <= x.size(); s += w) {
    const double p = testsig::amplitude_near(&x[s], w, 440, 8000);
    const double q = testsig::amplitude_near(&x[s], w, 660, 8000);
    t.both += p > 0.02 && q > 0.02;
    if (s + static_cast<size_t>(tail_s * 8000) >= x.size()) {
      a440.push_back(p);
      a660.push_back(testsig::amplitude_at(&x[s], w, 660, 8000));
    }
  }
  auto median = [](std::vector<double> a) {
    if (a.empty())
      return -1.0;
    std::sort(a.begin(), a.end());
    return a[a.size() / 2];
  };
  t.tail440 = median(a440);
  t.tail660 = median(a660);
  return t;
}

/* The camera's own audio: "pcma", or "opus" (40 ms packets, see test_camera.cpp). */
std::unique_ptr<Child> start_camera(unsigned port, const std::string &record,
                                    const std::string &log, const std::string &audio = "pcma") {
  auto cam = std::make_unique<Child>(
      std::vector<std::string>{COSTREAM_TEST_CAMERA, "--port", std::to_string(port), "--audio",
                               audio, "--tone", "1000", "--backchannel", "pcma", "--record", record,
                               "--user", "admin", "--password", "s3cret-Pw"},
      log);
  REQUIRE(
      wait_until([&] { return read_text(log).find("ready rtsp://") != std::string::npos; }, 20));
  return cam;
}

/* Audio samples the browser played per audio packet it received, between two reports: the
 * packets' duration at 48 kHz (960: 20 ms, 1920: 40 ms). */
double samples_per_packet(const ViewerStats::Sample &a, const ViewerStats::Sample &b) {
  return b.audio > a.audio ? static_cast<double>(b.audio_samples - a.audio_samples) /
                                 static_cast<double>(b.audio - a.audio)
                           : -1;
}

/* The last getStats() sample of every viewer. */
std::map<int, ViewerStats::Sample> last_samples(const std::string &log) {
  std::map<int, ViewerStats::Sample> out;
  for (auto &kv : parse_server_log(log))
    if (!kv.second.samples.empty())
      out[kv.first] = kv.second.samples.back();
  return out;
}

} // namespace

TEST_CASE("costream-webrtc --camera: two tabs talk into an ONVIF camera's back channel",
          "[webrtc][browser][camera]") {
  enter_private_network();
  const std::string dir = test_tmpdir() + "/webrtc-camera";
  g_mkdir_with_parents(dir.c_str(), 0755);
  const std::string mic = make_mic(dir + "/mic-440.wav");
  HookReceiver hooks;
  const unsigned cam_port = free_tcp_port();
  auto camera = start_camera(cam_port, dir + "/camera-1.raw", dir + "/camera-1.log");

  const std::string server_log = dir + "/server.log";
  const std::string url = "rtsp://admin:s3cret-Pw@127.0.0.1:" + std::to_string(cam_port) + "/cam";
  auto server =
      start_server({"--port", "18082", "--camera", "door=" + url, "--webhook",
                    "http://127.0.0.1:" + std::to_string(hooks.port) + "/hook", "--seconds", "170"},
                   server_log);
  const std::string base = "http://127.0.0.1:18082/?stream=door&talk=1";
  Browser browser(dir, mic, base + "&processing=0");
  const std::string tab2 = browser.open_tab(base + "&tone=660");

  /* both tabs receive the camera and are heard */
  std::map<int, ViewerStats> viewers;
  const bool ok = wait_until(
      [&] {
        viewers = parse_server_log(read_text(server_log));
        int good = 0;
        for (auto &kv : viewers)
          good += receives(kv.second) && kv.second.talks && kv.second.heard;
        return good >= 2;
      },
      90);
  int id1 = -1, id2 = -1;
  for (auto &kv : viewers)
    (!kv.second.samples.empty() && kv.second.samples.back().tone == 660 ? id2 : id1) = kv.first;
  std::string api;
  bool restarted = false, resumed = false, left = false, still_receiving = false;
  double restart_s = -1, video_s = -1, talk_s = -1;
  /* the camera's audio per packet in tab 1: G.711 encoded by rtspcamera (20 ms), then the
   * second camera's own Opus passed through (40 ms) */
  double pcma_ratio = -1, opus_ratio = -1;
  if (ok && id1 >= 0 && id2 >= 0) {
    const auto start = last_samples(read_text(server_log));
    g_usleep(4 * G_USEC_PER_SEC); /* both talking into the camera */
    api = http(18082, "GET", "/api/streams");

    /* the camera goes away and comes back on the same address, now sending Opus */
    const auto before = last_samples(read_text(server_log));
    if (start.count(id1) && before.count(id1))
      pcma_ratio = samples_per_packet(start.at(id1), before.at(id1));
    camera->stop(SIGTERM, 10);
    camera.reset();
    REQUIRE(wait_until(
        [&] { return read_text(server_log).find("camera door lost") != std::string::npos; }, 30));
    const gint64 t0 = g_get_monotonic_time();
    camera = start_camera(cam_port, dir + "/camera-2.raw", dir + "/camera-2.log", "opus");
    restarted = wait_until(
        [&] {
          const std::string log = read_text(server_log);
          return log.find("camera door connected", log.find("camera door lost")) !=
                 std::string::npos;
        },
        60);
    restart_s = (g_get_monotonic_time() - t0) / 1e6;
    /* the same pages decode new frames (25, a second's worth) and their talk-back reaches the
     * new camera (half a second of it recorded) */
    const auto video_back = wait_until(
        [&] {
          auto now = last_samples(read_text(server_log));
          int good = 0;
          for (int id : {id1, id2})
            good += now.count(id) && now[id].frames >= before.at(id).frames + 25;
          return good == 2;
        },
        60);
    video_s = (g_get_monotonic_time() - t0) / 1e6;
    const auto talk_back =
        wait_until([&] { return read_file(dir + "/camera-2.raw").size() >= 8000; }, 60);
    talk_s = (g_get_monotonic_time() - t0) / 1e6;
    resumed = video_back && talk_back &&
              wait_until([&] { return read_file(dir + "/camera-2.raw").size() >= 3 * 16000; }, 30);
    const auto opus_start = last_samples(read_text(server_log));
    g_usleep(3 * G_USEC_PER_SEC);
    const auto opus_end = last_samples(read_text(server_log));
    if (opus_start.count(id1) && opus_end.count(id1))
      opus_ratio = samples_per_packet(opus_start.at(id1), opus_end.at(id1));

    /* tab 2 leaves; tab 1 goes on */
    CHECK(browser.close_tab(tab2));
    left = wait_until(
        [&] {
          return read_text(server_log).find("viewer " + std::to_string(id2) + " left") !=
                 std::string::npos;
        },
        20);
    const auto at_leave = last_samples(read_text(server_log));
    g_usleep(3 * G_USEC_PER_SEC);
    auto after = last_samples(read_text(server_log));
    still_receiving = after.count(id1) && after[id1].frames > at_leave.at(id1).frames &&
                      after[id1].audio > at_leave.at(id1).audio;
  }
  const int server_status = server->stop(SIGINT, 15);
  browser.child->stop(SIGTERM, 10);
  camera->stop(SIGTERM, 10);
  const std::string log = read_text(server_log);
  INFO("server log (tail):\n" << log.substr(log.size() > 4000 ? log.size() - 4000 : 0));
  REQUIRE(ok);
  REQUIRE(id1 >= 0);
  REQUIRE(id2 >= 0);
  CHECK(server_status == 0);
  WARN("camera restart: rtspcamera connected again "
       << restart_s
       << " s after the camera was back up; both "
          "pages decoded new video after "
       << video_s << " s, talk-back recorded by it after " << talk_s << " s");
  CHECK(restarted);
  CHECK(resumed);
  WARN("tab 1: audio samples per packet " << pcma_ratio << " (PCMA camera), " << opus_ratio
                                          << " (Opus camera)");
  CHECK(pcma_ratio == Approx(960).epsilon(0.15));
  CHECK(opus_ratio == Approx(1920).epsilon(0.15));
  CHECK(left);
  CHECK(still_receiving);

  /* the camera's recordings: both tabs' tones, then (second camera, after tab 2 left) tab 1's */
  const auto rec1 = camera_recording(dir + "/camera-1.raw");
  const auto rec2 = camera_recording(dir + "/camera-2.raw");
  const Tones t1 = tones(rec1, 1.0), t2 = tones(rec2, 2.0);
  INFO("camera 1: " << rec1.size() / 8000.0 << " s, " << t1.both
                    << " windows with both tones; camera 2: " << rec2.size() / 8000.0 << " s, "
                    << t2.both << " with both, last 2 s: 440 Hz " << t2.tail440 << ", 660 Hz "
                    << t2.tail660);
  CHECK(t1.both >= 20);
  CHECK(t2.both >= 10);
  CHECK(t2.tail440 > 0.02);
  CHECK(t2.tail660 < 0.005);

  /* the API while both talked */
  INFO("GET /api/streams:\n" << api);
  CHECK(api.find(" 200 ") != std::string::npos);
  CHECK(api.find("\"door\": {") != std::string::npos);
  CHECK(api.find("\"kind\": \"rtsp\"") != std::string::npos);
  CHECK(api.find("\"url\": \"rtsp://***@127.0.0.1:" + std::to_string(cam_port) + "/cam\"") !=
        std::string::npos);
  CHECK(api.find("\"codecs\": [\"H264\", \"PCMA\"]") != std::string::npos);
  CHECK(api.find("\"audio_output\": \"opus-encoded\"") != std::string::npos);
  CHECK(api.find("\"backchannel\": {\"codec\": \"PCMA\"") != std::string::npos);
  CHECK(json_number(api, "packets") > 100);
  CHECK(json_number(api, "talkers") == 2);
  CHECK(json_number(api, "active") == 2);
  for (int id : {id1, id2}) {
    const size_t at = api.find("{\"id\": " + std::to_string(id) + ",");
    INFO("consumer " << id);
    REQUIRE(at != std::string::npos);
    CHECK(api.find("HeadlessChrome", at) != std::string::npos);
    CHECK(json_number(api, "packets", api.find("\"send\"", at)) > 100);
    CHECK(json_number(api, "packets", api.find("\"recv\"", at)) > 100);
  }

  /* the webhooks, in the order things happened */
  const auto events = hooks.events();
  std::string all;
  for (auto &e : events)
    all += e + "\n";
  INFO("webhook deliveries:\n" << all);
  const std::string v1 = "\"viewer\": " + std::to_string(id1),
                    v2 = "\"viewer\": " + std::to_string(id2);
  CHECK(count_events(events, "camera.connected", "\"stream\": \"door\"") == 2);
  CHECK(count_events(events, "camera.connected", "\"audio_output\": \"opus-encoded\"") == 1);
  CHECK(count_events(events, "camera.connected", "\"audio_output\": \"opus-passthrough\"") == 1);
  CHECK(count_events(events, "camera.lost", "\"stream\": \"door\"") >= 1);
  CHECK(count_events(events, "viewer.joined", v1) == 1);
  CHECK(count_events(events, "viewer.joined", v2) == 1);
  CHECK(count_events(events, "viewer.left", v2) == 1);
  CHECK(count_events(events, "talker.started", v1) >= 1);
  CHECK(count_events(events, "talker.started", v2) >= 1);
  CHECK(count_events(events, "talker.stopped", v2) >= 1);
  long last_seq = 0;
  bool ordered = true;
  for (auto &e : events) {
    const long seq = json_number(e, "seq");
    ordered = ordered && seq > last_seq;
    last_seq = seq;
  }
  CHECK(ordered);

  /* the password nowhere */
  CHECK(log.find("s3cret") == std::string::npos);
  CHECK(api.find("s3cret") == std::string::npos);
  CHECK(all.find("s3cret") == std::string::npos);
  CHECK(all.find("admin") == std::string::npos);
}

#endif
