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
#include "helpers.h"
#include "process.h"
#include "testsig.h"

#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <gio/gio.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <memory>
#include <sstream>

using namespace testgst;

namespace {

/* A network namespace with only `lo`, up. False when not permitted (not root). */
bool enter_private_network() {
  if (unshare(CLONE_NEWNET) != 0)
    return false;
  const int fd = socket(AF_INET, SOCK_DGRAM, 0);
  if (fd < 0)
    return false;
  struct ifreq ifr = {};
  std::snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "lo");
  bool ok = ioctl(fd, SIOCGIFFLAGS, &ifr) == 0;
  ifr.ifr_flags |= IFF_UP;
  ok = ok && ioctl(fd, SIOCSIFFLAGS, &ifr) == 0;
  close(fd);
  return ok;
}

/* An HTTP request to 127.0.0.1:port; the response, or "" when nobody answered. */
std::string http(guint16 port, const std::string &method, const std::string &target) {
  GSocketClient *client = g_socket_client_new();
  g_socket_client_set_timeout(client, 5);
  GSocketConnection *conn =
      g_socket_client_connect_to_host(client, "127.0.0.1", port, nullptr, nullptr);
  std::string response;
  if (conn) {
    const std::string req =
        method + " " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    GOutputStream *out = g_io_stream_get_output_stream(G_IO_STREAM(conn));
    GInputStream *in = g_io_stream_get_input_stream(G_IO_STREAM(conn));
    if (g_output_stream_write_all(out, req.data(), req.size(), nullptr, nullptr, nullptr)) {
      char buf[4096];
      gssize n;
      while ((n = g_input_stream_read(in, buf, sizeof buf, nullptr, nullptr)) > 0)
        response.append(buf, static_cast<size_t>(n));
    }
    g_object_unref(conn);
  }
  g_object_unref(client);
  return response;
}

/* The page's getStats() summaries per viewer, in the order the server printed them. */
struct ViewerStats {
  struct Sample {
    long audio = 0, video = 0, frames = 0, sent = 0, tone = 0, shown = 0;
  };
  std::vector<Sample> samples;
  bool talks = false, heard = false;
};

std::map<int, ViewerStats> parse_server_log(const std::string &log) {
  std::map<int, ViewerStats> viewers;
  std::istringstream in(log);
  std::string line;
  /* "<first> <id> <rest>...": the id when the line starts so, else -1 */
  auto id_of = [&](const char *first, const char *rest) {
    int id = -1, end = 0;
    const std::string fmt = std::string(first) + " %d " + rest + "%n";
    return std::sscanf(line.c_str(), fmt.c_str(), &id, &end) == 1 && end > 0 ? id : -1;
  };
  while (std::getline(in, line)) {
    int id;
    if ((id = id_of("viewer", "stats")) >= 0) {
      ViewerStats::Sample s;
      auto field = [&](const char *key) {
        const size_t at = line.find(std::string(key) + "=");
        return at == std::string::npos ? -1L : std::atol(line.c_str() + at + strlen(key) + 1);
      };
      s.audio = field("audio-packets");
      s.video = field("video-packets");
      s.frames = field("frames-decoded");
      s.sent = field("talk-packets-sent");
      s.tone = field("tone");           /* the page's test tone (tab 2), -1 for none */
      s.shown = field("talking-shown"); /* viewers the page lists as talking */
      viewers[id].samples.push_back(s);
    } else if ((id = id_of("viewer", "talks back")) >= 0) {
      viewers[id].talks = true;
    } else if ((id = id_of("talker", "active")) >= 0) {
      viewers[id].heard = true;
    }
  }
  return viewers;
}

/* Received audio and decoded video, growing between two of its reports. */
bool receives(const ViewerStats &v) {
  if (v.samples.size() < 2)
    return false;
  const auto &first = v.samples.front(), &last = v.samples.back();
  return last.audio >= 50 && last.frames >= 30 && last.audio > first.audio &&
         last.frames > first.frames && last.video > first.video;
}

/* tab 1's microphone in the first test: a 440 Hz file */
std::string make_mic(const std::string &path) {
  GError *err = nullptr;
  GstElement *p = gst_parse_launch(("audiotestsrc freq=440 volume=0.5 num-buffers=3000 ! "
                                    "audio/x-raw,format=S16LE,rate=48000,channels=1 ! wavenc "
                                    "! filesink location=" +
                                    path)
                                       .c_str(),
                                   &err);
  REQUIRE(err == nullptr);
  REQUIRE(gst_element_set_state(p, GST_STATE_PLAYING) != GST_STATE_CHANGE_FAILURE);
  CHECK(wait_eos_or_error(p).empty());
  gst_element_set_state(p, GST_STATE_NULL);
  gst_object_unref(p);
  return path;
}

/* The server, listening, media on 127.0.0.1 only. */
std::unique_ptr<Child> start_server(std::vector<std::string> args, const std::string &log) {
  args.insert(args.begin(), {COSTREAM_WEBRTC_SERVER, "--ice-address", "127.0.0.1"});
  auto server = std::make_unique<Child>(args, log);
  REQUIRE(wait_until([&] { return read_text(log).find("open http") != std::string::npos; }, 20));
  return server;
}

/* Headless Chromium from Debian with fake media devices and no permission prompts, its first
 * tab on `url`; more tabs through its DevTools HTTP endpoint (headless takes one URL). */
struct Browser {
  std::string profile;
  guint16 devtools = 0;
  std::unique_ptr<Child> child;

  Browser(const std::string &dir, const std::string &mic, const std::string &url)
      : profile(dir + "/chromium-profile") {
    std::vector<std::string> args = {"chromium",
                                     "--headless=new",
                                     "--no-sandbox",
                                     "--disable-gpu",
                                     "--no-first-run",
                                     "--user-data-dir=" + profile,
                                     "--remote-debugging-port=0",
                                     "--use-fake-ui-for-media-stream",
                                     "--use-fake-device-for-media-stream",
                                     "--autoplay-policy=no-user-gesture-required",
                                     "--allow-loopback-in-peer-connection",
                                     "--disable-features=WebRtcHideLocalIpsWithMdns"};
    if (!mic.empty())
      args.push_back("--use-file-for-fake-audio-capture=" + mic);
    args.push_back(url);
    child = std::make_unique<Child>(args, dir + "/chromium.log");
    REQUIRE(wait_until(
        [&] {
          gchar *text = nullptr;
          if (g_file_get_contents((profile + "/DevToolsActivePort").c_str(), &text, nullptr,
                                  nullptr)) {
            devtools = static_cast<guint16>(std::atoi(text));
            g_free(text);
          }
          return devtools != 0;
        },
        60));
  }
  /* a new tab on `url`; its DevTools id */
  std::string open_tab(std::string url) {
    for (auto [from, to] : {std::pair<const char *, const char *>{"?", "%3F"}, {"&", "%26"}})
      for (size_t at; (at = url.find(from)) != std::string::npos;)
        url.replace(at, 1, to);
    std::string answer;
    REQUIRE(wait_until(
        [&] {
          answer = http(devtools, "PUT", "/json/new?" + url);
          return answer.find(" 200 ") != std::string::npos;
        },
        30));
    const size_t at = answer.find("\"id\": \"");
    REQUIRE(at != std::string::npos);
    return answer.substr(at + 7, answer.find('"', at + 7) - at - 7);
  }
  bool close_tab(const std::string &id) {
    return http(devtools, "GET", "/json/close/" + id).find(" 200 ") != std::string::npos;
  }
};

} // namespace

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
