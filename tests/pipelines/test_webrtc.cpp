/* costream tests
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * The browser talk-back server (pipelines/webrtc) with a real browser: headless Chromium from
 * Debian, two tabs at once. Tab 1 talks back through its (fake) microphone, a 440 Hz file; tab 2
 * through a 660 Hz tone of the page's own. Each tab must receive the producer's audio and video
 * (its getStats(), reported by the page to the server: packets received and frames decoded
 * grow) and the back channel the server records must hold both tabs' tones.
 *
 * When it may (root), the test runs in a network namespace of its own with only a loopback
 * interface; otherwise on the machine's loopback. The server offers ICE on 127.0.0.1 only.
 */
#include "testsig.h"
#include "webrtc_harness.h"

#include <signal.h>

#include <catch2/catch.hpp>

#include <algorithm>
#include <regex>

using namespace testgst;

TEST_CASE("costream-webrtc with headless Chromium: two tabs watch and talk back at once",
          "[webrtc][browser]") {
  const bool private_net = enter_private_network();
  WARN((private_net ? "in a network namespace of its own" : "on the machine's loopback"));

  const std::string dir = test_tmpdir() + "/webrtc";
  g_mkdir_with_parents(dir.c_str(), 0755);
  const std::string mic = make_mic(dir + "/mic-440.wav");
  const std::string base = "http://127.0.0.1:18080/";
  const std::string record = dir + "/backchannel.wav";
  const std::string server_log = dir + "/server.log";
  auto server =
      start_server({"--port", "18080", "--record", record, "--seconds", "120"}, server_log);
  Browser browser(dir, mic, base + "?talk=1&processing=0");
  const std::string tab2 = browser.open_tab(base + "?talk=1&tone=660");

  /* both tabs connected, receiving and decoding, and heard */
  std::map<int, ViewerStats> viewers;
  const bool ok = wait_until(
      [&] {
        viewers = parse_server_log(read_text(server_log));
        int good = 0;
        /* ... and each page lists both viewers as talking (the server's talker messages) */
        for (auto &kv : viewers)
          good += receives(kv.second) && kv.second.talks && kv.second.heard &&
                  kv.second.samples.back().shown == 2;
        return good >= 2;
      },
      90);
  /* a few more seconds of both talking; then tab 2 is closed: its viewer leaves and tab 1 goes
   * on receiving, alone in the back channel */
  bool left = false, still_receiving = false;
  if (ok) {
    g_usleep(4 * G_USEC_PER_SEC);
    /* viewer ids go by connection order, which need not be the tabs' */
    int id2 = -1, id1 = -1;
    for (auto &kv : viewers)
      (kv.second.samples.back().tone == 660 ? id2 : id1) = kv.first;
    REQUIRE(id1 >= 0);
    REQUIRE(id2 >= 0);
    CHECK(browser.close_tab(tab2));
    const std::string gone = "viewer " + std::to_string(id2) + " left";
    left = wait_until([&] { return read_text(server_log).find(gone) != std::string::npos; }, 20);
    const size_t before = parse_server_log(read_text(server_log))[id1].samples.size();
    g_usleep(3 * G_USEC_PER_SEC);
    auto after = parse_server_log(read_text(server_log))[id1].samples;
    still_receiving = before > 0 && after.size() >= before + 2 &&
                      after.back().frames > after[before - 1].frames &&
                      after.back().audio > after[before - 1].audio;
  }
  const int server_status = server->stop(SIGINT, 15);
  browser.child->stop(SIGTERM, 10);
  const std::string log = read_text(server_log);
  INFO("server log (tail):\n" << log.substr(log.size() > 3000 ? log.size() - 3000 : 0));
  REQUIRE(ok);
  CHECK(server_status == 0);
  CHECK(left);
  CHECK(still_receiving);
  viewers = parse_server_log(log);
  REQUIRE(viewers.size() == 2);
  for (auto &kv : viewers) {
    const auto &last = kv.second.samples.back();
    INFO("viewer " << kv.first << ": audio packets " << last.audio << ", video packets "
                   << last.video << ", frames decoded " << last.frames << ", talk packets sent "
                   << last.sent);
    CHECK(receives(kv.second));
    CHECK(last.sent >= 50);
  }

  /* the back channel */
  const auto x = wav_samples(record);
  REQUIRE(x.size() >= 8 * 48000);
  /* in 100 ms windows: a stretch of both tones together (both tabs talking), then, in the last
   * 2 s (tab 2 gone), tab 1's alone; and never the producer's own 880 Hz (the back channel is
   * the viewers' voices only) */
  /* A tone heard is looked for within 2.5% of its frequency (the mixer may be retiming the
   * talker, see amplitude_near); an absent one at its frequency (the strongest noise within a
   * band would count as the tone). */
  auto amps = [&](double freq, size_t from, size_t to, bool heard = true) {
    std::vector<double> a;
    for (size_t s = from; s + 4800 <= to; s += 4800)
      a.push_back(heard ? testsig::amplitude_near(&x[s], 4800, freq, 48000)
                        : testsig::amplitude_at(&x[s], 4800, freq, 48000));
    return a;
  };
  auto median = [](std::vector<double> a) {
    std::sort(a.begin(), a.end());
    return a[a.size() / 2];
  };
  const auto a440 = amps(440, 0, x.size()), a660 = amps(660, 0, x.size());
  int both = 0;
  for (size_t i = 0; i < a440.size(); i++)
    both += a440[i] > 0.02 && a660[i] > 0.02;
  INFO("100 ms windows with both tabs' tones: " << both);
  CHECK(both >= 20);
  const size_t tail = x.size() - 2 * 48000;
  INFO("last 2 s: 440 Hz " << median(amps(440, tail, x.size())) << ", 660 Hz "
                           << median(amps(660, tail, x.size())));
  CHECK(median(amps(440, tail, x.size())) > 0.02);
  CHECK(median(amps(660, tail, x.size(), false)) < 0.005);
  CHECK(median(amps(880, 0, x.size(), false)) < 0.005);
}

TEST_CASE("costream-webrtc fed by an RTMP publish: a viewer who came first gets its stream",
          "[webrtc][browser][rtmp]") {
  enter_private_network();
  const std::string dir = test_tmpdir() + "/webrtc-rtmp";
  g_mkdir_with_parents(dir.c_str(), 0755);
  const std::string flv = dir + "/publish.flv";
  make_av_flv(flv, "aevalsrc=0.25*sin(2*PI*440*t)|0.25*sin(2*PI*660*t):s=48000");
  const std::string server_log = dir + "/server.log";
  auto server = start_server({"--port", "18081", "--rtmp-port", "19451", "--stream-key", "k",
                              "--record", dir + "/backchannel.wav", "--seconds", "120"},
                             server_log);
  Browser browser(dir, "", "http://127.0.0.1:18081/?processing=0");
  /* the viewer is connected (its page reports stats) before anything is published */
  REQUIRE(wait_until([&] { return parse_server_log(read_text(server_log))[1].samples.size() >= 2; },
                     60));
  CHECK(parse_server_log(read_text(server_log))[1].samples.back().frames == 0);

  /* OBS's stand-in: ffmpeg publishes 9 s (the 3 s file three times) in real time */
  Child publisher({"timeout", "60", "ffmpeg", "-hide_banner", "-loglevel", "error", "-re",
                   "-stream_loop", "2", "-i", flv, "-c", "copy", "-f", "flv",
                   "rtmp://127.0.0.1:19451/live/k"},
                  dir + "/ffmpeg.log");
  const bool ok =
      wait_until([&] { return receives(parse_server_log(read_text(server_log))[1]); }, 60);
  const int published = publisher.stop(0, 60); /* (signal 0: just wait for its end) */
  const int server_status = server->stop(SIGINT, 15);
  browser.child->stop(SIGTERM, 10);
  const std::string log = read_text(server_log);
  INFO("server log (tail):\n" << log.substr(log.size() > 3000 ? log.size() - 3000 : 0));
  CHECK(ok);
  CHECK(published == 0);
  CHECK(server_status == 0);
  CHECK(log.find("rtmp-publish-start") != std::string::npos);
  CHECK(log.find("publisher's video is on the air") != std::string::npos);
  CHECK(log.find("publisher's audio is on the air") != std::string::npos);
  const auto last = parse_server_log(log)[1].samples.back();
  INFO("audio packets " << last.audio << ", frames decoded " << last.frames);
  /* 9 s at 25 fps were published; the tab saw most of them */
  CHECK(last.frames >= 150);
  CHECK(last.audio >= 300);
}

TEST_CASE("costream-webrtc --rtmp-stream: two publishers on one port, each a stream of its own",
          "[webrtc][browser][rtmp]") {
  enter_private_network();
  const std::string dir = test_tmpdir() + "/webrtc-rtmp-streams";
  g_mkdir_with_parents(dir.c_str(), 0755);
  const std::string flv = dir + "/publish.flv";
  make_av_flv(flv, "aevalsrc=0.25*sin(2*PI*440*t)|0.25*sin(2*PI*660*t):s=48000");
  HookReceiver hooks;
  const std::string server_log = dir + "/server.log";
  auto server = start_server(
      {"--port", "18083", "--rtmp-port", "19452", "--rtmp-stream", "studio=key-One1",
       "--rtmp-stream", "stage=key-Two2", "--record", dir + "/backchannel.wav", "--webhook",
       "http://127.0.0.1:" + std::to_string(hooks.port) + "/hook", "--seconds", "120"},
      server_log);
  Browser browser(dir, "", "http://127.0.0.1:18083/?stream=studio&processing=0");
  browser.open_tab("http://127.0.0.1:18083/?stream=stage&processing=0");
  /* "viewer N joined stream NAME": which viewer watches which stream */
  std::map<std::string, int> viewer_of;
  REQUIRE(wait_until(
      [&] {
        const std::string log = read_text(server_log);
        for (const char *name : {"studio", "stage"}) {
          std::smatch m;
          if (std::regex_search(log, m,
                                std::regex(std::string("viewer ([0-9]+) joined stream ") + name)))
            viewer_of[name] = std::atoi(m[1].str().c_str());
        }
        return viewer_of.size() == 2;
      },
      60));

  /* two ffmpeg publishers, 9 s each in real time, on one port with different keys; a third
   * with a key nobody serves is refused */
  auto publish = [&](const std::string &key, const std::string &log) {
    return std::make_unique<Child>(
        std::vector<std::string>{"timeout", "60", "ffmpeg", "-hide_banner", "-loglevel", "error",
                                 "-re", "-stream_loop", "2", "-i", flv, "-c", "copy", "-f", "flv",
                                 "rtmp://127.0.0.1:19452/live/" + key},
        log);
  };
  auto one = publish("key-One1", dir + "/ffmpeg-1.log");
  auto two = publish("key-Two2", dir + "/ffmpeg-2.log");
  auto wrong = publish("key-Nobody", dir + "/ffmpeg-3.log");
  const bool ok = wait_until(
      [&] {
        auto viewers = parse_server_log(read_text(server_log));
        return receives(viewers[viewer_of["studio"]]) && receives(viewers[viewer_of["stage"]]);
      },
      60);
  const std::string api = http(18083, "GET", "/api/streams");
  const int refused = wrong->stop(0, 60);
  const int published1 = one->stop(0, 60), published2 = two->stop(0, 60);
  /* both publishes ended: their stop events */
  const bool stopped = wait_until(
      [&] {
        size_t n = 0;
        for (auto &e : hooks.events())
          n += e.find("\"event\": \"publish.stop\"") != std::string::npos;
        return n >= 2;
      },
      20);
  const int server_status = server->stop(SIGINT, 15);
  browser.child->stop(SIGTERM, 10);
  const std::string log = read_text(server_log);
  INFO("server log (tail):\n" << log.substr(log.size() > 3000 ? log.size() - 3000 : 0));
  INFO("GET /api/streams:\n" << api);
  CHECK(ok);
  CHECK(published1 == 0);
  CHECK(published2 == 0);
  CHECK(refused != 0);
  CHECK(server_status == 0);
  CHECK(stopped);
  for (const char *name : {"studio", "stage"}) {
    INFO("stream " << name);
    const auto last = parse_server_log(log)[viewer_of[name]].samples.back();
    INFO("audio packets " << last.audio << ", frames decoded " << last.frames);
    CHECK(last.frames >= 100);
    CHECK(last.audio >= 200);
    CHECK(log.find(std::string("rtmp-publish-start (stream ") + name + ")") != std::string::npos);
    const size_t at = api.find(std::string("\"") + name + "\": {");
    REQUIRE(at != std::string::npos);
    CHECK(api.find("\"kind\": \"rtmp\"", at) != std::string::npos);
    CHECK(api.find("\"state\": \"streaming\"", at) != std::string::npos);
    CHECK(api.find("{\"id\": " + std::to_string(viewer_of[name]) + ",", at) != std::string::npos);
    CHECK(read_file(dir + "/backchannel-" + name + ".wav").size() > 44);
  }
  const auto events = hooks.events();
  std::string all;
  for (auto &e : events)
    all += e + "\n";
  INFO("webhook deliveries:\n" << all);
  for (const char *name : {"studio", "stage"}) {
    const std::string stream = std::string("\"stream\": \"") + name + "\"";
    CHECK(count_events(events, "publish.start", stream) == 1);
    CHECK(count_events(events, "publish.stop", stream) == 1);
    CHECK(count_events(events, "viewer.joined", stream) == 1);
  }
  /* the keys nowhere */
  for (const char *key : {"key-One1", "key-Two2", "key-Nobody"}) {
    CHECK(log.find(key) == std::string::npos);
    CHECK(api.find(key) == std::string::npos);
    CHECK(all.find(key) == std::string::npos);
  }
}
