/* costream demo
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * What the demo's parts share: options, the checks each part reports, a bounded main-context
 * pump, tone measurement, and a watchdog that ends the process if a part hangs.
 */
#pragma once

#include <gst/gst.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace demo {

struct Options {
  std::string out_dir = "out";
  double phase_s = 1.5;          /* talk-back: seconds per phase */
  double publish_s = 5.0;        /* ingest: seconds of A/V published over RTMP */
  guint rtmp_port = 19350;       /* ingest: the bridge listens here */
  guint rtp_base = 5600;         /* ingest: costream RTP layout from here (base .. base+7) */
  std::vector<std::string> only; /* parts to run (empty: all) */
};

/* One line of the final summary: what was expected, what was measured. */
struct Check {
  std::string name;
  std::string expected;
  std::string measured;
  bool ok = false;
};

struct Report {
  std::vector<Check> checks;
  std::vector<std::pair<std::string, std::string>> recordings; /* path, what it holds */
  /* Adds a check and prints its line now. */
  void check(const std::string &name, const std::string &expected, const std::string &measured,
             bool ok);
  /* A part that could not run at all: one failed check saying why. */
  void fail(const std::string &name, const std::string &why);
};

/* The parts, in the order the demo runs them. Each reports its checks and recordings. */
void run_ingest(const Options &opt, Report &report);
void run_talkback(const Options &opt, Report &report);
void run_room(const Options &opt, Report &report);

/* S16 audio collected by a buffer probe, with the first buffer's timestamp. */
struct Recording {
  std::mutex lock;
  GstClockTime first_pts = GST_CLOCK_TIME_NONE; /* protected by lock */
  std::vector<int16_t> samples;                 /* protected by lock */
  /* Records every buffer that passes `pad` of the element named `element` in `bin`. */
  bool attach(GstElement *bin, const char *element, const char *pad);
  /* Samples recorded so far (all channels). */
  size_t size();
  /* The frame at running time `t`, for a recording without gaps (a mixer's output). */
  size_t index(GstClockTime t, int rate);
};

/* Adds a probe to `pad` of the element named `element` in `bin`; false if there is none. */
bool add_probe(GstElement *bin, const char *element, const char *pad, GstPadProbeType type,
               GstPadProbeCallback callback, gpointer data);

/* gst_parse_launch with the parser's message on failure (nullptr then). */
GstElement *launch(const std::string &desc, std::string *error);

/* Dispatches the default main context (bus watches, timers) until `done()` holds or
 * `timeout_s` has passed; returns whether `done()` held. Never blocks longer than 20 ms at a
 * time, so flags set by streaming threads are seen. */
bool pump_until(const std::function<bool()> &done, double timeout_s);

/* The error of an ERROR message as "element: message (debug)". */
std::string error_text(GstMessage *msg, bool with_debug = true);

/* The pipeline's running time now (0 before PLAYING). */
GstClockTime running_time(GstElement *pipeline);

/* Amplitude of the sine at `freq` in frames [from, to) of channel `ch` of interleaved S16
 * audio with `channels` channels. */
double amplitude(const std::vector<int16_t> &x, size_t from, size_t to, double freq, int rate,
                 int channels = 1, int ch = 0);

/* printf into a std::string. */
std::string format(const char *fmt, ...) G_GNUC_PRINTF(1, 2);

/* Ends the process (exit status 3) if the current part has not finished by its deadline. A
 * part's own timeouts come first; this is for a call that never returns (a state change that
 * hangs). */
class Watchdog {
public:
  Watchdog();
  ~Watchdog();
  void arm(const char *part, double seconds);
  void disarm();

private:
  void run();
  std::mutex lock_;
  std::condition_variable changed_;
  std::string part_;                               /* protected by lock_ */
  std::chrono::steady_clock::time_point deadline_; /* protected by lock_ */
  bool armed_ = false, quit_ = false;              /* protected by lock_ */
  std::thread thread_;
};

} // namespace demo
