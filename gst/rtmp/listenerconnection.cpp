/* costream
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * The listener's connections, on its I/O thread with Core::lock held: accept, read, write,
 * route a publish, apply the authorization answers (the file map: listenerprivate.h).
 */
#include "listenerprivate.h"
#include "netutil.h"

#include <gio/gio.h>
#include <gst/gst.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#define GST_CAT_DEFAULT rtmp_listener_debug

namespace costream::rtmp {

namespace {

/* Past this much unsent reply a connection is dropped (a client that never reads). */
constexpr size_t kMaxOut = 1 << 20;

} // namespace

void Listener::Core::deliver(Delivery::Kind kind, const std::shared_ptr<Slot> &slot) {
  deliveries.push_back(Delivery{kind, slot});
}

void Listener::Core::count_all(uint64_t connections, uint64_t refused, const std::string &app) {
  for (auto &s : slots) {
    if (!app.empty() && s->app != app)
      continue;
    deliver(Delivery::Count, s);
    deliveries.back().n[0] = connections;
    deliveries.back().n[1] = refused;
  }
}

/* (lock) Limits for a connection that publishes to nobody yet: the strictest. */
ChunkReader::Limits Listener::Core::pending_limits() const {
  ChunkReader::Limits l;
  bool first = true;
  for (auto &s : slots) {
    if (first) {
      l = s->config.limits;
      first = false;
      continue;
    }
    l.max_message_size = std::min(l.max_message_size, s->config.limits.max_message_size);
    l.max_chunk_size = std::min(l.max_chunk_size, s->config.limits.max_chunk_size);
  }
  return l;
}

gint64 Listener::Core::handshake_timeout() const {
  gint64 t = 0;
  for (auto &s : slots)
    t = t == 0 ? s->config.handshake_timeout_us : std::min(t, s->config.handshake_timeout_us);
  return t;
}

/* The smallest of the elements' read intervals (none attached: the default). */
gint64 Listener::Core::read_interval() const {
  gint64 t = -1;
  for (auto &s : slots)
    t = t < 0 ? s->config.read_interval_us : std::min(t, s->config.read_interval_us);
  return t < 0 ? PointConfig().read_interval_us : t;
}

/* Each element brings its own budget of connections that have not published yet: many
 * publishers (re)connecting at once to a port with many elements all get through, and a flood
 * of half-open connections still cannot keep one out (the oldest goes). */
unsigned Listener::Core::max_pending() const {
  unsigned m = 0;
  for (auto &s : slots)
    m += s->config.max_pending;
  return m;
}

/* (lock) The element a publish of `key` on `app` goes to; every element's key is compared (in
 * constant time), whichever matches. */
std::shared_ptr<Slot> Listener::Core::route(const std::string &app, const std::string &key) const {
  std::shared_ptr<Slot> exact, any;
  for (auto &s : slots) {
    if (s->app != app)
      continue;
    if (s->config.stream_key.empty()) {
      any = s;
      continue;
    }
    if (Session::keys_equal(key, s->config.stream_key))
      exact = s;
  }
  return exact ? exact : any;
}

SessionRoutes Listener::Core::routes_for(Connection *c) {
  SessionRoutes r;
  r.has_application = [this](const std::string &app) {
    for (auto &s : slots)
      if (s->app == app)
        return true;
    return false;
  };
  r.may_publish = [this, c](const std::string &app, const std::string &key, std::string *why) {
    auto slot = route(app, key);
    if (!slot) {
      *why = "no element serves this stream key";
      return false;
    }
    if (slot->publisher) {
      *why = "another publisher is live for " + slot->config.name;
      return false;
    }
    slot->publisher = c;
    c->slot = slot;
    return true;
  };
  r.ask = [this, c](const std::string &app, const std::string &key) {
    if (!c->slot || !c->slot->config.authorize)
      return false;
    deliver(Delivery::Authorize, c->slot);
    Delivery &d = deliveries.back();
    d.n[0] = c->id;
    d.auth = {app, key, c->remote, c->session->tc_url(), c->session->flash_ver()};
    return true;
  };
  return r;
}

/* (lock) */
void Listener::Core::end_publish(Connection &c, const std::string &reason) {
  if (!c.slot)
    return;
  if (!c.orphaned && c.started) {
    deliver(Delivery::Stopped, c.slot);
    deliveries.back().text = reason;
    deliveries.back().n[0] = c.session->bytes_in() - c.bytes_at_publish;
  }
  if (c.slot->publisher == &c)
    c.slot->publisher = nullptr;
  c.slot.reset();
  c.started = false;
}

/* (lock) */
void Listener::Core::close_connection(size_t i, const std::string &reason) {
  Connection &c = *conns[i];
  end_publish(c, reason);
  GST_DEBUG("port %u: closing %s: %s", port, c.remote.c_str(), reason.c_str());
  conns.erase(conns.begin() + static_cast<std::ptrdiff_t>(i));
}

/* (lock) One session event of connection `c`. */
void Listener::Core::handle_event(Connection &c, SessionEvent &e) {
  switch (e.kind) {
  case SessionEvent::Connected:
    GST_DEBUG("port %u: %s connected to application \"%s\"", port, c.remote.c_str(),
              e.text.c_str());
    break;
  case SessionEvent::Refused:
    GST_WARNING("port %u: refused %s: %s", port, c.remote.c_str(), e.text.c_str());
    count_all(0, 1, c.session->application());
    break;
  case SessionEvent::Publishing:
    if (!c.slot)
      break;
    c.bytes_at_publish = c.session->bytes_in();
    c.started = true;
    c.session->set_limits(c.slot->config.limits);
    deliver(Delivery::Started, c.slot);
    deliveries.back().text = c.remote;
    break;
  case SessionEvent::Unpublished:
    end_publish(c, "unpublished");
    c.waiting_since = g_get_monotonic_time();
    break;
  case SessionEvent::Warning:
    GST_DEBUG("port %u: %s: %s", port, c.remote.c_str(), e.text.c_str());
    break;
  case SessionEvent::Asking:
    GST_DEBUG("port %u: %s: publish waits for %s's authorization", port, c.remote.c_str(),
              c.slot ? c.slot->config.name.c_str() : "?");
    break;
  case SessionEvent::Metadata:
  case SessionEvent::Audio:
  case SessionEvent::Video:
    if (c.slot) {
      deliver(Delivery::Media, c.slot);
      deliveries.back().event = std::move(e);
    }
    break;
  }
}

/* Non-blocking reads and writes, plain or TLS. */
gssize Listener::Core::receive(Connection &c, uint8_t *buf, size_t size, GError **err) {
  if (!c.tls)
    return g_socket_receive(c.socket, reinterpret_cast<gchar *>(buf), size, nullptr, err);
  /* Before its handshake, glib-networking runs it in a thread of its own and says
   * WOULD_BLOCK meanwhile (the handshake timeout still applies). */
  GInputStream *in = g_io_stream_get_input_stream(c.tls);
  const gssize n = g_pollable_input_stream_read_nonblocking(G_POLLABLE_INPUT_STREAM(in), buf, size,
                                                            nullptr, err);
  if (n > 0)
    c.tls_ready = true;
  return n;
}

gssize Listener::Core::send(Connection &c, const uint8_t *data, size_t size, GError **err) {
  if (!c.tls)
    return g_socket_send(c.socket, reinterpret_cast<const gchar *>(data), size, nullptr, err);
  GOutputStream *out = g_io_stream_get_output_stream(c.tls);
  return g_pollable_output_stream_write_nonblocking(G_POLLABLE_OUTPUT_STREAM(out), data, size,
                                                    nullptr, err);
}

/* (lock) Sends what is queued for `c`; false if the socket failed. */
bool Listener::Core::flush_out(Connection &c) {
  while (c.out_pos < c.out.size()) {
    GError *err = nullptr;
    const gssize n = send(c, c.out.data() + c.out_pos, c.out.size() - c.out_pos, &err);
    if (n < 0) {
      const bool again = g_error_matches(err, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK);
      g_error_free(err);
      return again && c.out.size() - c.out_pos <= kMaxOut;
    }
    c.out_pos += static_cast<size_t>(n);
  }
  c.out.clear();
  c.out_pos = 0;
  return true;
}

/* (lock) */
void Listener::Core::accept_connections() {
  for (;;) {
    GError *err = nullptr;
    GSocket *s = g_socket_accept(socket, nullptr, &err);
    if (!s) {
      g_clear_error(&err);
      return;
    }
    g_socket_set_blocking(s, FALSE);
    auto c = std::make_unique<Connection>();
    c->id = next_id++;
    c->socket = s;
    if (certificate) {
      GSocketConnection *sc = g_socket_connection_factory_create_connection(s);
      GError *terr = nullptr;
      c->tls = g_tls_server_connection_new(G_IO_STREAM(sc), certificate.get(), &terr);
      g_object_unref(sc);
      if (!c->tls) {
        GST_WARNING("port %u: no TLS for a connection: %s", port, terr->message);
        g_error_free(terr);
        continue; /* (c closes its socket) */
      }
      g_tls_connection_set_require_close_notify(G_TLS_CONNECTION(c->tls), FALSE);
    }
    c->remote = address_string(s);
    c->accepted_at = c->waiting_since = c->last_rx = g_get_monotonic_time();
    SessionConfig cfg;
    cfg.limits = pending_limits();
    c->session = std::make_unique<Session>(cfg, routes_for(c.get()));
    GST_DEBUG("port %u: connection from %s", port, c->remote.c_str());
    count_all(1, 0, "");
    /* Room for it: the oldest connection that is not publishing goes. */
    const unsigned limit = max_pending();
    size_t pending = 0, oldest = SIZE_MAX;
    for (size_t i = 0; i < conns.size(); i++) {
      if (conns[i]->slot)
        continue;
      pending++;
      if (oldest == SIZE_MAX || conns[i]->accepted_at < conns[oldest]->accepted_at)
        oldest = i;
    }
    if (pending >= limit && oldest != SIZE_MAX)
      close_connection(oldest, "too many pending connections");
    if (limit == 0)
      continue; /* (c closes its socket) */
    conns.push_back(std::move(c));
  }
}

/* (lock) Reads and handles what connection i sent. False: it was closed. */
bool Listener::Core::service_connection(size_t i) {
  Connection &c = *conns[i];
  uint8_t buf[65536];
  /* At most 1 MiB per 50 ms of read interval in one round (168 Mbit/s whatever the interval),
   * so that one connection cannot hold up the others for long. */
  const gint64 reads = std::max<gint64>(16, 16 * interval / 50000);
  for (gint64 rounds = 0; rounds < reads; rounds++) {
    GError *err = nullptr;
    const bool handshaking = c.tls && !c.tls_ready;
    const gssize n = receive(c, buf, sizeof(buf), &err);
    if (n < 0) {
      const bool again = g_error_matches(err, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK);
      std::string msg = err->message;
      g_error_free(err);
      if (again)
        return true;
      if (handshaking) {
        GST_WARNING("port %u: dropping %s: its TLS handshake failed (a plain rtmp:// client on "
                    "this RTMPS port?): %s",
                    port, c.remote.c_str(), msg.c_str());
        close_connection(i, "TLS handshake failed");
      } else {
        close_connection(i, "socket error: " + msg);
      }
      return false;
    }
    if (n == 0) {
      close_connection(i, "disconnected");
      return false;
    }
    if (!c.tls && c.session->bytes_in() == 0 && buf[0] == 0x16) {
      GST_WARNING("port %u: dropping %s: it speaks TLS (an rtmps:// client on this plain RTMP "
                  "port?)",
                  port, c.remote.c_str());
      close_connection(i, "TLS on a plain RTMP port");
      return false;
    }
    c.last_rx = g_get_monotonic_time();
    std::vector<SessionEvent> events;
    std::string why;
    const bool ok = c.session->feed(buf, static_cast<size_t>(n), &c.out, &events, &why);
    for (auto &e : events)
      handle_event(c, e);
    if (c.slot) {
      deliver(Delivery::Count, c.slot);
      deliveries.back().n[2] = static_cast<uint64_t>(n);
      deliveries.back().n[3] = c.session->messages() - c.messages_counted;
      c.messages_counted = c.session->messages();
    }
    if (!ok) {
      GST_WARNING("port %u: dropping %s: %s", port, c.remote.c_str(), why.c_str());
      close_connection(i, "protocol error: " + why);
      return false;
    }
    if (!flush_out(c)) {
      close_connection(i, "socket error while sending");
      return false;
    }
    if (c.session->should_close()) {
      c.closing = true;
      if (c.out.empty()) {
        close_connection(i, "refused");
        return false;
      }
      return true;
    }
    if (throttled(c) || c.session->asking())
      return true; /* downstream is behind, or a decision is awaited: read later */
  }
  return true;
}

/* (lock) The authorization decisions that came in: each publish waiting for one starts or is
 * refused. */
void Listener::Core::apply_answers() {
  for (Answer &a : answers) {
    for (size_t k = 0; k < conns.size(); k++) {
      Connection &c = *conns[k];
      if (c.id != a.ticket || !c.session->asking())
        continue;
      std::vector<SessionEvent> events;
      c.session->authorized(a.allowed, a.why, &c.out, &events);
      for (auto &e : events)
        handle_event(c, e);
      c.last_rx = g_get_monotonic_time(); /* the idle timeout starts now */
      if (!flush_out(c))
        close_connection(k, "socket error while sending");
      else if (c.session->should_close()) {
        c.closing = true;
        if (c.out.empty())
          close_connection(k, "refused");
      }
      break;
    }
  }
  answers.clear();
}

} // namespace costream::rtmp
