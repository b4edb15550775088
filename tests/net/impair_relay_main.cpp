/* costream tests
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * impair-relay: the tests' impairment relay from the command line, to try a pipeline on a bad
 * network by hand:
 *   impair-relay LISTEN_PORT TO_PORT SPEC [SECONDS]
 *   impair-relay 6000 5000 loss=3,jitter=20,delay=30,seed=1 60
 * forwards UDP from 127.0.0.1:LISTEN_PORT to 127.0.0.1:TO_PORT (SPEC: loss, burst, delay,
 * jitter, reorder, reorder-ms, duplicate, seed; see impair.h) and prints what it did at the end.
 */
#include "impair.h"

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <unistd.h>

namespace {
volatile std::sig_atomic_t stop = 0;
void on_signal(int) { stop = 1; }
} // namespace

int main(int argc, char **argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: impair-relay LISTEN_PORT TO_PORT SPEC [SECONDS]\n"
                         "  SPEC: loss=PCT,burst=N,delay=MS,jitter=MS,reorder=PCT,reorder-ms=MS,"
                         "duplicate=PCT,seed=N\n");
    return 2;
  }
  testnet::Impairment imp;
  std::string why;
  if (!testnet::Impairment::parse(argv[3], &imp, &why)) {
    std::fprintf(stderr, "impair-relay: %s\n", why.c_str());
    return 2;
  }
  testnet::UdpRelay relay(static_cast<uint16_t>(std::atoi(argv[1])),
                          static_cast<uint16_t>(std::atoi(argv[2])), imp);
  if (!relay.ok()) {
    std::fprintf(stderr, "impair-relay: %s\n", relay.error().c_str());
    return 1;
  }
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  const int seconds = argc > 4 ? std::atoi(argv[4]) : 0;
  for (int t = 0; !stop && (seconds == 0 || t < seconds * 10); t++)
    usleep(100000);
  const auto s = relay.stats();
  std::printf("%s: received %llu, lost %llu, duplicated %llu, sent %llu, RTCP NACKs %llu (for "
              "%llu packets)",
              imp.describe().c_str(), static_cast<unsigned long long>(s.received),
              static_cast<unsigned long long>(s.lost),
              static_cast<unsigned long long>(s.duplicated),
              static_cast<unsigned long long>(s.sent),
              static_cast<unsigned long long>(s.rtcp_nacks),
              static_cast<unsigned long long>(s.rtcp_nacked_packets));
  for (auto &kv : s.rtp_by_pt)
    std::printf(", RTP pt %d: %llu", kv.first, static_cast<unsigned long long>(kv.second));
  std::printf("\n");
  return 0;
}
