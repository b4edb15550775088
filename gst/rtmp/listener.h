/* costream
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * costream::rtmp::Listener: one listening socket per address and port in the process, shared by
 * every rtmpserversrc (and rtmpbridge) configured with them, each publish dispatched by its
 * application and stream key to the element that serves them.
 *
 *   socket bytes -> Listener (accept, limits, timeouts; one I/O thread) -> Session (per connection:
 *   handshake, commands, media) -> routing by application + key -> PublishPoint (the element)
 *
 * Routing: `connect` to an application no element serves is rejected
 * (NetConnection.Connect.Rejected); `publish` goes to the element whose stream key equals the one
 * given (compared in constant time against every element's), else to the element of that
 * application with no key (it takes any key nobody else serves), else it is refused with
 * NetStream.Publish.BadName before any media is read. An element serves one publisher at a time:
 * a second publish for it is refused. Two elements may not serve the same application and key
 * (attach() fails and names both).
 *
 * Reads: at most one read of all sockets per read interval (the smallest of the elements'), each
 * element woken once per read that brought it media (PublishPoint::round_done).
 *
 * Limits: before a connection is routed, the strictest of the attached elements' (smallest
 * message and chunk sizes, shortest handshake timeout), and as many of them as the elements'
 * max-pending-connections add up to;
 * once it publishes, its element's (message and chunk size, idle timeout).
 *
 * RTMPS: with a certificate, the port speaks TLS only (glib-networking is the TLS backend); the
 * handshake timeout covers the TLS handshake too. A plain RTMP client on a TLS port fails its TLS
 * handshake, a TLS client on a plain port sends a TLS record instead of the RTMP version byte:
 * either is dropped with a log line that says which.
 *
 * Threads: the I/O thread does all socket work, with the listener's lock held while it reads
 * and routes; it calls the elements' PublishPoint after releasing that lock, one call at a time
 * per element and never after detach() returned. attach() and detach() may be called from any
 * thread, including from inside a PublishPoint call of another element.
 *
 * Its insides, and which file does what: listenerprivate.h.
 */
#pragma once

#include "chunk.h"
#include "session.h"

#include <gio/gio.h>

#include <memory>
#include <string>

namespace costream::rtmp {

/* What one element serves on a listener, and its limits. */
struct PointConfig {
  std::string name; /* the element's name, for messages */
  std::string application = "live";
  std::string stream_key; /* empty: any key no other element of the application serves */
  ChunkReader::Limits limits;
  gint64 handshake_timeout_us = 5 * G_USEC_PER_SEC; /* accept to publish */
  gint64 idle_timeout_us = 10 * G_USEC_PER_SEC;     /* a publisher sending nothing; 0: never */
  unsigned max_pending = 8;                         /* connections not publishing kept at once */
  /* Set: the port speaks RTMPS (TLS) only, with this certificate (and its private key). Every
   * element on a port must agree: all plain, or all TLS with the same certificate. */
  std::shared_ptr<GTlsCertificate> certificate;
  /* Set: every publish routed to this element waits for its PublishPoint::authorize() decision
   * (given with Listener::authorized()); the publisher is not read meanwhile. */
  bool authorize = false;
  /* How long the port's I/O thread lets data gather in the sockets between two reads; the
   * smallest of the attached elements' applies. Each read wakes every element whose publisher
   * sent something: longer saves wake-ups (CPU), and adds up to this much delay. 0: read as data
   * arrives. */
  gint64 read_interval_us = 50000;
};

/* A publish to decide on (see PointConfig::authorize). The key is there for the one who
 * decides: it is never logged. */
struct AuthRequest {
  std::string application, stream_key, remote, tc_url, flash_ver;
};

/* The element's side. Called from the listener's I/O thread (see the header). */
class PublishPoint {
public:
  virtual ~PublishPoint() = default;
  /* A publish was accepted for this element. */
  virtual void publish_started(const std::string &remote) = 0;
  /* Its metadata, audio and video messages, in order. */
  virtual void media(SessionEvent &e) = 0;
  /* It stopped: unpublished, disconnected, dropped or the element detached (`reason`), having
   * sent `bytes` since it started publishing. */
  virtual void publish_stopped(const std::string &reason, uint64_t bytes) = 0;
  /* Counters to add: connections accepted on the port, publishes for this element's application
   * refused (or connections to an application nobody serves), bytes and messages received from
   * its publisher. */
  virtual void count(uint64_t connections, uint64_t refused, uint64_t bytes, uint64_t messages) = 0;
  /* The listener's thread has handed over everything of this round (media() may have been called
   * several times): a good moment to wake whoever consumes them, once. */
  virtual void round_done() {}
  /* Any thread: true while downstream is behind; its publisher is not read meanwhile (TCP
   * pushes back). */
  virtual bool throttled() const = 0;
  /* With PointConfig::authorize: a publish waits for the decision, which the element gives (from
   * any thread, later, never from inside this call's wait) with Listener::authorized(ticket).
   * It must answer every ticket; a publisher that goes away meanwhile makes the answer moot. */
  virtual void authorize(uint64_t ticket, const AuthRequest &request) {
    (void)ticket;
    (void)request;
  }
};

class Listener {
public:
  /* The listener on `address` (empty: every interface, IPv4 and IPv6) and `port`, bound now if
   * there is none yet. Port 0: a listener of its own on a free port. nullptr and `error` when
   * it cannot listen. */
  static std::shared_ptr<Listener> acquire(const std::string &address, unsigned port,
                                           std::string *error);
  ~Listener();
  Listener(const Listener &) = delete;
  Listener &operator=(const Listener &) = delete;

  /* The port listened on. */
  unsigned port() const;
  /* Starts dispatching publishes for `config` to `point`. False (and `error`, naming both
   * elements) when another element serves the same application and key. */
  bool attach(PublishPoint *point, const PointConfig &config, std::string *error);
  /* New settings for an attached element (properties changed while it runs): they apply to
   * connections from now on. False (and `error`) as for attach(); the old ones stay. */
  bool update(PublishPoint *point, const PointConfig &config, std::string *error);
  /* Stops it: its publisher is disconnected (publish_stopped "element stopped" is called
   * before this returns), and no call reaches `point` after. */
  void detach(PublishPoint *point);
  /* The decision on an authorize() ticket, from any thread: the publish starts, or is refused
   * (NetStream.Publish.BadName, `why` logged: no key in it) and its connection closed. */
  void authorized(uint64_t ticket, bool allowed, const std::string &why);
  /* Elements attached (for tests). */
  size_t points() const;

  struct Core;

private:
  explicit Listener(std::shared_ptr<Core> core);
  std::shared_ptr<Core> core_;
};

} // namespace costream::rtmp
