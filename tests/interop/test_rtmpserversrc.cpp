/* costream tests
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * rtmpserversrc against real RTMP clients nobody here wrote: ffmpeg's (`-c copy -f flv
 * rtmp://...`) and GStreamer's rtmp2sink. Every audio and video tag must arrive byte-identical to
 * the source file's; wrong keys are refused; publishing again after a refusal or a disconnect
 * works; a flood of half-open connections does not lock a publisher out. Loopback only, every
 * wait bounded.
 */
#include "helpers.h"
#include "process.h"
#include "rtmp/flv.h"
#include "rtmp_shared.h"

#include <gio/gio.h>

#include <catch2/catch.hpp>

#include <atomic>
#include <map>
#include <mutex>
#include <fstream>
#include <thread>
#include <tuple>

using namespace testgst;

namespace {

/* A 3 s test file: H.264 (no B-frames) + AAC, made once by ffmpeg. */
const std::string &test_flv() {
  static std::string path;
  if (path.empty()) {
    path = test_tmpdir() + "/test.flv";
    make_av_flv(path, "sine=frequency=440:sample_rate=48000");
  }
  return path;
}

std::vector<costream::flv::Tag> media_tags(const std::vector<uint8_t> &bytes) {
  costream::flv::TagReader r;
  std::vector<costream::flv::Tag> tags, media;
  std::string why;
  REQUIRE(r.feed(bytes.data(), bytes.size(), &tags, &why));
  for (auto &t : tags)
    if (t.type != costream::flv::kScript)
      media.push_back(std::move(t));
  return media;
}

struct Server {
  GstElement *pipeline, *src, *sink;
  guint port = 0;
  explicit Server(const char *props) {
    GError *err = nullptr;
    std::string desc = std::string("rtmpserversrc name=src port=0 ") + props +
                       " ! appsink name=out sync=false max-buffers=0";
    pipeline = gst_parse_launch(desc.c_str(), &err);
    REQUIRE(err == nullptr);
    src = gst_bin_get_by_name(GST_BIN(pipeline), "src");
    sink = gst_bin_get_by_name(GST_BIN(pipeline), "out");
    REQUIRE(gst_element_set_state(pipeline, GST_STATE_PLAYING) != GST_STATE_CHANGE_FAILURE);
    g_object_get(src, "bound-port", &port, nullptr);
    REQUIRE(port > 0);
  }
  std::string url(const char *key) const {
    return "rtmp://127.0.0.1:" + std::to_string(port) + "/live/" + key;
  }
  /* Everything received so far (waits until `quiet` passes without data, bounded). */
  std::vector<uint8_t> drain(Collected *keep = nullptr, GstClockTime quiet = GST_SECOND) {
    std::vector<uint8_t> out;
    while (GstSample *s = gst_app_sink_try_pull_sample(GST_APP_SINK(sink), quiet)) {
      GstBuffer *b = gst_sample_get_buffer(s);
      GstMapInfo m;
      gst_buffer_map(b, &m, GST_MAP_READ);
      out.insert(out.end(), m.data, m.data + m.size);
      gst_buffer_unmap(b, &m);
      if (keep)
        keep->buffers.push_back(gst_buffer_ref(b));
      gst_sample_unref(s);
    }
    return out;
  }
  guint64 stat(const char *field) { return stats_uint64(src, field); }
  ~Server() {
    gst_element_set_state(pipeline, GST_STATE_NULL);
    gst_object_unref(src);
    gst_object_unref(sink);
    gst_object_unref(pipeline);
  }
};

int ffmpeg_publish(const std::string &url) {
  return run_command({"timeout", "60", "ffmpeg", "-hide_banner", "-loglevel", "error", "-i",
                      test_flv(), "-c", "copy", "-f", "flv", url});
}

void check_identical(const std::vector<costream::flv::Tag> &got,
                     const std::vector<costream::flv::Tag> &want) {
  REQUIRE(got.size() == want.size());
  size_t audio = 0, frames = 0, mismatches = 0;
  for (size_t i = 0; i < want.size(); i++) {
    audio += want[i].type == costream::flv::kAudio;
    frames += costream::flv::avc_packet_type(want[i].data) == 1;
    mismatches += got[i].type != want[i].type || got[i].data != want[i].data;
  }
  CHECK(mismatches == 0);
  CHECK(audio > 100);  /* 3 s of AAC: ~141 frames */
  CHECK(frames == 75); /* 3 s at 25 fps */
}

/* rtmp2sink publishing the test file's tags (it takes one FLV tag per buffer, as flvmux gives
 * them); certificates are not checked (the RTMPS tests' is self-signed). */
std::string rtmp2sink_publish(const std::string &location) {
  GError *err = nullptr;
  std::string desc = "appsrc name=in caps=video/x-flv format=time ! rtmp2sink "
                     "tls-validation-flags=0 location=" +
                     location;
  GstElement *pub = gst_parse_launch(desc.c_str(), &err);
  REQUIRE(err == nullptr);
  GstElement *in = gst_bin_get_by_name(GST_BIN(pub), "in");
  REQUIRE(gst_element_set_state(pub, GST_STATE_PLAYING) != GST_STATE_CHANGE_FAILURE);
  std::vector<uint8_t> header;
  costream::flv::write_header(true, true, &header);
  GstBuffer *hb = gst_buffer_new_memdup(header.data(), header.size());
  GST_BUFFER_FLAG_SET(hb, GST_BUFFER_FLAG_HEADER);
  REQUIRE(gst_app_src_push_buffer(GST_APP_SRC(in), hb) == GST_FLOW_OK);
  costream::flv::TagReader r;
  std::vector<costream::flv::Tag> tags;
  std::string why;
  auto bytes = read_file(test_flv());
  REQUIRE(r.feed(bytes.data(), bytes.size(), &tags, &why));
  for (auto &t : tags) {
    std::vector<uint8_t> one;
    costream::flv::write_tag(t.type, t.timestamp, t.data.data(), t.data.size(), &one);
    GstBuffer *b = gst_buffer_new_memdup(one.data(), one.size());
    GST_BUFFER_PTS(b) = GST_BUFFER_DTS(b) = t.timestamp * GST_MSECOND;
    REQUIRE(gst_app_src_push_buffer(GST_APP_SRC(in), b) == GST_FLOW_OK);
  }
  gst_app_src_end_of_stream(GST_APP_SRC(in));
  gst_object_unref(in);
  const std::string result = wait_eos_or_error(pub, 30 * GST_SECOND);
  gst_element_set_state(pub, GST_STATE_NULL);
  gst_object_unref(pub);
  return result;
}
} // namespace

TEST_CASE("ffmpeg publishes: every audio and video tag arrives byte-identical", "[rtmp][interop]") {
  const auto want = media_tags(read_file(test_flv()));
  Server s("stream-key=k3y");
  REQUIRE(ffmpeg_publish(s.url("k3y?token=abc")) == 0);
  Collected bufs;
  auto got_bytes = s.drain(&bufs);
  check_identical(media_tags(got_bytes), want);
  /* timestamps: running time, never going back */
  GstClockTime last = 0;
  for (auto *b : bufs.buffers) {
    REQUIRE(GST_BUFFER_PTS_IS_VALID(b));
    CHECK(GST_BUFFER_PTS(b) + 200 * GST_MSECOND >= last); /* audio/video interleave */
    last = std::max(last, GST_BUFFER_PTS(b));
  }
  CHECK(s.stat("publishes") == 1);
}

TEST_CASE("rtmp2sink publishes: every tag arrives byte-identical", "[rtmp][interop]") {
  const auto want = media_tags(read_file(test_flv()));
  Server s("");
  CHECK(rtmp2sink_publish(s.url("any")).empty());
  check_identical(media_tags(s.drain()), want);
}

TEST_CASE("A wrong key is refused; the right one works after it", "[rtmp][interop]") {
  const auto want = media_tags(read_file(test_flv()));
  Server s("stream-key=right");
  CHECK(ffmpeg_publish(s.url("wrong")) != 0);
  CHECK(media_tags(s.drain(nullptr, GST_SECOND / 2)).empty());
  CHECK(s.stat("refused") == 1);
  REQUIRE(ffmpeg_publish(s.url("right")) == 0);
  check_identical(media_tags(s.drain()), want);
}

TEST_CASE("A publisher that leaves and comes back continues the timeline", "[rtmp][interop]") {
  const auto want = media_tags(read_file(test_flv()));
  Server s("");
  REQUIRE(ffmpeg_publish(s.url("a")) == 0);
  Collected first;
  auto b1 = s.drain(&first);
  REQUIRE(ffmpeg_publish(s.url("a")) == 0);
  Collected second;
  auto b2 = s.drain(&second);
  /* no second FLV header: the second publish's tags continue the stream */
  auto all = b1;
  all.insert(all.end(), b2.begin(), b2.end());
  auto tags = media_tags(all);
  REQUIRE(tags.size() == 2 * want.size());
  REQUIRE(!second.buffers.empty());
  CHECK(GST_BUFFER_FLAG_IS_SET(second.buffers[0], GST_BUFFER_FLAG_DISCONT));
  GstClockTime end1 = 0;
  for (auto *b : first.buffers)
    end1 = std::max(end1, GST_BUFFER_PTS(b));
  CHECK(GST_BUFFER_PTS(second.buffers[0]) >= end1);
  CHECK(s.stat("publishes") == 2);
}

TEST_CASE("A flood of half-open connections does not lock a publisher out", "[rtmp][interop]") {
  const auto want = media_tags(read_file(test_flv()));
  Server s("max-pending-connections=8 handshake-timeout=3000");
  std::vector<GSocketConnection *> idle;
  GSocketClient *client = g_socket_client_new();
  for (int i = 0; i < 64; i++) {
    GSocketConnection *c =
        g_socket_client_connect_to_host(client, "127.0.0.1", s.port, nullptr, nullptr);
    REQUIRE(c != nullptr);
    if (i % 2) { /* half of them start a handshake and stop */
      const char c0 = 3;
      g_output_stream_write(g_io_stream_get_output_stream(G_IO_STREAM(c)), &c0, 1, nullptr,
                            nullptr);
    }
    idle.push_back(c);
  }
  REQUIRE(ffmpeg_publish(s.url("k")) == 0);
  check_identical(media_tags(s.drain()), want);
  for (auto *c : idle)
    g_object_unref(c);
  g_object_unref(client);
}

namespace {

/* Reads until the server closes the connection (true) or `timeout_ms` passes (false). */
bool closed_by_server(GSocketConnection *c, int timeout_ms) {
  GSocket *s = g_socket_connection_get_socket(c);
  g_socket_set_timeout(s, 1);
  const gint64 end = g_get_monotonic_time() + timeout_ms * 1000;
  char buf[65536];
  while (g_get_monotonic_time() < end) {
    GError *err = nullptr;
    const gssize n = g_socket_receive(s, buf, sizeof(buf), nullptr, &err);
    if (n == 0)
      return true;
    if (n < 0) {
      const bool timed_out = g_error_matches(err, G_IO_ERROR, G_IO_ERROR_TIMED_OUT);
      g_error_free(err);
      if (!timed_out)
        return true; /* reset */
    }
  }
  return false;
}

} // namespace

TEST_CASE("A hostile session is dropped and the element keeps serving", "[rtmp][interop]") {
  const auto want = media_tags(read_file(test_flv()));
  Server s("handshake-timeout=800");
  GSocketClient *client = g_socket_client_new();
  /* 1: a valid handshake, then a chunk announcing a 200 MB message */
  GSocketConnection *c =
      g_socket_client_connect_to_host(client, "127.0.0.1", s.port, nullptr, nullptr);
  REQUIRE(c != nullptr);
  std::vector<uint8_t> bytes;
  bytes.reserve(1 + 2 * 1536 + 12);
  bytes.push_back(3);
  bytes.resize(1 + 2 * 1536, 0);
  for (uint8_t b : {0x04, 0, 0, 0, 0x0b, 0xeb, 0xc2, 0x09, 1, 0, 0, 0})
    bytes.push_back(b);
  GOutputStream *os = g_io_stream_get_output_stream(G_IO_STREAM(c));
  REQUIRE(g_output_stream_write_all(os, bytes.data(), bytes.size(), nullptr, nullptr, nullptr));
  CHECK(closed_by_server(c, 5000));
  g_object_unref(c);
  /* 2: garbage instead of a handshake */
  c = g_socket_client_connect_to_host(client, "127.0.0.1", s.port, nullptr, nullptr);
  REQUIRE(c != nullptr);
  std::vector<uint8_t> junk(4000, 0x7f);
  os = g_io_stream_get_output_stream(G_IO_STREAM(c));
  g_output_stream_write_all(os, junk.data(), junk.size(), nullptr, nullptr, nullptr);
  CHECK(closed_by_server(c, 5000));
  g_object_unref(c);
  /* 3: silence: closed after the handshake timeout */
  c = g_socket_client_connect_to_host(client, "127.0.0.1", s.port, nullptr, nullptr);
  REQUIRE(c != nullptr);
  const gint64 t0 = g_get_monotonic_time();
  CHECK(closed_by_server(c, 5000));
  CHECK(g_get_monotonic_time() - t0 >= 700 * 1000);
  g_object_unref(c);
  g_object_unref(client);
  /* and a real publisher still gets through */
  REQUIRE(ffmpeg_publish(s.url("k")) == 0);
  check_identical(media_tags(s.drain()), want);
}

namespace {

/* Element messages and warnings posted by the server, recorded as they are posted. */
struct BusLog {
  std::mutex lock;
  std::vector<GstStructure *> elements;
  std::vector<std::string> warnings;
  static GstBusSyncReply handler(GstBus *, GstMessage *m, gpointer data) {
    auto *log = static_cast<BusLog *>(data);
    std::lock_guard<std::mutex> lk(log->lock);
    if (GST_MESSAGE_TYPE(m) == GST_MESSAGE_ELEMENT && gst_message_get_structure(m))
      log->elements.push_back(gst_structure_copy(gst_message_get_structure(m)));
    if (GST_MESSAGE_TYPE(m) == GST_MESSAGE_WARNING) {
      GError *e = nullptr;
      gst_message_parse_warning(m, &e, nullptr);
      log->warnings.push_back(e->message);
      g_error_free(e);
    }
    return GST_BUS_PASS;
  }
  ~BusLog() {
    for (auto *s : elements)
      gst_structure_free(s);
  }
  std::vector<const GstStructure *> named(const char *name) {
    std::lock_guard<std::mutex> lk(lock);
    std::vector<const GstStructure *> out;
    for (auto *s : elements)
      if (gst_structure_has_name(s, name))
        out.push_back(s);
    return out;
  }
};

void attach(BusLog &log, GstElement *pipeline) {
  GstBus *bus = gst_element_get_bus(pipeline);
  gst_bus_set_sync_handler(bus, &BusLog::handler, &log, nullptr);
  gst_object_unref(bus);
}

} // namespace

TEST_CASE("Publish messages, a refused second publisher, EOS on disconnect", "[rtmp][interop]") {
  BusLog log;
  Server s("eos-on-disconnect=true");
  attach(log, s.pipeline);
  /* publisher 1 in real time (3 s); publisher 2 tries while it is live */
  std::atomic<int> first{-1};
  std::thread t([&] {
    first = run_command({"timeout", "60", "ffmpeg", "-hide_banner", "-loglevel", "error", "-re",
                         "-i", test_flv(), "-c", "copy", "-f", "flv", s.url("one")});
  });
  const gint64 deadline = g_get_monotonic_time() + 10 * G_USEC_PER_SEC;
  while (s.stat("publishes") == 0 && g_get_monotonic_time() < deadline)
    g_usleep(20000);
  REQUIRE(s.stat("publishes") == 1);
  CHECK(ffmpeg_publish(s.url("two")) != 0);
  CHECK(s.stat("refused") == 1);
  t.join();
  CHECK(first == 0);
  /* the stream ends with EOS once the publisher left */
  Collected out;
  pull_all(s.sink, out, 10 * GST_SECOND);
  CHECK(gst_app_sink_is_eos(GST_APP_SINK(s.sink)));

  auto starts = log.named("rtmp-publish-start");
  auto stops = log.named("rtmp-publish-stop");
  REQUIRE(starts.size() == 1);
  REQUIRE(stops.size() == 1);
  CHECK(std::string(gst_structure_get_string(starts[0], "application")) == "live");
  CHECK(std::string(gst_structure_get_string(starts[0], "remote-address")).find("127.0.0.1") !=
        std::string::npos);
  const GstStructure *meta = nullptr;
  meta = gst_value_get_structure(gst_structure_get_value(starts[0], "metadata"));
  double width = 0;
  CHECK(gst_structure_get_double(meta, "width", &width));
  CHECK(width == 320);
  guint64 bytes = 0, duration = 0;
  gst_structure_get_uint64(stops[0], "bytes", &bytes);
  gst_structure_get_uint64(stops[0], "duration", &duration);
  CHECK(bytes > 100000);
  CHECK(duration >= 2 * GST_SECOND); /* -re: about 3 s */
  /* the key is in no message */
  for (auto *st : log.elements) {
    gchar *str = gst_structure_to_string(st);
    CHECK(std::string(str).find("one") == std::string::npos);
    g_free(str);
  }
}

TEST_CASE("H.264 with B-frames posts a one-time warning", "[rtmp][interop]") {
  const std::string path = test_tmpdir() + "/bframes.flv";
  REQUIRE(run_command({"timeout",
                       "60",
                       "ffmpeg",
                       "-hide_banner",
                       "-loglevel",
                       "error",
                       "-y",
                       "-f",
                       "lavfi",
                       "-i",
                       "testsrc=size=160x120:rate=25:duration=2",
                       "-c:v",
                       "libx264",
                       "-preset",
                       "ultrafast",
                       "-bf",
                       "2",
                       "-x264-params",
                       "b-pyramid=0",
                       "-an",
                       path}) == 0);
  BusLog log;
  Server s("");
  attach(log, s.pipeline);
  REQUIRE(run_command({"timeout", "60", "ffmpeg", "-hide_banner", "-loglevel", "error", "-i", path,
                       "-c", "copy", "-f", "flv", s.url("k")}) == 0);
  s.drain();
  std::lock_guard<std::mutex> lk(log.lock);
  REQUIRE(log.warnings.size() == 1);
  CHECK(log.warnings[0].find("bframes=0") != std::string::npos);
}

TEST_CASE("A publish longer than the handshake timeout ends cleanly on the publisher's side",
          "[rtmp][interop]") {
  /* The handshake timeout is for reaching a publish: a connection that has published for longer
   * must not be cut the moment it unpublishes (rtmp2sink then reports "connection closed
   * remotely" as it stops). 1 s of live video against a 300 ms handshake timeout. */
  Server s("handshake-timeout=300");
  GError *err = nullptr;
  GstElement *pub = gst_parse_launch(
      ("videotestsrc is-live=true num-buffers=30 ! video/x-raw,width=320,height=240,"
       "framerate=30/1 ! openh264enc ! h264parse ! flvmux streamable=true ! rtmp2sink location=" +
       s.url("any"))
          .c_str(),
      &err);
  REQUIRE(err == nullptr);
  REQUIRE(gst_element_set_state(pub, GST_STATE_PLAYING) != GST_STATE_CHANGE_FAILURE);
  CHECK(wait_eos_or_error(pub, 30 * GST_SECOND).empty());
  /* rtmp2sink finishes (deleteStream) while it stops: no error then either */
  gst_element_set_state(pub, GST_STATE_READY); /* (in NULL the bus drops messages) */
  GstBus *bus = gst_element_get_bus(pub);
  GstMessage *error = gst_bus_pop_filtered(bus, GST_MESSAGE_ERROR);
  if (error) {
    GError *e = nullptr;
    gst_message_parse_error(error, &e, nullptr);
    FAIL_CHECK("rtmp2sink: " << e->message);
    g_error_free(e);
    gst_message_unref(error);
  }
  gst_object_unref(bus);
  gst_element_set_state(pub, GST_STATE_NULL);
  gst_object_unref(pub);
  CHECK(s.drain().size() > 10000);
}

/* ---- one port, many publishers ------------------------------------------------------------ */

namespace {

/* A 3 s file whose AAC is a tone of its own, so whose publish reached which element shows. */
const std::string &tone_flv(int freq) {
  static std::map<int, std::string> paths;
  auto &p = paths[freq];
  if (p.empty()) {
    p = test_tmpdir() + "/tone-" + std::to_string(freq) + ".flv";
    make_av_flv(p, "sine=frequency=" + std::to_string(freq) + ":sample_rate=48000");
  }
  return p;
}

} // namespace

TEST_CASE("One port, many publishers: each publish reaches the element serving its key",
          "[rtmp][interop][shared]") {
  Shared s(free_tcp_port(), {"stream-key=alice", "stream-key=bob", "" /* any other key */});
  REQUIRE(gst_element_set_state(s.pipeline, GST_STATE_PLAYING) != GST_STATE_CHANGE_FAILURE);
  for (auto *src : s.srcs) {
    guint bound = 0;
    g_object_get(src, "bound-port", &bound, nullptr);
    CHECK(bound == s.port);
  }
  const std::vector<std::pair<std::string, int>> pubs = {
      {"alice", 300}, {"bob", 500}, {"carol", 700}};
  std::vector<std::string> files; /* made here, not by the threads at once */
  for (auto &p : pubs)
    files.push_back(tone_flv(p.second));
  /* all three at once */
  std::vector<int> rc(3, -1);
  std::vector<std::thread> threads;
  for (size_t i = 0; i < 3; i++)
    threads.emplace_back([&, i] { rc[i] = ffmpeg_publish_file(files[i], s.url(pubs[i].first)); });
  for (auto &t : threads)
    t.join();
  for (size_t i = 0; i < 3; i++) {
    INFO("publisher " << pubs[i].first);
    CHECK(rc[i] == 0);
    check_identical(media_tags(s.drain(i)), media_tags(read_file(tone_flv(pubs[i].second))));
    CHECK(s.stat(i, "publishes") == 1);
    CHECK(s.stat(i, "connections") == 3); /* every connection on the port */
  }
}

TEST_CASE("One port: twelve publishers connecting at once all get through",
          "[rtmp][interop][shared]") {
  /* More than one element's max-pending-connections (8) connect at the same moment: each element
   * brings its own budget of unpublished connections, so none of them is dropped. */
  std::vector<std::string> props;
  for (int i = 0; i < 12; i++)
    props.push_back("stream-key=p" + std::to_string(i));
  Shared s(free_tcp_port(), props);
  REQUIRE(gst_element_set_state(s.pipeline, GST_STATE_PLAYING) != GST_STATE_CHANGE_FAILURE);
  const std::string file = test_flv(); /* made here, not by twelve threads at once */
  const auto want = media_tags(read_file(file));
  std::vector<int> rc(12, -1);
  std::vector<std::thread> threads;
  for (int i = 0; i < 12; i++)
    threads.emplace_back(
        [&, i] { rc[i] = ffmpeg_publish_file(file, s.url("p" + std::to_string(i))); });
  for (auto &t : threads)
    t.join();
  for (int i = 0; i < 12; i++) {
    INFO("publisher " << i);
    CHECK(rc[i] == 0);
    check_identical(media_tags(s.drain(i)), want);
  }
}

TEST_CASE("One port: a key nobody serves is refused before any media; a key served twice fails "
          "to start, naming both elements",
          "[rtmp][interop][shared]") {
  {
    Shared s(free_tcp_port(), {"stream-key=alice", "stream-key=bob"});
    REQUIRE(gst_element_set_state(s.pipeline, GST_STATE_PLAYING) != GST_STATE_CHANGE_FAILURE);
    CHECK(ffmpeg_publish_file(tone_flv(300), s.url("mallory")) != 0);
    for (size_t i = 0; i < 2; i++) {
      CHECK(media_tags(s.drain(i, GST_SECOND / 2)).empty());
      CHECK(s.stat(i, "refused") == 1);
      CHECK(s.stat(i, "publishes") == 0);
    }
    /* the right key still works on the same port */
    REQUIRE(ffmpeg_publish_file(tone_flv(500), s.url("bob")) == 0);
    check_identical(media_tags(s.drain(1)), media_tags(read_file(tone_flv(500))));
  }
  {
    Shared s(free_tcp_port(), {"stream-key=k3y-x9", "stream-key=k3y-x9"});
    const std::string text = s.start_error();
    INFO(text);
    CHECK(text.find("src0") != std::string::npos);
    CHECK(text.find("src1") != std::string::npos);
    CHECK(text.find("k3y-x9") == std::string::npos); /* the key itself is never shown */
  }
}

TEST_CASE("One port: elements start and stop while another element's publisher streams",
          "[rtmp][interop][shared]") {
  const guint port = free_tcp_port();
  const std::string alice_file = tone_flv(300), bob_file = tone_flv(500); /* before any thread */
  Shared a(port, {"stream-key=alice"});
  REQUIRE(gst_element_set_state(a.pipeline, GST_STATE_PLAYING) != GST_STATE_CHANGE_FAILURE);
  /* alice publishes in real time (3 s) ... */
  int rc_alice = -1;
  std::thread alice([&] { rc_alice = ffmpeg_publish_file(alice_file, a.url("alice"), true); });
  /* ... while bob's element comes, takes a publish, and goes, twice */
  for (int round = 0; round < 2; round++) {
    Shared b(port, {"stream-key=bob"});
    REQUIRE(gst_element_set_state(b.pipeline, GST_STATE_PLAYING) != GST_STATE_CHANGE_FAILURE);
    REQUIRE(ffmpeg_publish_file(bob_file, b.url("bob")) == 0);
    check_identical(media_tags(b.drain(0)), media_tags(read_file(bob_file)));
  } /* b stops: its listener reference goes, alice's connection stays */
  CHECK(ffmpeg_publish_file(bob_file, a.url("bob")) != 0); /* nobody serves bob now */
  alice.join();
  CHECK(rc_alice == 0);
  check_identical(media_tags(a.drain(0)), media_tags(read_file(alice_file)));
  CHECK(a.stat(0, "publishes") == 1);
}

/* A real-time publish of `file` to `key`; its wall time in seconds. */
static double publish_timed(Shared &s, const std::string &file, const std::string &key) {
  const gint64 t0 = g_get_monotonic_time();
  CHECK(ffmpeg_publish_file(file, s.url(key), true) == 0);
  return (g_get_monotonic_time() - t0) / 1e6;
}

TEST_CASE("One port: the smallest read interval applies, reads never come faster, and each element "
          "reports its own as latency",
          "[rtmp][interop][shared]") {
  const std::string file = tone_flv(300); /* 3 s */
  /* Elements ask for 1000 ms and 100 ms: the port reads every 100 ms. */
  Shared s(free_tcp_port(),
           {"stream-key=slow read-interval=1000", "stream-key=fast read-interval=100"});
  REQUIRE(gst_element_set_state(s.pipeline, GST_STATE_PLAYING) != GST_STATE_CHANGE_FAILURE);
  for (size_t i = 0; i < 2; i++) {
    GstPad *pad = gst_element_get_static_pad(s.srcs[i], "src");
    GstQuery *q = gst_query_new_latency();
    CHECK(gst_pad_query(pad, q));
    gboolean live = FALSE;
    GstClockTime min = 0, max = 0;
    gst_query_parse_latency(q, &live, &min, &max);
    CHECK(live);
    CHECK(min == (i == 0 ? 1000 : 100) * GST_MSECOND);
    gst_query_unref(q);
    gst_object_unref(pad);
  }
  const double secs = publish_timed(s, file, "slow");
  check_identical(media_tags(s.drain(0)), media_tags(read_file(file)));
  const guint64 reads = s.stat(0, "reads");
  INFO(reads << " reads in " << secs << " s");
  /* a 3 s publish sends media all along: read at 100 ms, far more often than 1000 ms allows
   * (+3: the reads at 5 ms while the publish is set up, and the last one after it) */
  CHECK(static_cast<double>(reads) > secs / 1.0 + 3);
  CHECK(static_cast<double>(reads) <= secs / 0.1 + 3);
  /* changed while playing: the element says its latency changed */
  {
    GstBus *bus = gst_element_get_bus(s.pipeline);
    gst_bus_set_flushing(bus, TRUE); /* (what came before) */
    gst_bus_set_flushing(bus, FALSE);
    g_object_set(s.srcs[0], "read-interval", 500u, nullptr);
    GstMessage *m = gst_bus_timed_pop_filtered(bus, 5 * GST_SECOND, GST_MESSAGE_LATENCY);
    CHECK(m != nullptr);
    CHECK((m && GST_MESSAGE_SRC(m) == GST_OBJECT(s.srcs[0])));
    if (m)
      gst_message_unref(m);
    gst_object_unref(bus);
  }

  /* Alone, 1000 ms: never more than one read per second, every tag still there. */
  Shared alone(free_tcp_port(), {"stream-key=slow read-interval=1000"});
  REQUIRE(gst_element_set_state(alone.pipeline, GST_STATE_PLAYING) != GST_STATE_CHANGE_FAILURE);
  const double secs2 = publish_timed(alone, file, "slow");
  check_identical(media_tags(alone.drain(0)), media_tags(read_file(file)));
  const guint64 reads2 = alone.stat(0, "reads");
  INFO(reads2 << " reads in " << secs2 << " s alone");
  CHECK(reads2 >= 2);
  CHECK(static_cast<double>(reads2) <= secs2 / 1.0 + 3);
}

TEST_CASE("The keyframe interval is measured; over 2 s it posts a one-time warning naming the OBS "
          "setting",
          "[rtmp][interop]") {
  auto make = [](const std::string &name, int gop) {
    const std::string path = test_tmpdir() + "/" + name;
    REQUIRE(run_command({"timeout",
                         "60",
                         "ffmpeg",
                         "-hide_banner",
                         "-loglevel",
                         "error",
                         "-y",
                         "-f",
                         "lavfi",
                         "-i",
                         "testsrc=size=160x120:rate=25:duration=7",
                         "-c:v",
                         "libx264",
                         "-preset",
                         "ultrafast",
                         "-bf",
                         "0",
                         "-g",
                         std::to_string(gop),
                         "-keyint_min",
                         std::to_string(gop),
                         "-sc_threshold",
                         "0",
                         "-an",
                         path}) == 0);
    return path;
  };
  const std::string slow = make("gop3s.flv", 75), fast = make("gop1s.flv", 25);
  for (const auto &[path, interval, warns] :
       {std::tuple<std::string, GstClockTime, size_t>{slow, 3 * GST_SECOND, 1},
        std::tuple<std::string, GstClockTime, size_t>{fast, 1 * GST_SECOND, 0}}) {
    INFO(path);
    BusLog log;
    Server s("");
    attach(log, s.pipeline);
    for (int publish = 0; publish < 2; publish++) /* warned once, not per publish */
      REQUIRE(run_command({"timeout", "60", "ffmpeg", "-hide_banner", "-loglevel", "error", "-i",
                           path, "-c", "copy", "-f", "flv", s.url("k")}) == 0);
    s.drain();
    CHECK(s.stat("keyframe-interval") == interval);
    std::lock_guard<std::mutex> lk(log.lock);
    REQUIRE(log.warnings.size() == warns);
    if (warns)
      CHECK(log.warnings[0].find("Keyframe Interval to 1 or 2 s") != std::string::npos);
  }
}

/* ---- RTMPS -------------------------------------------------------------------------------- */

namespace {

/* A self-signed certificate for 127.0.0.1, made once with openssl: "cert key" paths. */
const std::pair<std::string, std::string> &test_certificate() {
  static std::pair<std::string, std::string> files;
  if (files.first.empty()) {
    files = {test_tmpdir() + "/cert.pem", test_tmpdir() + "/key.pem"};
    REQUIRE(run_command({"timeout", "60", "openssl", "req", "-x509", "-newkey", "rsa:2048",
                         "-nodes", "-keyout", files.second, "-out", files.first, "-days", "2",
                         "-subj", "/CN=127.0.0.1"}) == 0);
  }
  return files;
}

std::string tls_props() {
  return "tls-cert-file=" + test_certificate().first + " tls-key-file=" + test_certificate().second;
}

std::string rtmps_url(const Server &s, const char *key) {
  return "rtmps://127.0.0.1:" + std::to_string(s.port) + "/live/" + key;
}

} // namespace

TEST_CASE("RTMPS: ffmpeg and rtmp2sink publish over TLS; every tag arrives byte-identical",
          "[rtmp][interop][tls]") {
  const auto want = media_tags(read_file(test_flv()));
  {
    Server s(("stream-key=k3y " + tls_props()).c_str());
    REQUIRE(ffmpeg_publish(rtmps_url(s, "k3y")) == 0);
    check_identical(media_tags(s.drain()), want);
    CHECK(s.stat("publishes") == 1);
  }
  {
    Server s(tls_props().c_str());
    CHECK(rtmp2sink_publish(rtmps_url(s, "any")).empty());
    check_identical(media_tags(s.drain()), want);
  }
}

TEST_CASE("RTMPS: plain RTMP on the TLS port, TLS on the plain port and TLS garbage are dropped; "
          "the element keeps serving",
          "[rtmp][interop][tls]") {
  const auto want = media_tags(read_file(test_flv()));
  {
    Server s(("handshake-timeout=2000 " + tls_props()).c_str());
    CHECK(ffmpeg_publish(s.url("k")) != 0); /* rtmp:// to the RTMPS port */
    /* a TLS ClientHello-looking record, then garbage */
    GSocketClient *client = g_socket_client_new();
    GSocketConnection *c =
        g_socket_client_connect_to_host(client, "127.0.0.1", s.port, nullptr, nullptr);
    REQUIRE(c != nullptr);
    std::vector<uint8_t> junk = {0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03};
    for (int i = 0; i < 4000; i++)
      junk.push_back(static_cast<uint8_t>(i * 37 + 11));
    g_output_stream_write_all(g_io_stream_get_output_stream(G_IO_STREAM(c)), junk.data(),
                              junk.size(), nullptr, nullptr, nullptr);
    CHECK(closed_by_server(c, 5000));
    g_object_unref(c);
    /* and one that connects and says nothing: the handshake timeout covers TLS */
    c = g_socket_client_connect_to_host(client, "127.0.0.1", s.port, nullptr, nullptr);
    REQUIRE(c != nullptr);
    CHECK(closed_by_server(c, 6000));
    g_object_unref(c);
    g_object_unref(client);
    CHECK(media_tags(s.drain(nullptr, GST_SECOND / 2)).empty());
    REQUIRE(ffmpeg_publish(rtmps_url(s, "k")) == 0);
    check_identical(media_tags(s.drain()), want);
  }
  {
    Server s("");
    CHECK(ffmpeg_publish(rtmps_url(s, "k")) != 0); /* rtmps:// to the plain port */
    CHECK(media_tags(s.drain(nullptr, GST_SECOND / 2)).empty());
    REQUIRE(ffmpeg_publish(s.url("k")) == 0);
    check_identical(media_tags(s.drain()), want);
  }
}

TEST_CASE("RTMPS and plain RTMP cannot share a port", "[rtmp][interop][tls][shared]") {
  Shared s(free_tcp_port(), {"stream-key=a", "stream-key=b " + tls_props()});
  const std::string text = s.start_error();
  INFO(text);
  CHECK(text.find("RTMPS") != std::string::npos);
  CHECK(text.find("src0") != std::string::npos);
  CHECK(text.find("src1") != std::string::npos);
}
