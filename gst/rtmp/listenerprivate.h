/* costream
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * The shared RTMP listener's insides (what it does: listener.h), shared by its files:
 *   listener.cpp            the public API (acquire, attach, update, detach, authorized) and the
 *                           Core's I/O thread: the epoll loop, timeouts, the deliveries to the
 *                           elements (made with no lock held)
 *   listenerconnection.cpp  each connection: accept (plain or TLS, the pending budget), reads and
 *                           writes, its session's events, routing a publish by application and
 *                           key, the authorization answers; all on the I/O thread with Core::lock
 *                           held
 *   netutil.*               binding, peer addresses, certificates
 *
 * Locks: Core::lock, and a Slot's `call` (held while its element is called). The I/O thread
 * takes `call` only with Core::lock released; an element may take Core::lock (attach, update,
 * detach, authorized) from inside a call, never the other way round.
 */
#pragma once

#include "listener.h"

#include <gio/gio.h>
#include <gst/gst.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

GST_DEBUG_CATEGORY_EXTERN(rtmp_listener_debug);

namespace costream::rtmp {

/* epoll ids: the wake-up eventfd, the listening socket, then the connections. */
constexpr uint64_t kWakeId = 0, kListenId = 1, kFirstConnId = 2;

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

struct Listener::Core {
  std::string key; /* in the registry; empty: not registered (port 0) */
  GSocket *socket = nullptr;
  unsigned port = 0;
  int wake_fd = -1;
  int epoll_fd = -1;
  uint64_t next_id = kFirstConnId; /* the I/O thread's */
  std::atomic<bool> stop{false};
  gint64 interval = 0; /* (I/O thread) the current read interval, µs */
  GThread *thread = nullptr;

  mutable std::mutex lock;
  std::vector<std::shared_ptr<Slot>> slots;       /* (lock) */
  std::shared_ptr<GTlsCertificate> certificate;   /* (lock) RTMPS when set: the slots' */
  std::vector<std::unique_ptr<Connection>> conns; /* (lock) written by the I/O thread only */

  std::vector<Delivery> deliveries; /* the I/O thread only */
  std::vector<Answer> answers;      /* (lock) authorization decisions not yet applied */

  ~Core();
  void wake();

  /* ---- the I/O thread; (lock) where said (see the definitions) ---- */

  /* listener.cpp: the loop */
  void run();
  void run_deliveries();
  void check_timeouts();
  void want(Connection &c);

  /* listenerconnection.cpp: the connections */
  void deliver(Delivery::Kind kind, const std::shared_ptr<Slot> &slot);
  void count_all(uint64_t connections, uint64_t refused, const std::string &app);
  ChunkReader::Limits pending_limits() const;
  gint64 handshake_timeout() const;
  unsigned max_pending() const;
  gint64 read_interval() const;
  std::shared_ptr<Slot> route(const std::string &app, const std::string &key) const;
  SessionRoutes routes_for(Connection *c);
  void end_publish(Connection &c, const std::string &reason);
  void close_connection(size_t i, const std::string &reason);
  void handle_event(Connection &c, SessionEvent &e);
  static gssize receive(Connection &c, uint8_t *buf, size_t size, GError **err);
  static gssize send(Connection &c, const uint8_t *data, size_t size, GError **err);
  static bool flush_out(Connection &c);
  void accept_connections();
  bool service_connection(size_t i);
  void apply_answers();

  bool throttled(const Connection &c) const { return c.slot && c.slot->point->throttled(); }
};

} // namespace costream::rtmp
