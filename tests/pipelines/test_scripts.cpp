/* costream tests
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * The pipelines/ scripts run for a few seconds on 127.0.0.1 with their built-in test sources (or
 * ffmpeg as the OBS stand-in); what arrived is decoded and checked: frames and tones. The
 * scripts run as child processes with this program's isolated registry and plugin path.
 */
#include "helpers.h"
#include "testsig.h"

#include <sys/wait.h>

#include <catch2/catch.hpp>

#include <algorithm>

using namespace testgst;

namespace {

std::string script(const char *name) {
  return std::string(COSTREAM_SOURCE_DIR) + "/pipelines/" + name;
}

GPid spawn(const std::vector<std::string> &args) {
  std::vector<char *> argv;
  for (auto &a : args)
    argv.push_back(const_cast<char *>(a.c_str()));
  argv.push_back(nullptr);
  GPid pid = 0;
  GError *err = nullptr;
  REQUIRE(g_spawn_async(nullptr, argv.data(), nullptr,
                        static_cast<GSpawnFlags>(G_SPAWN_SEARCH_PATH | G_SPAWN_DO_NOT_REAP_CHILD),
                        nullptr, nullptr, &pid, &err));
  return pid;
}

int wait_for(GPid pid) {
  int status = 0;
  waitpid(pid, &status, 0);
  g_spawn_close_pid(pid);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::string tmpfile(const char *name) {
  return test_tmpdir() + "/" + name;
}

/* A Matroska recording decoded: video frames and S16 audio of `channels`. */
struct Recording {
  Collected video, audio;
  explicit Recording(const std::string &path, int channels) {
    GError *err = nullptr;
    const std::string desc =
        "filesrc location=" + path +
        " ! matroskademux name=d d.video_0 ! queue ! h264parse ! avdec_h264 ! appsink name=v "
        "sync=false d.audio_0 ! queue ! opusdec ! audioconvert ! "
        "audio/x-raw,format=S16LE,channels=" +
        std::to_string(channels) + " ! appsink name=a sync=false";
    GstElement *p = gst_parse_launch(desc.c_str(), &err);
    REQUIRE(err == nullptr);
    GstElement *v = gst_bin_get_by_name(GST_BIN(p), "v");
    GstElement *a = gst_bin_get_by_name(GST_BIN(p), "a");
    g_object_set(v, "max-buffers", 0, nullptr);
    g_object_set(a, "max-buffers", 0, nullptr);
    REQUIRE(gst_element_set_state(p, GST_STATE_PLAYING) != GST_STATE_CHANGE_FAILURE);
    pull_all(v, video);
    pull_all(a, audio);
    gst_element_set_state(p, GST_STATE_NULL);
    gst_object_unref(v);
    gst_object_unref(a);
    gst_object_unref(p);
  }
};

} // namespace

TEST_CASE("costream-send to costream-recv over loopback: video frames and the tone arrive",
          "[scripts]") {
  const std::string out = tmpfile("send-recv.mkv");
  GPid rx = spawn({script("costream-recv"), "--out", out, "--seconds", "9", "--port-base", "6300"});
  g_usleep(1500000); /* the receiver listens before the sender starts */
  GPid tx = spawn(
      {script("costream-send"), "--peer", "127.0.0.1", "--seconds", "5", "--port-base", "6300"});
  CHECK(wait_for(tx) == 0);
  CHECK(wait_for(rx) == 0);
  Recording rec(out, 1);
  INFO("frames " << rec.video.buffers.size());
  /* 5 s at 30 fps; the first frames may go out before the encoder's first keyframe reaches the
   * receiver's jitter buffer */
  CHECK(rec.video.buffers.size() >= 120);
  CHECK(rec.video.buffers.size() <= 150);
  auto x = rec.audio.channel(0, 1);
  REQUIRE(x.size() >= 3 * 48000);
  CHECK(testsig::amplitude_at(&x[48000], 96000, 440, 48000) == Approx(0.3).margin(0.03));
}

TEST_CASE("obs-to-peer: an RTMP publish reaches costream-recv as H.264 and Opus", "[scripts]") {
  const std::string flv = tmpfile("obs.flv");
  make_av_flv(flv, "aevalsrc=0.25*sin(2*PI*440*t)|0.25*sin(2*PI*660*t):s=48000");
  const std::string out = tmpfile("obs.mkv");
  /* The bridge and the receiver run for a fixed time: long enough that a loaded machine (ffmpeg
   * slow to start, then publishing in real time) still ends its publish well before they stop. */
  GPid rx =
      spawn({script("costream-recv"), "--out", out, "--seconds", "21", "--port-base", "6400"});
  GPid br = spawn({script("obs-to-peer"), "--peer", "127.0.0.1", "--port", "19410", "--key", "k",
                   "--port-base", "6400", "--seconds", "20"});
  g_usleep(2000000);
  GPid pub = spawn({"timeout", "30", "ffmpeg", "-hide_banner", "-loglevel", "error", "-re", "-i",
                    flv, "-c", "copy", "-f", "flv", "rtmp://127.0.0.1:19410/live/k"});
  CHECK(wait_for(pub) == 0);
  CHECK(wait_for(br) == 0);
  CHECK(wait_for(rx) == 0);
  Recording rec(out, 2);
  CHECK(rec.video.buffers.size() == 75);
  auto l = rec.audio.channel(0, 2), r = rec.audio.channel(1, 2);
  REQUIRE(l.size() >= 2 * 48000);
  CHECK(testsig::amplitude_at(&l[24000], 72000, 440, 48000) == Approx(0.25).margin(0.02));
  CHECK(testsig::amplitude_at(&r[24000], 72000, 660, 48000) == Approx(0.25).margin(0.02));
}

TEST_CASE("costream-room: every peer hears the others and never itself; pins are printed",
          "[scripts]") {
  const std::string dir = tmpfile("room");
  std::string printed;
  CHECK(run_command({"timeout", "90", script("costream-room"), "--peers", "3", "--seconds", "6",
                     "--out-dir", dir, "--port-base", "6500"},
                    &printed) == 0);
  /* the hub printed each peer's pin as it happened */
  CHECK(printed.find("mixminus-pin: slot ") != std::string::npos);
  CHECK(printed.find("peer 0") != std::string::npos);
  CHECK(printed.find("peer 1") != std::string::npos);
  CHECK(printed.find("peer 2") != std::string::npos);
  const double freq[3] = {300, 500, 700};
  for (int peer = 0; peer < 3; peer++) {
    INFO("peer " << peer);
    const auto x = wav_samples(dir + "/peer-" + std::to_string(peer) + ".wav");
    REQUIRE(x.size() >= 5 * 48000);
    /* 100 ms windows from 2 s to 4.5 s (the room is up by then): median amplitude per tone,
     * found within 2.5% of its frequency (on a loaded machine the hub's jitter buffers can shift
     * a peer's timestamps by tens of ms; the hub then retimes that peer by resampling, up to 2%,
     * for a few seconds); its own tone is looked for at its frequency (the strongest noise
     * within a band would count as the tone) */
    for (int other = 0; other < 3; other++) {
      std::vector<double> amps;
      for (size_t s = 2 * 48000; s + 4800 <= 45 * 4800; s += 4800)
        amps.push_back(other == peer ? testsig::amplitude_at(&x[s], 4800, freq[other], 48000)
                                     : testsig::amplitude_near(&x[s], 4800, freq[other], 48000));
      std::sort(amps.begin(), amps.end());
      const double median = amps[amps.size() / 2];
      INFO("tone of peer " << other << ": median " << median);
      if (other == peer)
        CHECK(median < 0.01); /* never itself */
      else
        CHECK(median > 0.15); /* the others, at their 0.2 */
    }
  }
}

namespace {} // namespace

TEST_CASE("mixminus-hub-example: one peer sending is heard by the others at once", "[scripts]") {
  /* The hub of docs/mixminus.md, with only peer 0 sending (440 Hz) and the three others not yet:
   * participant 1's return feed (UDP 5301) must carry the tone (the hub once waited for all four
   * before it went live). */
  GPid hub = spawn({"timeout", "-s", "INT", "-k", "5", "14", script("mixminus-hub-example")});
  g_usleep(2000000);
  GPid peer = spawn({"timeout",
                     "-s",
                     "INT",
                     "-k",
                     "5",
                     "9",
                     "gst-launch-1.0",
                     "-q",
                     "audiotestsrc",
                     "is-live=true",
                     "freq=440",
                     "volume=0.3",
                     "!",
                     "audioconvert",
                     "!",
                     "opusenc",
                     "!",
                     "rtpopuspay",
                     "pt=96",
                     "!",
                     "udpsink",
                     "host=127.0.0.1",
                     "port=5100",
                     "sync=false"});
  const std::string wav = tmpfile("hub-feed-1.wav");
  /* (--foreground: one SIGINT, not one more to the process group; see pipelines/lib.sh) */
  run_command({"timeout",
               "--foreground",
               "-s",
               "INT",
               "-k",
               "5",
               "7",
               "gst-launch-1.0",
               "-e",
               "-q",
               "udpsrc",
               "port=5301",
               "caps=application/x-rtp,media=audio,encoding-name=OPUS,payload=96,clock-rate=48000",
               "!",
               "rtpjitterbuffer",
               "!",
               "rtpopusdepay",
               "!",
               "opusdec",
               "!",
               "audioconvert",
               "!",
               "audio/x-raw,format=S16LE,channels=1,rate=48000",
               "!",
               "wavenc",
               "!",
               "filesink",
               "location=" + wav});
  wait_for(peer);
  wait_for(hub);
  const auto x = wav_samples(wav);
  INFO("participant 1's feed: " << x.size() / 48000.0 << " s");
  REQUIRE(x.size() >= 3 * 48000);
  /* the median over 100 ms windows of the last 2 s, the tone found within 2.5% of 440 Hz (the
   * hub's drift correction may still be pulling in the talker's start) */
  std::vector<double> amps;
  for (size_t s = x.size() - 2 * 48000; s + 4800 <= x.size(); s += 4800)
    amps.push_back(testsig::amplitude_near(&x[s], 4800, 440, 48000));
  std::sort(amps.begin(), amps.end());
  CHECK(amps[amps.size() / 2] == Approx(0.3).margin(0.03));
}

TEST_CASE("the demo (README command 1) finishes within a minute and every check is OK",
          "[scripts][demo]") {
  const std::string demo = std::string(COSTREAM_BUILD_DIR) + "/pipelines/costream-demo";
  INFO(demo << " is built with -Dexamples=enabled (the default, auto, builds it)");
  REQUIRE(g_file_test(demo.c_str(), G_FILE_TEST_IS_EXECUTABLE));
  const std::string out = tmpfile("demo");
  std::string printed;
  const gint64 start = g_get_monotonic_time();
  const int status = run_command(
      {"timeout", "120", demo, "--out", out, "--rtmp-port", "19420", "--rtp-port-base", "6600"},
      &printed);
  const double seconds = (g_get_monotonic_time() - start) / 1e6;
  INFO(printed);
  CHECK(status == 0);
  CHECK(seconds < 60);
  /* every part ran and each of its checks printed OK */
  std::vector<std::string> checks;
  gchar **lines = g_strsplit(printed.c_str(), "\n", -1);
  for (gchar **l = lines; *l; l++)
    if (g_str_has_prefix(*l, "check "))
      checks.push_back(*l);
  g_strfreev(lines);
  for (const char *name :
       {"check ingest video:", "check ingest audio:", "check talk-back backchannel.wav:",
        "check room slots:", "check room participant-0.wav:", "check room participant-3.wav:"}) {
    INFO(name);
    CHECK(std::count_if(checks.begin(), checks.end(),
                        [&](const std::string &c) { return c.rfind(name, 0) == 0; }) == 1);
  }
  CHECK(checks.size() == 8);
  for (auto &c : checks) {
    INFO(c);
    CHECK(g_str_has_suffix(c.c_str(), " -> OK"));
  }
  CHECK(printed.find("demo: all 8 checks OK") != std::string::npos);
  /* the recordings are there; each room feed, read here on its own, never holds its own tone */
  CHECK(read_file(out + "/rtmp-peer.mkv").size() > 50000);
  CHECK(wav_samples(out + "/backchannel.wav").size() >= 9 * 16000);
  const double freq[4] = {300, 500, 700, 900};
  for (int i = 0; i < 4; i++) {
    INFO("participant " << i);
    const auto x = wav_samples(out + "/room/participant-" + std::to_string(i) + ".wav");
    REQUIRE(x.size() >= 7 * 48000);
    CHECK(testsig::amplitude_at(x.data(), x.size(), freq[i], 48000) < 0.005);
    /* participant 0 and 1 hold a slot throughout: the others hear them */
    for (int j : {0, 1})
      if (j != i)
        CHECK(testsig::amplitude_at(&x[48000], 6 * 48000, freq[j], 48000) > 0.1);
  }
}
