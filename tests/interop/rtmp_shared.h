/* costream tests
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * What the RTMP interop tests share: rtmpserversrc elements ! appsink on one port, and an ffmpeg
 * publisher.
 */
#pragma once

#include "helpers.h"

#include <gst/app/app.h>
#include <gst/gst.h>

#include <catch2/catch.hpp>

#include <string>
#include <vector>

namespace testgst {

/* Several rtmpserversrc ! appsink in one pipeline, all on `port`. */
struct Shared {
  GstElement *pipeline = nullptr;
  std::vector<GstElement *> srcs, sinks;
  guint port;
  Shared(guint p, const std::vector<std::string> &props) : port(p) {
    std::string desc;
    for (size_t i = 0; i < props.size(); i++)
      desc += "rtmpserversrc name=src" + std::to_string(i) + " port=" + std::to_string(port) + " " +
              props[i] + " ! appsink name=out" + std::to_string(i) + " sync=false max-buffers=0 ";
    GError *err = nullptr;
    pipeline = gst_parse_launch(desc.c_str(), &err);
    REQUIRE(err == nullptr);
    for (size_t i = 0; i < props.size(); i++) {
      srcs.push_back(gst_bin_get_by_name(GST_BIN(pipeline), ("src" + std::to_string(i)).c_str()));
      sinks.push_back(gst_bin_get_by_name(GST_BIN(pipeline), ("out" + std::to_string(i)).c_str()));
    }
  }
  std::string url(const std::string &key) const {
    return "rtmp://127.0.0.1:" + std::to_string(port) + "/live/" + key;
  }
  std::vector<uint8_t> drain(size_t i, GstClockTime quiet = GST_SECOND) {
    std::vector<uint8_t> out;
    while (GstSample *s = gst_app_sink_try_pull_sample(GST_APP_SINK(sinks[i]), quiet)) {
      GstMapInfo m;
      gst_buffer_map(gst_sample_get_buffer(s), &m, GST_MAP_READ);
      out.insert(out.end(), m.data, m.data + m.size);
      gst_buffer_unmap(gst_sample_get_buffer(s), &m);
      gst_sample_unref(s);
    }
    return out;
  }
  /* Starting fails: the text of the error posted (REQUIREs that there is one). */
  std::string start_error() {
    CHECK(gst_element_set_state(pipeline, GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE);
    GstBus *bus = gst_element_get_bus(pipeline);
    GstMessage *m = gst_bus_pop_filtered(bus, GST_MESSAGE_ERROR);
    gst_object_unref(bus);
    REQUIRE(m != nullptr);
    GError *err = nullptr;
    gst_message_parse_error(m, &err, nullptr);
    const std::string text = err->message;
    g_error_free(err);
    gst_message_unref(m);
    return text;
  }
  guint64 stat(size_t i, const char *field) { return stats_uint64(srcs[i], field); }
  ~Shared() {
    gst_element_set_state(pipeline, GST_STATE_NULL);
    for (auto *e : srcs)
      gst_object_unref(e);
    for (auto *e : sinks)
      gst_object_unref(e);
    gst_object_unref(pipeline);
  }
};

/* ffmpeg publishing `file` (copied, not re-encoded) to `url`; `realtime`: at its own pace. */
inline int ffmpeg_publish_file(const std::string &file, const std::string &url,
                               bool realtime = false) {
  std::vector<std::string> args = {"timeout", "60", "ffmpeg", "-hide_banner", "-loglevel", "error"};
  if (realtime)
    args.push_back("-re");
  for (const char *a : {"-i", file.c_str(), "-c", "copy", "-f", "flv", url.c_str()})
    args.push_back(a);
  return run_command(args);
}

} // namespace testgst
