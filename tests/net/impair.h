/* costream tests
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * A network in a box, for tests: a UDP relay on loopback that loses packets (at random, or in
 * bursts), delays them with jitter, reorders and duplicates them, the way a bad Wi-Fi or mobile
 * link does. The kernel here has no netem, so the faults are made in user space, one relay per
 * UDP flow.
 *
 * Every decision comes from a seeded generator and is taken in packet order, so the same packets
 * meet the same fate on every run: ImpairModel is that part alone (pure, unit-tested); UdpRelay
 * puts it on a socket. The relay also reads what it forwards: RTP payload types and RTCP NACKs
 * are counted, so a test can see retransmission requests and answers on the wire.
 */
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace testnet {

struct Impairment {
  double loss = 0.0;      /* long-run fraction of packets lost, 0..1 */
  double burst = 1.0;     /* mean length of a loss burst in packets; 1: independent losses */
  double delay_ms = 0.0;  /* base one-way delay */
  double jitter_ms = 0.0; /* each packet's delay is delay_ms +- up to jitter_ms (uniform) */
  double reorder = 0.0;   /* probability a packet is held back reorder_ms more than its delay */
  double reorder_ms = 0.0;
  double duplicate = 0.0; /* probability a packet is sent twice (the copy 1 ms later) */
  uint32_t seed = 1;

  /* "loss=5,burst=4,jitter=20,seed=7": fields by name, percentages for loss/reorder/duplicate. */
  static bool parse(const std::string &spec, Impairment *out, std::string *why);
  std::string describe() const;
};

/* What happens to one packet: lost, or sent once or twice after the given delays. */
struct Fate {
  bool lost = false;
  std::vector<double> delays_ms; /* one per copy sent */
};

class ImpairModel {
public:
  explicit ImpairModel(const Impairment &imp);
  Fate next(); /* the fate of the next packet in arrival order */

private:
  Impairment imp_;
  std::mt19937 rng_;
  std::uniform_real_distribution<double> u_{0.0, 1.0};
  bool in_burst_ = false;
};

struct RelayStats {
  uint64_t received = 0, lost = 0, duplicated = 0, sent = 0;
  uint64_t rtcp_nacks = 0;           /* RTCP generic NACK messages (RTPFB, FMT 1) forwarded */
  uint64_t rtcp_nacked_packets = 0;  /* packets they ask for (PID + BLP bits) */
  std::map<int, uint64_t> rtp_by_pt; /* RTP packets forwarded, by payload type */
};

/* One datagram as it arrived, and whether the relay lost it (UdpRelay::set_record). */
struct RecordedPacket {
  std::vector<uint8_t> data;
  bool lost = false;
};

/* Forwards datagrams arriving on 127.0.0.1:`listen_port` (0: any free port) to
 * 127.0.0.1:`to_port`, through an ImpairModel. One thread; stopped by the destructor. */
class UdpRelay {
public:
  UdpRelay(uint16_t listen_port, uint16_t to_port, const Impairment &imp);
  ~UdpRelay();
  UdpRelay(const UdpRelay &) = delete;
  UdpRelay &operator=(const UdpRelay &) = delete;

  bool ok() const { return fd_ >= 0; }
  const std::string &error() const { return error_; }
  uint16_t port() const { return port_; }
  RelayStats stats() const;
  /* Keep every datagram that arrives (for a test to see which were lost and what came next). */
  void set_record(bool on);
  std::vector<RecordedPacket> recorded() const;

private:
  void run();
  void count_forwarded(const uint8_t *p, size_t n); /* under mutex_ */

  int fd_ = -1, out_fd_ = -1, wake_[2] = {-1, -1};
  uint16_t port_ = 0, to_port_ = 0;
  std::string error_;
  ImpairModel model_;
  mutable std::mutex mutex_;
  RelayStats stats_;
  bool record_ = false;
  std::vector<RecordedPacket> recorded_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

/* Counts the RTCP generic NACKs in a compound RTCP packet: messages, and packets asked for.
 * Bounds-checked; a datagram that is not RTCP counts nothing. */
void count_rtcp_nacks(const uint8_t *p, size_t n, uint64_t *messages, uint64_t *packets);

/* A UDP port on 127.0.0.1 such that `count` consecutive ports from it were free when checked
 * (bound and released). */
uint16_t free_udp_ports(unsigned count);

} // namespace testnet
