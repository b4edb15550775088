/* costream fuzz target: the shared RTMP listener over real loopback sockets. Three elements share
 * one port (keys "a" and "b", and one taking any other key); each input is a connection that does
 * a valid handshake and then sends the fuzzer's bytes (commands, publishes for either key or
 * neither, media, garbage), then closes its side. The listener must answer, route or drop it
 * and close the connection, every time. Input format as fuzz_session's: byte 0 is ignored, the
 * rest follows the handshake. */
#include "rtmp/listener.h"

#include <gio/gio.h>
#include <gst/gst.h>

#include <atomic>
#include <cstdlib>

using namespace costream::rtmp;

namespace {

struct Point : PublishPoint {
  std::atomic<uint64_t> media_bytes{0};
  std::atomic<int> publishing{0};
  void publish_started(const std::string &) override {
    if (publishing++ != 0)
      abort(); /* one publisher per element at a time */
  }
  void media(SessionEvent &e) override {
    if (publishing.load() != 1)
      abort(); /* media only while publishing */
    media_bytes += e.payload.size();
  }
  void publish_stopped(const std::string &, uint64_t) override { publishing--; }
  void count(uint64_t, uint64_t, uint64_t, uint64_t) override {}
  bool throttled() const override { return false; }
};

struct Rig {
  std::shared_ptr<Listener> listener;
  Point a, b, any;
  Rig() {
    gst_init(nullptr, nullptr);
    std::string err;
    listener = Listener::acquire("127.0.0.1", 0, &err);
    if (!listener)
      abort();
    PointConfig c;
    c.limits.max_message_size = 1 << 20;
    c.limits.max_buffered = 4 << 20;
    c.handshake_timeout_us = 2 * G_USEC_PER_SEC;
    for (auto [p, key] : {std::pair<Point *, const char *>{&a, "a"}, {&b, "b"}, {&any, ""}}) {
      c.name = key;
      c.stream_key = key;
      if (!listener->attach(p, c, &err))
        abort();
    }
  }
};

Rig &rig() {
  static Rig *r = new Rig(); /* lives as long as the process */
  return *r;
}

void send_all(GSocket *s, const uint8_t *data, size_t size) {
  while (size > 0) {
    const gssize n =
        g_socket_send(s, reinterpret_cast<const gchar *>(data), size, nullptr, nullptr);
    if (n <= 0)
      return; /* the listener dropped us: fine */
    data += n;
    size -= static_cast<size_t>(n);
  }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  Rig &r = rig();
  GSocket *s =
      g_socket_new(G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_TCP, nullptr);
  GInetAddress *lo = g_inet_address_new_loopback(G_SOCKET_FAMILY_IPV4);
  GSocketAddress *sa = g_inet_socket_address_new(lo, static_cast<guint16>(r.listener->port()));
  g_object_unref(lo);
  const bool connected = g_socket_connect(s, sa, nullptr, nullptr);
  g_object_unref(sa);
  if (!connected)
    abort();
  g_socket_set_timeout(s, 5); /* it closes on our EOF at once; 5 s is a hang */
  std::vector<uint8_t> hs(1 + 2 * kHandshakeSize, 0);
  hs[0] = 3;
  send_all(s, hs.data(), hs.size());
  if (size > 1)
    send_all(s, data + 1, size - 1);
  g_socket_shutdown(s, FALSE, TRUE, nullptr);
  /* Read until the listener closes: it must, on our EOF. */
  char buf[65536];
  for (;;) {
    GError *err = nullptr;
    const gssize n = g_socket_receive(s, buf, sizeof(buf), nullptr, &err);
    if (n > 0)
      continue;
    if (n < 0 && g_error_matches(err, G_IO_ERROR, G_IO_ERROR_TIMED_OUT))
      abort(); /* the listener kept a closed connection open */
    g_clear_error(&err);
    break;
  }
  g_socket_close(s, nullptr);
  g_object_unref(s);
  return 0;
}
