/* costream tests
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "helpers.h"

#include <catch2/catch.hpp>

#include <cstring>

namespace testgst {

GstElement *make(const char *factory, const char *name) {
  GstElement *e = gst_element_factory_make(factory, name);
  INFO("element factory " << factory);
  REQUIRE(e != nullptr);
  return e;
}

GstCaps *audio_caps(const char *format, int rate, int channels) {
  return gst_caps_new_simple("audio/x-raw", "format", G_TYPE_STRING, format, "rate", G_TYPE_INT,
                             rate, "channels", G_TYPE_INT, channels, "layout", G_TYPE_STRING,
                             "interleaved", nullptr);
}

GstBuffer *s16_buffer(const std::vector<int16_t> &samples, GstClockTime pts, GstClockTime dur) {
  GstBuffer *b = gst_buffer_new_memdup(samples.data(), samples.size() * sizeof(int16_t));
  GST_BUFFER_PTS(b) = pts;
  GST_BUFFER_DURATION(b) = dur;
  return b;
}

GstBuffer *f32_buffer(const std::vector<float> &samples, GstClockTime pts, GstClockTime dur) {
  GstBuffer *b = gst_buffer_new_memdup(samples.data(), samples.size() * sizeof(float));
  GST_BUFFER_PTS(b) = pts;
  GST_BUFFER_DURATION(b) = dur;
  return b;
}

Collected::~Collected() {
  for (auto *b : buffers)
    gst_buffer_unref(b);
}

std::vector<int16_t> Collected::s16() const {
  std::vector<int16_t> v;
  for (auto *b : buffers) {
    GstMapInfo m;
    gst_buffer_map(b, &m, GST_MAP_READ);
    const auto *s = reinterpret_cast<const int16_t *>(m.data);
    v.insert(v.end(), s, s + m.size / 2);
    gst_buffer_unmap(b, &m);
  }
  return v;
}

std::vector<double> Collected::channel(unsigned ch, unsigned channels) const {
  auto all = s16();
  std::vector<double> v;
  for (size_t i = ch; i < all.size(); i += channels)
    v.push_back(all[i] / 32768.0);
  return v;
}

void pull_all(GstElement *appsink, Collected &out, GstClockTime timeout, size_t max_buffers) {
  while (out.buffers.size() < max_buffers) {
    GstSample *s = gst_app_sink_try_pull_sample(GST_APP_SINK(appsink), timeout);
    if (!s) {
      REQUIRE(gst_app_sink_is_eos(GST_APP_SINK(appsink)));
      return;
    }
    out.buffers.push_back(gst_buffer_ref(gst_sample_get_buffer(s)));
    gst_sample_unref(s);
  }
}

std::string wait_eos_or_error(GstElement *pipeline, GstClockTime timeout) {
  GstBus *bus = gst_element_get_bus(pipeline);
  GstMessage *msg = gst_bus_timed_pop_filtered(
      bus, timeout, static_cast<GstMessageType>(GST_MESSAGE_EOS | GST_MESSAGE_ERROR));
  gst_object_unref(bus);
  REQUIRE(msg != nullptr); /* timed out: a hang */
  std::string err;
  if (GST_MESSAGE_TYPE(msg) == GST_MESSAGE_ERROR) {
    GError *e = nullptr;
    gchar *dbg = nullptr;
    gst_message_parse_error(msg, &e, &dbg);
    err = std::string(e->message) + " | " + (dbg ? dbg : "");
    g_error_free(e);
    g_free(dbg);
  }
  gst_message_unref(msg);
  return err;
}

std::vector<GstStructure *> drain_element_messages(GstElement *pipeline, const char *name) {
  std::vector<GstStructure *> out;
  GstBus *bus = gst_element_get_bus(pipeline);
  while (GstMessage *m = gst_bus_pop_filtered(bus, GST_MESSAGE_ELEMENT)) {
    const GstStructure *s = gst_message_get_structure(m);
    if (s && gst_structure_has_name(s, name))
      out.push_back(gst_structure_copy(s));
    gst_message_unref(m);
  }
  gst_object_unref(bus);
  return out;
}

} // namespace testgst
