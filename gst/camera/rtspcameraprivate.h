/* costream
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * rtspcamera's insides, shared by the files of gst/camera/ that make the element only. Who owns
 * what:
 *
 *   gstrtspcamera.cpp          the element: properties, pads, state changes, the bin's messages
 *                              (the camera session's errors), EOS from the application, stats
 *   rtspcamerasupervisor.cpp   the supervisor thread: connect -> watch the data -> tear down ->
 *                              back off -> again; GAPs and EOS on pads without a camera stream;
 *                              the `rtspcamera-connected` / `rtspcamera-lost` messages
 *   rtspcamerareceive.cpp      rtspsrc's threads: select-stream, pad-added, the per-stream
 *                              depayload/decode chains onto the video and audio pads, the probes
 *                              that count and watch the camera's data; the elements made for a
 *                              connection
 *   rtspcamerabackchannel.cpp  the back channel: the backchannel sink pad (chain, event, query),
 *                              appsrc -> convert -> resample -> encoder -> payloader -> appsink,
 *                              each packet pushed into rtspsrc
 *   cameracodecs.*, rtspurl.*  what to build for a codec; URLs, redaction, backoff (pure)
 *   rtspsrcbackchannel.*       rtspsrc's back-channel signal, the same on every GStreamer
 *
 * Threads: the application's (properties, state changes, send_event), the supervisor (one
 * connection at a time: it alone makes a connection and tears it down; stop_supervisor() tears
 * down what it left once joined), rtspsrc's (select-stream, pad-added, the probes, the back
 * channel's appsink), the backchannel pad's streaming thread, and one short thread per pad for
 * GAPs.
 *
 * Locks: the object lock (settings) and GstRtspCameraPrivate::lock are never held together, and
 * neither is held while a state changes, an element is added or removed, a buffer or event is
 * pushed or a message is posted. A src pad's lock (video_lock, audio_lock) is taken with no other
 * lock held. The counters the streaming threads bump are atomics, read without a lock.
 */
#pragma once

#include "gstrtspcamera.h"

#include "cameracodecs.h"

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

GST_DEBUG_CATEGORY_EXTERN(gst_rtsp_camera_debug);

enum Transport { TRANSPORT_TCP, TRANSPORT_UDP, TRANSPORT_AUTO };

#define DEFAULT_LOCATION nullptr
#define DEFAULT_TRANSPORT TRANSPORT_TCP
#define DEFAULT_LATENCY 200
#define DEFAULT_TIMEOUT 5000
#define DEFAULT_RECONNECT_DELAY 1000
#define DEFAULT_MAX_RECONNECT_DELAY 30000
#define DEFAULT_AUDIO_FORMAT costream::AudioOutput::Raw

namespace costream::rtspcamera {

/* The element's properties (object lock); the supervisor copies them once per connection. */
struct Settings {
  std::string location;
  std::string user_id, user_pw;
  int transport = DEFAULT_TRANSPORT;
  guint latency = DEFAULT_LATENCY;
  guint timeout = DEFAULT_TIMEOUT;
  guint reconnect_delay = DEFAULT_RECONNECT_DELAY;
  guint max_reconnect_delay = DEFAULT_MAX_RECONNECT_DELAY;
  costream::AudioOutput audio_format = DEFAULT_AUDIO_FORMAT; /* the audio-format GEnum's values */
};

/* One RTSP session to the camera and the elements made for it; replaced whole on reconnection. */
struct Connection {
  GstElement *rtspsrc = nullptr;
  std::vector<GstElement *> elements; /* everything else made for this session */
  bool described = false;             /* rtspsrc offered us a stream of the camera's SDP */
  gint64 first_data = 0;              /* monotonic µs; 0: no data yet */
  unsigned expected_pads = 0;         /* the streams rtspsrc will make a pad for */
  unsigned pads = 0;                  /* the pads it made */
  bool streaming = false;             /* the connection is announced (see post_connected()) */
  bool ended = false;                 /* lost: the supervisor will tear it down */
  std::string video_codec = "none", audio_codec = "none", backchannel_codec = "none";
  std::string audio_output = "none"; /* see ReceivePlan::output */
  bool video_used = false, audio_used = false;
  /* The back channel, when the camera offers one we can encode. */
  GstElement *appsrc = nullptr;
  GstElement *appsink = nullptr;
  guint backchannel_stream = 0;
};

} // namespace costream::rtspcamera

struct GstRtspCameraPrivate {
  costream::rtspcamera::Settings settings; /* object lock */

  GstPad *video = nullptr, *audio = nullptr, *backchannel = nullptr;

  std::mutex lock;
  std::condition_variable wake;
  /* One per src pad, held while its target is set, and while an event is pushed on it without
   * a target: a camera stream starting on a pad never interleaves with those events. (One per
   * pad: a sink prerolling on a GAP holds its pad's push until the other pad's sink prerolled.) */
  std::mutex video_lock, audio_lock;
  std::mutex &pad_lock(GstPad *pad) { return pad == video ? video_lock : audio_lock; }
  costream::rtspcamera::Connection conn; /* lock */
  GstCaps *backchannel_caps = nullptr;   /* lock: the caps on the backchannel pad */
  bool stop = false;                     /* lock */
  bool lost = false;                     /* lock: the current connection is over */
  bool no_sdp = false;           /* lock: it failed as a camera without a back channel does */
  std::string lost_reason;       /* lock */
  std::string state = "stopped"; /* lock */
  gint64 lost_at = 0;            /* lock: monotonic µs when data stopped (0: never streamed) */
  gint64 playing_since = 0;      /* lock */
  bool playing = false;          /* lock */
  bool gaps_pending = false;     /* lock: announce_gaps() is due (set on PAUSED->PLAYING) */
  bool warned_no_backchannel = false;    /* lock */
  bool warned_backchannel_codec = false; /* lock */
  guint64 connects = 0, losses = 0;      /* lock */
  std::thread supervisor;
  std::vector<std::thread> gap_threads; /* lock (to add); joined when the supervisor stops */

  std::atomic<gint64> last_data{0};
  std::atomic<bool> eos_requested{false};
  std::atomic<guint64> video_buffers{0}, video_bytes{0}, audio_buffers{0}, audio_bytes{0};
  /* Every RTP packet on rtspsrc's src pads, exposed or not (rtspcamerareceive.cpp). */
  std::atomic<guint64> rtp_packets{0}, rtp_bytes{0};
  std::atomic<guint64> unlinked_drops{0};
  std::atomic<guint64> backchannel_in{0}, backchannel_dropped{0};
  std::atomic<guint64> backchannel_packets{0}, backchannel_bytes{0};
};

struct _GstRtspCamera {
  GstBin parent;
  GstRtspCameraPrivate *priv;
};

namespace costream::rtspcamera {

/* ---- gstrtspcamera.cpp ---- */

/* `location` with credentials and query values redacted (takes the object lock). */
std::string redacted_location(GstRtspCamera *self);

/* ---- rtspcamerasupervisor.cpp ---- */

/* Starts (READY->PAUSED) and stops (PAUSED->READY: joins it, tears the connection down) the
 * supervisor thread. */
void start_supervisor(GstRtspCamera *self);
void stop_supervisor(GstRtspCamera *self);
/* The connection of `rtspsrc` (any, when nullptr) is over: wakes the supervisor. `no_sdp`: it
 * failed as a camera without a back channel does. */
void mark_lost(GstRtspCamera *self, GstElement *rtspsrc, const std::string &reason,
               bool no_sdp = false);
/* Posts `rtspcamera-connected` once the connection's streams are known (or a second after its
 * first data), and the one warning about a camera without a usable back channel. */
void post_connected(GstRtspCamera *self);

/* ---- rtspcamerareceive.cpp ---- */

/* rtspsrc's signals, connected by the supervisor (`data`: the element). */
gboolean on_select_stream(GstElement *rtspsrc, guint num, GstCaps *caps, gpointer data);
void on_pad_added(GstElement *rtspsrc, GstPad *pad, gpointer data);
/* What a stream of the camera's SDP is, from rtspsrc's caps for it. */
costream::RtpStreamInfo stream_info(const GstStructure *s);
/* Makes an element of `spec`; on a missing factory, a warning that names it, and nullptr. */
GstElement *make_element(GstRtspCamera *self, const costream::ElementSpec &spec);
/* Internal sinks neither hold the pipeline's preroll nor count for its EOS. */
void make_internal_sink(GstElement *sink);
/* Adds `chain` to the bin linked in order, each in the bin's state; false (and nothing added)
 * when it cannot be linked. */
bool add_chain(GstRtspCamera *self, const std::vector<GstElement *> &chain);
/* Stops `elements` in this order (give them downstream first), then takes them out of the bin. */
void remove_elements(GstRtspCamera *self, const std::vector<GstElement *> &elements);
/* Keeps the connection's elements (one reference each) when the connection is still `rtspsrc`'s;
 * else the caller's elements are stale and are taken down. */
bool keep_elements(GstRtspCamera *self, GstElement *rtspsrc,
                   const std::vector<GstElement *> &chain);

/* ---- rtspcamerabackchannel.cpp ---- */

/* (select-stream, for the camera's `sendonly` stream `num`) Makes the back channel's encoder
 * chain for its codec; FALSE (the stream is not set up) when it cannot. */
gboolean setup_backchannel(GstRtspCamera *self, GstElement *rtspsrc, guint num,
                           const GstStructure *s);
/* The backchannel sink pad's functions. */
GstFlowReturn backchannel_chain(GstPad *pad, GstObject *parent, GstBuffer *buf);
gboolean backchannel_event(GstPad *pad, GstObject *parent, GstEvent *event);
gboolean backchannel_query(GstPad *pad, GstObject *parent, GstQuery *query);

} // namespace costream::rtspcamera
