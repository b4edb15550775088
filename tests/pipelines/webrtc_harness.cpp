/* costream tests
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * What the browser tests of the talk-back server share (see webrtc_harness.h).
 */
#include "webrtc_harness.h"

#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <gio/gio.h>

#include <algorithm>
#include <cstring>
#include <regex>
#include <sstream>

namespace testgst {

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
      s.audio_samples = field("audio-samples");
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

Browser::Browser(const std::string &dir, const std::string &mic, const std::string &url)
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
std::string Browser::open_tab(std::string url) {
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
bool Browser::close_tab(const std::string &id) {
  return http(devtools, "GET", "/json/close/" + id).find(" 200 ") != std::string::npos;
}

HookReceiver::HookReceiver() {
  fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a = {};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  REQUIRE(bind(fd, reinterpret_cast<sockaddr *>(&a), sizeof a) == 0);
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr *>(&a), &len);
  port = ntohs(a.sin_port);
  REQUIRE(listen(fd, 16) == 0);
  thread = std::thread([this] { run(); });
}
HookReceiver::~HookReceiver() {
  stop = true;
  thread.join();
  close(fd);
}
void HookReceiver::run() {
  while (!stop) {
    pollfd p = {fd, POLLIN, 0};
    if (poll(&p, 1, 100) <= 0)
      continue;
    const int c = accept4(fd, nullptr, nullptr, SOCK_CLOEXEC);
    if (c < 0)
      continue;
    serve(c);
    close(c);
  }
}
/* requests on one connection (libsoup keeps it alive) until it closes or goes quiet */
void HookReceiver::serve(int c) {
  std::string in;
  char buf[4096];
  /* more bytes of the connection; false when it closed or went quiet */
  auto read_more = [&] {
    pollfd p = {c, POLLIN, 0};
    if (stop || poll(&p, 1, 2000) <= 0)
      return false;
    const ssize_t n = read(c, buf, sizeof buf);
    if (n <= 0)
      return false;
    in.append(buf, static_cast<size_t>(n));
    return true;
  };
  for (;;) {
    size_t head_end;
    while ((head_end = in.find("\r\n\r\n")) == std::string::npos)
      if (!read_more())
        return;
    std::string head = in.substr(0, head_end);
    std::transform(head.begin(), head.end(), head.begin(), ::tolower);
    size_t length = 0;
    const size_t cl = head.find("content-length:");
    if (cl != std::string::npos)
      length = std::strtoul(head.c_str() + cl + 15, nullptr, 10);
    while (in.size() < head_end + 4 + length)
      if (!read_more())
        return;
    const std::string body = in.substr(head_end + 4, length);
    {
      std::lock_guard<std::mutex> lk(lock);
      bodies.push_back(body);
    }
    in.erase(0, head_end + 4 + length);
    const int status = decide ? decide(body) : 200;
    const std::string answer =
        "HTTP/1.1 " + std::to_string(status) + " X\r\nContent-Length: 0\r\n\r\n";
    if (write(c, answer.data(), answer.size()) != static_cast<ssize_t>(answer.size()))
      return;
  }
}
std::vector<std::string> HookReceiver::events() {
  std::lock_guard<std::mutex> lk(lock);
  return bodies;
}

/* `"field": <number>` in a JSON text (first match at or after `from`), or -1. */
long json_number(const std::string &json, const std::string &field, size_t from) {
  std::smatch m;
  const std::string tail = json.substr(std::min(from, json.size()));
  if (!std::regex_search(tail, m, std::regex("\"" + field + "\": (-?[0-9]+)")))
    return -1;
  return std::atol(m[1].str().c_str());
}

size_t count_events(const std::vector<std::string> &events, const std::string &kind,
                    const std::string &also) {
  return std::count_if(events.begin(), events.end(), [&](const std::string &e) {
    return e.find("\"event\": \"" + kind + "\"") != std::string::npos &&
           e.find(also) != std::string::npos;
  });
}

} // namespace testgst
