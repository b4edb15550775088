/* costream
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * The listener's public API and its I/O thread's loop (the file map: listenerprivate.h).
 */
#include "listenerprivate.h"
#include "netutil.h"

#include <gio/gio.h>
#include <gst/gst.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <map>
#include <mutex>
#include <netinet/in.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unordered_map>
#include <unistd.h>
#include <vector>

GST_DEBUG_CATEGORY(rtmp_listener_debug);
#define GST_CAT_DEFAULT rtmp_listener_debug

namespace costream::rtmp {

namespace {

using Lock = std::unique_lock<std::mutex>;

constexpr gint64 kSetupRoundUs = 5000; /* see run() */

std::mutex registry_lock;
std::map<std::string, std::weak_ptr<Listener>> &registry() {
  static std::map<std::string, std::weak_ptr<Listener>> r;
  return r;
}

} // namespace

Listener::Core::~Core() {
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

void Listener::Core::wake() {
  const uint64_t one = 1;
  if (write(wake_fd, &one, sizeof(one)) < 0) {
    /* the counter is full: the thread is awake anyway */
  }
}

/* (lock) */
void Listener::Core::check_timeouts() {
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
void Listener::Core::run_deliveries() {
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
void Listener::Core::want(Connection &c) {
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
  epoll_ctl(epoll_fd, c.registered ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, g_socket_get_fd(c.socket), &e);
  c.registered = true;
  c.events = ev;
}

void Listener::Core::run() {
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
      /* A connection not publishing yet (just accepted, in its handshake or commands, or
       * waiting for its authorization) waits for answers, a round trip each: it is read at
       * least every 5 ms, or connecting would take several read intervals. */
      interval = read_interval();
      for (auto &c : conns)
        if (!c->closing && (!c->slot || c->session->asking()))
          interval = std::min(interval, kSetupRoundUs);
    }
    run_deliveries();
    /* At most one round per read interval: what arrives meanwhile waits in the sockets and is
     * read in the next round, with the other connections' (one wake-up of this thread and of
     * each element for many messages, instead of one per message and publisher). The elements'
     * wake-ups are most of the CPU ingest costs here (docs/rtmpserversrc.md, benchmark). */
    const gint64 spent = g_get_monotonic_time() - round_start;
    if (r > 0 && spent < interval && !stop.load()) {
      /* (woken early by wake(): stopping, a detach, an authorization answer) */
      struct pollfd pfd = {wake_fd, POLLIN, 0};
      poll(&pfd, 1, static_cast<int>((interval - spent + 999) / 1000));
    }
  }
}

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
