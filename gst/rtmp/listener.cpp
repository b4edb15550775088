/* costream
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "listener.h"
#include "netutil.h"

#include <gio/gio.h>
#include <gst/gst.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <map>
#include <mutex>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unordered_map>
#include <unistd.h>
#include <vector>

GST_DEBUG_CATEGORY_STATIC(rtmp_listener_debug);
#define GST_CAT_DEFAULT rtmp_listener_debug

namespace costream::rtmp {

namespace {

using Lock = std::unique_lock<std::mutex>;

/* epoll ids: the wake-up eventfd, the listening socket, then the connections. */
constexpr uint64_t kWakeId = 0, kListenId = 1, kFirstConnId = 2;

/* The I/O thread reads all its sockets at most once per this many microseconds. RTMP publishers
 * buffer seconds; 20 ms more costs nothing there, and one wake-up then reads every publisher's
 * messages of 20 ms, instead of one wake-up per message per publisher (docs/rtmpserversrc.md:
 * 10 ms and 20 ms measured). */
constexpr gint64 kRoundUs = 20000;

/* Past this much unsent reply a connection is dropped (a client that never reads). */
constexpr size_t kMaxOut = 1 << 20;

/* An attached element. */
struct Slot {
  PublishPoint *point;
  PointConfig config;
  std::string app; /* config.application, trimmed */
  /* Held while the point is called: detach() waits for a call in progress (recursive: an element
   * may be detached from inside its own call). */
  std::recursive_mutex call;
  bool attached = true;                   /* (call) */
  struct Connection *publisher = nullptr; /* (the listener's lock) */
};

struct Connection {
  uint64_t id = 0;         /* in epoll */
  bool registered = false; /* with epoll, for `events` */
  uint32_t events = 0;
  GSocket *socket = nullptr;
  GIOStream *tls = nullptr; /* the GTlsServerConnection over `socket`, on an RTMPS port */
  bool tls_ready = false;   /* its handshake is done (data came through) */
  std::string remote;
  std::unique_ptr<Session> session;
  std::vector<uint8_t> out;
  size_t out_pos = 0;
  gint64 accepted_at = 0; /* monotonic, us */
  /* When the connection last started waiting for a publish: accepted, or its publish ended. The
   * handshake timeout counts from here (a publisher that unpublishes still gets to send
   * deleteStream and close by itself). */
  gint64 waiting_since = 0;
  gint64 last_rx = 0;
  bool closing = false;       /* close once `out` is sent */
  bool started = false;       /* its element was told publish_started */
  bool orphaned = false;      /* its element detached: close without telling it */
  std::shared_ptr<Slot> slot; /* the element it publishes to */
  uint64_t bytes_at_publish = 0;
  uint64_t messages_counted = 0;
  ~Connection() {
    if (tls) /* no close_notify wait: the socket closes below */
      g_object_unref(tls);
    if (socket) {
      /* Shut down first: a TLS handshake still running in glib-networking's thread holds the
       * socket in a read; a bare close would neither wake it nor tell the peer. */
      g_socket_shutdown(socket, TRUE, TRUE, nullptr);
      g_socket_close(socket, nullptr);
      g_object_unref(socket);
    }
  }
};

/* A call to an element, made after the listener's lock is released. */
struct Delivery {
  enum Kind { Started, Media, Stopped, Count, Authorize } kind;
  std::shared_ptr<Slot> slot;
  std::string text;
  SessionEvent event{SessionEvent::Warning};
  uint64_t n[4] = {0, 0, 0, 0}; /* Count: connections, refused, bytes, messages; Stopped: bytes;
                                   Authorize: the ticket */
  AuthRequest auth;
};

/* An authorization decision, handed to the I/O thread. */
struct Answer {
  uint64_t ticket;
  bool allowed;
  std::string why;
};

std::mutex registry_lock;
std::map<std::string, std::weak_ptr<Listener>> &registry() {
  static std::map<std::string, std::weak_ptr<Listener>> r;
  return r;
}

} // namespace

struct Listener::Core {
  std::string key; /* in the registry; empty: not registered (port 0) */
  GSocket *socket = nullptr;
  unsigned port = 0;
  int wake_fd = -1;
  int epoll_fd = -1;
  uint64_t next_id = kFirstConnId; /* the I/O thread's */
  std::atomic<bool> stop{false};
  GThread *thread = nullptr;

  mutable std::mutex lock;
  std::vector<std::shared_ptr<Slot>> slots;       /* (lock) */
  std::shared_ptr<GTlsCertificate> certificate;   /* (lock) RTMPS when set: the slots' */
  std::vector<std::unique_ptr<Connection>> conns; /* (lock) written by the I/O thread only */

  std::vector<Delivery> deliveries; /* the I/O thread only */
  std::vector<Answer> answers;      /* (lock) authorization decisions not yet applied */

  ~Core() {
    conns.clear();
    if (socket) {
      g_socket_close(socket, nullptr);
      g_object_unref(socket);
    }
    if (wake_fd >= 0)
      close(wake_fd);
    if (epoll_fd >= 0)
      close(epoll_fd);
  }
  void wake() {
    const uint64_t one = 1;
    if (write(wake_fd, &one, sizeof(one)) < 0) {
      /* the counter is full: the thread is awake anyway */
    }
  }

  /* ---- the I/O thread; (lock) where said ---- */

  void deliver(Delivery::Kind kind, const std::shared_ptr<Slot> &slot) {
    deliveries.push_back(Delivery{kind, slot});
  }
  void count_all(uint64_t connections, uint64_t refused, const std::string &app) {
    for (auto &s : slots) {
      if (!app.empty() && s->app != app)
        continue;
      deliver(Delivery::Count, s);
      deliveries.back().n[0] = connections;
      deliveries.back().n[1] = refused;
    }
  }

  /* (lock) Limits for a connection that publishes to nobody yet: the strictest. */
  ChunkReader::Limits pending_limits() const {
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
  gint64 handshake_timeout() const {
    gint64 t = 0;
    for (auto &s : slots)
      t = t == 0 ? s->config.handshake_timeout_us : std::min(t, s->config.handshake_timeout_us);
    return t;
  }
  /* Each element brings its own budget of connections that have not published yet: many
   * publishers (re)connecting at once to a port with many elements all get through, and a flood
   * of half-open connections still cannot keep one out (the oldest goes). */
  unsigned max_pending() const {
    unsigned m = 0;
    for (auto &s : slots)
      m += s->config.max_pending;
    return m;
  }

  /* (lock) The element a publish of `key` on `app` goes to; every element's key is compared (in
   * constant time), whichever matches. */
  std::shared_ptr<Slot> route(const std::string &app, const std::string &key) const {
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

  SessionRoutes routes_for(Connection *c) {
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
  void end_publish(Connection &c, const std::string &reason) {
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
  void close_connection(size_t i, const std::string &reason) {
    Connection &c = *conns[i];
    end_publish(c, reason);
    GST_DEBUG("port %u: closing %s: %s", port, c.remote.c_str(), reason.c_str());
    conns.erase(conns.begin() + static_cast<std::ptrdiff_t>(i));
  }

  /* (lock) One session event of connection `c`. */
  void handle_event(Connection &c, SessionEvent &e) {
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
  static gssize receive(Connection &c, uint8_t *buf, size_t size, GError **err) {
    if (!c.tls)
      return g_socket_receive(c.socket, reinterpret_cast<gchar *>(buf), size, nullptr, err);
    /* Before its handshake, glib-networking runs it in a thread of its own and says
     * WOULD_BLOCK meanwhile (the handshake timeout still applies). */
    GInputStream *in = g_io_stream_get_input_stream(c.tls);
    const gssize n = g_pollable_input_stream_read_nonblocking(G_POLLABLE_INPUT_STREAM(in), buf,
                                                              size, nullptr, err);
    if (n > 0)
      c.tls_ready = true;
    return n;
  }
  static gssize send(Connection &c, const uint8_t *data, size_t size, GError **err) {
    if (!c.tls)
      return g_socket_send(c.socket, reinterpret_cast<const gchar *>(data), size, nullptr, err);
    GOutputStream *out = g_io_stream_get_output_stream(c.tls);
    return g_pollable_output_stream_write_nonblocking(G_POLLABLE_OUTPUT_STREAM(out), data, size,
                                                      nullptr, err);
  }

  /* (lock) Sends what is queued for `c`; false if the socket failed. */
  static bool flush_out(Connection &c) {
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

  bool throttled(const Connection &c) const { return c.slot && c.slot->point->throttled(); }

  /* (lock) */
  void accept_connections() {
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
  bool service_connection(size_t i) {
    Connection &c = *conns[i];
    uint8_t buf[65536];
    for (int rounds = 0; rounds < 16; rounds++) {
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
  void apply_answers() {
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

  /* (lock) */
  void check_timeouts() {
    const gint64 hs = handshake_timeout();
    const gint64 now = g_get_monotonic_time();
    for (size_t k = conns.size(); k-- > 0;) {
      Connection &c = *conns[k];
      if (c.slot) {
        const gint64 idle = c.slot->config.idle_timeout_us;
        if (idle > 0 && now - c.last_rx > idle)
          close_connection(k, "idle timeout");
        continue;
      }
      if (hs > 0 && now - c.waiting_since > hs)
        close_connection(k, "no publish within the handshake timeout");
    }
  }

  /* No lock: the calls to the elements. */
  void run_deliveries() {
    std::vector<Slot *> fed; /* got media this round */
    for (auto &d : deliveries) {
      if (d.kind == Delivery::Media && (fed.empty() || fed.back() != d.slot.get()) &&
          std::find(fed.begin(), fed.end(), d.slot.get()) == fed.end())
        fed.push_back(d.slot.get());
      std::lock_guard<std::recursive_mutex> g(d.slot->call);
      if (!d.slot->attached)
        continue;
      PublishPoint *p = d.slot->point;
      switch (d.kind) {
      case Delivery::Started:
        p->publish_started(d.text);
        break;
      case Delivery::Media:
        p->media(d.event);
        break;
      case Delivery::Stopped:
        p->publish_stopped(d.text, d.n[0]);
        break;
      case Delivery::Count:
        p->count(d.n[0], d.n[1], d.n[2], d.n[3]);
        break;
      case Delivery::Authorize:
        p->authorize(d.n[0], d.auth);
        break;
      }
    }
    for (auto &d : deliveries) { /* (the slots stay alive: the deliveries hold them) */
      Slot *slot = d.slot.get();
      auto it = std::find(fed.begin(), fed.end(), slot);
      if (it == fed.end())
        continue;
      fed.erase(it);
      std::lock_guard<std::recursive_mutex> g(slot->call);
      if (slot->attached)
        slot->point->round_done();
    }
    deliveries.clear();
  }

  /* (lock) What connection `c` waits for, and epoll told so when it changed. */
  void want(Connection &c) {
    uint32_t ev = 0;
    if (!c.closing && !throttled(c) && !(c.tls && !c.tls_ready) && !c.session->asking())
      ev |= EPOLLIN;
    if (!c.out.empty())
      ev |= EPOLLOUT;
    if (c.registered && ev == c.events)
      return;
    struct epoll_event e = {};
    e.events = ev;
    e.data.u64 = c.id;
    epoll_ctl(epoll_fd, c.registered ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, g_socket_get_fd(c.socket),
              &e);
    c.registered = true;
    c.events = ev;
  }

  void run() {
    std::vector<struct epoll_event> ready(256);
    std::unordered_map<uint64_t, uint32_t> events;
    while (!stop.load()) {
      bool any_throttled = false, any_handshaking = false;
      {
        Lock lk(lock);
        for (size_t k = conns.size(); k-- > 0;)
          if (conns[k]->orphaned)
            close_connection(k, "element stopped");
        for (auto &c : conns) {
          any_throttled |= throttled(*c);
          /* A TLS handshake runs in glib-networking's thread: retried on a short timeout (its
           * bytes are not ours to wait for). */
          any_handshaking |= c->tls && !c->tls_ready;
          want(*c);
        }
      }
      const gint64 round_start = g_get_monotonic_time();
      const int r = epoll_wait(epoll_fd, ready.data(), static_cast<int>(ready.size()),
                               any_handshaking ? 5
                               : any_throttled ? 20
                                               : 100);
      if (r < 0 && errno != EINTR)
        break;
      if (stop.load())
        break;
      events.clear();
      bool accept_ready = false;
      for (int k = 0; k < r; k++) {
        /* (copies: struct epoll_event is packed, its fields are not aligned) */
        const uint64_t id = ready[k].data.u64;
        const uint32_t ev = ready[k].events;
        if (id == kWakeId) {
          uint64_t v;
          if (read(wake_fd, &v, sizeof(v)) < 0) {
            /* nothing to read: someone else woke us */
          }
        } else if (id == kListenId) {
          accept_ready = true;
        } else {
          events[id] = ev;
        }
      }
      {
        Lock lk(lock);
        apply_answers();
        /* closing shifts the connections: go backwards */
        for (size_t k = conns.size(); k-- > 0;) {
          Connection &c = *conns[k];
          auto it = events.find(c.id);
          uint32_t re = it == events.end() ? 0 : it->second;
          if (c.tls && !c.tls_ready && !c.closing)
            re |= EPOLLIN; /* see how the handshake is doing */
          if (!re || c.orphaned)
            continue;
          if (re & EPOLLOUT) {
            if (!flush_out(c)) {
              close_connection(k, "socket error while sending");
              continue;
            }
            if (c.closing && c.out.empty()) {
              close_connection(k, "refused");
              continue;
            }
          }
          if (re & (EPOLLIN | EPOLLHUP | EPOLLERR))
            service_connection(k);
        }
        if (accept_ready)
          accept_connections();
        check_timeouts();
      }
      run_deliveries();
      /* At most one round per kRoundUs: what arrives meanwhile waits in the sockets and is read
       * in the next round, with the other connections' (one wake-up for many messages, instead
       * of one per message and publisher). */
      const gint64 spent = g_get_monotonic_time() - round_start;
      if (r > 0 && spent < kRoundUs && !stop.load())
        g_usleep(static_cast<gulong>(kRoundUs - spent));
    }
  }
};

namespace {

gpointer io_thread(gpointer data) {
  /* The thread's own reference: the Core outlives a Listener destroyed from inside a delivery. */
  auto core = *static_cast<std::shared_ptr<Listener::Core> *>(data);
  delete static_cast<std::shared_ptr<Listener::Core> *>(data);
  core->run();
  return nullptr;
}

} // namespace

Listener::Listener(std::shared_ptr<Core> core) : core_(std::move(core)) {}

std::shared_ptr<Listener> Listener::acquire(const std::string &address, unsigned port,
                                            std::string *error) {
  static std::once_flag once;
  std::call_once(once, [] {
    GST_DEBUG_CATEGORY_INIT(rtmp_listener_debug, "rtmplistener", 0,
                            "costream RTMP listening sockets shared by elements");
  });
  const std::string key = port ? address + "|" + std::to_string(port) : "";
  std::lock_guard<std::mutex> rl(registry_lock);
  if (!key.empty()) {
    auto it = registry().find(key);
    if (it != registry().end()) {
      if (auto l = it->second.lock())
        return l;
    }
  }
  GSocket *sock = bind_socket(address, port, error);
  if (!sock)
    return nullptr;
  auto core = std::make_shared<Core>();
  core->key = key;
  core->socket = sock;
  core->port = port;
  if (GSocketAddress *local = g_socket_get_local_address(sock, nullptr)) {
    core->port = g_inet_socket_address_get_port(G_INET_SOCKET_ADDRESS(local));
    g_object_unref(local);
  }
  core->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  core->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
  if (core->wake_fd < 0 || core->epoll_fd < 0) {
    *error = std::string("Could not create an eventfd or epoll: ") + g_strerror(errno);
    return nullptr;
  }
  struct epoll_event e = {};
  e.events = EPOLLIN;
  e.data.u64 = kWakeId;
  epoll_ctl(core->epoll_fd, EPOLL_CTL_ADD, core->wake_fd, &e);
  e.data.u64 = kListenId;
  epoll_ctl(core->epoll_fd, EPOLL_CTL_ADD, g_socket_get_fd(sock), &e);
  GST_INFO("listening on port %u", core->port);
  core->thread = g_thread_new("rtmplistener", io_thread, new std::shared_ptr<Core>(core));
  std::shared_ptr<Listener> l(new Listener(core));
  if (!key.empty())
    registry()[key] = l;
  return l;
}

Listener::~Listener() {
  {
    std::lock_guard<std::mutex> rl(registry_lock);
    if (!core_->key.empty()) {
      auto it = registry().find(core_->key);
      if (it != registry().end() && it->second.expired())
        registry().erase(it);
    }
  }
  core_->stop.store(true);
  core_->wake();
  if (g_thread_self() == core_->thread)
    g_thread_unref(core_->thread); /* destroyed from a delivery: the thread ends by itself */
  else
    g_thread_join(core_->thread);
  GST_INFO("stopped listening on port %u", core_->port);
}

unsigned Listener::port() const {
  return core_->port;
}

void Listener::authorized(uint64_t ticket, bool allowed, const std::string &why) {
  {
    std::lock_guard<std::mutex> lk(core_->lock);
    core_->answers.push_back({ticket, allowed, why});
  }
  core_->wake();
}

size_t Listener::points() const {
  Lock lk(core_->lock);
  return core_->slots.size();
}

namespace {

/* (the listener's lock) Another element serving what `config` serves, or nullptr. */
const Slot *conflict(const std::vector<std::shared_ptr<Slot>> &slots, const PublishPoint *self,
                     const std::string &app, const PointConfig &config) {
  for (auto &s : slots) {
    if (s->point != self && s->app == app &&
        s->config.stream_key.empty() == config.stream_key.empty() &&
        Session::keys_equal(s->config.stream_key, config.stream_key))
      return s.get();
  }
  return nullptr;
}

std::string conflict_message(const PointConfig &config, const Slot &other, const std::string &app,
                             unsigned port) {
  return config.name + " and " + other.config.name + " both serve application \"" + app +
         "\" with " +
         (config.stream_key.empty() ? std::string("any stream key")
                                    : std::string("the same stream key")) +
         " on port " + std::to_string(port);
}

} // namespace

bool Listener::attach(PublishPoint *point, const PointConfig &config, std::string *error) {
  auto slot = std::make_shared<Slot>();
  slot->point = point;
  slot->config = config;
  slot->app = trim_slashes(config.application);
  if (config.certificate && !g_tls_backend_supports_tls(g_tls_backend_get_default())) {
    *error = "No TLS backend for RTMPS: install glib-networking";
    return false;
  }
  Lock lk(core_->lock);
  if (const Slot *other = conflict(core_->slots, point, slot->app, config)) {
    *error = conflict_message(config, *other, slot->app, core_->port);
    return false;
  }
  if (!core_->slots.empty()) {
    const Slot &other = *core_->slots.front();
    const bool tls = config.certificate != nullptr, other_tls = core_->certificate != nullptr;
    if (tls != other_tls ||
        (tls && !g_tls_certificate_is_same(config.certificate.get(), core_->certificate.get()))) {
      *error = config.name + (tls ? " speaks RTMPS" : " speaks plain RTMP") + " but " +
               other.config.name +
               (other_tls ? (tls ? " has another certificate" : " speaks RTMPS")
                          : " speaks plain RTMP") +
               " on port " + std::to_string(core_->port) +
               ": give RTMPS and plain RTMP (or each certificate) a port of its own";
      return false;
    }
  } else {
    core_->certificate = config.certificate;
  }
  core_->slots.push_back(slot);
  return true;
}

bool Listener::update(PublishPoint *point, const PointConfig &config, std::string *error) {
  const std::string app = trim_slashes(config.application);
  Lock lk(core_->lock);
  if (const Slot *other = conflict(core_->slots, point, app, config)) {
    *error = conflict_message(config, *other, app, core_->port);
    return false;
  }
  for (auto &s : core_->slots) {
    if (s->point == point) {
      s->config = config;
      s->app = app;
    }
  }
  return true;
}

void Listener::detach(PublishPoint *point) {
  std::shared_ptr<Slot> slot;
  bool was_publishing = false;
  uint64_t bytes = 0;
  {
    Lock lk(core_->lock);
    auto it = std::find_if(core_->slots.begin(), core_->slots.end(),
                           [point](const std::shared_ptr<Slot> &s) { return s->point == point; });
    if (it == core_->slots.end())
      return;
    slot = *it;
    core_->slots.erase(it);
    if (Connection *c = slot->publisher) {
      was_publishing = true;
      bytes = c->session->bytes_in() - c->bytes_at_publish;
      c->orphaned = true; /* the I/O thread closes it */
      c->slot.reset();
      slot->publisher = nullptr;
    }
  }
  core_->wake();
  std::lock_guard<std::recursive_mutex> g(slot->call); /* a call in progress ends first */
  slot->attached = false;
  if (was_publishing)
    point->publish_stopped("element stopped", bytes);
}

} // namespace costream::rtmp
