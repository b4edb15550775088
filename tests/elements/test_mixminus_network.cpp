/* costream tests
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * A participant's Opus/RTP feed crosses a lossy network (tests/net: the impairment relay on
 * loopback) into a live mixminus room, wired as users wire it: udpsrc ! rtpjitterbuffer
 * do-lost=true ! rtpopusdepay ! mixminus. What a listener hears is compared with what the talker
 * said, 10 ms window by window; the same packets also go through GStreamer's own concealment
 * (opusdec plc=true + audiomixer) in the same run, for comparison.
 */
#include "helpers.h"
#include "audio/opusreceiver.h"
#include "impair.h"
#include "testsig.h"

#include <catch2/catch.hpp>

#include <cstdio>

using namespace testgst;

namespace {

constexpr int kRate = 48000;

struct LossRun {
  testsig::EnvelopeMatch mixminus, reference;
  testnet::RelayStats relay;
  guint64 concealed = 0, recovered = 0;
  /* from what the relay lost: packets to conceal (up to 120 ms of each hole), and the holes of
   * at most 120 ms whose next packet carries in-band FEC (its last packet can be recovered) */
  uint64_t concealable = 0, fec_recoverable = 0;
};

/* The Opus payload of an RTP packet (no CSRCs or extension here: rtpopuspay sends neither). */
bool opus_payload(const std::vector<uint8_t> &rtp, const uint8_t **p, size_t *n) {
  if (rtp.size() < 12 || (rtp[0] & 0x3f) != 0) /* CSRC count, extension, padding */
    return false;
  *p = rtp.data() + 12;
  *n = rtp.size() - 12;
  return true;
}

void expected_from_relay(const std::vector<testnet::RecordedPacket> &rec, LossRun *r) {
  size_t i = 0;
  while (i < rec.size() && rec[i].lost) /* lost before the first one: nothing to conceal from */
    i++;
  while (i < rec.size()) {
    if (!rec[i].lost) {
      i++;
      continue;
    }
    size_t run = 0;
    while (i < rec.size() && rec[i].lost) {
      run++;
      i++;
    }
    if (i == rec.size())
      break; /* lost at the end: no packet after it to show the hole */
    if (run > 6) {
      /* over 120 ms: announced packet by packet by the jitter buffer, the first 120 ms are
       * concealed, then it is a pause (silence; the decoder starts over at the next packet) */
      r->concealable += 6;
      continue;
    }
    const uint8_t *p;
    size_t n;
    const bool fec = opus_payload(rec[i].data, &p, &n) && costream::opus_packet_has_fec(p, n);
    r->concealable += run;
    r->fec_recoverable += fec;
  }
}

/* `seconds` of speech-like sound (after 0.5 s of silence) sent as Opus/RTP at 32 kbit/s, 20 ms
 * packets, through a relay with `imp`, into a live mixminus room with one silent listener. */
LossRun run_lossy_room(const testnet::Impairment &imp, bool fec, double seconds) {
  const uint16_t dst = testnet::free_udp_ports(1);
  REQUIRE(dst != 0);
  testnet::UdpRelay relay(0, dst, imp);
  REQUIRE(relay.ok());
  relay.set_record(true);

  const std::string fec_enc = fec ? "inband-fec=true packet-loss-percentage=10"
                                  : "inband-fec=false packet-loss-percentage=0";
  const std::string fec_dec = fec ? "true" : "false";
  const std::string desc =
      "appsrc name=talk is-live=true format=time max-bytes=0 "
      "caps=audio/x-raw,format=S16LE,rate=48000,channels=1,layout=interleaved ! "
      "opusenc bitrate=32000 audio-type=voice frame-size=20 " +
      fec_enc + " ! rtpopuspay pt=97 ! udpsink host=127.0.0.1 sync=true port=" +
      std::to_string(relay.port()) + " udpsrc address=127.0.0.1 port=" + std::to_string(dst) +
      " caps=\"application/x-rtp,media=audio,clock-rate=48000,encoding-name=OPUS,payload=97\" ! "
      "rtpjitterbuffer latency=100 do-lost=true ! rtpopusdepay ! tee name=t "
      "t. ! queue ! mm.sink_0 "
      "audiotestsrc is-live=true wave=silence samplesperbuffer=480 ! "
      "audio/x-raw,rate=48000,channels=1 ! mm.sink_1 "
      "mixminus name=mm max-speakers=0 mm.src_0 ! fakesink sync=false "
      "mm.src_1 ! audio/x-raw,format=S16LE,channels=1 ! appsink name=out sync=false "
      "t. ! queue ! opusdec plc=true use-inband-fec=" +
      fec_dec +
      " ! audioconvert ! audiomixer ! audio/x-raw,format=S16LE,rate=48000,channels=1 ! "
      "appsink name=ref sync=false";
  GError *err = nullptr;
  GstElement *p = gst_parse_launch(desc.c_str(), &err);
  INFO(desc);
  REQUIRE(err == nullptr);

  std::vector<double> src(kRate / 2, 0.0);
  const auto speech = testsig::speechlike(kRate, static_cast<size_t>(seconds * kRate), 0.5, 3);
  src.insert(src.end(), speech.begin(), speech.end());
  src.resize(src.size() + kRate / 2, 0.0);

  GstElement *talk = gst_bin_get_by_name(GST_BIN(p), "talk");
  REQUIRE(gst_element_set_state(p, GST_STATE_PLAYING) != GST_STATE_CHANGE_FAILURE);
  for (size_t at = 0; at + 480 <= src.size(); at += 480) {
    std::vector<int16_t> s(480);
    for (size_t i = 0; i < 480; i++)
      s[i] = static_cast<int16_t>(src[at + i] * 32767);
    REQUIRE(gst_app_src_push_buffer(GST_APP_SRC(talk),
                                    s16_buffer(s, at * GST_SECOND / kRate, 10 * GST_MSECOND)) ==
            GST_FLOW_OK);
  }
  gst_app_src_end_of_stream(GST_APP_SRC(talk));
  gst_object_unref(talk);

  /* The room is live and never ends: take the source's length and a second more. */
  auto collect = [&](const char *name) {
    GstElement *sink = gst_bin_get_by_name(GST_BIN(p), name);
    std::vector<double> x;
    const size_t want = src.size() + kRate;
    const gint64 end = g_get_monotonic_time() + static_cast<gint64>(seconds + 30) * G_USEC_PER_SEC;
    while (x.size() < want && g_get_monotonic_time() < end) {
      GstSample *s = gst_app_sink_try_pull_sample(GST_APP_SINK(sink), GST_SECOND);
      if (!s)
        continue;
      GstMapInfo m;
      GstBuffer *b = gst_sample_get_buffer(s);
      gst_buffer_map(b, &m, GST_MAP_READ);
      auto *v = reinterpret_cast<const int16_t *>(m.data);
      for (size_t i = 0; i < m.size / 2; i++)
        x.push_back(v[i] / 32768.0);
      gst_buffer_unmap(b, &m);
      gst_sample_unref(s);
    }
    gst_object_unref(sink);
    REQUIRE(x.size() >= want);
    return x;
  };
  const auto out = collect("out"), ref = collect("ref");

  LossRun r;
  GstElement *mm = gst_bin_get_by_name(GST_BIN(p), "mm");
  GstPad *pad = gst_element_get_static_pad(mm, "sink_0");
  g_object_get(pad, "concealed", &r.concealed, "recovered", &r.recovered, nullptr);
  gst_object_unref(pad);
  gst_object_unref(mm);
  gst_element_set_state(p, GST_STATE_NULL);
  gst_object_unref(p);
  r.relay = relay.stats();
  expected_from_relay(relay.recorded(), &r);
  if (const char *dump = g_getenv("COSTREAM_TEST_DUMP")) {
    for (auto &f : {std::make_pair("src", static_cast<const std::vector<double> *>(&src)),
                    std::make_pair("out", &out), std::make_pair("ref", &ref)}) {
      FILE *fp = std::fopen((std::string(dump) + "." + f.first).c_str(), "wb");
      std::fwrite(f.second->data(), sizeof(double), f.second->size(), fp);
      std::fclose(fp);
    }
  }
  /* the first second of speech is a warm-up (jitter buffers and mixers settling), not counted */
  const size_t from = kRate / 2 + kRate;
  r.mixminus = testsig::match_envelopes(src, out, kRate, 480, kRate * 3 / 2, from);
  r.reference = testsig::match_envelopes(src, ref, kRate, 480, kRate * 3 / 2, from);
  std::printf(
      "network: %s, FEC %s: relay lost %llu of %llu (%llu concealable, %llu with FEC "
      "after); mixminus concealed %llu, recovered "
      "%llu, level %.2f, dropout windows %.2f %% (%zu of %zu), loudest %+.1f dB; opusdec plc=true "
      "+ "
      "audiomixer %.2f %%, loudest %+.1f dB\n",
      imp.describe().c_str(), fec ? "on" : "off", static_cast<unsigned long long>(r.relay.lost),
      static_cast<unsigned long long>(r.relay.received),
      static_cast<unsigned long long>(r.concealable),
      static_cast<unsigned long long>(r.fec_recoverable),
      static_cast<unsigned long long>(r.concealed), static_cast<unsigned long long>(r.recovered),
      r.mixminus.gain, 100 * r.mixminus.fraction(), r.mixminus.dropouts, r.mixminus.active,
      r.mixminus.loudest_db, 100 * r.reference.fraction(), r.reference.loudest_db);
  return r;
}

void check_heard(const LossRun &r) {
  CHECK(r.mixminus.gain > 0.7);
  CHECK(r.mixminus.gain < 1.4);
  CHECK(r.mixminus.active > 0);
  /* every lost packet in a hole short enough was concealed or recovered, once; those followed by
   * a packet with FEC recovered */
  CHECK(r.concealed + r.recovered == r.concealable);
  CHECK(r.recovered == r.fec_recoverable);
}

} // namespace

TEST_CASE("Opus over a clean loopback: the listener hears the talker, no dropouts",
          "[mixminus][network]") {
  testnet::Impairment clean;
  const auto r = run_lossy_room(clean, false, 6);
  check_heard(r);
  CHECK(r.relay.lost == 0);
  CHECK(r.mixminus.dropouts == 0);
  CHECK(r.mixminus.loudest_db < 1.0);
}

TEST_CASE("Opus at 5% random loss: at most 1% of the listener's 10 ms windows drop out",
          "[mixminus][network]") {
  testnet::Impairment imp;
  imp.loss = 0.05;
  imp.seed = 11;
  const auto r = run_lossy_room(imp, false, 16);
  check_heard(r);
  CHECK(r.relay.lost > 30);
  CHECK(r.recovered == 0);
  CHECK(r.mixminus.fraction() <= 0.01);
  CHECK(r.mixminus.fraction() <= r.reference.fraction() + 0.002);
}

TEST_CASE("Opus at 5% random loss with the sender's in-band FEC: at most 0.3% drop out",
          "[mixminus][network]") {
  testnet::Impairment imp;
  imp.loss = 0.05;
  imp.seed = 11;
  const auto r = run_lossy_room(imp, true, 16);
  check_heard(r);
  CHECK(r.recovered > 0);
  CHECK(r.mixminus.fraction() <= 0.003);
}

TEST_CASE("Opus at 20% loss in bursts: no window louder than the talker", "[mixminus][network]") {
  testnet::Impairment imp;
  imp.loss = 0.20;
  imp.burst = 4;
  imp.seed = 5;
  for (bool fec : {false, true}) {
    const auto r = run_lossy_room(imp, fec, 8);
    check_heard(r);
    CHECK(r.relay.lost > 40);
    CHECK(r.mixminus.loudest_db < 1.0);
  }
}
