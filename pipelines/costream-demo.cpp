/* costream demo
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * The costream demo on built-in sources, finishing by itself in about half a minute:
 *   1. ingest: an OBS-style RTMP publish into rtmpbridge, sent over RTP to a peer that records
 *      it (pipelines/obs-to-peer and pipelines/costream-recv, in-process);
 *   2. talk-back: three viewers join, talk, drop out and leave a live backchannelmixer;
 *   3. a four-person mix-minus room through mixminus with three speaker slots.
 * Each part prints a live status, then checks what was recorded, one line a check. The exit
 * status is 0 only when every check passed.
 *
 *   costream-demo [--out DIR] [--seconds-per-phase S] [--publish-seconds S] [--rtmp-port N]
 *                 [--rtp-port-base N] [--only ingest|talkback|room]...
 */
#include "demo-src/demo.h"

#include <algorithm>
#include <cstring>

namespace {

void usage(const char *argv0, bool error) {
  (error ? g_printerr : g_print)(
      "usage: %s [options]\n"
      "  --out DIR               where the recordings go (default: out)\n"
      "  --seconds-per-phase S   talk-back: seconds per phase (default 1.5)\n"
      "  --publish-seconds S     ingest: seconds of A/V published over RTMP (default 5)\n"
      "  --rtmp-port N           ingest: the bridge's RTMP port (default 19350)\n"
      "  --rtp-port-base N       ingest: RTP/RTCP ports N..N+7 on 127.0.0.1 (default 5600)\n"
      "  --only PART             run only this part (ingest, talkback, room); repeatable\n",
      argv0);
}

bool parse_number(const char *text, double lo, double hi, double *out) {
  char *end = nullptr;
  const double v = g_ascii_strtod(text, &end);
  if (!end || *end || !(v >= lo && v <= hi))
    return false;
  *out = v;
  return true;
}

} // namespace

int main(int argc, char **argv) {
  gst_init(&argc, &argv);
  demo::Options opt;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : nullptr;
    if (!std::strcmp(a, "-h") || !std::strcmp(a, "--help")) {
      usage(argv[0], false);
      return 0;
    }
    double n = 0;
    bool ok = v != nullptr;
    if (ok && !std::strcmp(a, "--out"))
      opt.out_dir = v;
    else if (ok && !std::strcmp(a, "--seconds-per-phase"))
      ok = parse_number(v, 0.5, 60, &opt.phase_s);
    else if (ok && !std::strcmp(a, "--publish-seconds"))
      ok = parse_number(v, 2, 60, &opt.publish_s);
    else if (ok && !std::strcmp(a, "--rtmp-port") && (ok = parse_number(v, 1, 65535, &n)))
      opt.rtmp_port = static_cast<guint>(n);
    else if (ok && !std::strcmp(a, "--rtp-port-base") && (ok = parse_number(v, 1, 65528, &n)))
      opt.rtp_base = static_cast<guint>(n);
    else if (ok && !std::strcmp(a, "--only") &&
             (ok = !std::strcmp(v, "ingest") || !std::strcmp(v, "talkback") ||
                   !std::strcmp(v, "room")))
      opt.only.push_back(v);
    else
      ok = false;
    if (!ok) {
      g_printerr("%s: bad option or value: %s%s%s\n", argv[0], a, v ? " " : "", v ? v : "");
      usage(argv[0], true);
      return 2;
    }
    i++;
  }
  g_mkdir_with_parents(opt.out_dir.c_str(), 0755);

  for (const char *f : {"backchannelmixer", "mixminus", "rtmpbridge"}) {
    GstElementFactory *factory = gst_element_factory_find(f);
    if (!factory) {
      g_printerr("%s not found: build costream and set GST_PLUGIN_PATH to its build/gst "
                 "directory (pipelines/demo does this)\n",
                 f);
      return 1;
    }
    gst_object_unref(factory);
  }

  const gint64 t0 = g_get_monotonic_time();
  g_print("costream demo: RTMP ingest to an RTP peer, talk-back viewers, a mix-minus room "
          "(built-in test sources, 127.0.0.1 only; recordings in %s)\n",
          opt.out_dir.c_str());
  const auto wanted = [&](const char *part) {
    return opt.only.empty() || std::find(opt.only.begin(), opt.only.end(), part) != opt.only.end();
  };
  demo::Report report;
  {
    /* A part's own timeouts end it; this is for a call that never returns. */
    demo::Watchdog watchdog;
    if (wanted("ingest")) {
      watchdog.arm("ingest", opt.publish_s + 60);
      demo::run_ingest(opt, report);
    }
    if (wanted("talkback")) {
      watchdog.arm("talk-back", 6 * opt.phase_s + 20);
      demo::run_talkback(opt, report);
    }
    if (wanted("room")) {
      watchdog.arm("room", 30);
      demo::run_room(opt, report);
    }
    watchdog.disarm();
  }

  g_print("\nrecordings:\n");
  for (auto &r : report.recordings)
    g_print("  %-36s %s\n", r.first.c_str(), r.second.c_str());
  g_print("checks:\n");
  int failed = 0;
  for (auto &c : report.checks) {
    g_print("  %-6s %s: %s\n", c.ok ? "OK" : "FAILED", c.name.c_str(), c.measured.c_str());
    failed += c.ok ? 0 : 1;
  }
  const double wall = (g_get_monotonic_time() - t0) / 1e6;
  if (failed == 0 && !report.checks.empty())
    g_print("demo: all %zu checks OK (%.1f s)\n", report.checks.size(), wall);
  else
    g_print("demo: FAILED: %d of %zu checks failed (%.1f s)\n", failed, report.checks.size(), wall);
  gst_deinit();
  return failed == 0 && !report.checks.empty() ? 0 : 1;
}
