/* costream tests
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * The impairment relay the network tests run through: its faults must be the ones asked for,
 * repeat with the seed, and the relay must forward exactly what the model lets through.
 */
#include "impair.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <cstring>

using testnet::Impairment;
using testnet::ImpairModel;

TEST_CASE("Random loss: the rate asked for, the same packets for the same seed", "[impair]") {
  Impairment imp;
  imp.loss = 0.05;
  imp.seed = 7;
  ImpairModel a(imp), b(imp);
  Impairment jittery = imp;
  jittery.jitter_ms = 20;
  ImpairModel c(jittery);
  const int n = 100000;
  int lost = 0, runs_of_two = 0;
  bool prev = false;
  for (int i = 0; i < n; i++) {
    const auto fa = a.next(), fb = b.next(), fc = c.next();
    REQUIRE(fa.lost == fb.lost);
    REQUIRE(fa.lost == fc.lost); /* jitter does not move the losses */
    lost += fa.lost;
    runs_of_two += prev && fa.lost;
    prev = fa.lost;
  }
  CHECK(lost == Approx(0.05 * n).epsilon(0.05));
  /* independent: a loss after a loss as often as any loss (5 % of them) */
  CHECK(runs_of_two == Approx(0.05 * lost).epsilon(0.25));
}

TEST_CASE("Burst loss: the overall rate and the mean burst length asked for", "[impair]") {
  Impairment imp;
  imp.loss = 0.20;
  imp.burst = 4;
  ImpairModel m(imp);
  const int n = 200000;
  int lost = 0, bursts = 0;
  bool prev = false;
  for (int i = 0; i < n; i++) {
    const bool l = m.next().lost;
    lost += l;
    bursts += l && !prev;
    prev = l;
  }
  CHECK(lost == Approx(0.20 * n).epsilon(0.05));
  CHECK(static_cast<double>(lost) / bursts == Approx(4.0).epsilon(0.05));
}

TEST_CASE("Delay, jitter, reordering and duplicates stay within what was asked", "[impair]") {
  Impairment imp;
  imp.delay_ms = 30;
  imp.jitter_ms = 20;
  imp.reorder = 0.1;
  imp.reorder_ms = 50;
  imp.duplicate = 0.02;
  ImpairModel m(imp);
  int reordered = 0, dup = 0, n = 50000;
  double lo = 1e9, hi = 0;
  for (int i = 0; i < n; i++) {
    const auto f = m.next();
    REQUIRE(!f.lost);
    REQUIRE((f.delays_ms.size() == 1 || f.delays_ms.size() == 2));
    dup += f.delays_ms.size() == 2;
    const double d = f.delays_ms[0];
    if (d > 50.0)
      reordered++;
    else {
      lo = std::min(lo, d);
      hi = std::max(hi, d);
    }
    REQUIRE(d >= 10.0);
    REQUIRE(d <= 100.0);
  }
  CHECK(lo < 11.0);
  CHECK(hi > 49.0);
  CHECK(reordered == Approx(0.1 * n).epsilon(0.1));
  CHECK(dup == Approx(0.02 * n).epsilon(0.15));
}

TEST_CASE("Impairment specs parse, and bad ones say why", "[impair]") {
  Impairment imp;
  std::string why;
  REQUIRE(Impairment::parse("loss=5,burst=3,jitter=20,delay=40,seed=9", &imp, &why));
  CHECK(imp.loss == Approx(0.05));
  CHECK(imp.burst == 3);
  CHECK(imp.jitter_ms == 20);
  CHECK(imp.delay_ms == 40);
  CHECK(imp.seed == 9);
  CHECK_FALSE(Impairment::parse("loss=100", &imp, &why));
  CHECK_FALSE(Impairment::parse("loss=-1", &imp, &why));
  CHECK_FALSE(Impairment::parse("lost=5", &imp, &why));
  CHECK(why.find("lost") != std::string::npos);
  CHECK_FALSE(Impairment::parse("loss", &imp, &why));
}

TEST_CASE("RTCP NACKs are counted, garbage counts nothing", "[impair]") {
  /* RR (empty) + RTPFB generic NACK asking for PID 100 and the 2 after it (BLP 0b11) */
  const uint8_t pkt[] = {0x80, 201, 0, 1, 1, 2, 3, 4,                            /* RR */
                         0x81, 205, 0, 3, 1, 2, 3, 4, 5, 6, 7, 8, 0, 100, 0, 3}; /* NACK */
  uint64_t msgs = 0, pkts = 0;
  testnet::count_rtcp_nacks(pkt, sizeof pkt, &msgs, &pkts);
  CHECK(msgs == 1);
  CHECK(pkts == 3);
  msgs = pkts = 0;
  testnet::count_rtcp_nacks(pkt, sizeof pkt - 1, &msgs, &pkts); /* truncated */
  CHECK(msgs == 0);
  const uint8_t junk[] = {0xff, 0xff, 0xff, 0xff, 0};
  testnet::count_rtcp_nacks(junk, sizeof junk, &msgs, &pkts);
  CHECK(msgs == 0);
}

TEST_CASE("The relay forwards what the model lets through, and counts it", "[impair]") {
  const uint16_t dst_port = testnet::free_udp_ports(1);
  REQUIRE(dst_port != 0);
  const int rx = socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(dst_port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(bind(rx, reinterpret_cast<sockaddr *>(&a), sizeof a) == 0);
  const int sz = 4 << 20;
  setsockopt(rx, SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);

  Impairment imp;
  imp.loss = 0.1;
  imp.jitter_ms = 5;
  imp.delay_ms = 5;
  imp.duplicate = 0.05;
  imp.seed = 3;
  testnet::UdpRelay relay(0, dst_port, imp);
  REQUIRE(relay.ok());
  /* what the model will do to these packets, in order */
  ImpairModel expect(imp);
  int expect_out = 0, expect_lost = 0;
  const int n = 2000;
  for (int i = 0; i < n; i++) {
    const auto f = expect.next();
    expect_lost += f.lost;
    expect_out += static_cast<int>(f.delays_ms.size());
  }

  const int tx = socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in r{};
  r.sin_family = AF_INET;
  r.sin_port = htons(relay.port());
  r.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int got = 0, out_of_order = 0;
  uint32_t last = 0;
  auto drain = [&](int wait_ms) {
    pollfd p{rx, POLLIN, 0};
    while (poll(&p, 1, wait_ms) > 0) {
      uint8_t b[64];
      const ssize_t k = recv(rx, b, sizeof b, 0);
      REQUIRE(k == 16);
      uint32_t seq;
      memcpy(&seq, b + 4, 4);
      out_of_order += seq < last;
      last = seq;
      got++;
    }
  };
  for (uint32_t i = 0; i < n; i++) {
    uint8_t b[16] = {0x80, 96};
    memcpy(b + 4, &i, 4);
    REQUIRE(sendto(tx, b, sizeof b, 0, reinterpret_cast<sockaddr *>(&r), sizeof r) == 16);
    if (i % 50 == 49)
      drain(0);
    usleep(200); /* paced, so the jitter (+-5 ms) reorders some */
  }
  /* readiness, not a fixed sleep: the last packet is due 11 ms after it was sent at most */
  for (int i = 0; i < 100 && relay.stats().sent < static_cast<uint64_t>(expect_out); i++)
    drain(10);
  drain(50);
  const auto s = relay.stats();
  CHECK(s.received == n);
  CHECK(s.lost == static_cast<uint64_t>(expect_lost));
  CHECK(s.sent == static_cast<uint64_t>(expect_out));
  CHECK(got == expect_out);
  CHECK(s.rtp_by_pt.at(96) == static_cast<uint64_t>(expect_out));
  CHECK(out_of_order > 0);
  close(tx);
  close(rx);
}
