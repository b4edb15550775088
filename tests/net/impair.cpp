/* costream tests
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "impair.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <sstream>

namespace testnet {

bool Impairment::parse(const std::string &spec, Impairment *out, std::string *why) {
  Impairment imp;
  std::stringstream ss(spec);
  std::string item;
  while (std::getline(ss, item, ',')) {
    if (item.empty())
      continue;
    const auto eq = item.find('=');
    if (eq == std::string::npos) {
      *why = "expected name=value, got '" + item + "'";
      return false;
    }
    const std::string k = item.substr(0, eq), v = item.substr(eq + 1);
    char *end = nullptr;
    const double d = std::strtod(v.c_str(), &end);
    if (v.empty() || *end != '\0' || d < 0) {
      *why = "'" + k + "' needs a number >= 0, got '" + v + "'";
      return false;
    }
    if (k == "loss")
      imp.loss = d / 100.0;
    else if (k == "burst")
      imp.burst = std::max(1.0, d);
    else if (k == "delay")
      imp.delay_ms = d;
    else if (k == "jitter")
      imp.jitter_ms = d;
    else if (k == "reorder")
      imp.reorder = d / 100.0;
    else if (k == "reorder-ms")
      imp.reorder_ms = d;
    else if (k == "duplicate")
      imp.duplicate = d / 100.0;
    else if (k == "seed")
      imp.seed = static_cast<uint32_t>(d);
    else {
      *why = "unknown field '" + k + "'";
      return false;
    }
  }
  if (imp.loss >= 1.0 || imp.reorder > 1.0 || imp.duplicate > 1.0) {
    *why = "loss must be under 100 %, reorder and duplicate at most 100 %";
    return false;
  }
  *out = imp;
  return true;
}

std::string Impairment::describe() const {
  std::ostringstream o;
  o << "loss " << loss * 100 << " % (bursts of " << burst << "), delay " << delay_ms << " +- "
    << jitter_ms << " ms, reorder " << reorder * 100 << " % by " << reorder_ms << " ms, duplicate "
    << duplicate * 100 << " %, seed " << seed;
  return o.str();
}

ImpairModel::ImpairModel(const Impairment &imp) : imp_(imp), rng_(imp.seed) {}

Fate ImpairModel::next() {
  Fate f;
  /* Every draw is taken for every packet, lost or not, so one setting does not shift another's
   * sequence: the same seed loses the same packets whatever the jitter. */
  const double u_loss = u_(rng_), u_jit = u_(rng_), u_re = u_(rng_), u_dup = u_(rng_);
  if (imp_.burst <= 1.0) {
    f.lost = u_loss < imp_.loss;
  } else {
    /* Gilbert model: a burst ends after each packet with probability 1/burst, so bursts last
     * `burst` packets on average; one starts with the probability that gives `loss` overall. */
    if (in_burst_) {
      in_burst_ = u_loss >= 1.0 / imp_.burst;
    } else {
      const double p_start = imp_.loss / (imp_.burst * (1.0 - imp_.loss));
      in_burst_ = u_loss < p_start;
    }
    f.lost = in_burst_;
  }
  if (f.lost)
    return f;
  double d = imp_.delay_ms + (2.0 * u_jit - 1.0) * imp_.jitter_ms;
  if (u_re < imp_.reorder)
    d += imp_.reorder_ms;
  d = std::max(0.0, d);
  f.delays_ms.push_back(d);
  if (u_dup < imp_.duplicate)
    f.delays_ms.push_back(d + 1.0);
  return f;
}

void count_rtcp_nacks(const uint8_t *p, size_t n, uint64_t *messages, uint64_t *packets) {
  size_t at = 0;
  while (at + 4 <= n) {
    const uint8_t v = p[at] >> 6, fmt = p[at] & 0x1f, pt = p[at + 1];
    const size_t len = (static_cast<size_t>(p[at + 2]) << 8 | p[at + 3]) * 4 + 4;
    if (v != 2 || pt < 192 || pt > 223 || at + len > n)
      return; /* not RTCP, or truncated */
    if (pt == 205 && fmt == 1 && len >= 16) {
      (*messages)++;
      for (size_t f = at + 12; f + 4 <= at + len; f += 4) {
        const unsigned blp = static_cast<unsigned>(p[f + 2]) << 8 | p[f + 3];
        *packets += 1 + static_cast<unsigned>(__builtin_popcount(blp));
      }
    }
    at += len;
  }
}

namespace {

int bind_udp(uint16_t port, uint16_t *bound, std::string *why) {
  const int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    *why = std::string("socket: ") + strerror(errno);
    return -1;
  }
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(fd, reinterpret_cast<sockaddr *>(&a), sizeof a) != 0) {
    *why = "bind 127.0.0.1:" + std::to_string(port) + ": " + strerror(errno);
    close(fd);
    return -1;
  }
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr *>(&a), &len);
  if (bound)
    *bound = ntohs(a.sin_port);
  return fd;
}

} // namespace

UdpRelay::UdpRelay(uint16_t listen_port, uint16_t to_port, const Impairment &imp)
    : to_port_(to_port), model_(imp) {
  fd_ = bind_udp(listen_port, &port_, &error_);
  if (fd_ < 0)
    return;
  /* A socket buffer large enough for a burst of video (a key frame is ~100 packets). */
  const int sz = 4 << 20;
  setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
  out_fd_ = bind_udp(0, nullptr, &error_);
  if (out_fd_ < 0 || pipe2(wake_, O_CLOEXEC | O_NONBLOCK) != 0) {
    if (error_.empty())
      error_ = std::string("pipe: ") + strerror(errno);
    close(fd_);
    fd_ = -1;
    return;
  }
  thread_ = std::thread([this] { run(); });
}

UdpRelay::~UdpRelay() {
  if (thread_.joinable()) {
    stop_ = true;
    const char c = 0;
    (void)!write(wake_[1], &c, 1);
    thread_.join();
  }
  for (int fd : {fd_, out_fd_, wake_[0], wake_[1]})
    if (fd >= 0)
      close(fd);
}

RelayStats UdpRelay::stats() const {
  std::lock_guard<std::mutex> l(mutex_);
  return stats_;
}

void UdpRelay::set_record(bool on) {
  std::lock_guard<std::mutex> l(mutex_);
  record_ = on;
}

std::vector<RecordedPacket> UdpRelay::recorded() const {
  std::lock_guard<std::mutex> l(mutex_);
  return recorded_;
}

void UdpRelay::count_forwarded(const uint8_t *p, size_t n) {
  stats_.sent++;
  if (n >= 2 && p[0] >> 6 == 2 && p[1] >= 192 && p[1] <= 223) {
    count_rtcp_nacks(p, n, &stats_.rtcp_nacks, &stats_.rtcp_nacked_packets);
  } else if (n >= 12 && p[0] >> 6 == 2) {
    stats_.rtp_by_pt[p[1] & 0x7f]++;
  }
}

void UdpRelay::run() {
  using clock = std::chrono::steady_clock;
  std::multimap<clock::time_point, std::vector<uint8_t>> pending;
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(to_port_);
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::vector<uint8_t> buf(65536);
  while (!stop_) {
    int timeout = 100;
    if (!pending.empty()) {
      const auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(
          pending.begin()->first - clock::now());
      timeout = static_cast<int>(std::max<int64_t>(0, std::min<int64_t>(wait.count(), 100)));
    }
    pollfd fds[2] = {{fd_, POLLIN, 0}, {wake_[0], POLLIN, 0}};
    const int r = poll(fds, 2, timeout);
    if (r > 0 && (fds[0].revents & POLLIN)) {
      /* Everything queued in the socket now, each packet's fate decided on arrival. */
      for (;;) {
        const ssize_t n = recv(fd_, buf.data(), buf.size(), MSG_DONTWAIT);
        if (n < 0)
          break;
        const Fate f = model_.next();
        const auto now = clock::now();
        std::lock_guard<std::mutex> l(mutex_);
        stats_.received++;
        if (record_)
          recorded_.push_back({std::vector<uint8_t>(buf.begin(), buf.begin() + n), f.lost});
        if (f.lost) {
          stats_.lost++;
          continue;
        }
        if (f.delays_ms.size() > 1)
          stats_.duplicated++;
        for (double d : f.delays_ms)
          pending.emplace(now + std::chrono::microseconds(static_cast<int64_t>(d * 1000)),
                          std::vector<uint8_t>(buf.begin(), buf.begin() + n));
      }
    }
    const auto now = clock::now();
    while (!pending.empty() && pending.begin()->first <= now) {
      auto &p = pending.begin()->second;
      sendto(out_fd_, p.data(), p.size(), 0, reinterpret_cast<sockaddr *>(&to), sizeof to);
      {
        std::lock_guard<std::mutex> l(mutex_);
        count_forwarded(p.data(), p.size());
      }
      pending.erase(pending.begin());
    }
  }
}

uint16_t free_udp_ports(unsigned count) {
  /* Start from a port the kernel picks, and walk until `count` consecutive ports bind. */
  for (int attempt = 0; attempt < 200; attempt++) {
    std::string why;
    uint16_t first = 0;
    const int probe = bind_udp(0, &first, &why);
    if (probe < 0)
      return 0;
    close(probe);
    if (first > 65535 - count)
      continue;
    std::vector<int> fds;
    bool all = true;
    for (unsigned i = 0; i < count && all; i++) {
      const int fd = bind_udp(static_cast<uint16_t>(first + i), nullptr, &why);
      all = fd >= 0;
      if (fd >= 0)
        fds.push_back(fd);
    }
    for (int fd : fds)
      close(fd);
    if (all)
      return first;
  }
  return 0;
}

} // namespace testnet
