/* costream demo
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "demo.h"

#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <unistd.h>

namespace demo {

void Report::check(const std::string &name, const std::string &expected,
                   const std::string &measured, bool ok) {
  checks.push_back({name, expected, measured, ok});
  g_print("check %s: expected %s; measured %s -> %s\n", name.c_str(), expected.c_str(),
          measured.c_str(), ok ? "OK" : "FAILED");
}

void Report::fail(const std::string &name, const std::string &why) {
  check(name, "the part to run", why, false);
}

namespace {

GstPadProbeReturn record_probe(GstPad *, GstPadProbeInfo *info, gpointer data) {
  auto *r = static_cast<Recording *>(data);
  GstBuffer *buf = GST_PAD_PROBE_INFO_BUFFER(info);
  GstMapInfo map;
  if (gst_buffer_map(buf, &map, GST_MAP_READ)) {
    std::lock_guard<std::mutex> lk(r->lock);
    if (!GST_CLOCK_TIME_IS_VALID(r->first_pts))
      r->first_pts = GST_BUFFER_PTS(buf);
    auto *s = reinterpret_cast<const int16_t *>(map.data);
    r->samples.insert(r->samples.end(), s, s + map.size / 2);
    gst_buffer_unmap(buf, &map);
  }
  return GST_PAD_PROBE_OK;
}

} // namespace

bool Recording::attach(GstElement *bin, const char *element, const char *pad) {
  return add_probe(bin, element, pad, GST_PAD_PROBE_TYPE_BUFFER, record_probe, this);
}

size_t Recording::size() {
  std::lock_guard<std::mutex> lk(lock);
  return samples.size();
}

size_t Recording::index(GstClockTime t, int rate) {
  std::lock_guard<std::mutex> lk(lock);
  if (!GST_CLOCK_TIME_IS_VALID(first_pts) || t <= first_pts)
    return 0;
  return gst_util_uint64_scale(t - first_pts, rate, GST_SECOND);
}

bool add_probe(GstElement *bin, const char *element, const char *pad, GstPadProbeType type,
               GstPadProbeCallback callback, gpointer data) {
  GstElement *e = gst_bin_get_by_name(GST_BIN(bin), element);
  if (!e)
    return false;
  GstPad *p = gst_element_get_static_pad(e, pad);
  gst_object_unref(e);
  if (!p)
    return false;
  gst_pad_add_probe(p, type, callback, data, nullptr);
  gst_object_unref(p);
  return true;
}

GstElement *launch(const std::string &desc, std::string *error) {
  GError *err = nullptr;
  GstElement *p = gst_parse_launch_full(desc.c_str(), nullptr, GST_PARSE_FLAG_FATAL_ERRORS, &err);
  if (!p || err) {
    *error = err ? err->message : "cannot build the pipeline";
    g_clear_error(&err);
    gst_clear_object(&p);
    return nullptr;
  }
  return p;
}

bool pump_until(const std::function<bool()> &done, double timeout_s) {
  const gint64 deadline = g_get_monotonic_time() + static_cast<gint64>(timeout_s * 1e6);
  /* a tick, so that an iteration with nothing to dispatch still returns */
  const guint tick = g_timeout_add(
      20, [](gpointer) -> gboolean { return G_SOURCE_CONTINUE; }, nullptr);
  bool ok = done();
  while (!ok && g_get_monotonic_time() < deadline) {
    g_main_context_iteration(nullptr, TRUE);
    ok = done();
  }
  g_source_remove(tick);
  return ok;
}

std::string error_text(GstMessage *msg, bool with_debug) {
  GError *err = nullptr;
  gchar *dbg = nullptr;
  gst_message_parse_error(msg, &err, &dbg);
  std::string text = std::string(GST_OBJECT_NAME(GST_MESSAGE_SRC(msg))) + ": " +
                     (err ? err->message : "error") +
                     (dbg && with_debug ? std::string(" (") + dbg + ")" : "");
  g_clear_error(&err);
  g_free(dbg);
  return text;
}

GstClockTime running_time(GstElement *pipeline) {
  GstClock *clock = gst_element_get_clock(pipeline);
  if (!clock)
    return 0;
  const GstClockTime now = gst_clock_get_time(clock);
  gst_object_unref(clock);
  const GstClockTime base = gst_element_get_base_time(pipeline);
  return now > base ? now - base : 0;
}

double amplitude(const std::vector<int16_t> &x, size_t from, size_t to, double freq, int rate,
                 int channels, int ch) {
  if (to <= from)
    return 0;
  double s = 0, c = 0;
  const double w = 2 * M_PI * freq / rate;
  for (size_t i = from; i < to; i++) {
    const double v = x[i * channels + ch] / 32768.0;
    s += v * std::sin(w * i);
    c += v * std::cos(w * i);
  }
  return 2.0 * std::sqrt(s * s + c * c) / static_cast<double>(to - from);
}

std::string format(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  gchar *s = g_strdup_vprintf(fmt, ap);
  va_end(ap);
  std::string out = s;
  g_free(s);
  return out;
}

Watchdog::Watchdog() : thread_([this] { run(); }) {}

Watchdog::~Watchdog() {
  {
    std::lock_guard<std::mutex> lk(lock_);
    quit_ = true;
  }
  changed_.notify_all();
  thread_.join();
}

void Watchdog::arm(const char *part, double seconds) {
  {
    std::lock_guard<std::mutex> lk(lock_);
    part_ = part;
    deadline_ = std::chrono::steady_clock::now() +
                std::chrono::milliseconds(static_cast<long>(seconds * 1000));
    armed_ = true;
  }
  changed_.notify_all();
}

void Watchdog::disarm() {
  {
    std::lock_guard<std::mutex> lk(lock_);
    armed_ = false;
  }
  changed_.notify_all();
}

void Watchdog::run() {
  std::unique_lock<std::mutex> lk(lock_);
  while (!quit_) {
    if (!armed_) {
      changed_.wait(lk);
      continue;
    }
    if (changed_.wait_until(lk, deadline_) == std::cv_status::timeout && armed_ && !quit_ &&
        std::chrono::steady_clock::now() >= deadline_) {
      /* something blocks the main thread: nothing else can end the demo */
      std::fprintf(stderr, "watchdog: the %s part did not finish in time; giving up\n",
                   part_.c_str());
      std::fflush(stdout);
      _exit(3);
    }
  }
}

} // namespace demo
