/* costream tests
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * The camera element's pure cores: RTSP addresses with credentials (split, redacted), the codec
 * plans made from a camera's SDP, the reconnection backoff.
 */
#include "camera/cameracodecs.h"
#include "camera/rtspurl.h"

#include <catch2/catch.hpp>

using namespace costream;

TEST_CASE("An RTSP address is split into the address rtspsrc gets and the credentials",
          "[camera]") {
  auto u = split_rtsp_url("rtsp://admin:s3cr%40t@192.168.1.20:554/Streaming/Channels/101?tcp");
  CHECK(u.valid);
  CHECK(u.address == "rtsp://192.168.1.20:554/Streaming/Channels/101?tcp");
  CHECK(u.user == "admin");
  CHECK(u.password == "s3cr@t");

  u = split_rtsp_url("rtsp://cam.local/live");
  CHECK(u.valid);
  CHECK(u.address == "rtsp://cam.local/live");
  CHECK(u.user.empty());
  CHECK(u.password.empty());

  u = split_rtsp_url("rtsp://user@[::1]:8554/a");
  CHECK(u.valid);
  CHECK(u.address == "rtsp://[::1]:8554/a");
  CHECK(u.user == "user");

  /* A password holding '@' unescaped: the last '@' ends the user info. */
  u = split_rtsp_url("rtsp://u:p@ss@host/x");
  CHECK(u.address == "rtsp://host/x");
  CHECK(u.password == "p@ss");

  CHECK_FALSE(split_rtsp_url("http://host/x").valid);
  CHECK_FALSE(split_rtsp_url("rtsp://").valid);
  CHECK_FALSE(split_rtsp_url("rtsp://:pw@/x").valid);
  CHECK_FALSE(split_rtsp_url("not a url").valid);
  CHECK_FALSE(split_rtsp_url("").valid);
  CHECK(split_rtsp_url("RTSPS://h/x").valid);
}

TEST_CASE("Redaction hides user info and query values wherever a URL appears in a text",
          "[camera]") {
  CHECK(redact_url("rtsp://admin:s3cret@10.0.0.2:554/live") == "rtsp://***@10.0.0.2:554/live");
  CHECK(redact_url("rtsp://10.0.0.2/live") == "rtsp://10.0.0.2/live");
  CHECK(redact_url("rtsp://h/p?user=admin&password=s3cret") == "rtsp://h/p?user=***&password=***");
  CHECK(redact_url("Could not connect to rtsp://a:b@h/x (refused), then "
                   "rtsp://c:d@h2/y?k=v.") ==
        "Could not connect to rtsp://***@h/x (refused), then rtsp://***@h2/y?k=***");
  CHECK(redact_url("no url here") == "no url here");
  CHECK(redact_url("://weird a:b@c") == "://weird a:b@c");
  CHECK(redact_url("") == "");
  /* Every truncation of a text (a log line cut short) stays hidden once its '@' is in, and
   * none crashes. */
  const std::string tricky = "rtsp://u:p@h/p?a=1&b=2#frag rtsp://x@";
  for (size_t n = 0; n <= tricky.size(); n++) {
    const std::string r = redact_url(tricky.substr(0, n));
    if (n > tricky.find('@'))
      CHECK(r.find("u:p") == std::string::npos);
  }
  CHECK(redact_url(tricky).find("1") == std::string::npos);
}

TEST_CASE("Codec plans for the camera's streams", "[camera]") {
  auto v = plan_receive({"video", "H264", 90000, 0, 96});
  CHECK(v.supported);
  CHECK(v.codec == "H264");
  REQUIRE(v.chain.size() == 2);
  CHECK(v.chain[0].factory == "rtph264depay");
  CHECK(v.output_caps.find("byte-stream") != std::string::npos);
  CHECK_FALSE(plan_receive({"video", "H265", 90000, 0, 96}).supported);
  CHECK_FALSE(plan_receive({"application", "VND.ONVIF.METADATA", 90000, 0, 107}).supported);

  auto a = plan_receive({"audio", "pcma", 8000, 0, 8});
  CHECK(a.supported);
  CHECK(a.codec == "PCMA");
  CHECK(a.chain.back().factory == "alawdec");
  CHECK(plan_receive({"audio", "MPEG4-GENERIC", 16000, 1, 96}).codec == "AAC");
  CHECK_FALSE(plan_receive({"audio", "G726-32", 8000, 0, 97}).supported);
  CHECK(a.output == "raw");
}

TEST_CASE("Opus out: a camera's Opus is only depayloaded, other audio is encoded", "[camera]") {
  auto opus = plan_receive({"audio", "opus", 48000, 2, 97}, AudioOutput::Opus);
  CHECK(opus.supported);
  CHECK(opus.codec == "OPUS");
  CHECK(opus.output == "opus-passthrough");
  REQUIRE(opus.chain.size() == 1);
  CHECK(opus.chain[0].factory == "rtpopusdepay");

  for (const char *enc : {"PCMA", "PCMU", "MPEG4-GENERIC", "L16"}) {
    INFO(enc);
    auto p = plan_receive({"audio", enc, 8000, 1, 96}, AudioOutput::Opus);
    CHECK(p.supported);
    CHECK(p.output == "opus-encoded");
    REQUIRE(p.chain.size() >= 4);
    CHECK(p.chain.back().factory == "opusenc");
    /* encoded as announced: 48 kHz mono */
    CHECK(p.chain[p.chain.size() - 2].factory == "capsfilter");
    CHECK(p.chain[p.chain.size() - 2].properties[0].second == "audio/x-raw,rate=48000,channels=1");
    /* decoded first: the raw plan's chain is its beginning */
    const auto raw = plan_receive({"audio", enc, 8000, 1, 96});
    for (size_t i = 0; i < raw.chain.size(); i++)
      CHECK(p.chain[i].factory == raw.chain[i].factory);
  }
  /* decoded, the raw plan is unchanged by the default */
  CHECK(plan_receive({"audio", "opus", 48000, 2, 97}).chain.back().factory == "opusdec");
  /* video does not change */
  CHECK(plan_receive({"video", "H264", 90000, 0, 96}, AudioOutput::Opus).chain.size() == 2);
  CHECK_FALSE(plan_receive({"audio", "G726-32", 8000, 0, 97}, AudioOutput::Opus).supported);
  CHECK(std::string(audio_output_caps(AudioOutput::Opus)).rfind("audio/x-opus", 0) == 0);
  CHECK(std::string(audio_output_caps(AudioOutput::Raw)).rfind("audio/x-raw", 0) == 0);
}

TEST_CASE("Back channel plans follow what the camera's SDP asks", "[camera]") {
  auto pcma = plan_backchannel({"audio", "PCMA", 8000, 1, 8});
  CHECK(pcma.supported);
  CHECK(pcma.rate == 8000);
  CHECK(pcma.channels == 1);
  REQUIRE(pcma.chain.size() == 2);
  CHECK(pcma.chain[0].factory == "alawenc");
  CHECK(pcma.chain[1].factory == "rtppcmapay");
  CHECK(pcma.chain[1].properties == std::vector<std::pair<std::string, std::string>>{{"pt", "8"}});

  auto pcmu = plan_backchannel({"audio", "PCMU", 16000, 0, 0});
  CHECK(pcmu.rate == 16000); /* the camera's clock rate, whatever it is */
  CHECK(pcmu.chain[0].factory == "mulawenc");

  auto opus = plan_backchannel({"audio", "OPUS", 48000, 2, 111});
  CHECK(opus.rate == 48000);
  CHECK(opus.channels == 1);
  CHECK(opus.chain[1].factory == "rtpopuspay");

  auto aac = plan_backchannel({"audio", "mpeg4-generic", 16000, 1, 96});
  CHECK(aac.supported);
  CHECK(aac.codec == "AAC");
  CHECK(aac.rate == 16000);

  auto dynamic = plan_backchannel({"audio", "PCMA", 8000, 0, 200}); /* out-of-range payload */
  CHECK(dynamic.chain[1].properties[0].second == "96");

  CHECK_FALSE(plan_backchannel({"audio", "G726-32", 8000, 0, 97}).supported);
  CHECK_FALSE(plan_backchannel({"video", "H264", 90000, 0, 96}).supported);
}

TEST_CASE("Reconnection backoff doubles up to its maximum and resets", "[camera]") {
  Backoff b(1000, 30000);
  std::vector<unsigned> got;
  for (int i = 0; i < 7; i++)
    got.push_back(b.next());
  CHECK(got == std::vector<unsigned>{1000, 2000, 4000, 8000, 16000, 30000, 30000});
  b.reset();
  CHECK(b.next() == 1000);
  Backoff zero(0, 0);
  CHECK(zero.next() == 0);
  Backoff inverted(5000, 100); /* a max below the min is the min */
  CHECK(inverted.next() == 5000);
  CHECK(inverted.next() == 5000);
  Backoff huge(3000000000u, 4000000000u);
  CHECK(huge.next() == 3000000000u);
  CHECK(huge.next() == 4000000000u);
}
