/* costream
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * rtmpserversrc's properties and its authorize-publish signal (the element and its doc block:
 * gstrtmpserversrc.cpp; the file map: gstrtmpserversrcprivate.h).
 */
#include "gstrtmpserversrcprivate.h"

#include "netutil.h"

#include <algorithm>
#include <string>

#define GST_CAT_DEFAULT gst_rtmp_server_src_debug

using namespace costream::rtmp::serversrc;

costream::rtmp::PointConfig costream::rtmp::serversrc::point_config(GstRtmpServerSrc *self) {
  const Settings s = settings_of(self);
  costream::rtmp::PointConfig cfg;
  gchar *path = gst_object_get_path_string(GST_OBJECT(self)); /* names a bridge's inner src too */
  cfg.name = path;
  g_free(path);
  cfg.application = s.application;
  cfg.stream_key = s.stream_key;
  cfg.limits.max_message_size = s.max_message_size;
  cfg.limits.max_chunk_size = s.max_chunk_size;
  cfg.handshake_timeout_us = static_cast<gint64>(s.handshake_timeout) * 1000;
  cfg.idle_timeout_us = static_cast<gint64>(s.idle_timeout) * 1000;
  cfg.max_pending = s.max_pending;
  cfg.read_interval_us = static_cast<gint64>(s.read_interval) * 1000;
  cfg.certificate = self->priv->certificate;
  cfg.authorize = self->priv->authorizer != nullptr;
  return cfg;
}

static GstStructure *gst_rtmp_server_src_stats(GstRtmpServerSrc *self) {
  auto *priv = self->priv;
  Lock lk(priv->lock);
  double bitrate = 0;
  if (priv->publishing) {
    const double secs = (g_get_monotonic_time() - priv->publish_started_at) / 1e6;
    if (secs > 0.1)
      bitrate = (priv->bytes - std::min(priv->bytes, priv->publish_bytes_start)) * 8.0 / secs;
  }
  return gst_structure_new(
      "rtmpserversrc-stats", "state", G_TYPE_STRING, priv->publishing ? "publishing" : "listening",
      "publisher", G_TYPE_STRING, priv->publisher.c_str(), "bytes", G_TYPE_UINT64, priv->bytes,
      "messages", G_TYPE_UINT64, priv->messages, "bitrate", G_TYPE_DOUBLE, bitrate, "publishes",
      G_TYPE_UINT64, priv->publishes, "refused", G_TYPE_UINT64, priv->refused, "connections",
      G_TYPE_UINT64, priv->connections, "keyframe-interval", G_TYPE_UINT64, priv->keyframe_interval,
      "reads", G_TYPE_UINT64, priv->reads, nullptr);
}

static void gst_rtmp_server_src_set_property(GObject *object, guint prop_id, const GValue *value,
                                             GParamSpec *pspec) {
  auto *self = GST_RTMP_SERVER_SRC(object);
  auto *priv = self->priv;
  auto str = [value] {
    const gchar *v = g_value_get_string(value);
    return std::string(v ? v : "");
  };
  {
    costream::ObjectLock lk(self);
    auto &s = priv->settings;
    switch (prop_id) {
    case PROP_ADDRESS:
      s.address = str();
      break;
    case PROP_PORT:
      s.port = g_value_get_uint(value);
      break;
    case PROP_APPLICATION:
      s.application = str();
      break;
    case PROP_STREAM_KEY:
      s.stream_key = str();
      break;
    case PROP_EOS_ON_DISCONNECT:
      s.eos_on_disconnect = g_value_get_boolean(value);
      break;
    case PROP_MAX_MESSAGE_SIZE:
      s.max_message_size = g_value_get_uint(value);
      break;
    case PROP_MAX_CHUNK_SIZE:
      s.max_chunk_size = g_value_get_uint(value);
      break;
    case PROP_HANDSHAKE_TIMEOUT:
      s.handshake_timeout = g_value_get_uint(value);
      break;
    case PROP_IDLE_TIMEOUT:
      s.idle_timeout = g_value_get_uint(value);
      break;
    case PROP_MAX_PENDING:
      s.max_pending = g_value_get_uint(value);
      break;
    case PROP_TLS_CERT_FILE:
      s.tls_cert_file = str();
      break;
    case PROP_TLS_KEY_FILE:
      s.tls_key_file = str();
      break;
    case PROP_TLS_CERTIFICATE:
      s.tls_certificate =
          costream::rtmp::hold_certificate(G_TLS_CERTIFICATE(g_value_get_object(value)));
      break;
    case PROP_PUBLISH_AUTH_URL:
      s.auth_url = str();
      break;
    case PROP_PUBLISH_AUTH_TIMEOUT:
      s.auth_timeout = g_value_get_uint(value);
      break;
    case PROP_READ_INTERVAL:
      s.read_interval = g_value_get_uint(value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec);
      return;
    }
  }
  /* Running: the listener applies it to connections from now on. (GST_STATE_LOCK: start() and
   * stop() run under it, so `listener` does not change meanwhile.) */
  GST_STATE_LOCK(self);
  const bool running = priv->listener != nullptr;
  if (running) {
    std::string error;
    if (!priv->listener->update(priv, point_config(self), &error))
      GST_ELEMENT_WARNING(self, RESOURCE, SETTINGS,
                          ("New settings not applied: %s.", error.c_str()), (nullptr));
  }
  GST_STATE_UNLOCK(self);
  /* The latency it reports changed: the pipeline asks again. */
  if (running && prop_id == PROP_READ_INTERVAL)
    gst_element_post_message(GST_ELEMENT(self), gst_message_new_latency(GST_OBJECT(self)));
}

static void gst_rtmp_server_src_get_property(GObject *object, guint prop_id, GValue *value,
                                             GParamSpec *pspec) {
  auto *self = GST_RTMP_SERVER_SRC(object);
  auto *priv = self->priv;
  if (prop_id == PROP_STATS) {
    g_value_take_boxed(value, gst_rtmp_server_src_stats(self));
    return;
  }
  auto opt = [](const std::string &v) { return v.empty() ? nullptr : v.c_str(); };
  costream::ObjectLock lk(self);
  const auto &s = priv->settings;
  switch (prop_id) {
  case PROP_ADDRESS:
    g_value_set_string(value, opt(s.address));
    break;
  case PROP_PORT:
    g_value_set_uint(value, s.port);
    break;
  case PROP_BOUND_PORT:
    g_value_set_uint(value, priv->bound_port);
    break;
  case PROP_APPLICATION:
    g_value_set_string(value, s.application.c_str());
    break;
  case PROP_STREAM_KEY:
    g_value_set_string(value, opt(s.stream_key)); /* write-only in spirit: never logged */
    break;
  case PROP_EOS_ON_DISCONNECT:
    g_value_set_boolean(value, s.eos_on_disconnect);
    break;
  case PROP_MAX_MESSAGE_SIZE:
    g_value_set_uint(value, s.max_message_size);
    break;
  case PROP_MAX_CHUNK_SIZE:
    g_value_set_uint(value, s.max_chunk_size);
    break;
  case PROP_HANDSHAKE_TIMEOUT:
    g_value_set_uint(value, s.handshake_timeout);
    break;
  case PROP_IDLE_TIMEOUT:
    g_value_set_uint(value, s.idle_timeout);
    break;
  case PROP_MAX_PENDING:
    g_value_set_uint(value, s.max_pending);
    break;
  case PROP_TLS_CERT_FILE:
    g_value_set_string(value, opt(s.tls_cert_file));
    break;
  case PROP_TLS_KEY_FILE:
    g_value_set_string(value, opt(s.tls_key_file));
    break;
  case PROP_TLS_CERTIFICATE:
    g_value_set_object(value, s.tls_certificate.get());
    break;
  case PROP_PUBLISH_AUTH_URL:
    g_value_set_string(value, opt(s.auth_url));
    break;
  case PROP_PUBLISH_AUTH_TIMEOUT:
    g_value_set_uint(value, s.auth_timeout);
    break;
  case PROP_READ_INTERVAL:
    g_value_set_uint(value, s.read_interval);
    break;
  default:
    G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec);
    break;
  }
}

void gst_rtmp_server_src_install_properties(GstRtmpServerSrcClass *klass, guint *signals) {
  auto *gobject_class = G_OBJECT_CLASS(klass);

  gobject_class->set_property = gst_rtmp_server_src_set_property;
  gobject_class->get_property = gst_rtmp_server_src_get_property;

  const auto rw = static_cast<GParamFlags>(G_PARAM_READWRITE | GST_PARAM_MUTABLE_READY |
                                           G_PARAM_STATIC_STRINGS);
  const auto rw_playing = static_cast<GParamFlags>(G_PARAM_READWRITE | GST_PARAM_MUTABLE_PLAYING |
                                                   G_PARAM_STATIC_STRINGS);
  const auto ro = static_cast<GParamFlags>(G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);

  g_object_class_install_property(
      gobject_class, PROP_ADDRESS,
      g_param_spec_string("address", "Address",
                          "IP address to listen on (default: every interface, IPv4 and IPv6)",
                          DEFAULT_ADDRESS, rw));
  g_object_class_install_property(
      gobject_class, PROP_PORT,
      g_param_spec_uint("port", "Port", "TCP port to listen on (0: any free port, see bound-port)",
                        0, 65535, DEFAULT_PORT, rw));
  g_object_class_install_property(gobject_class, PROP_BOUND_PORT,
                                  g_param_spec_uint("bound-port", "Bound port",
                                                    "The port listened on (after start)", 0, 65535,
                                                    0, ro));
  g_object_class_install_property(
      gobject_class, PROP_APPLICATION,
      g_param_spec_string("application", "Application",
                          "RTMP application: the first path element of the publish URL",
                          DEFAULT_APPLICATION, rw));
  g_object_class_install_property(
      gobject_class, PROP_STREAM_KEY,
      g_param_spec_string("stream-key", "Stream key",
                          "Key a publisher must use (empty: any key is accepted). Compared in "
                          "constant time, never logged",
                          DEFAULT_STREAM_KEY, rw_playing));
  g_object_class_install_property(
      gobject_class, PROP_EOS_ON_DISCONNECT,
      g_param_spec_boolean("eos-on-disconnect", "EOS on disconnect",
                           "End the stream when the publisher leaves (default: wait for the next "
                           "publish and continue the timeline)",
                           DEFAULT_EOS_ON_DISCONNECT, rw_playing));
  g_object_class_install_property(
      gobject_class, PROP_MAX_MESSAGE_SIZE,
      g_param_spec_uint("max-message-size", "Max message size",
                        "Largest RTMP message accepted, in bytes (a bigger one drops the "
                        "connection)",
                        1024, 256u << 20, DEFAULT_MAX_MESSAGE_SIZE, rw));
  g_object_class_install_property(
      gobject_class, PROP_MAX_CHUNK_SIZE,
      g_param_spec_uint("max-chunk-size", "Max chunk size",
                        "Largest chunk size a publisher may set, in bytes", 128, 0x7fffffff,
                        DEFAULT_MAX_CHUNK_SIZE, rw));
  g_object_class_install_property(
      gobject_class, PROP_HANDSHAKE_TIMEOUT,
      g_param_spec_uint("handshake-timeout", "Handshake timeout",
                        "Milliseconds a connection may take from accept to publishing", 100, 600000,
                        DEFAULT_HANDSHAKE_TIMEOUT, rw_playing));
  g_object_class_install_property(
      gobject_class, PROP_IDLE_TIMEOUT,
      g_param_spec_uint("idle-timeout", "Idle timeout",
                        "Milliseconds a publisher may send nothing before it is dropped (0: "
                        "never)",
                        0, 3600000, DEFAULT_IDLE_TIMEOUT, rw_playing));
  g_object_class_install_property(
      gobject_class, PROP_MAX_PENDING,
      g_param_spec_uint("max-pending-connections", "Max pending connections",
                        "Connections not publishing (yet) kept at once; the oldest is closed to "
                        "make room",
                        1, 1024, DEFAULT_MAX_PENDING, rw_playing));
  /**
   * GstRtmpServerSrc:read-interval:
   *
   * Milliseconds the port's network thread lets publishers' data gather between two reads of
   * its sockets; on a shared port the smallest of the elements' applies. Every read that brings
   * an element media wakes that element's streaming thread once: with many publishers those
   * wake-ups are most of what ingest costs, so a longer interval saves CPU (50 ms: about half
   * of 20 ms's, docs/rtmpserversrc.md) and adds up to that much delay, which the element reports
   * in the latency query. 0 reads data as it arrives.
   */
  g_object_class_install_property(
      gobject_class, PROP_READ_INTERVAL,
      g_param_spec_uint("read-interval", "Read interval",
                        "Milliseconds publishers' data gathers between reads of the port's "
                        "sockets (smallest on a shared port; 0: as it arrives). Longer: fewer "
                        "wake-ups, up to this much more delay",
                        0, 1000, DEFAULT_READ_INTERVAL, rw_playing));
  g_object_class_install_property(
      gobject_class, PROP_STATS,
      g_param_spec_boxed("stats", "Statistics",
                         "state, publisher, bytes, messages, bitrate (bit/s), publishes, "
                         "refused, connections, keyframe-interval (ns, the last measured), reads "
                         "(reads of the port that brought media: see read-interval)",
                         GST_TYPE_STRUCTURE, ro));

  /**
   * GstRtmpServerSrc:tls-cert-file:
   *
   * RTMPS: a PEM file with the server certificate (and its chain; and the private key, unless
   * `tls-key-file` names it). When set, the element's port speaks RTMPS (TLS) only: every element
   * sharing that port must use the same certificate; run another element on another port for
   * plain RTMP. TLS comes from glib-networking.
   */
  g_object_class_install_property(
      gobject_class, PROP_TLS_CERT_FILE,
      g_param_spec_string("tls-cert-file", "TLS certificate file",
                          "RTMPS: PEM certificate (chain) file; the port then speaks TLS only",
                          nullptr, rw));
  /**
   * GstRtmpServerSrc:tls-key-file:
   *
   * RTMPS: the PEM file with the private key of `tls-cert-file` (default: in that file).
   */
  g_object_class_install_property(
      gobject_class, PROP_TLS_KEY_FILE,
      g_param_spec_string("tls-key-file", "TLS key file",
                          "RTMPS: PEM private key file (default: in tls-cert-file)", nullptr, rw));
  /**
   * GstRtmpServerSrc:tls-certificate:
   *
   * RTMPS, for applications: the certificate with its private key, instead of the files.
   */
  g_object_class_install_property(
      gobject_class, PROP_TLS_CERTIFICATE,
      g_param_spec_object("tls-certificate", "TLS certificate",
                          "RTMPS: a GTlsCertificate with its private key (instead of the files)",
                          G_TYPE_TLS_CERTIFICATE, rw));

  /**
   * GstRtmpServerSrc:publish-auth-url:
   *
   * An http:// service that decides each publish: it gets a POST with a JSON object (`action`
   * "publish", `element`, `application`, `stream_key`, `remote_address`, `tc_url`, `flash_ver`)
   * and allows the publish with a 2xx answer within `publish-auth-timeout`. Any other answer, no
   * answer in time, or no connection refuses it (NetStream.Publish.BadName) before any media is
   * read; the refusal is logged and counted, without the key.
   */
  g_object_class_install_property(
      gobject_class, PROP_PUBLISH_AUTH_URL,
      g_param_spec_string("publish-auth-url", "Publish authorization URL",
                          "http:// service asked (JSON POST) before each publish; only a 2xx "
                          "answer in time allows it",
                          nullptr, rw));
  g_object_class_install_property(
      gobject_class, PROP_PUBLISH_AUTH_TIMEOUT,
      g_param_spec_uint("publish-auth-timeout", "Publish authorization timeout",
                        "Milliseconds publish-auth-url has to answer (then the publish is "
                        "refused)",
                        100, 60000, DEFAULT_AUTH_TIMEOUT, rw));
  /**
   * GstRtmpServerSrc::authorize-publish:
   * @src: the element
   * @application: the RTMP application
   * @stream_key: the key the publisher gave
   * @remote_address: the publisher's address and port
   * @tc_url: the tcUrl of its `connect`
   * @flash_ver: the flashVer of its `connect` (e.g. "FMLE/3.0 (compatible; FMSc/1.0)")
   *
   * Decides a publish in the application: return TRUE to allow it. Emitted from a thread of the
   * element's own (never the streaming or the network thread), before `publish-auth-url` is
   * asked (both must allow). Only handlers connected before the element starts are used.
   *
   * Returns: whether the publish may go on
   */
  signals[SIGNAL_AUTHORIZE_PUBLISH] =
      g_signal_new("authorize-publish", G_TYPE_FROM_CLASS(klass), G_SIGNAL_RUN_LAST, 0,
                   g_signal_accumulator_first_wins, nullptr, nullptr, G_TYPE_BOOLEAN, 5,
                   G_TYPE_STRING, G_TYPE_STRING, G_TYPE_STRING, G_TYPE_STRING, G_TYPE_STRING);
}
