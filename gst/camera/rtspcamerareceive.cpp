/* costream
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * rtspcamera's receive side, run by rtspsrc's threads: which of the camera's streams are set up
 * (select-stream), and for each stream rtspsrc exposes (pad-added) its depayload/decode chain onto
 * the `video` or `audio` pad, or a fakesink for a stream not exposed; the probes that count the
 * camera's RTP and its data, announce the connection and see the camera end its stream. Also the
 * elements made for a connection, which the back channel's chain uses too. See
 * rtspcameraprivate.h for the threads and locks.
 */
#include "rtspcameraprivate.h"

#include "../common/objectlock.h"

#include <cstdlib>

#define GST_CAT_DEFAULT gst_rtsp_camera_debug

using namespace costream::rtspcamera;

/* ---- elements made for a connection ---- */

/* Makes an element of `factory`; on a missing factory, a warning that names it and what to
 * install, and nullptr. */
GstElement *costream::rtspcamera::make_element(GstRtspCamera *self,
                                               const costream::ElementSpec &spec) {
  GstElement *e = gst_element_factory_make(spec.factory.c_str(), nullptr);
  if (!e) {
    GST_ELEMENT_WARNING(self, CORE, MISSING_PLUGIN,
                        ("The GStreamer element '%s' is missing (gst-plugins-base/good/bad or "
                         "gst-libav): that stream of the camera is not used",
                         spec.factory.c_str()),
                        (nullptr));
    return nullptr;
  }
  for (const auto &prop : spec.properties)
    gst_util_set_object_arg(G_OBJECT(e), prop.first.c_str(), prop.second.c_str());
  return e;
}

/* Internal sinks neither hold the pipeline's preroll nor count for its EOS. */
void costream::rtspcamera::make_internal_sink(GstElement *sink) {
  g_object_set(sink, "sync", FALSE, "async", FALSE, nullptr);
  GST_OBJECT_FLAG_UNSET(sink, GST_ELEMENT_FLAG_SINK);
}

/* Stops `elements`, in this order, then takes them out of the bin. Each is locked first: a state
 * change of the bin's running on another thread meanwhile (the pipeline finishing PAUSED->PLAYING
 * once its sinks prerolled on our GAPs) recurses into its children and would bring one back up
 * after it reached NULL, to be disposed running (its threads then use it freed); locked, that
 * state change either set its state before ours (under its state lock) or skips it. Downstream
 * first, as a bin changes state: an internal sink in PAUSED (on the way down) holds the thread
 * that pushed into it in its preroll until it is stopped, and stopping that thread's source first
 * would wait for it forever. All stopped before any is removed: a stream still flowing meets a
 * flushing pad, never an unlinked one. */
void costream::rtspcamera::remove_elements(GstRtspCamera *self,
                                           const std::vector<GstElement *> &elements) {
  for (GstElement *e : elements) {
    gst_element_set_locked_state(e, TRUE);
    gst_element_set_state(e, GST_STATE_NULL);
  }
  for (GstElement *e : elements)
    gst_bin_remove(GST_BIN(self), e);
}

/* Adds `chain` to the bin linked in order, each in the bin's state; false (and nothing added)
 * when it cannot be linked. */
bool costream::rtspcamera::add_chain(GstRtspCamera *self, const std::vector<GstElement *> &chain) {
  for (GstElement *e : chain)
    gst_bin_add(GST_BIN(self), GST_ELEMENT(gst_object_ref(e)));
  for (size_t i = 1; i < chain.size(); i++) {
    if (!gst_element_link(chain[i - 1], chain[i])) {
      GST_WARNING_OBJECT(self, "cannot link %s to %s", GST_OBJECT_NAME(chain[i - 1]),
                         GST_OBJECT_NAME(chain[i]));
      remove_elements(self, {chain.rbegin(), chain.rend()});
      return false;
    }
  }
  for (auto it = chain.rbegin(); it != chain.rend(); ++it)
    gst_element_sync_state_with_parent(*it);
  return true;
}

/* Keeps the connection's elements (one reference each) when the connection is still `rtspsrc`'s;
 * else the caller's elements are stale and are taken down. */
bool costream::rtspcamera::keep_elements(GstRtspCamera *self, GstElement *rtspsrc,
                                         const std::vector<GstElement *> &chain) {
  auto *p = self->priv;
  {
    std::lock_guard<std::mutex> lk(p->lock);
    if (p->conn.rtspsrc == rtspsrc && !p->stop) {
      p->conn.elements.insert(p->conn.elements.end(), chain.begin(), chain.end());
      return true;
    }
  }
  remove_elements(self, {chain.rbegin(), chain.rend()});
  for (GstElement *e : chain)
    gst_object_unref(e);
  return false;
}

/* ---- data from the camera ---- */

namespace {

enum class Feed { Video, Audio };

struct FeedProbe {
  GstRtspCamera *self;
  GstElement *rtspsrc; /* not a reference: only compared */
  Feed feed;
};

} // namespace

static GstPadProbeReturn on_camera_data(GstPad *pad, GstPadProbeInfo *info, gpointer data) {
  auto *fp = static_cast<FeedProbe *>(data);
  GstRtspCamera *self = fp->self;
  auto *p = self->priv;
  GstPad *ghost = fp->feed == Feed::Video ? p->video : p->audio;
  if (info->type & GST_PAD_PROBE_TYPE_BUFFER) {
    GstBuffer *buf = GST_PAD_PROBE_INFO_BUFFER(info);
    p->last_data.store(g_get_monotonic_time());
    auto &count = fp->feed == Feed::Video ? p->video_buffers : p->audio_buffers;
    auto &bytes = fp->feed == Feed::Video ? p->video_bytes : p->audio_bytes;
    count++;
    bytes += gst_buffer_get_size(buf);
    bool announce = false;
    {
      std::lock_guard<std::mutex> lk(p->lock);
      if (p->conn.rtspsrc == fp->rtspsrc && !p->conn.first_data) {
        p->conn.first_data = g_get_monotonic_time();
        announce = true;
      }
    }
    if (announce)
      post_connected(self);
    /* Nobody downstream of this pad: the camera's other stream must not stop because of it. */
    if (!gst_pad_is_linked(ghost)) {
      p->unlinked_drops++;
      return GST_PAD_PROBE_DROP;
    }
    return GST_PAD_PROBE_OK;
  }
  GstEvent *ev = GST_PAD_PROBE_INFO_EVENT(info);
  if (GST_EVENT_TYPE(ev) == GST_EVENT_EOS && !p->eos_requested.load()) {
    GST_INFO_OBJECT(self, "the camera ended its %s stream",
                    fp->feed == Feed::Video ? "video" : "audio");
    mark_lost(self, fp->rtspsrc, "the camera ended the stream");
    return GST_PAD_PROBE_DROP;
  }
  (void)pad;
  return GST_PAD_PROBE_OK;
}

static void free_feed_probe(gpointer data) {
  delete static_cast<FeedProbe *>(data);
}

/* On each of rtspsrc's src pads, exposed or not: every RTP packet of the camera's that rtspsrc
 * passes on (after its jitter buffer), counted before anything of ours can drop it (stats
 * `rtp-packets`, `rtp-bytes`). */
static GstPadProbeReturn count_rtp(GstPad *pad, GstPadProbeInfo *info, gpointer data) {
  auto *p = static_cast<GstRtspCameraPrivate *>(data);
  if (info->type & GST_PAD_PROBE_TYPE_BUFFER) {
    p->rtp_packets++;
    p->rtp_bytes += gst_buffer_get_size(GST_PAD_PROBE_INFO_BUFFER(info));
  } else if (info->type & GST_PAD_PROBE_TYPE_BUFFER_LIST) {
    GstBufferList *list = GST_PAD_PROBE_INFO_BUFFER_LIST(info);
    p->rtp_packets += gst_buffer_list_length(list);
    p->rtp_bytes += gst_buffer_list_calculate_size(list);
  }
  (void)pad;
  return GST_PAD_PROBE_OK;
}

costream::RtpStreamInfo costream::rtspcamera::stream_info(const GstStructure *s) {
  costream::RtpStreamInfo info;
  if (const char *media = gst_structure_get_string(s, "media"))
    info.media = media;
  if (const char *enc = gst_structure_get_string(s, "encoding-name"))
    info.encoding_name = enc;
  gst_structure_get_int(s, "clock-rate", &info.clock_rate);
  gst_structure_get_int(s, "payload", &info.payload);
  if (const char *params = gst_structure_get_string(s, "encoding-params"))
    info.channels = atoi(params);
  return info;
}

static void discard_pad(GstRtspCamera *self, GstElement *rtspsrc, GstPad *pad) {
  GstElement *sink = gst_element_factory_make("fakesink", nullptr);
  make_internal_sink(sink);
  if (!add_chain(self, {sink})) {
    gst_object_unref(sink);
    return;
  }
  GstPad *sinkpad = gst_element_get_static_pad(sink, "sink");
  gst_pad_link(pad, sinkpad);
  gst_object_unref(sinkpad);
  keep_elements(self, rtspsrc, {sink});
}

void costream::rtspcamera::on_pad_added(GstElement *rtspsrc, GstPad *pad, gpointer data) {
  auto *self = GST_RTSP_CAMERA(data);
  auto *p = self->priv;
  if (GST_PAD_DIRECTION(pad) != GST_PAD_SRC)
    return;
  GstCaps *caps = gst_pad_get_current_caps(pad);
  if (!caps)
    caps = gst_pad_query_caps(pad, nullptr);
  costream::RtpStreamInfo info;
  if (caps && !gst_caps_is_empty(caps))
    info = stream_info(gst_caps_get_structure(caps, 0));
  gst_clear_caps(&caps);

  const costream::ReceivePlan plan =
      costream::plan_receive(info, costream::locked_copy(self, p->settings.audio_format));
  const bool video = info.media == "video";
  bool taken;
  {
    std::lock_guard<std::mutex> lk(p->lock);
    if (p->conn.rtspsrc != rtspsrc || p->stop)
      return;
    p->conn.pads++;
    bool &used = video ? p->conn.video_used : p->conn.audio_used;
    taken = used || !plan.supported || (info.media != "video" && info.media != "audio");
    if (!taken) {
      used = true;
      (video ? p->conn.video_codec : p->conn.audio_codec) = plan.codec;
      if (!video)
        p->conn.audio_output = plan.output;
    }
  }
  gst_pad_add_probe(
      pad, static_cast<GstPadProbeType>(GST_PAD_PROBE_TYPE_BUFFER | GST_PAD_PROBE_TYPE_BUFFER_LIST),
      count_rtp, p, nullptr);
  if (taken) {
    GST_INFO_OBJECT(self, "camera stream %s %s not exposed (%s)", info.media.c_str(),
                    info.encoding_name.c_str(), plan.supported ? "one per kind" : "not supported");
    discard_pad(self, rtspsrc, pad);
    return;
  }

  std::vector<GstElement *> chain;
  bool ok = true;
  for (const auto &spec : plan.chain) {
    GstElement *e = make_element(self, spec);
    if (!e) {
      ok = false;
      break;
    }
    chain.push_back(GST_ELEMENT(gst_object_ref_sink(e)));
  }
  if (ok && !plan.output_caps.empty()) {
    GstElement *filter = gst_element_factory_make("capsfilter", nullptr);
    GstCaps *out = gst_caps_from_string(plan.output_caps.c_str());
    g_object_set(filter, "caps", out, nullptr);
    gst_caps_unref(out);
    chain.push_back(GST_ELEMENT(gst_object_ref_sink(filter)));
  }
  if (!ok || !add_chain(self, chain)) {
    for (GstElement *e : chain)
      gst_object_unref(e);
    discard_pad(self, rtspsrc, pad);
    return;
  }
  if (!keep_elements(self, rtspsrc, chain))
    return;

  GstPad *first = gst_element_get_static_pad(chain.front(), "sink");
  GstPad *last = gst_element_get_static_pad(chain.back(), "src");
  gst_pad_add_probe(
      last,
      static_cast<GstPadProbeType>(GST_PAD_PROBE_TYPE_BUFFER | GST_PAD_PROBE_TYPE_EVENT_DOWNSTREAM),
      on_camera_data, new FeedProbe{self, rtspsrc, video ? Feed::Video : Feed::Audio},
      free_feed_probe);
  {
    GstPad *ghost = video ? p->video : p->audio;
    std::lock_guard<std::mutex> glk(p->pad_lock(ghost));
    gst_ghost_pad_set_target(GST_GHOST_PAD(ghost), last);
  }
  if (gst_pad_link(pad, first) != GST_PAD_LINK_OK)
    GST_WARNING_OBJECT(self, "cannot link the camera's %s stream", info.media.c_str());
  GST_DEBUG_OBJECT(self, "camera %s: %s", info.media.c_str(), plan.codec.c_str());
  gst_object_unref(first);
  gst_object_unref(last);
}

/* rtspsrc offers each stream of the camera's SDP here, before SETUP. The `sendonly` one is the
 * back channel: the encoder chain for its codec is made now. */
gboolean costream::rtspcamera::on_select_stream(GstElement *rtspsrc, guint num, GstCaps *caps,
                                                gpointer data) {
  auto *self = GST_RTSP_CAMERA(data);
  auto *p = self->priv;
  const GstStructure *s = gst_caps_get_structure(caps, 0);
  const bool sendonly = gst_structure_has_field(s, "a-sendonly");
  {
    std::lock_guard<std::mutex> lk(p->lock);
    if (p->conn.rtspsrc != rtspsrc || p->stop)
      return FALSE;
    p->conn.described = true;
    if (!sendonly) {
      p->conn.expected_pads++;
      return TRUE;
    }
    if (p->conn.appsrc)
      return FALSE; /* one back channel */
  }
  return setup_backchannel(self, rtspsrc, num, s);
}
