/* costream
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * rtspcamera's supervisor thread: connect (a new rtspsrc), watch for data, tear down, wait with a
 * doubling backoff, again. It posts `rtspcamera-lost` once per outage and, with the receive side,
 * `rtspcamera-connected`; it sends the GAPs that let the sinks preroll without a camera, and the
 * EOS the application asked for. See rtspcameraprivate.h for the threads and locks.
 */
#include "rtspcameraprivate.h"

#include "../common/objectlock.h"
#include "rtspurl.h"

#include <algorithm>
#include <chrono>

#define GST_CAT_DEFAULT gst_rtsp_camera_debug

using namespace costream::rtspcamera;

/* ---- a connection's end and its announcement (from any thread) ---- */

void costream::rtspcamera::mark_lost(GstRtspCamera *self, GstElement *rtspsrc,
                                     const std::string &reason, bool no_sdp) {
  auto *p = self->priv;
  std::lock_guard<std::mutex> lk(p->lock);
  if (rtspsrc && p->conn.rtspsrc != rtspsrc)
    return;
  if (p->lost || p->stop)
    return;
  p->lost = true;
  p->no_sdp = no_sdp;
  p->lost_reason = costream::redact_url(reason);
  p->conn.ended = true;
  p->wake.notify_all();
}

void costream::rtspcamera::post_connected(GstRtspCamera *self) {
  auto *p = self->priv;
  GstStructure *s;
  {
    std::unique_lock<std::mutex> lk(p->lock);
    /* Announced once every stream has its pad, or a second after the first data (a stream the
     * camera never sends, say): the message then names every codec. */
    const gint64 now = g_get_monotonic_time();
    if (p->conn.streaming || p->conn.ended || !p->conn.first_data ||
        (p->conn.pads < p->conn.expected_pads && now - p->conn.first_data < G_USEC_PER_SEC))
      return;
    p->conn.streaming = true;
    p->connects++;
    p->state = "streaming";
    const guint64 outage = p->lost_at ? (now - p->lost_at) * GST_USECOND : 0;
    p->lost_at = 0;
    s = gst_structure_new("rtspcamera-connected", "video-codec", G_TYPE_STRING,
                          p->conn.video_codec.c_str(), "audio-codec", G_TYPE_STRING,
                          p->conn.audio_codec.c_str(), "audio-output", G_TYPE_STRING,
                          p->conn.audio_output.c_str(), "backchannel-codec", G_TYPE_STRING,
                          p->conn.backchannel_codec.c_str(), "connects", G_TYPE_UINT64, p->connects,
                          "outage", G_TYPE_UINT64, outage, nullptr);
  }
  const std::string where = redacted_location(self);
  gst_structure_set(s, "location", G_TYPE_STRING, where.c_str(), nullptr);
  GST_INFO_OBJECT(self, "camera %s streaming", where.c_str());
  gst_element_post_message(GST_ELEMENT(self), gst_message_new_element(GST_OBJECT(self), s));

  bool warn = false;
  {
    std::lock_guard<std::mutex> lk(p->lock);
    if (p->conn.backchannel_codec == "none" && !p->warned_no_backchannel) {
      p->warned_no_backchannel = true;
      warn = true;
    }
  }
  if (warn)
    GST_ELEMENT_WARNING(self, STREAM, FORMAT,
                        ("The camera at %s offers no audio back channel that rtspcamera can use: "
                         "what arrives on the backchannel pad is discarded",
                         where.c_str()),
                        (nullptr));
}

/* ---- the supervisor: connect, watch, tear down, wait, again ---- */

static bool connect(GstRtspCamera *self, const Settings &s, bool with_backchannel) {
  auto *p = self->priv;
  GstElement *src = gst_element_factory_make("rtspsrc", nullptr);
  if (!src)
    return false;
  const costream::RtspUrl url = costream::split_rtsp_url(s.location);
  const std::string &user = s.user_id.empty() ? url.user : s.user_id;
  const std::string &pw = s.user_pw.empty() ? url.password : s.user_pw;
  g_object_set(src, "location", url.address.c_str(), "latency", s.latency, "tcp-timeout",
               (guint64)s.timeout * 1000, nullptr);
  if (!user.empty())
    g_object_set(src, "user-id", user.c_str(), "user-pw", pw.c_str(), nullptr);
  gst_util_set_object_arg(G_OBJECT(src), "backchannel", with_backchannel ? "onvif" : "none");
  gst_util_set_object_arg(G_OBJECT(src), "protocols",
                          s.transport == TRANSPORT_TCP   ? "tcp"
                          : s.transport == TRANSPORT_UDP ? "udp"
                                                         : "udp+udp-mcast+tcp");
  g_signal_connect(src, "select-stream", G_CALLBACK(on_select_stream), self);
  g_signal_connect(src, "pad-added", G_CALLBACK(on_pad_added), self);
  {
    std::lock_guard<std::mutex> lk(p->lock);
    p->conn = Connection();
    p->conn.rtspsrc = GST_ELEMENT(gst_object_ref(src));
    p->lost = false;
    p->no_sdp = false;
    p->state = "connecting";
  }
  gst_bin_add(GST_BIN(self), src);
  gst_element_sync_state_with_parent(src);
  return true;
}

static void teardown(GstRtspCamera *self) {
  auto *p = self->priv;
  Connection old;
  {
    std::lock_guard<std::mutex> lk(p->lock);
    old = p->conn;
    p->conn = Connection();
  }
  for (GstPad *pad : {p->video, p->audio}) {
    std::lock_guard<std::mutex> glk(p->pad_lock(pad));
    gst_ghost_pad_set_target(GST_GHOST_PAD(pad), nullptr);
  }
  /* Each chain was made in stream order, rtspsrc upstream of all the receiving ones. */
  std::vector<GstElement *> downstream_first(old.elements.rbegin(), old.elements.rend());
  if (old.rtspsrc)
    downstream_first.push_back(old.rtspsrc);
  remove_elements(self, downstream_first);
  for (GstElement *e : downstream_first)
    gst_object_unref(e);
  if (old.appsrc)
    gst_object_unref(old.appsrc);
  /* GstBin drops the source flag with its last source child; the element stays a source. */
  GST_OBJECT_FLAG_SET(self, GST_ELEMENT_FLAG_SOURCE);
}

/* Pushes `event` on `pad` when no camera stream is behind it (after stream-start and segment
 * if the pad never streamed); drops it otherwise. */
static void push_without_camera(GstRtspCamera *self, GstPad *pad, GstEvent *event) {
  std::lock_guard<std::mutex> glk(self->priv->pad_lock(pad));
  if (GstPad *target = gst_ghost_pad_get_target(GST_GHOST_PAD(pad))) {
    gst_object_unref(target);
    gst_event_unref(event);
    return;
  }
  if (GstEvent *start = gst_pad_get_sticky_event(pad, GST_EVENT_STREAM_START, 0)) {
    gst_event_unref(start);
  } else {
    g_autofree gchar *id = gst_pad_create_stream_id(pad, GST_ELEMENT(self), GST_PAD_NAME(pad));
    gst_pad_push_event(pad, gst_event_new_stream_start(id));
    /* The caps a G.711 / H.264 camera will have (Opus with audio-format=opus): sticky events go
     * stream-start, caps, segment. */
    const auto audio = costream::locked_copy(self, self->priv->settings.audio_format);
    GstCaps *caps = gst_caps_from_string(pad == self->priv->video
                                             ? "video/x-h264, stream-format=(string)byte-stream, "
                                               "alignment=(string)au"
                                             : costream::audio_output_caps(audio));
    gst_pad_push_event(pad, gst_event_new_caps(caps));
    gst_caps_unref(caps);
    GstSegment segment;
    gst_segment_init(&segment, GST_FORMAT_TIME);
    gst_pad_push_event(pad, gst_event_new_segment(&segment));
  }
  gst_pad_push_event(pad, event);
}

/* EOS on both pads: through rtspsrc for the streams it has, so it follows their data; directly
 * on a pad without a camera stream behind it (after stream-start and segment if it never
 * streamed). */
static void end_stream(GstRtspCamera *self) {
  auto *p = self->priv;
  GstElement *rtspsrc = nullptr;
  {
    std::lock_guard<std::mutex> lk(p->lock);
    if (p->conn.rtspsrc)
      rtspsrc = GST_ELEMENT(gst_object_ref(p->conn.rtspsrc));
  }
  if (rtspsrc) {
    gst_element_send_event(rtspsrc, gst_event_new_eos());
    gst_object_unref(rtspsrc);
  }
  for (GstPad *pad : {p->video, p->audio})
    push_without_camera(self, pad, gst_event_new_eos());
}

/* A pad that has no camera stream now and never streamed gets a GAP, so the sinks downstream
 * preroll: otherwise a sink waiting for its first buffer (a camera away, or one without audio)
 * holds the whole pipeline in PAUSED. */
static void announce_gaps(GstRtspCamera *self) {
  GstClockTime now = GST_CLOCK_TIME_NONE;
  if (GstClock *clock = gst_element_get_clock(GST_ELEMENT(self))) {
    const GstClockTime base = gst_element_get_base_time(GST_ELEMENT(self));
    const GstClockTime t = gst_clock_get_time(clock);
    now = t > base ? t - base : 0;
    gst_object_unref(clock);
  }
  /* One thread per pad: a sink that prerolls on its GAP waits there until the pipeline is
   * PLAYING, which needs the other pad's sink to preroll too. */
  for (GstPad *pad : {self->priv->video, self->priv->audio}) {
    if (GstEvent *start = gst_pad_get_sticky_event(pad, GST_EVENT_STREAM_START, 0)) {
      gst_event_unref(start);
      continue;
    }
    std::lock_guard<std::mutex> lk(self->priv->lock);
    self->priv->gap_threads.emplace_back([self, pad, now] {
      push_without_camera(self, pad, gst_event_new_gap(now, GST_CLOCK_TIME_NONE));
    });
  }
}

/* (supervisor, with `lk` held) The GAPs asked for when the element started playing; false when
 * there were none to send. */
static bool service_gaps(GstRtspCamera *self, std::unique_lock<std::mutex> &lk) {
  auto *p = self->priv;
  if (!p->playing || !p->gaps_pending)
    return false;
  p->gaps_pending = false;
  lk.unlock();
  announce_gaps(self);
  lk.lock();
  return true;
}

static void supervise(GstRtspCamera *self) {
  auto *p = self->priv;
  Settings s = costream::locked_copy(self, p->settings);
  costream::Backoff backoff(s.reconnect_delay, s.max_reconnect_delay);
  bool with_backchannel = true;
  bool in_outage = false;
  while (true) {
    s = costream::locked_copy(self, p->settings);
    if (!connect(self, s, with_backchannel))
      return;
    const gint64 started = g_get_monotonic_time();
    std::string reason;
    bool no_sdp, streamed;
    {
      std::unique_lock<std::mutex> lk(p->lock);
      while (!p->stop && !p->lost && !p->eos_requested) {
        p->wake.wait_for(lk, std::chrono::milliseconds(100));
        service_gaps(self, lk);
        if (p->stop || p->lost || p->eos_requested || !p->playing)
          continue;
        const gint64 now = g_get_monotonic_time();
        const gint64 limit = (gint64)s.timeout * 1000;
        if (p->conn.first_data && !p->conn.streaming) {
          lk.unlock();
          post_connected(self);
          lk.lock();
          if (p->stop || p->lost)
            continue;
        }
        if (p->conn.first_data && now - p->last_data.load() > limit) {
          p->lost = true;
          p->lost_reason = "no data from the camera for " + std::to_string(s.timeout) + " ms";
        } else if (!p->conn.first_data && now - std::max(started, p->playing_since) > limit) {
          p->lost = true;
          p->lost_reason =
              "no data from the camera " + std::to_string(s.timeout) + " ms after connecting";
        }
      }
      if (p->eos_requested && !p->stop) {
        /* Ended: no more reconnections; the session stays until the state goes down. */
        lk.unlock();
        end_stream(self);
        lk.lock();
        p->wake.wait(lk, [p] { return p->stop; });
      }
      if (p->stop) {
        lk.unlock();
        teardown(self);
        return;
      }
      reason = p->lost_reason;
      no_sdp = p->no_sdp && !p->conn.described;
      streamed = p->conn.streaming;
      p->conn.ended = true;
      if (streamed)
        p->lost_at = p->last_data.load();
      p->state = "retrying";
    }
    teardown(self);

    /* A camera without a back channel answers the ONVIF Require header with 551 and no SDP:
     * ask again at once without it (and with it again if that fails the same way). */
    if (no_sdp && !streamed) {
      with_backchannel = !with_backchannel;
      GST_INFO_OBJECT(self, "no SDP: trying %s the back channel",
                      with_backchannel ? "with" : "without");
      if (!with_backchannel)
        continue;
    }
    if (streamed)
      backoff.reset();
    const unsigned delay = backoff.next();
    const std::string where = redacted_location(self);
    if (streamed)
      in_outage = false;
    if (!in_outage) {
      in_outage = true;
      guint64 losses;
      {
        std::lock_guard<std::mutex> lk(p->lock);
        losses = ++p->losses;
      }
      GST_ELEMENT_WARNING(self, RESOURCE, READ,
                          ("Lost the camera at %s (%s); trying again in %u ms", where.c_str(),
                           reason.c_str(), delay),
                          (nullptr));
      gst_element_post_message(
          GST_ELEMENT(self),
          gst_message_new_element(GST_OBJECT(self),
                                  gst_structure_new("rtspcamera-lost", "location", G_TYPE_STRING,
                                                    where.c_str(), "reason", G_TYPE_STRING,
                                                    reason.c_str(), "retry-in", G_TYPE_UINT64,
                                                    (guint64)delay * GST_MSECOND, "losses",
                                                    G_TYPE_UINT64, losses, nullptr)));
    } else {
      GST_INFO_OBJECT(self, "camera %s still away (%s); next try in %u ms", where.c_str(),
                      reason.c_str(), delay);
    }
    std::unique_lock<std::mutex> lk(p->lock);
    const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(delay);
    while (p->wake.wait_until(lk, until, [p] {
      return p->stop || p->eos_requested || (p->playing && p->gaps_pending);
    })) {
      if (!service_gaps(self, lk))
        break;
    }
    if (p->stop)
      return;
    if (p->eos_requested) {
      lk.unlock();
      end_stream(self);
      lk.lock();
      p->wake.wait(lk, [p] { return p->stop; });
      return;
    }
  }
}

void costream::rtspcamera::start_supervisor(GstRtspCamera *self) {
  auto *p = self->priv;
  {
    std::lock_guard<std::mutex> lk(p->lock);
    p->stop = false;
    p->lost = false;
    p->lost_at = 0;
  }
  p->eos_requested = false;
  p->supervisor = std::thread(supervise, self);
}

void costream::rtspcamera::stop_supervisor(GstRtspCamera *self) {
  auto *p = self->priv;
  {
    std::lock_guard<std::mutex> lk(p->lock);
    p->stop = true;
    p->state = "stopped";
    p->wake.notify_all();
  }
  if (p->supervisor.joinable())
    p->supervisor.join();
  std::vector<std::thread> gaps;
  {
    std::lock_guard<std::mutex> lk(p->lock);
    gaps.swap(p->gap_threads);
  }
  for (auto &t : gaps)
    t.join();
  teardown(self); /* when the supervisor returned early */
}
