/* costream tests
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Publish authorization (issue 17): rtmpserversrc asks an HTTP service of the test's own (or the
 * application through `authorize-publish`) before each publish; ffmpeg publishes. A refused
 * publish gets no byte into the pipeline; a service that is down or slower than the timeout
 * refuses, and another element's publisher on the same port streams on meanwhile. The keys never
 * appear in GStreamer's log. Loopback only, every wait bounded.
 */
#include "helpers.h"
#include "process.h"
#include "rtmp/flv.h"
#include "rtmp_shared.h"

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <gst/app/app.h>

#include <algorithm>
#include <atomic>
#include <functional>
#include <mutex>
#include <thread>

using namespace testgst;

namespace {

/* An authorization service: HTTP on 127.0.0.1, each request's body kept; the answer's status
 * from `decide`, sent after `delay_ms`. */
struct AuthService {
  int fd = -1;
  unsigned port = 0;
  std::atomic<bool> stop{false};
  std::atomic<int> delay_ms{0};
  std::function<int(const std::string &body)> decide;
  std::mutex lock;
  std::vector<std::string> bodies;
  std::thread thread;

  explicit AuthService(std::function<int(const std::string &)> d) : decide(std::move(d)) {
    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a = {};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(bind(fd, reinterpret_cast<sockaddr *>(&a), sizeof a) == 0);
    socklen_t len = sizeof a;
    getsockname(fd, reinterpret_cast<sockaddr *>(&a), &len);
    port = ntohs(a.sin_port);
    REQUIRE(listen(fd, 16) == 0);
    thread = std::thread([this] {
      while (!stop) {
        pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 50) <= 0)
          continue;
        const int c = accept4(fd, nullptr, nullptr, SOCK_CLOEXEC);
        if (c >= 0) {
          serve(c);
          close(c);
        }
      }
    });
  }
  ~AuthService() {
    stop = true;
    thread.join();
    close(fd);
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port) + "/auth"; }
  void serve(int c) {
    std::string in;
    char buf[2048];
    size_t head_end = std::string::npos, length = 0;
    const gint64 end = g_get_monotonic_time() + 5 * G_USEC_PER_SEC;
    while (!stop && g_get_monotonic_time() < end) {
      pollfd p = {c, POLLIN, 0};
      if (poll(&p, 1, 50) <= 0)
        continue;
      const ssize_t n = read(c, buf, sizeof buf);
      if (n <= 0)
        return;
      in.append(buf, static_cast<size_t>(n));
      if (head_end == std::string::npos && (head_end = in.find("\r\n\r\n")) != std::string::npos) {
        const size_t cl = in.find("Content-Length: ");
        length = cl < head_end ? std::strtoul(in.c_str() + cl + 16, nullptr, 10) : 0;
      }
      if (head_end != std::string::npos && in.size() >= head_end + 4 + length)
        break;
    }
    if (head_end == std::string::npos)
      return;
    const std::string body = in.substr(head_end + 4, length);
    {
      std::lock_guard<std::mutex> lk(lock);
      bodies.push_back(body);
    }
    for (int waited = 0; waited < delay_ms && !stop; waited += 10)
      g_usleep(10000);
    const int status = decide(body);
    const std::string answer = "HTTP/1.1 " + std::to_string(status) +
                               " X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    if (write(c, answer.data(), answer.size()) < 0) {
      /* the element gave up: nothing to do */
    }
  }
  std::vector<std::string> requests() {
    std::lock_guard<std::mutex> lk(lock);
    return bodies;
  }
};

/* Allows the key "good-K3y" only. */
int good_key_only(const std::string &body) {
  return body.find("\"stream_key\": \"good-K3y\"") != std::string::npos ? 200 : 403;
}

/* GStreamer's log lines at INFO and above (the keys must not be in them). */
struct LogCapture {
  std::mutex lock;
  std::string text;
  static void handler(GstDebugCategory *, GstDebugLevel level, const gchar *, const gchar *, gint,
                      GObject *, GstDebugMessage *message, gpointer data) {
    if (level > GST_LEVEL_INFO)
      return;
    auto *self = static_cast<LogCapture *>(data);
    std::lock_guard<std::mutex> lk(self->lock);
    self->text += gst_debug_message_get(message);
    self->text += "\n";
  }
  LogCapture() {
    gst_debug_set_threshold_for_name("rtmp*", GST_LEVEL_INFO);
    gst_debug_add_log_function(handler, this, nullptr);
  }
  ~LogCapture() {
    gst_debug_remove_log_function_by_data(this);
    gst_debug_set_threshold_for_name("rtmp*", GST_LEVEL_NONE);
  }
  std::string get() {
    std::lock_guard<std::mutex> lk(lock);
    return text;
  }
};

const std::string &test_flv() {
  static std::string path;
  if (path.empty()) {
    path = test_tmpdir() + "/auth.flv";
    make_av_flv(path, "sine=frequency=440:sample_rate=48000");
  }
  return path;
}

int publish(const std::string &url, bool realtime = false) {
  return ffmpeg_publish_file(test_flv(), url, realtime);
}

/* Video frames in FLV bytes. */
size_t video_frames(const std::vector<uint8_t> &bytes) {
  costream::flv::TagReader r;
  std::vector<costream::flv::Tag> tags;
  std::string why;
  REQUIRE(r.feed(bytes.data(), bytes.size(), &tags, &why));
  return std::count_if(tags.begin(), tags.end(), [](const costream::flv::Tag &t) {
    return t.type == costream::flv::kVideo && costream::flv::avc_packet_type(t.data) == 1;
  });
}

} // namespace

TEST_CASE("publish-auth-url: the service allows one key and refuses another; a refused publish "
          "gets no byte into the pipeline",
          "[rtmp][interop][auth]") {
  test_flv();
  LogCapture log;
  AuthService service(good_key_only);
  Shared p(0, {"publish-auth-url=" + service.url()});
  REQUIRE(gst_element_set_state(p.pipeline, GST_STATE_PLAYING) != GST_STATE_CHANGE_FAILURE);
  g_object_get(p.srcs[0], "bound-port", &p.port, nullptr);
  REQUIRE(p.port > 0);

  CHECK(publish(p.url("bad-K3y")) != 0);
  CHECK(p.drain(0).size() == 0);
  CHECK(p.stat(0, "publishes") == 0);
  CHECK(p.stat(0, "refused") >= 1);

  CHECK(publish(p.url("good-K3y")) == 0);
  CHECK(video_frames(p.drain(0)) == 75);
  CHECK(p.stat(0, "publishes") == 1);

  const auto asked = service.requests();
  REQUIRE(asked.size() == 2);
  const std::string &b = asked[1];
  INFO("request body: " << b);
  CHECK(b.find("\"action\": \"publish\"") != std::string::npos);
  CHECK(b.find("\"application\": \"live\"") != std::string::npos);
  CHECK(b.find("\"stream_key\": \"good-K3y\"") != std::string::npos);
  CHECK(b.find("\"remote_address\": \"127.0.0.1:") != std::string::npos);
  CHECK(b.find("\"tc_url\": \"rtmp://127.0.0.1:" + std::to_string(p.port) + "/live\"") !=
        std::string::npos);
  CHECK(b.find("\"flash_ver\": \"FMLE/3.0") != std::string::npos);
  const std::string text = log.get();
  INFO("log:\n" << text);
  CHECK(text.find("refused") != std::string::npos);
  CHECK(text.find("K3y") == std::string::npos);
}

TEST_CASE("publish-auth-url: a service that is down refuses every publish",
          "[rtmp][interop][auth]") {
  test_flv();
  std::string url;
  {
    AuthService gone(good_key_only);
    url = gone.url();
  } /* its port is closed now */
  Shared p(0, {"publish-auth-url=" + url});
  REQUIRE(gst_element_set_state(p.pipeline, GST_STATE_PLAYING) != GST_STATE_CHANGE_FAILURE);
  g_object_get(p.srcs[0], "bound-port", &p.port, nullptr);
  CHECK(publish(p.url("good-K3y")) != 0);
  CHECK(p.drain(0).size() == 0);
  CHECK(p.stat(0, "publishes") == 0);
}

TEST_CASE("publish-auth-url: a service slower than the timeout refuses, while another element's "
          "publisher on the port streams on",
          "[rtmp][interop][auth][shared]") {
  test_flv();
  AuthService slow(good_key_only);
  slow.delay_ms = 3000;
  const guint port = free_tcp_port();
  Shared p(port, {"stream-key=alice", "stream-key=good-K3y publish-auth-url=" + slow.url() +
                                          " publish-auth-timeout=500"});
  REQUIRE(gst_element_set_state(p.pipeline, GST_STATE_PLAYING) != GST_STATE_CHANGE_FAILURE);
  /* alice publishes in real time (3 s) ... */
  int rc_alice = -1;
  std::thread alice([&] { rc_alice = publish(p.url("alice"), true); });
  REQUIRE(wait_until([&] { return p.stat(0, "publishes") == 1; }, 20));
  /* ... while a publish that waits for the slow service is refused at the timeout */
  const gint64 t0 = g_get_monotonic_time();
  CHECK(publish(p.url("good-K3y")) != 0);
  const double refused_after = (g_get_monotonic_time() - t0) / 1e6;
  alice.join();
  INFO("the slow publish ended after " << refused_after << " s");
  CHECK(refused_after < 2.5); /* the service answers after 3 s; the timeout is 0.5 s */
  CHECK(rc_alice == 0);
  CHECK(video_frames(p.drain(0)) == 75); /* alice's whole stream */
  CHECK(p.drain(1).size() == 0);
  CHECK(p.stat(1, "publishes") == 0);
  CHECK(slow.requests().size() == 1);
}

namespace {

struct SignalLog {
  std::mutex lock;
  std::vector<std::string> keys, tc_urls;
  bool off_main_thread = true;
  GThread *main_thread = g_thread_self();
};

gboolean on_authorize(GstElement *, const gchar *app, const gchar *key, const gchar *remote,
                      const gchar *tc_url, const gchar *flash_ver, gpointer data) {
  auto *log = static_cast<SignalLog *>(data);
  std::lock_guard<std::mutex> lk(log->lock);
  log->keys.push_back(key);
  log->tc_urls.push_back(tc_url);
  log->off_main_thread = log->off_main_thread && g_thread_self() != log->main_thread;
  return g_str_equal(app, "live") && g_str_has_prefix(remote, "127.0.0.1:") &&
         g_str_has_prefix(flash_ver, "FMLE/") && g_str_equal(key, "yes");
}

} // namespace

TEST_CASE("authorize-publish: the application decides in a thread of the element's",
          "[rtmp][interop][auth]") {
  test_flv();
  Shared p(0, {""});
  SignalLog log;
  g_signal_connect(p.srcs[0], "authorize-publish", G_CALLBACK(on_authorize), &log);
  REQUIRE(gst_element_set_state(p.pipeline, GST_STATE_PLAYING) != GST_STATE_CHANGE_FAILURE);
  g_object_get(p.srcs[0], "bound-port", &p.port, nullptr);
  CHECK(publish(p.url("no")) != 0);
  CHECK(p.drain(0).size() == 0);
  CHECK(publish(p.url("yes")) == 0);
  CHECK(video_frames(p.drain(0)) == 75);
  std::lock_guard<std::mutex> lk(log.lock);
  CHECK(log.keys == std::vector<std::string>{"no", "yes"});
  CHECK(log.off_main_thread);
}

TEST_CASE("publish-auth-url that is not http:// fails at start with a clear error",
          "[rtmp][interop][auth]") {
  Shared p(0, {"publish-auth-url=https://auth.example/x"});
  CHECK(gst_element_set_state(p.pipeline, GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE);
  GstBus *bus = gst_element_get_bus(p.pipeline);
  GstMessage *m = gst_bus_pop_filtered(bus, GST_MESSAGE_ERROR);
  gst_object_unref(bus);
  REQUIRE(m != nullptr);
  GError *err = nullptr;
  gst_message_parse_error(m, &err, nullptr);
  CHECK(std::string(err->message).find("publish-auth-url") != std::string::npos);
  CHECK(std::string(err->message).find("https") != std::string::npos);
  g_error_free(err);
  gst_message_unref(m);
}

namespace {

void link_to_fakesink(GstElement *bridge, GstPad *pad, gpointer) {
  GstElement *sink = gst_element_factory_make("fakesink", nullptr);
  g_object_set(sink, "sync", FALSE, "async", FALSE, nullptr);
  GstBin *bin = GST_BIN(GST_ELEMENT_PARENT(bridge));
  gst_bin_add(bin, sink);
  gst_element_sync_state_with_parent(sink);
  GstPad *sp = gst_element_get_static_pad(sink, "sink");
  gst_pad_link(pad, sp);
  gst_object_unref(sp);
}

gboolean allow_yes(GstElement *, const gchar *, const gchar *key, const gchar *, const gchar *,
                   const gchar *, gpointer calls) {
  g_atomic_int_inc(static_cast<gint *>(calls));
  return g_str_equal(key, "yes");
}

} // namespace

TEST_CASE("rtmpbridge: its authorize-publish signal decides its publishes",
          "[rtmp][interop][auth]") {
  test_flv();
  /* (stopped and freed however the test ends: a pipeline left playing would hang gst_deinit) */
  struct Bridge {
    GstElement *p = gst_pipeline_new(nullptr);
    GstElement *b = gst_element_factory_make("rtmpbridge", "b");
    Bridge() { gst_bin_add(GST_BIN(p), b); }
    ~Bridge() {
      gst_element_set_state(p, GST_STATE_NULL);
      gst_object_unref(p);
    }
  } bridge;
  GstElement *b = bridge.b;
  REQUIRE(b != nullptr);
  g_object_set(b, "port", 0u, nullptr);
  gint calls = 0;
  g_signal_connect(b, "authorize-publish", G_CALLBACK(allow_yes), &calls);
  g_signal_connect(b, "pad-added", G_CALLBACK(link_to_fakesink), nullptr);
  REQUIRE(gst_element_set_state(bridge.p, GST_STATE_PLAYING) != GST_STATE_CHANGE_FAILURE);
  guint port = 0;
  g_object_get(b, "bound-port", &port, nullptr);
  REQUIRE(port > 0);
  const std::string url = "rtmp://127.0.0.1:" + std::to_string(port) + "/live/";
  CHECK(publish(url + "no") != 0);
  CHECK(stats_uint64(b, "publishes") == 0);
  CHECK(publish(url + "yes") == 0);
  CHECK(stats_uint64(b, "publishes") == 1);
  CHECK(g_atomic_int_get(&calls) == 2);
}
