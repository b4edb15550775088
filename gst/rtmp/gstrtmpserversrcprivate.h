/* costream
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * rtmpserversrc's insides, shared by its files:
 *   gstrtmpserversrc.cpp       the element: its doc block; the PublishPoint the listener calls
 *                              (publish start and stop, media into FLV buffers, counters);
 *                              start/stop (listener, certificate, authorizer), create, class_init
 *   gstrtmpserversrcprops.cpp  its properties and the authorize-publish signal: installation,
 *                              set/get, stats, and the settings as the listener's PointConfig
 *   listener.*                 the shared listening socket that calls the element
 *   flvoutput.*, gstflv.*      the FLV it outputs, and its timeline
 *   publishauth.*              publish-auth-url and the signal's thread
 *
 * Locks: GST_OBJECT_LOCK (settings, bound_port) and GstRtmpServerSrcPrivate::lock (the output
 * queue, what the stats show) are never held together; start(), stop() and set_property's
 * Listener::update() run under GST_STATE_LOCK, taking either inside it.
 */
#pragma once

#include "gstrtmpserversrc.h"

#include "../common/objectlock.h"
#include "flvoutput.h"
#include "listener.h"
#include "publishauth.h"

#include <atomic>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

GST_DEBUG_CATEGORY_EXTERN(gst_rtmp_server_src_debug);

#define DEFAULT_ADDRESS nullptr
#define DEFAULT_PORT 1935
#define DEFAULT_APPLICATION "live"
#define DEFAULT_STREAM_KEY nullptr
#define DEFAULT_EOS_ON_DISCONNECT FALSE
#define DEFAULT_MAX_MESSAGE_SIZE (8u << 20)
#define DEFAULT_MAX_CHUNK_SIZE 65536u
#define DEFAULT_HANDSHAKE_TIMEOUT 5000u
#define DEFAULT_IDLE_TIMEOUT 10000u
#define DEFAULT_MAX_PENDING 8u
#define DEFAULT_AUTH_TIMEOUT 3000u
#define DEFAULT_READ_INTERVAL 50u

enum {
  PROP_0,
  PROP_ADDRESS,
  PROP_PORT,
  PROP_BOUND_PORT,
  PROP_APPLICATION,
  PROP_STREAM_KEY,
  PROP_EOS_ON_DISCONNECT,
  PROP_MAX_MESSAGE_SIZE,
  PROP_MAX_CHUNK_SIZE,
  PROP_HANDSHAKE_TIMEOUT,
  PROP_IDLE_TIMEOUT,
  PROP_MAX_PENDING,
  PROP_STATS,
  PROP_TLS_CERT_FILE,
  PROP_TLS_KEY_FILE,
  PROP_TLS_CERTIFICATE,
  PROP_PUBLISH_AUTH_URL,
  PROP_PUBLISH_AUTH_TIMEOUT,
  PROP_READ_INTERVAL,
};

enum { SIGNAL_AUTHORIZE_PUBLISH, N_SIGNALS };

namespace costream::rtmp::serversrc {

/* The publish in progress. */
struct Publish {
  bool active = false;
  std::string remote;
  gint64 started_at = 0;  /* monotonic, us */
  bool announced = false; /* rtmp-publish-start posted */
};

/* The element's properties (GST_OBJECT_LOCK), copied whole. */
struct Settings {
  std::string address;
  guint port = DEFAULT_PORT;
  std::string application = DEFAULT_APPLICATION;
  std::string stream_key;
  gboolean eos_on_disconnect = DEFAULT_EOS_ON_DISCONNECT;
  guint max_message_size = DEFAULT_MAX_MESSAGE_SIZE;
  guint max_chunk_size = DEFAULT_MAX_CHUNK_SIZE;
  guint handshake_timeout = DEFAULT_HANDSHAKE_TIMEOUT;
  guint idle_timeout = DEFAULT_IDLE_TIMEOUT;
  guint max_pending = DEFAULT_MAX_PENDING;
  std::string tls_cert_file;
  std::string tls_key_file;
  std::shared_ptr<GTlsCertificate> tls_certificate; /* set by an application */
  std::string auth_url;
  guint auth_timeout = DEFAULT_AUTH_TIMEOUT;
  guint read_interval = DEFAULT_READ_INTERVAL;
};

using Lock = std::unique_lock<std::mutex>;

} // namespace costream::rtmp::serversrc

/* The element's state, by owner. It is the element's PublishPoint on its listener: the listener's
 * thread calls it, one call at a time (see listener.h). */
struct GstRtmpServerSrcPrivate : costream::rtmp::PublishPoint {
  GstRtmpServerSrc *self = nullptr;

  /* GST_OBJECT_LOCK: */
  costream::rtmp::serversrc::Settings settings;
  guint bound_port = 0;

  /* The streaming thread's start()/stop() (and set_property for update()): */
  std::shared_ptr<costream::rtmp::Listener> listener;
  std::shared_ptr<GTlsCertificate> certificate;                  /* RTMPS: what start() loaded */
  std::unique_ptr<costream::rtmp::PublishAuthorizer> authorizer; /* publish-auth-url, signal */

  /* The listener's calls only: */
  costream::rtmp::serversrc::Publish pub;
  costream::rtmp::FlvOutput out; /* the FLV and its timeline (see flvoutput.h) */
  std::vector<costream::rtmp::FlvOutput::Item> items;
  std::vector<GstBuffer *> round; /* this round's buffers, queued by round_done() */
  bool bframes_warned = false;
  bool gop_warned = false;

  /* lock: the output queue and what the stats show */
  std::mutex lock;
  std::condition_variable cond;
  std::deque<GstBuffer *> queue;
  size_t queued_bytes = 0;
  bool flushing = false;
  bool eos = false;
  bool gap_sent = false; /* see announce_gap */
  bool publishing = false;
  std::string publisher;
  guint64 bytes = 0;
  guint64 messages = 0;
  guint64 publishes = 0;
  guint64 refused = 0;
  guint64 connections = 0;
  guint64 reads = 0; /* rounds of the listener that brought media (each woke create() once) */
  gint64 publish_started_at = 0;
  GstClockTime keyframe_interval = 0; /* the last one measured (0: none yet) */
  guint64 publish_bytes_start = 0;
  std::atomic<bool> behind{false}; /* queued_bytes > MAX_QUEUED_BYTES */

  void publish_started(const std::string &remote) override;
  void media(costream::rtmp::SessionEvent &e) override;
  void publish_stopped(const std::string &reason, uint64_t bytes) override;
  void count(uint64_t connections, uint64_t refused, uint64_t bytes, uint64_t messages) override;
  void round_done() override { flush_round(true); }
  void flush_round(bool wake);
  void keyframe_interval_measured(GstClockTime interval);
  bool throttled() const override { return behind.load(std::memory_order_relaxed); }
  void authorize(uint64_t ticket, const costream::rtmp::AuthRequest &request) override {
    authorizer->submit(ticket, request); /* (only asked when there is one: point_config) */
  }
};

struct _GstRtmpServerSrc {
  GstPushSrc parent;
  GstRtmpServerSrcPrivate *priv;
};

namespace costream::rtmp::serversrc {

inline Settings settings_of(GstRtmpServerSrc *self) {
  return costream::locked_copy(self, self->priv->settings);
}

/* The settings as the listener's configuration of this element (gstrtmpserversrcprops.cpp). */
costream::rtmp::PointConfig point_config(GstRtmpServerSrc *self);

} // namespace costream::rtmp::serversrc

/* class_init's properties and signals (gstrtmpserversrcprops.cpp); fills `signals`. */
void gst_rtmp_server_src_install_properties(GstRtmpServerSrcClass *klass, guint *signals);
