/* costream tests
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Pipeline helpers for element tests: feeding appsrc with generated audio, collecting appsink
 * output, and waiting on the bus with a bound.
 */
#pragma once

#include <gst/app/gstappsink.h>
#include <gst/app/gstappsrc.h>
#include <gst/gst.h>

#include <cstdint>
#include <string>
#include <vector>

namespace testgst {

/* Raises a Catch2 failure if the element factory is missing (plugin not loaded). */
GstElement *make(const char *factory, const char *name = nullptr);

GstCaps *audio_caps(const char *format, int rate, int channels);

/* An audio buffer of `frames` frames of `format` S16LE from doubles in [-1, 1] (interleaved). */
GstBuffer *s16_buffer(const std::vector<int16_t> &samples, GstClockTime pts, GstClockTime dur);
GstBuffer *f32_buffer(const std::vector<float> &samples, GstClockTime pts, GstClockTime dur);

struct Collected {
  std::vector<GstBuffer *> buffers;
  ~Collected();
  std::vector<int16_t> s16() const;
  std::vector<double> channel(unsigned ch, unsigned channels) const; /* S16 -> [-1,1] */
};

/* Pulls everything until EOS (or `max_buffers`); fails the test on timeout. */
void pull_all(GstElement *appsink, Collected &out, GstClockTime timeout = 20 * GST_SECOND,
              size_t max_buffers = SIZE_MAX);

/* Plays a launch line and pulls from its appsink `sink` as pull_all() does, then stops it. */
void play_and_pull(const std::string &desc, const char *sink, Collected &out,
                   GstClockTime timeout = 20 * GST_SECOND, size_t max_buffers = SIZE_MAX);

/* Waits for EOS or ERROR on the bus; returns the error message (empty if EOS). */
std::string wait_eos_or_error(GstElement *pipeline, GstClockTime timeout = 30 * GST_SECOND);

/* Collects element messages of a given structure name that were posted on the bus so far. */
std::vector<GstStructure *> drain_element_messages(GstElement *pipeline, const char *name);

/* Runs a command (looked up in PATH) to its end; 0 when it exited with 0, else non-zero.
 * `out`, when given, receives its standard output. */
int run_command(const std::vector<std::string> &args, std::string *out = nullptr);

/* A directory of this test program's own, made on first use. */
const std::string &test_tmpdir();

std::vector<uint8_t> read_file(const std::string &path);

/* A WAV file's first channel as doubles in [-1, 1], at the file's rate (decoded by wavparse). */
std::vector<double> wav_samples(const std::string &path);

/* Makes (with ffmpeg) a 3 s FLV: 320x240 test video at 25 fps, H.264 without B-frames, key frame
 * every 25 frames, and AAC from the lavfi audio source `audio` (e.g. "sine=frequency=440"). */
void make_av_flv(const std::string &path, const std::string &audio);

/* A talker fed synchronously from the test thread: when push() returns, the buffer is queued in
 * the mixer. Its upstream answers the latency query as a live source would. */
struct TalkerPad {
  GstElement *mixer;
  GstPad *src;
  GstPad *sink;
  TalkerPad(GstElement *m, GstCaps *caps);
  void push(GstBuffer *b);
  void leave();
  ~TalkerPad();
};

/* Talkers joining and leaving a running mixer (`mixer`, in `pipeline`) from `threads` threads,
 * `rounds` times each: a live 1 kHz tone at 44.1 kHz (volume `volume`) on a new `sink_%u`, and,
 * with `return_feeds`, its `src_N` linked to a fakesink; kept for a few ms, then unlinked and
 * released while the others flow. Counts what went wrong (the caller checks: Catch2 assertions
 * are not thread-safe). */
struct Churn {
  int joined = 0;
  int failures = 0;
};
Churn churn_talkers(GstElement *pipeline, GstElement *mixer, int threads, int rounds, double volume,
                    bool return_feeds);

/* The timestamps of `out` follow each other without a hole or an overlap. */
bool contiguous(const Collected &out);

/* One counter of an element's `stats` structure (0 when the field is missing). */
guint64 stats_uint64(GstElement *element, const char *field);

/* One counter of every talker's entry in a mixer's `stats` ("pads" array), in pad order. */
std::vector<guint64> pads_stat(GstElement *mixer, const char *field);

/* Whatever is still queued in an appsink, without waiting. */
void pull_queued(GstElement *appsink, Collected &out);

} // namespace testgst
