/* costream
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * rtspcamera's back channel: the `backchannel` sink pad (its chain, event and query functions, run
 * by the talkers' streaming thread), the chain made when the camera's SDP offers a `sendonly`
 * stream (appsrc -> audioconvert -> audioresample -> the camera's raw format -> encoder ->
 * payloader -> appsink), and each packet the appsink gets, pushed into rtspsrc's back channel.
 * See rtspcameraprivate.h for the threads and locks.
 */
#include "rtspcameraprivate.h"

#include "rtspsrcbackchannel.h"

#include <gst/app/gstappsink.h>
#include <gst/app/gstappsrc.h>

#define GST_CAT_DEFAULT gst_rtsp_camera_debug

using namespace costream::rtspcamera;

/* ---- the chain made for the camera's back channel ---- */

/* (the appsink's streaming thread) One encoded, payloaded packet: into the current session's back
 * channel. */
static GstFlowReturn on_backchannel_packet(GstAppSink *appsink, gpointer data) {
  auto *self = GST_RTSP_CAMERA(data);
  auto *p = self->priv;
  GstSample *sample = gst_app_sink_pull_sample(appsink);
  if (!sample)
    return GST_FLOW_EOS;
  GstElement *rtspsrc = nullptr;
  guint id = 0;
  {
    std::lock_guard<std::mutex> lk(p->lock);
    if (p->conn.appsink == GST_ELEMENT(appsink) && p->conn.rtspsrc && !p->conn.ended) {
      rtspsrc = GST_ELEMENT(gst_object_ref(p->conn.rtspsrc));
      id = p->conn.backchannel_stream;
    }
  }
  if (rtspsrc) {
    GstFlowReturn ret = costream::rtspsrc_push_backchannel(rtspsrc, id, sample);
    if (ret == GST_FLOW_OK) {
      p->backchannel_packets++;
      if (GstBuffer *b = gst_sample_get_buffer(sample))
        p->backchannel_bytes += gst_buffer_get_size(b);
    } else {
      GST_LOG_OBJECT(self, "back channel packet not sent: %s", gst_flow_get_name(ret));
    }
    gst_object_unref(rtspsrc);
  }
  gst_sample_unref(sample);
  return GST_FLOW_OK;
}

gboolean costream::rtspcamera::setup_backchannel(GstRtspCamera *self, GstElement *rtspsrc,
                                                 guint num, const GstStructure *s) {
  auto *p = self->priv;
  const costream::RtpStreamInfo info = stream_info(s);
  const costream::BackchannelPlan plan = costream::plan_backchannel(info);
  const std::string where = redacted_location(self);
  if (!plan.supported) {
    bool warn;
    {
      std::lock_guard<std::mutex> lk(p->lock);
      warn = !p->warned_backchannel_codec;
      p->warned_backchannel_codec = true;
    }
    if (warn)
      GST_ELEMENT_WARNING(self, STREAM, CODEC_NOT_FOUND,
                          ("The camera at %s wants %s/%d on its back channel, which rtspcamera "
                           "cannot encode (PCMA, PCMU, OPUS, MPEG4-GENERIC, L16): what arrives "
                           "on the backchannel pad is discarded",
                           where.c_str(), info.encoding_name.c_str(), info.clock_rate),
                          (nullptr));
    return FALSE;
  }

  std::vector<GstElement *> chain;
  auto add = [&](GstElement *e) {
    if (e)
      chain.push_back(GST_ELEMENT(gst_object_ref_sink(e)));
    return e != nullptr;
  };
  GstElement *appsrc = gst_element_factory_make("appsrc", nullptr);
  bool ok = add(appsrc);
  if (ok) {
    g_object_set(appsrc, "format", GST_FORMAT_TIME, "is-live", TRUE, "do-timestamp", FALSE,
                 "max-time", (guint64)(200 * GST_MSECOND), "max-bytes", (guint64)0, "max-buffers",
                 (guint64)0, nullptr);
    /* A camera slower than the talkers loses the oldest audio, never holds up the mixer. */
    gst_util_set_object_arg(G_OBJECT(appsrc), "leaky-type", "downstream");
    ok = add(gst_element_factory_make("audioconvert", nullptr)) &&
         add(gst_element_factory_make("audioresample", nullptr));
  }
  if (ok) {
    GstElement *filter = gst_element_factory_make("capsfilter", nullptr);
    const char *format = info.encoding_name == "L16" ? "S16BE" : "S16LE";
    GstCaps *raw = gst_caps_new_simple("audio/x-raw", "format", G_TYPE_STRING, format, "rate",
                                       G_TYPE_INT, plan.rate, "channels", G_TYPE_INT, plan.channels,
                                       "layout", G_TYPE_STRING, "interleaved", nullptr);
    g_object_set(filter, "caps", raw, nullptr);
    gst_caps_unref(raw);
    ok = add(filter);
  }
  for (const auto &spec : plan.chain)
    ok = ok && add(make_element(self, spec));
  GstElement *appsink = nullptr;
  if (ok) {
    appsink = gst_element_factory_make("appsink", nullptr);
    make_internal_sink(appsink);
    g_object_set(appsink, "max-buffers", 0u, "drop", FALSE, nullptr);
    GstAppSinkCallbacks callbacks = {};
    callbacks.new_sample = on_backchannel_packet;
    gst_app_sink_set_callbacks(GST_APP_SINK(appsink), &callbacks, self, nullptr);
    ok = add(appsink);
  }
  if (!ok || !add_chain(self, chain)) {
    for (GstElement *e : chain)
      gst_object_unref(e);
    return FALSE;
  }
  if (!keep_elements(self, rtspsrc, chain))
    return FALSE;
  GstCaps *bc_caps = nullptr;
  {
    std::lock_guard<std::mutex> lk(p->lock);
    /* Torn down since keep_elements() (the chain went with it): the connection now in `conn`,
     * if any, is another one. */
    if (p->conn.rtspsrc != rtspsrc || p->stop)
      return FALSE;
    p->conn.appsrc = GST_ELEMENT(gst_object_ref(appsrc));
    p->conn.appsink = appsink;
    p->conn.backchannel_stream = num;
    p->conn.backchannel_codec = plan.codec;
    if (p->backchannel_caps)
      bc_caps = gst_caps_ref(p->backchannel_caps);
  }
  if (bc_caps) {
    g_object_set(appsrc, "caps", bc_caps, nullptr);
    gst_caps_unref(bc_caps);
  }
  GST_INFO_OBJECT(self, "back channel: stream %u, %s at %d Hz, %d channel(s)", num,
                  plan.codec.c_str(), plan.rate, plan.channels);
  return TRUE;
}

/* ---- the backchannel sink pad (the talkers' streaming thread) ---- */

GstFlowReturn costream::rtspcamera::backchannel_chain(GstPad *pad, GstObject *parent,
                                                      GstBuffer *buf) {
  auto *self = GST_RTSP_CAMERA(parent);
  auto *p = self->priv;
  p->backchannel_in++;
  GstElement *appsrc = nullptr;
  {
    std::lock_guard<std::mutex> lk(p->lock);
    if (p->conn.appsrc && p->conn.streaming && !p->conn.ended && p->backchannel_caps)
      appsrc = GST_ELEMENT(gst_object_ref(p->conn.appsrc));
  }
  if (!appsrc) {
    p->backchannel_dropped++;
    GST_LOG_OBJECT(pad, "no back channel now: buffer discarded");
    gst_buffer_unref(buf);
    return GST_FLOW_OK;
  }
  GstFlowReturn ret = gst_app_src_push_buffer(GST_APP_SRC(appsrc), buf);
  if (ret != GST_FLOW_OK)
    p->backchannel_dropped++;
  gst_object_unref(appsrc);
  /* The camera's session coming and going is not the talkers' problem. */
  return GST_FLOW_OK;
}

gboolean costream::rtspcamera::backchannel_event(GstPad *pad, GstObject *parent, GstEvent *event) {
  auto *self = GST_RTSP_CAMERA(parent);
  auto *p = self->priv;
  if (GST_EVENT_TYPE(event) == GST_EVENT_CAPS) {
    GstCaps *caps;
    gst_event_parse_caps(event, &caps);
    GstElement *appsrc = nullptr;
    {
      std::lock_guard<std::mutex> lk(p->lock);
      gst_caps_replace(&p->backchannel_caps, caps);
      if (p->conn.appsrc)
        appsrc = GST_ELEMENT(gst_object_ref(p->conn.appsrc));
    }
    GST_DEBUG_OBJECT(pad, "back channel caps %" GST_PTR_FORMAT, caps);
    if (appsrc) {
      g_object_set(appsrc, "caps", caps, nullptr);
      gst_object_unref(appsrc);
    }
  }
  /* Nothing goes on from here: the camera's session has its own stream. (The default handler
   * would forward this stream's events out of the video and audio pads.) */
  gst_event_unref(event);
  return TRUE;
}

gboolean costream::rtspcamera::backchannel_query(GstPad *pad, GstObject *parent, GstQuery *query) {
  (void)parent;
  switch (GST_QUERY_TYPE(query)) {
  case GST_QUERY_CAPS: {
    GstCaps *filter, *templ = gst_pad_get_pad_template_caps(pad);
    gst_query_parse_caps(query, &filter);
    if (filter) {
      GstCaps *res = gst_caps_intersect_full(filter, templ, GST_CAPS_INTERSECT_FIRST);
      gst_query_set_caps_result(query, res);
      gst_caps_unref(res);
    } else {
      gst_query_set_caps_result(query, templ);
    }
    gst_caps_unref(templ);
    return TRUE;
  }
  case GST_QUERY_ACCEPT_CAPS: {
    GstCaps *caps, *templ = gst_pad_get_pad_template_caps(pad);
    gst_query_parse_accept_caps(query, &caps);
    gst_query_set_accept_caps_result(query, gst_caps_can_intersect(caps, templ));
    gst_caps_unref(templ);
    return TRUE;
  }
  default:
    return FALSE;
  }
}
