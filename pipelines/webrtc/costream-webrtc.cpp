/* costream-webrtc: browser talk-back server
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Serves a page (pipelines/webrtc/www), a WebSocket for signalling and a JSON API. Each stream
 * (built-in test sources, an RTMP publish through rtmpbridge, or an RTSP/ONVIF camera through
 * rtspcamera, several with --camera NAME=URL) is produced once; every browser viewer of it gets
 * its own webrtcbin fed from the stream's tees and sends its microphone back; all viewers'
 * talk-back of a stream is mixed by its own backchannelmixer into the producer's back channel
 * (the camera's, or a WAV file or RTP/Opus to a UDP address). Who is talking
 * (backchannelmixer-talker messages) is sent to every page of the stream.
 *
 * Signalling is plain text over the WebSocket (/ws?stream=NAME), one message per frame, first
 * line the type:
 *   server -> page: "hello\n<id>", "offer\n<sdp>", "ice\n<mline>\n<candidate>",
 *                   "talker\n<id> <0|1> <level dBov>", "left\n<id>"
 *   page -> server: "answer\n<sdp>", "ice\n<mline>\n<candidate>", "stats\n<key=value ...>"
 * The server prints one line per event on stdout ("viewer 2 joined stream door", "viewer 2 stats
 * ...", "talker 2 active -23.1 dBov", "camera door connected ...", ...), which is what the browser
 * tests read. GET /api/streams and --webhook: see api.cpp.
 */
#include "server.h"

#include <glib-unix.h>

#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace cw {

App app;

void say(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  gchar *s = g_strdup_vprintf(fmt, ap);
  va_end(ap);
  std::printf("%s\n", s);
  std::fflush(stdout);
  g_free(s);
}

} // namespace cw

using namespace cw;

namespace {

/* ---- the page ------------------------------------------------------------------------------ */

void on_http(SoupServer *, SoupServerMessage *msg, const char *path, GHashTable *, gpointer) {
  if (soup_server_message_get_method(msg) != SOUP_METHOD_GET) {
    soup_server_message_set_status(msg, SOUP_STATUS_NOT_IMPLEMENTED, nullptr);
    return;
  }
  static const std::map<std::string, std::pair<const char *, const char *>> files = {
      {"/", {"index.html", "text/html; charset=utf-8"}},
      {"/index.html", {"index.html", "text/html; charset=utf-8"}},
      {"/app.js", {"app.js", "text/javascript; charset=utf-8"}},
  };
  if (g_str_equal(path, "/api/streams")) {
    const std::string json = streams_json(request_user(msg));
    soup_message_headers_replace(soup_server_message_get_response_headers(msg), "Cache-Control",
                                 "no-store");
    soup_server_message_set_status(msg, SOUP_STATUS_OK, nullptr);
    soup_server_message_set_response(msg, "application/json", SOUP_MEMORY_COPY, json.data(),
                                     json.size());
    return;
  }
  auto it = files.find(path);
  if (it == files.end()) {
    soup_server_message_set_status(msg, SOUP_STATUS_NOT_FOUND, nullptr);
    return;
  }
  gchar *file = g_build_filename(app.opt.www.c_str(), it->second.first, nullptr);
  gchar *contents = nullptr;
  gsize len = 0;
  if (g_file_get_contents(file, &contents, &len, nullptr)) {
    soup_server_message_set_status(msg, SOUP_STATUS_OK, nullptr);
    soup_server_message_set_response(msg, it->second.second, SOUP_MEMORY_TAKE, contents, len);
  } else {
    soup_server_message_set_status(msg, SOUP_STATUS_INTERNAL_SERVER_ERROR, nullptr);
  }
  g_free(file);
}

/* A back channel's last buffer is written; after the last one: stop. */
GstPadProbeReturn on_record_eos(GstPad *, GstPadProbeInfo *info, gpointer) {
  if (GST_EVENT_TYPE(GST_PAD_PROBE_INFO_EVENT(info)) == GST_EVENT_EOS)
    g_main_context_invoke(
        nullptr,
        [](gpointer) -> gboolean {
          if (--app.recorders <= 0)
            g_main_loop_quit(app.loop);
          return G_SOURCE_REMOVE;
        },
        nullptr);
  return GST_PAD_PROBE_OK;
}

gboolean stop(gpointer) {
  if (app.stopping)
    return G_SOURCE_REMOVE;
  app.stopping = true;
  say("stopping: finishing the back channel");
  /* ends the back channels: each mixer finishes its output with EOS, a recording is closed */
  for (auto &st : app.streams)
    if (st->mixer)
      gst_element_send_event(st->mixer, gst_event_new_eos());
  if (app.recorders == 0) { /* cameras only: nothing to wait for */
    g_main_loop_quit(app.loop);
    return G_SOURCE_REMOVE;
  }
  g_timeout_add_seconds(
      5,
      [](gpointer) -> gboolean {
        say("the back channel did not finish within 5 s");
        app.status = 1;
        g_main_loop_quit(app.loop);
        return G_SOURCE_REMOVE;
      },
      nullptr);
  return G_SOURCE_REMOVE;
}

gboolean on_bus(GstBus *, GstMessage *msg, gpointer) {
  switch (GST_MESSAGE_TYPE(msg)) {
  case GST_MESSAGE_ERROR: {
    GError *err = nullptr;
    gchar *dbg = nullptr;
    gst_message_parse_error(msg, &err, &dbg);
    /* one browser's failure ends that viewer, not the server */
    for (auto &kv : app.viewers) {
      if (kv.second->webrtc &&
          gst_object_has_as_ancestor(GST_MESSAGE_SRC(msg), GST_OBJECT(kv.second->webrtc))) {
        say("viewer %u: %s; dropping it", kv.first, err->message);
        remove_viewer(kv.second);
        g_clear_error(&err);
        g_free(dbg);
        return TRUE;
      }
    }
    std::fprintf(stderr, "costream-webrtc: error from %s: %s\n%s\n", GST_MESSAGE_SRC_NAME(msg),
                 err->message, dbg ? dbg : "");
    g_clear_error(&err);
    g_free(dbg);
    app.status = 1;
    g_main_loop_quit(app.loop);
    break;
  }
  case GST_MESSAGE_ELEMENT:
    stream_message(msg);
    break;
  default:
    break;
  }
  return TRUE;
}

void usage(FILE *f) {
  std::fprintf(
      f, "usage: costream-webrtc [options]\n"
         "Serves a talk-back page: every browser watches a producer's stream over WebRTC and\n"
         "talks back with its microphone; each stream's talk-back is mixed by its own\n"
         "backchannelmixer into that producer's back channel.\n"
         "  --address ADDR     HTTP address to listen on (default 127.0.0.1; 0.0.0.0 for others)\n"
         "  --port N           HTTP port (default 8080)\n"
         "  --camera [NAME=]rtsp://[user:pass@]host[:port]/path\n"
         "                     an RTSP/ONVIF camera is a stream (repeatable; NAME defaults to\n"
         "                     camera, camera2, ...): one RTSP session, its H.264 passed to\n"
         "                     every viewer, its audio to Opus, the viewers' talk-back into its\n"
         "                     ONVIF back channel\n"
         "  --rtmp-port N      a stream 'live' is an RTMP publish to rtmp://host:N/live/KEY\n"
         "                     through rtmpbridge (without --camera or --rtmp-port: test sources)\n"
         "  --stream-key KEY   the key the 'live' publisher must use (default: any)\n"
         "  --rtmp-stream NAME=KEY  a stream NAME of whoever publishes with KEY on --rtmp-port\n"
         "                     (repeatable: any number of publishers on one port, each its own\n"
         "                     stream; without --stream-key there is then no 'live' stream)\n"
         "  --webhook URL      POST a JSON event to URL for publish start/stop, camera\n"
         "                     connected/lost, viewer joined/left, talker started/stopped\n"
         "                     (repeatable; docs/camera.md)\n"
         "  --record FILE      write the test or RTMP stream's back channel to this WAV file\n"
         "                     (default out/webrtc/backchannel.wav; several RTMP streams: each\n"
         "                     to FILE with -NAME before its extension)\n"
         "  --rtp-out HOST:PORT  send the back channel as RTP/Opus (payload 97) instead\n"
         "  --stun URI         STUN server for viewers behind NAT (stun://host:port)\n"
         "  --ice-address ADDR offer media only on this local address (repeatable; default: all\n"
         "                     interfaces but loopback, which libnice leaves out)\n"
         "  --tls-cert FILE --tls-key FILE  serve HTTPS (PEM files): browsers on other machines\n"
         "                     give the microphone only to https:// pages\n"
         "  --www DIR          the page's directory (default: this source tree's)\n"
         "  --max-viewers N    viewers at once (default 16); more are turned away\n"
         "Access (docs/security.md). On 127.0.0.1 anyone on this machine may watch and talk;\n"
         "any other --address needs --users or --no-auth:\n"
         "  --users FILE       logins: lines name:crypt-hash:watch=STREAM,talk=STREAM (* = all);\n"
         "                     every request but the page's script then needs HTTP Basic or a\n"
         "                     token (hash: openssl passwd -6)\n"
         "  --token-secret FILE  signs kiosk tokens: a page address with ?token=T logs in as the\n"
         "                     token's user until it expires\n"
         "  --make-token USER  print a token for USER (with --users, --token-secret) and exit\n"
         "  --token-valid-for SECONDS  (default 86400)\n"
         "  --allowed-origin ORIGIN  another page origin whose scripts may connect (repeatable;\n"
         "                     the server's own page always may)\n"
         "  --max-joins-per-minute N  per address (default 30); more are refused (429)\n"
         "  --auth-url URL     the operator's service decides: a JSON POST per viewer (watch,\n"
         "                     then talk) and per RTMP publish; only a 2xx answer allows\n"
         "  --no-auth          accept a non-loopback --address without logins\n"
         "  --seconds N        stop after N seconds (default: run until interrupted)\n"
         "  --help\n");
}

bool parse_args(int argc, char **argv) {
  Options &o = app.opt;
  for (int i = 1; i < argc; i++) {
    const std::string a = argv[i];
    auto value = [&](void) -> const char * { return i + 1 < argc ? argv[++i] : nullptr; };
    auto number = [&](guint *out, guint64 max = 65535) {
      const char *v = value();
      gchar *end = nullptr;
      const guint64 n = v ? g_ascii_strtoull(v, &end, 10) : 0;
      if (!v || !*v || *end || n > max) {
        std::fprintf(stderr, "costream-webrtc: %s wants a number\n", a.c_str());
        return false;
      }
      *out = static_cast<guint>(n);
      return true;
    };
    auto text = [&](std::string *out) {
      const char *v = value();
      if (!v) {
        std::fprintf(stderr, "costream-webrtc: %s wants a value\n", a.c_str());
        return false;
      }
      *out = v;
      return true;
    };
    bool ok;
    if (a == "--help" || a == "-h") {
      usage(stdout);
      std::exit(0);
    } else if (a == "--address")
      ok = text(&o.address);
    else if (a == "--port")
      ok = number(&o.port);
    else if (a == "--rtmp-port")
      ok = number(&o.rtmp_port);
    else if (a == "--stream-key")
      ok = text(&o.stream_key);
    else if (a == "--camera") {
      std::string v;
      ok = text(&v);
      /* NAME=URL when what precedes the first '=' is no URL (has no "://") */
      const size_t eq = v.find('=');
      CameraArg c;
      if (eq != std::string::npos && v.substr(0, eq).find("://") == std::string::npos) {
        c.name = v.substr(0, eq);
        c.url = v.substr(eq + 1);
      } else {
        c.name = o.cameras.empty() ? "camera" : "camera" + std::to_string(o.cameras.size() + 1);
        c.url = v;
      }
      if (ok && !g_str_has_prefix(c.url.c_str(), "rtsp://") &&
          !g_str_has_prefix(c.url.c_str(), "rtsps://")) {
        std::fprintf(stderr, "costream-webrtc: --camera wants an rtsp:// address\n");
        ok = false;
      }
      o.cameras.push_back(c);
    } else if (a == "--rtmp-stream") {
      std::string v;
      ok = text(&v);
      const size_t eq = v.find('=');
      if (ok && (eq == std::string::npos || eq == 0 || eq + 1 == v.size())) {
        std::fprintf(stderr, "costream-webrtc: --rtmp-stream wants NAME=KEY\n");
        ok = false;
      }
      if (ok)
        o.rtmp_streams.push_back(CameraArg{v.substr(0, eq), v.substr(eq + 1)});
    } else if (a == "--users")
      ok = text(&o.users_file);
    else if (a == "--token-secret")
      ok = text(&o.token_secret_file);
    else if (a == "--make-token")
      ok = text(&o.make_token);
    else if (a == "--token-valid-for")
      ok = number(&o.token_valid_for, 10ull * 366 * 86400);
    else if (a == "--allowed-origin") {
      std::string v;
      ok = text(&v);
      o.allowed_origins.push_back(v);
    } else if (a == "--max-joins-per-minute")
      ok = number(&o.max_joins_per_minute);
    else if (a == "--auth-url")
      ok = text(&o.auth_url);
    else if (a == "--no-auth")
      o.no_auth = ok = true;
    else if (a == "--webhook") {
      std::string v;
      ok = text(&v);
      if (ok && !g_str_has_prefix(v.c_str(), "http://") &&
          !g_str_has_prefix(v.c_str(), "https://")) {
        std::fprintf(stderr, "costream-webrtc: --webhook wants an http:// or https:// URL\n");
        ok = false;
      }
      if (ok && !g_uri_is_valid(v.c_str(), G_URI_FLAGS_NONE, nullptr)) {
        std::fprintf(stderr, "costream-webrtc: --webhook: not a URL\n");
        ok = false;
      }
      o.webhooks.push_back(v);
    } else if (a == "--record")
      ok = text(&o.record);
    else if (a == "--rtp-out")
      ok = text(&o.rtp_out);
    else if (a == "--stun")
      ok = text(&o.stun);
    else if (a == "--ice-address") {
      std::string addr;
      ok = text(&addr);
      o.ice_addresses.push_back(addr);
    } else if (a == "--tls-cert")
      ok = text(&o.tls_cert);
    else if (a == "--tls-key")
      ok = text(&o.tls_key);
    else if (a == "--www")
      ok = text(&o.www);
    else if (a == "--seconds")
      ok = number(&o.seconds);
    else if (a == "--max-viewers")
      ok = number(&o.max_viewers);
    else {
      std::fprintf(stderr, "costream-webrtc: unknown option %s\n", a.c_str());
      ok = false;
    }
    if (!ok) {
      usage(stderr);
      return false;
    }
  }
  return true;
}

} // namespace

int main(int argc, char **argv) {
  gst_init(&argc, &argv);
  if (!parse_args(argc, argv))
    return 2;
  for (const char *needed : {"backchannelmixer", "webrtcbin", "opusenc", "rtpopusdepay"}) {
    GstElementFactory *f = gst_element_factory_find(needed);
    if (!f) {
      std::fprintf(stderr,
                   "costream-webrtc: element %s not found (costream plugin built and on "
                   "GST_PLUGIN_PATH? gstreamer1.0-plugins-bad, -good and gstreamer1.0-nice "
                   "installed?)\n",
                   needed);
      return 1;
    }
    gst_object_unref(f);
  }
  std::string error;
  if (app.opt.www.empty())
    app.opt.www = COSTREAM_WEBRTC_WWW;
  std::string access_error;
  if (!load_access(&access_error)) {
    std::fprintf(stderr, "costream-webrtc: %s\n", access_error.c_str());
    return 2;
  }
  if (!app.opt.cameras.empty()) {
    if (GstElementFactory *f = gst_element_factory_find("rtspcamera"))
      gst_object_unref(f);
    else {
      std::fprintf(stderr, "costream-webrtc: element rtspcamera not found (costream plugin "
                           "built with gstreamer1.0-rtsp? on GST_PLUGIN_PATH?)\n");
      return 1;
    }
  }
  if (!build_streams(&error)) {
    std::fprintf(stderr, "costream-webrtc: %s\n", error.c_str());
    return 1;
  }
  app.loop = g_main_loop_new(nullptr, FALSE);
  GstBus *bus = gst_element_get_bus(app.pipeline);
  gst_bus_add_watch(bus, on_bus, nullptr);
  for (size_t k = 0; k < app.streams.size(); k++) {
    GstElement *rec =
        gst_bin_get_by_name(GST_BIN(app.pipeline), ("rec" + std::to_string(k)).c_str());
    if (!rec)
      continue;
    app.recorders++;
    GstPad *recpad = gst_element_get_static_pad(rec, "sink");
    gst_pad_add_probe(recpad, GST_PAD_PROBE_TYPE_EVENT_DOWNSTREAM, on_record_eos, nullptr, nullptr);
    gst_object_unref(recpad);
    gst_object_unref(rec);
  }
  app.webhooks = webhooks_new(app.opt.webhooks);

  GTlsCertificate *cert = nullptr;
  if (!app.opt.tls_cert.empty() || !app.opt.tls_key.empty()) {
    GError *terr = nullptr;
    cert =
        g_tls_certificate_new_from_files(app.opt.tls_cert.c_str(), app.opt.tls_key.c_str(), &terr);
    if (!cert) {
      std::fprintf(stderr, "costream-webrtc: --tls-cert/--tls-key: %s\n",
                   terr ? terr->message : "both are needed");
      g_clear_error(&terr);
      return 2;
    }
  }
  app.server =
      soup_server_new("server-header", "costream-webrtc ", "tls-certificate", cert, nullptr);
  const bool https = cert != nullptr;
  if (cert)
    g_object_unref(cert);
  soup_server_add_handler(app.server, nullptr, on_http, nullptr, nullptr);
  setup_access(app.server);
  soup_server_add_websocket_handler(app.server, "/ws", nullptr, nullptr, on_websocket, nullptr,
                                    nullptr);
  GInetAddress *inet = g_inet_address_new_from_string(app.opt.address.c_str());
  if (!inet) {
    std::fprintf(stderr, "costream-webrtc: --address %s is not an IP address\n",
                 app.opt.address.c_str());
    return 2;
  }
  GSocketAddress *addr = g_inet_socket_address_new(inet, app.opt.port);
  g_object_unref(inet);
  GError *err = nullptr;
  const auto listen_options =
      static_cast<SoupServerListenOptions>(https ? SOUP_SERVER_LISTEN_HTTPS : 0);
  if (!soup_server_listen(app.server, addr, listen_options, &err)) {
    std::fprintf(stderr, "costream-webrtc: cannot listen on %s:%u: %s\n", app.opt.address.c_str(),
                 app.opt.port, err->message);
    return 1;
  }
  g_object_unref(addr);

  if (gst_element_set_state(app.pipeline, GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE) {
    std::fprintf(stderr, "costream-webrtc: the pipeline does not start\n");
    return 1;
  }
  std::string streams;
  for (auto &st : app.streams)
    streams +=
        (streams.empty() ? "" : "; ") + st->name + " (" +
        (st->kind == Stream::Kind::Camera ? "RTSP camera"
         : st->kind == Stream::Kind::Rtmp ? "RTMP on port " + std::to_string(app.opt.rtmp_port)
                                          : "test sources") +
        ", back channel: " + st->back_channel + ")";
  say("costream-webrtc: open http%s://%s:%u/ (streams: %s)", https ? "s" : "",
      app.opt.address == "0.0.0.0" ? "<this host>" : app.opt.address.c_str(), app.opt.port,
      streams.c_str());
  g_unix_signal_add(SIGINT, stop, nullptr);
  g_unix_signal_add(SIGTERM, stop, nullptr);
  if (app.opt.seconds)
    g_timeout_add_seconds(app.opt.seconds, stop, nullptr);
  g_main_loop_run(app.loop);

  soup_server_disconnect(app.server);
  forget_sockets();
  gst_element_set_state(app.pipeline, GST_STATE_NULL);
  free_viewers();
  free_streams();
  webhooks_free(app.webhooks);
  app.webhooks = nullptr;
  gst_bus_remove_watch(bus);
  gst_object_unref(bus);
  gst_object_unref(app.pipeline);
  g_object_unref(app.server);
  free_access();
  g_main_loop_unref(app.loop);
  say("stopped%s", app.status ? " with an error" : "");
  return app.status;
}
