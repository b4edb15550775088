/* costream benchmark
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Many RTMP publishers on one port: rtmpserversrc against nginx-rtmp, measured in one run. Not a
 * test.
 *
 *   bench-rtmp [--seconds S] [--publishers 16,64] [--repeat R] [--no-bridge] [--read-interval MS]
 *
 * --read-interval: the elements' read-interval property (default: theirs, 50 ms).
 *
 * Every publisher is an ffmpeg process sending, in real time (-re, -c copy), the same file:
 * H.264 640x360 30 fps at 1 Mbit/s (keyframe every 2 s, no B-frames) and AAC stereo 48 kHz at
 * 128 kbit/s, each with its own stream key, all to one port.
 *   - ours: this process runs one rtmpserversrc per key on that port, each `! fakesink`; its CPU
 *     (getrusage, the publishers excluded: one shell started by one fork starts them, for both)
 *     over the publishing.
 *   - nginx-rtmp (Debian libnginx-mod-rtmp): one worker, `live on`, no players: the master's and
 *     the worker's CPU (/proc/PID/stat) over the same publishing.
 * The two alternate, R rounds per publisher count; the table shows medians and the ratio per
 * round. Each run checks that every publisher's bytes arrived (rtmpserversrc's stats).
 * Then rtmpbridge: the same publishers into one bridge per key (H.264 kept, AAC to Opus):
 * CPU per publisher, and publishers per core.
 */
#include <gio/gio.h>
#include <gst/gst.h>

#include <csignal>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace {

double cpu_self() {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec +
         (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

/* CPU seconds of a process (utime + stime), -1 when it is gone. */
double cpu_of(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(f, line))
    return -1;
  /* fields after the ")" that ends the command name: state is field 3, utime 14, stime 15 */
  std::istringstream in(line.substr(line.rfind(')') + 2));
  std::string field;
  double utime = 0, stime = 0;
  for (int i = 3; i <= 15 && in >> field; i++) {
    if (i == 14)
      utime = std::atof(field.c_str());
    if (i == 15)
      stime = std::atof(field.c_str());
  }
  return (utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

/* The children of `parent` (nginx's worker). */
std::vector<pid_t> children_of(pid_t parent) {
  std::vector<pid_t> out;
  GDir *d = g_dir_open("/proc", 0, nullptr);
  while (const gchar *name = g_dir_read_name(d)) {
    const pid_t pid = static_cast<pid_t>(std::atoi(name));
    if (pid <= 0)
      continue;
    std::ifstream f(std::string("/proc/") + name + "/stat");
    std::string line;
    if (!std::getline(f, line) || line.rfind(')') == std::string::npos)
      continue;
    std::istringstream in(line.substr(line.rfind(')') + 2));
    std::string state;
    pid_t ppid = 0;
    in >> state >> ppid;
    if (ppid == parent)
      out.push_back(pid);
  }
  g_dir_close(d);
  return out;
}

int run(const std::vector<std::string> &args) {
  std::vector<char *> argv;
  for (auto &a : args)
    argv.push_back(const_cast<char *>(a.c_str()));
  argv.push_back(nullptr);
  gint status = -1;
  if (!g_spawn_sync(nullptr, argv.data(), nullptr, G_SPAWN_SEARCH_PATH, nullptr, nullptr, nullptr,
                    nullptr, &status, nullptr))
    return -1;
  return g_spawn_check_wait_status(status, nullptr) ? 0 : 1;
}

guint free_port() {
  GSocket *s =
      g_socket_new(G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_TCP, nullptr);
  GInetAddress *lo = g_inet_address_new_loopback(G_SOCKET_FAMILY_IPV4);
  GSocketAddress *sa = g_inet_socket_address_new(lo, 0);
  g_socket_bind(s, sa, TRUE, nullptr);
  GSocketAddress *local = g_socket_get_local_address(s, nullptr);
  const guint port = g_inet_socket_address_get_port(G_INET_SOCKET_ADDRESS(local));
  g_object_unref(local);
  g_object_unref(sa);
  g_object_unref(lo);
  g_socket_close(s, nullptr);
  g_object_unref(s);
  return port;
}

/* N real-time publishers, key k<i>, to `port`; returns once all are done, with how many ended
 * well. One shell starts them (one fork of this process, as for nginx-rtmp's run: spawning 64
 * processes from a process with GStreamer loaded costs it CPU the measurement is not about). */
int publish_all(const std::string &file, guint port, int n, int seconds) {
  const std::string script = "ok=0; pids=; i=0; while [ $i -lt " + std::to_string(n) +
                             " ]; do timeout " + std::to_string(seconds + 60) +
                             " ffmpeg -nostdin -hide_banner -loglevel error -re -t " +
                             std::to_string(seconds) +
                             " -i \"$0\" -c copy -f flv rtmp://127.0.0.1:" + std::to_string(port) +
                             "/live/k$i & pids=\"$pids $!\"; i=$((i+1)); done; "
                             "for p in $pids; do wait $p && ok=$((ok+1)); done; echo $ok";
  const gchar *argv[] = {"sh", "-c", script.c_str(), file.c_str(), nullptr};
  gchar *out = nullptr;
  gint status = -1;
  if (!g_spawn_sync(nullptr, const_cast<gchar **>(argv), nullptr, G_SPAWN_SEARCH_PATH, nullptr,
                    nullptr, &out, nullptr, &status, nullptr))
    return 0;
  const int ok = out ? std::atoi(out) : 0;
  g_free(out);
  return ok;
}

/* ours: N rtmpserversrc (or rtmpbridge) on one port; CPU s of this process. */
std::string extra_props; /* --read-interval */

double run_ours(const std::string &file, int n, int seconds, bool bridge, int *ok) {
  const guint port = free_port();
  std::string desc;
  for (int i = 0; i < n; i++) {
    const std::string k = std::to_string(i);
    if (bridge)
      desc += "rtmpbridge name=s" + k + " port=" + std::to_string(port) + extra_props +
              " stream-key=k" + k + " s" + k + ".audio ! fakesink sync=false async=false s" + k +
              ".video ! fakesink sync=false async=false ";
    else
      desc += "rtmpserversrc name=s" + k + " port=" + std::to_string(port) + extra_props +
              " stream-key=k" + k + " ! fakesink sync=false ";
  }
  GError *err = nullptr;
  GstElement *p = gst_parse_launch(desc.c_str(), &err);
  if (!p || err) {
    std::fprintf(stderr, "pipeline: %s\n", err ? err->message : "?");
    std::exit(1);
  }
  gst_element_set_state(p, GST_STATE_PLAYING);
  gst_element_get_state(p, nullptr, nullptr, 5 * GST_SECOND);
  const double t0 = cpu_self();
  publish_all(file, port, n, seconds);
  const double used = cpu_self() - t0;
  /* every publisher's bytes arrived */
  *ok = 0;
  for (int i = 0; i < n; i++) {
    GstElement *e = gst_bin_get_by_name(GST_BIN(p), ("s" + std::to_string(i)).c_str());
    GstStructure *st = nullptr;
    g_object_get(e, "stats", &st, nullptr);
    guint64 bytes = 0;
    gst_structure_get_uint64(st, "bytes", &bytes);
    gst_structure_free(st);
    gst_object_unref(e);
    /* 1.13 Mbit/s for `seconds`, 80 % at least */
    *ok += bytes > 0.8 * 1.13e6 / 8 * seconds;
  }
  gst_element_set_state(p, GST_STATE_NULL);
  gst_object_unref(p);
  return used;
}

/* nginx-rtmp: CPU s of its master and worker over the same publishing. */
double run_nginx(const std::string &dir, const std::string &file, int n, int seconds, int *ok) {
  const guint port = free_port();
  const std::string conf = dir + "/nginx.conf";
  {
    std::ofstream c(conf);
    c << "load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;\n"
         "daemon off;\nmaster_process on;\nworker_processes 1;\n"
         "pid "
      << dir << "/nginx.pid;\nerror_log " << dir
      << "/nginx-error.log warn;\n"
         "events { worker_connections 1024; }\n"
         "rtmp { server { listen 127.0.0.1:"
      << port << "; chunk_size 4096; application live { live on; record off; } } }\n";
  }
  std::vector<std::string> args = {"nginx", "-c", conf, "-p", dir + "/"};
  std::vector<char *> argv;
  for (auto &a : args)
    argv.push_back(const_cast<char *>(a.c_str()));
  argv.push_back(nullptr);
  GPid master = 0;
  GError *err = nullptr;
  if (!g_spawn_async(nullptr, argv.data(), nullptr,
                     static_cast<GSpawnFlags>(G_SPAWN_SEARCH_PATH | G_SPAWN_DO_NOT_REAP_CHILD),
                     nullptr, nullptr, &master, &err)) {
    std::fprintf(stderr, "nginx: %s\n", err->message);
    std::exit(1);
  }
  /* ready when it accepts */
  std::vector<pid_t> workers;
  for (int i = 0; i < 200; i++) {
    GSocketClient *cl = g_socket_client_new();
    GSocketConnection *c = g_socket_client_connect_to_host(
        cl, "127.0.0.1", static_cast<guint16>(port), nullptr, nullptr);
    g_object_unref(cl);
    if (c) {
      g_object_unref(c);
      workers = children_of(master);
      if (!workers.empty())
        break;
    }
    g_usleep(20000);
  }
  auto total = [&] {
    double t = cpu_of(master);
    for (pid_t w : workers)
      t += cpu_of(w);
    return t;
  };
  const double t0 = total();
  *ok = publish_all(file, port, n, seconds);
  const double used = total() - t0;
  kill(master, SIGTERM);
  int status;
  waitpid(master, &status, 0);
  g_spawn_close_pid(master);
  return used;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

} // namespace

int main(int argc, char **argv) {
  gst_init(&argc, &argv);
  int seconds = 20, repeat = 3;
  bool bridge = true;
  std::vector<int> counts = {16, 64};
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--seconds") && i + 1 < argc) {
      seconds = std::atoi(argv[++i]);
    } else if (!strcmp(argv[i], "--repeat") && i + 1 < argc) {
      repeat = std::atoi(argv[++i]);
    } else if (!strcmp(argv[i], "--publishers") && i + 1 < argc) {
      counts.clear();
      gchar **parts = g_strsplit(argv[++i], ",", -1);
      for (gchar **p = parts; *p; p++)
        counts.push_back(std::atoi(*p));
      g_strfreev(parts);
    } else if (!strcmp(argv[i], "--read-interval") && i + 1 < argc) {
      extra_props = " read-interval=" + std::to_string(std::atoi(argv[++i]));
    } else if (!strcmp(argv[i], "--no-bridge")) {
      bridge = false;
    } else {
      std::fprintf(stderr,
                   "usage: %s [--seconds S] [--publishers 16,64] [--repeat R] [--no-bridge] "
                   "[--read-interval MS]\n",
                   argv[0]);
      return 2;
    }
  }
  for (const char *f : {"rtmpserversrc", "rtmpbridge"}) {
    if (GstElementFactory *fac = gst_element_factory_find(f)) {
      gst_object_unref(fac);
    } else {
      std::fprintf(stderr, "element %s not found (GST_PLUGIN_PATH?)\n", f);
      return 1;
    }
  }
  gchar *tmp = g_dir_make_tmp("costream-bench-rtmp-XXXXXX", nullptr);
  const std::string dir = tmp;
  g_free(tmp);
  const std::string file = dir + "/pub.flv";
  if (run({"ffmpeg",
           "-hide_banner",
           "-loglevel",
           "error",
           "-y",
           "-f",
           "lavfi",
           "-i",
           "testsrc2=size=640x360:rate=30:duration=" + std::to_string(seconds + 2),
           "-f",
           "lavfi",
           "-i",
           "sine=frequency=440:sample_rate=48000:duration=" + std::to_string(seconds + 2),
           "-ac",
           "2",
           "-c:v",
           "libx264",
           "-preset",
           "veryfast",
           "-b:v",
           "1M",
           "-maxrate",
           "1M",
           "-bufsize",
           "1M",
           "-g",
           "60",
           "-bf",
           "0",
           "-c:a",
           "aac",
           "-b:a",
           "128k",
           "-f",
           "flv",
           file}) != 0) {
    std::fprintf(stderr, "ffmpeg could not make the test file\n");
    return 1;
  }
  std::printf("# Real-time publishers on one port (ffmpeg -re -c copy: H.264 640x360 30 fps "
              "1 Mbit/s + AAC 128 kbit/s), %d s each; %d rounds, ours and nginx-rtmp "
              "alternating; read-interval %s\n\n",
              seconds, repeat,
              extra_props.empty() ? "50 ms (default)" : (extra_props.substr(15) + " ms").c_str());
  std::printf("| publishers | rtmpserversrc CPU s (median) | %% of a core per publisher | "
              "nginx-rtmp CPU s (median) | %% of a core per publisher | ours / nginx per round "
              "(median, range) | publishers received (ours, nginx) |\n"
              "|---|---|---|---|---|---|---|\n");
  for (int n : counts) {
    std::vector<double> ours, theirs, ratio;
    int ok_ours = n, ok_nginx = n;
    for (int r = 0; r < repeat; r++) {
      int ok1 = 0, ok2 = 0;
      const double a = run_ours(file, n, seconds, false, &ok1);
      const double b = run_nginx(dir, file, n, seconds, &ok2);
      ours.push_back(a);
      theirs.push_back(b);
      ratio.push_back(a / b);
      ok_ours = std::min(ok_ours, ok1);
      ok_nginx = std::min(ok_nginx, ok2);
    }
    std::printf("| %d | %.2f | %.2f %% | %.2f | %.2f %% | %.2f (%.2f-%.2f) | %d, %d |\n", n,
                median(ours), 100 * median(ours) / (n * seconds), median(theirs),
                100 * median(theirs) / (n * seconds), median(ratio),
                *std::min_element(ratio.begin(), ratio.end()),
                *std::max_element(ratio.begin(), ratio.end()), ok_ours, ok_nginx);
    std::fflush(stdout);
  }
  if (bridge) {
    std::printf("\n# rtmpbridge: one bridge per key on one port (H.264 kept, AAC -> Opus "
                "96 kbit/s)\n\n| publishers | CPU s | %% of a core per publisher | publishers "
                "per core | publishers received |\n|---|---|---|---|---|\n");
    for (int n : counts) {
      std::vector<double> used;
      int okmin = n;
      for (int r = 0; r < repeat; r++) {
        int ok = 0;
        used.push_back(run_ours(file, n, seconds, true, &ok));
        okmin = std::min(okmin, ok);
      }
      const double per = median(used) / (n * seconds);
      std::printf("| %d | %.2f | %.2f %% | %.0f | %d |\n", n, median(used), 100 * per, 1 / per,
                  okmin);
      std::fflush(stdout);
    }
  }
  run({"rm", "-rf", dir});
  return 0;
}
