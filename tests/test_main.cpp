/* costream
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Shared main of every test program: isolates the GStreamer registry so tests see exactly the
 * plugin in the build directory plus the system's plugins (core/base/good/bad), never an
 * installed copy of costream.
 */
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <gst/gst.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <dirent.h>
#include <string>
#include <sys/stat.h>
#include <unistd.h>

static std::string program_name(const char *argv0) {
  const char *slash = std::strrchr(argv0, '/');
  return slash ? slash + 1 : argv0;
}

/* The system plugins the tests use (core, base, good, bad). Linking only these keeps the
 * registry small and keeps unrelated plugins' libraries out of the sanitizer runs. */
static const char *const kSystemPlugins[] = {
    "coreelements",
    "app",
    "audiotestsrc",
    "audioconvert",
    "audioresample",
    "audiomixer",
    "volume",
    "wavenc",
    "wavparse",
    "alaw",
    "mulaw",
    "rtp",
    "rtpmanager",
    "udp",
    "opus",
    "level",
    "audiorate",
    "rawparse",
    "debug",
    "autodetect",
    "flv",
    "videotestsrc",
    "videoconvertscale",
    "x264",
    "openh264",
    "opusparse",
    "videoparsersbad",
    "rtmp2",
    "webrtc",
    "nice",
    "dtls",
    "srtp",
    "sctp",
    "libav",
    "matroska",
    "isomp4",
    "audioparsers",
    "pbtypes",
    "playback",
    "typefindfunctions",
    "fdkaac",
    "faad",
    "rtsp",
};

static bool wanted(const std::string &file) {
  for (const char *name : kSystemPlugins)
    if (file == std::string("libgst") + name + ".so")
      return true;
  return false;
}

/* A directory of links to the system's plugins the tests use, never an installed costream. */
static std::string system_plugin_links(const std::string &name) {
  std::string dir = std::string(COSTREAM_TEST_REGISTRY_DIR) + "/system-plugins-" + name;
  mkdir(dir.c_str(), 0755);
  if (DIR *d = opendir(COSTREAM_SYSTEM_PLUGIN_DIR)) {
    while (struct dirent *e = readdir(d)) {
      std::string f = e->d_name;
      if (!wanted(f))
        continue;
      std::string link = dir + "/" + f;
      std::string target = std::string(COSTREAM_SYSTEM_PLUGIN_DIR) + "/" + f;
      if (symlink(target.c_str(), link.c_str()) != 0 && errno != EEXIST)
        std::perror(link.c_str());
    }
    closedir(d);
  }
  return dir;
}

int main(int argc, char *argv[]) {
  const std::string name = program_name(argv[0]);
  const std::string registry =
      std::string(COSTREAM_TEST_REGISTRY_DIR) + "/registry-" + name + ".bin";
  const std::string path = std::string(COSTREAM_BUILD_PLUGIN_DIR) + ":" + system_plugin_links(name);
  /* A fresh registry every run: a stale one may remember a plugin as unloadable. */
  unlink(registry.c_str());
  setenv("GST_REGISTRY_1_0", registry.c_str(), 1);
  setenv("GST_PLUGIN_SYSTEM_PATH_1_0", "", 1);
  setenv("GST_PLUGIN_PATH_1_0", path.c_str(), 1);
  unsetenv("GST_PLUGIN_PATH");
  /* Scan in-process: a sanitizer build of the plugin cannot be loaded by the (unsanitized)
   * gst-plugin-scanner helper. */
  setenv("GST_REGISTRY_FORK", "no", 1);
  gst_init(&argc, &argv);
  int result = Catch::Session().run(argc, argv);
  gst_deinit();
  return result;
}
