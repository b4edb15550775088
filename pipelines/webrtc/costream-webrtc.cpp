/* costream-webrtc: browser talk-back server
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Serves a page (pipelines/webrtc/www) and a WebSocket for signalling. Every browser viewer gets
 * its own webrtcbin fed from the producer's stream (built-in test sources, or an RTMP publish
 * through rtmpbridge) and sends its microphone back; all viewers' talk-back is mixed by
 * backchannelmixer into the producer's back channel (a WAV file or RTP/Opus to a UDP address).
 * Who is talking (backchannelmixer-talker messages) is sent to every page.
 *
 * Signalling is plain text over the WebSocket, one message per frame, first line the type:
 *   server -> page: "hello\n<id>", "offer\n<sdp>", "ice\n<mline>\n<candidate>",
 *                   "talker\n<id> <0|1> <level dBov>", "left\n<id>"
 *   page -> server: "answer\n<sdp>", "ice\n<mline>\n<candidate>", "stats\n<key=value ...>"
 * The server prints one line per event on stdout ("viewer 2 joined", "viewer 2 stats ...",
 * "talker 2 active -23.1 dBov", ...), which is what the browser test reads.
 */
#include <gst/gst.h>
#include <gst/sdp/sdp.h>
#include <gst/webrtc/webrtc.h>
#include <glib-unix.h>
#include <libsoup/soup.h>

#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace {

/* No profile-level-id: the stream's own (test encoder or publisher) is accepted, and browsers
 * read its absence as constrained baseline while their decoders take any profile. */
const char *const kVideoCaps = "application/x-rtp,media=video,encoding-name=H264,payload=96,"
                               "clock-rate=90000,packetization-mode=(string)1";
const char *const kAudioCaps = "application/x-rtp,media=audio,encoding-name=OPUS,payload=97,"
                               "clock-rate=48000,encoding-params=(string)2";

struct Options {
  std::string address = "127.0.0.1";
  guint port = 8080;
  std::string www = COSTREAM_WEBRTC_WWW;
  guint rtmp_port = 0; /* 0: built-in test sources */
  std::string stream_key;
  std::string record = "out/webrtc/backchannel.wav";
  std::string rtp_out; /* host:port: the back channel as RTP/Opus instead of a file */
  std::string stun;
  std::string tls_cert,
      tls_key; /* HTTPS: browsers allow the microphone only there (or on localhost) */
  std::vector<std::string> ice_addresses; /* empty: every interface (libnice's choice) */
  guint seconds = 0;
  guint max_viewers = 16;
};

struct App;

/* One browser. Created and destroyed in the main thread; GStreamer threads find it by id. */
struct Viewer {
  guint id = 0;
  SoupWebsocketConnection *ws = nullptr;
  GstElement *webrtc = nullptr;
  GstElement *vqueue = nullptr, *aqueue = nullptr;
  GstPad *vtee = nullptr, *atee = nullptr;
  /* set by the streaming thread that gets the talk-back stream (under App::lock) */
  GstElement *talk = nullptr;
  GstPad *mixer_pad = nullptr;
  bool leaving = false;
  int unlinked = 0;
};

struct App {
  Options opt;
  GstElement *pipeline = nullptr, *vtee = nullptr, *atee = nullptr, *mixer = nullptr;
  GMainLoop *loop = nullptr;
  SoupServer *server = nullptr;
  std::mutex lock; /* viewers' talk/mixer_pad/leaving, between the main and streaming threads */
  std::map<guint, Viewer *> viewers;
  guint next_id = 1;
  bool stopping = false;
  int status = 0;
};

App app;

void say(const char *fmt, ...) G_GNUC_PRINTF(1, 2);
void say(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  gchar *s = g_strdup_vprintf(fmt, ap);
  va_end(ap);
  std::printf("%s\n", s);
  std::fflush(stdout);
  g_free(s);
}

void send_text(Viewer *v, const std::string &text) {
  if (v->ws && soup_websocket_connection_get_state(v->ws) == SOUP_WEBSOCKET_STATE_OPEN)
    soup_websocket_connection_send_text(v->ws, text.c_str());
}

void broadcast(const std::string &text) {
  for (auto &kv : app.viewers)
    send_text(kv.second, text);
}

guint viewer_id_of(GstElement *webrtc) {
  return GPOINTER_TO_UINT(g_object_get_data(G_OBJECT(webrtc), "costream-viewer"));
}

Viewer *find_viewer(guint id) {
  auto it = app.viewers.find(id);
  return it == app.viewers.end() ? nullptr : it->second;
}

/* ---- work handed from GStreamer threads to the main thread, by viewer id ---------------- */

struct Post {
  enum Kind { kOffer, kCandidate } kind;
  guint id;
  guint mline = 0;
  std::string text;
  GstWebRTCSessionDescription *desc = nullptr;
  ~Post() {
    if (desc)
      gst_webrtc_session_description_free(desc);
  }
};

gboolean on_post(gpointer data) {
  auto *p = static_cast<Post *>(data);
  Viewer *v = find_viewer(p->id);
  if (!v || v->leaving)
    return G_SOURCE_REMOVE;
  if (p->kind == Post::kOffer) {
    g_signal_emit_by_name(v->webrtc, "set-local-description", p->desc, nullptr);
    gchar *sdp = gst_sdp_message_as_text(p->desc->sdp);
    send_text(v, std::string("offer\n") + sdp);
    g_free(sdp);
  } else {
    send_text(v, "ice\n" + std::to_string(p->mline) + "\n" + p->text);
  }
  return G_SOURCE_REMOVE;
}

void post(Post *p) {
  g_main_context_invoke_full(nullptr, G_PRIORITY_DEFAULT, on_post, p,
                             [](gpointer d) { delete static_cast<Post *>(d); });
}

void on_offer_created(GstPromise *promise, gpointer data) {
  const guint id = GPOINTER_TO_UINT(data);
  const GstStructure *reply = gst_promise_wait(promise) == GST_PROMISE_RESULT_REPLIED
                                  ? gst_promise_get_reply(promise)
                                  : nullptr;
  GstWebRTCSessionDescription *offer = nullptr;
  if (reply)
    gst_structure_get(reply, "offer", GST_TYPE_WEBRTC_SESSION_DESCRIPTION, &offer, nullptr);
  gst_promise_unref(promise);
  if (!offer) {
    say("viewer %u: webrtcbin made no offer", id);
    return;
  }
  auto *p = new Post{Post::kOffer, id};
  p->desc = offer;
  post(p);
}

/* One offer per viewer, made once both its m-lines exist (webrtcbin's on-negotiation-needed
 * would fire per pad, and two offers in flight race each other). */
void make_offer(Viewer *v) {
  g_signal_emit_by_name(
      v->webrtc, "create-offer", nullptr,
      gst_promise_new_with_change_func(on_offer_created, GUINT_TO_POINTER(v->id), nullptr));
}

void on_ice_candidate(GstElement *webrtc, guint mline, gchar *candidate, gpointer) {
  if (!candidate || !*candidate)
    return;
  auto *p = new Post{Post::kCandidate, viewer_id_of(webrtc)};
  p->mline = mline;
  p->text = candidate;
  post(p);
}

/* A viewer's talk-back stream arrived: decode it into its own backchannelmixer pad. Runs in a
 * streaming thread. */
void on_incoming_stream(GstElement *webrtc, GstPad *pad, gpointer) {
  if (GST_PAD_DIRECTION(pad) != GST_PAD_SRC)
    return;
  const guint id = viewer_id_of(webrtc);
  /* The pad comes with the answer, before any data (and caps): what it carries is known from
   * its transceiver. The talk-back is on the audio m-line, 1. */
  GstWebRTCRTPTransceiver *trans = nullptr;
  guint mline = G_MAXUINT;
  g_object_get(pad, "transceiver", &trans, nullptr);
  if (trans) {
    g_object_get(trans, "mlineindex", &mline, nullptr);
    gst_object_unref(trans);
  }

  std::lock_guard<std::mutex> lk(app.lock);
  Viewer *v = find_viewer(id);
  if (!v || v->leaving || v->talk || mline != 1) {
    /* nothing to mix: let it drain */
    GstElement *sink = gst_element_factory_make("fakesink", nullptr);
    g_object_set(sink, "async", FALSE, "sync", FALSE, nullptr);
    gst_bin_add(GST_BIN(app.pipeline), sink);
    gst_element_sync_state_with_parent(sink);
    GstPad *sp = gst_element_get_static_pad(sink, "sink");
    gst_pad_link(pad, sp);
    gst_object_unref(sp);
    return;
  }
  GError *err = nullptr;
  v->talk = gst_parse_bin_from_description(
      "rtpopusdepay ! opusdec plc=true ! audioconvert ! audioresample ! queue", TRUE, &err);
  if (!v->talk) {
    say("viewer %u: cannot build its talk-back branch: %s", id, err ? err->message : "?");
    g_clear_error(&err);
    return;
  }
  gst_object_ref_sink(v->talk);
  gst_bin_add(GST_BIN(app.pipeline), v->talk);
  gchar *name = g_strdup_printf("sink_%u", id);
  GstPadTemplate *templ =
      gst_element_class_get_pad_template(GST_ELEMENT_GET_CLASS(app.mixer), "sink_%u");
  v->mixer_pad = gst_element_request_pad(app.mixer, templ, name, nullptr);
  g_free(name);
  GstPad *in = gst_element_get_static_pad(v->talk, "sink");
  GstPad *out = gst_element_get_static_pad(v->talk, "src");
  const bool linked = v->mixer_pad && gst_pad_link(out, v->mixer_pad) == GST_PAD_LINK_OK;
  gst_element_sync_state_with_parent(v->talk);
  const bool in_linked = gst_pad_link(pad, in) == GST_PAD_LINK_OK;
  gst_object_unref(in);
  gst_object_unref(out);
  if (linked && in_linked) {
    say("viewer %u talks back on backchannelmixer pad %s", id, GST_PAD_NAME(v->mixer_pad));
    /* with GST_DEBUG_DUMP_DOT_DIR set: the pipeline as it is now, for docs/pipelines.md */
    g_idle_add(
        [](gpointer data) -> gboolean {
          gchar *name = g_strdup_printf("costream-webrtc-viewer-%u", GPOINTER_TO_UINT(data));
          GST_DEBUG_BIN_TO_DOT_FILE(GST_BIN(app.pipeline), GST_DEBUG_GRAPH_SHOW_ALL, name);
          g_free(name);
          return G_SOURCE_REMOVE;
        },
        GUINT_TO_POINTER(id));
  } else
    say("viewer %u: cannot link its talk-back stream", id);
}

/* ---- viewers joining and leaving ---------------------------------------------------------- */

/* A branch tee → queue → webrtcbin's sink pad (m-line `mline`) with these codec preferences. */
GstPad *add_branch(Viewer *v, GstElement *tee, GstElement **queue, const char *caps_str,
                   GstWebRTCRTPTransceiverDirection direction) {
  *queue = gst_element_factory_make("queue", nullptr);
  /* a slow browser loses its own packets, not everyone's */
  g_object_set(*queue, "leaky", 2 /* downstream */, "max-size-buffers", 0, "max-size-bytes", 0,
               "max-size-time", static_cast<guint64>(500 * GST_MSECOND), nullptr);
  gst_bin_add(GST_BIN(app.pipeline), GST_ELEMENT(gst_object_ref(*queue)));
  GstPad *sink = gst_element_request_pad_simple(v->webrtc, "sink_%u");
  GstWebRTCRTPTransceiver *trans = nullptr;
  g_object_get(sink, "transceiver", &trans, nullptr);
  GstCaps *caps = gst_caps_from_string(caps_str);
  g_object_set(trans, "direction", direction, "codec-preferences", caps, nullptr);
  gst_caps_unref(caps);
  gst_object_unref(trans);
  /* Running before it is linked: a tee that pushed into a pad not yet running would get
   * FLUSHING back and pass it to the producer's source, which would stop for every viewer. */
  gst_element_sync_state_with_parent(*queue);
  GstPad *qsrc = gst_element_get_static_pad(*queue, "src");
  gst_pad_link(qsrc, sink);
  gst_object_unref(qsrc);
  gst_object_unref(sink);
  GstPad *teepad = gst_element_request_pad_simple(tee, "src_%u");
  GstPad *qsink = gst_element_get_static_pad(*queue, "sink");
  gst_pad_link(teepad, qsink);
  gst_object_unref(qsink);
  return teepad;
}

Viewer *add_viewer(SoupWebsocketConnection *ws) {
  auto *v = new Viewer;
  v->id = app.next_id++;
  v->ws = static_cast<SoupWebsocketConnection *>(g_object_ref(ws));
  gchar *name = g_strdup_printf("viewer-%u", v->id);
  v->webrtc = gst_element_factory_make("webrtcbin", name);
  g_free(name);
  if (!v->webrtc) {
    g_object_unref(ws);
    delete v;
    return nullptr;
  }
  gst_object_ref_sink(v->webrtc);
  g_object_set_data(G_OBJECT(v->webrtc), "costream-viewer", GUINT_TO_POINTER(v->id));
  g_object_set(v->webrtc, "bundle-policy", GST_WEBRTC_BUNDLE_POLICY_MAX_BUNDLE, nullptr);
  if (!app.opt.stun.empty())
    g_object_set(v->webrtc, "stun-server", app.opt.stun.c_str(), nullptr);
  if (!app.opt.ice_addresses.empty()) {
    GstWebRTCICE *ice = nullptr;
    g_object_get(v->webrtc, "ice-agent", &ice, nullptr);
    for (auto &a : app.opt.ice_addresses) {
      gboolean added = FALSE;
      g_signal_emit_by_name(ice, "add-local-ip-address", a.c_str(), &added);
      if (!added)
        say("viewer %u: ICE cannot use address %s", v->id, a.c_str());
    }
    gst_object_unref(ice);
  }
  g_signal_connect(v->webrtc, "on-ice-candidate", G_CALLBACK(on_ice_candidate), nullptr);
  g_signal_connect(v->webrtc, "pad-added", G_CALLBACK(on_incoming_stream), nullptr);
  {
    std::lock_guard<std::mutex> lk(app.lock);
    app.viewers[v->id] = v;
  }
  gst_bin_add(GST_BIN(app.pipeline), v->webrtc);
  gst_element_sync_state_with_parent(v->webrtc); /* (see add_branch) */
  /* m-line 0: the producer's video, to the browser; m-line 1: its audio, and the talk-back */
  v->vtee = add_branch(v, app.vtee, &v->vqueue, kVideoCaps,
                       GST_WEBRTC_RTP_TRANSCEIVER_DIRECTION_SENDONLY);
  v->atee = add_branch(v, app.atee, &v->aqueue, kAudioCaps,
                       GST_WEBRTC_RTP_TRANSCEIVER_DIRECTION_SENDRECV);
  send_text(v, "hello\n" + std::to_string(v->id));
  make_offer(v);
  say("viewer %u joined (%zu watching)", v->id, app.viewers.size());
  return v;
}

void remove_element(GstElement **e) {
  if (!*e)
    return;
  gst_element_set_state(*e, GST_STATE_NULL);
  gst_bin_remove(GST_BIN(app.pipeline), *e);
  gst_object_unref(*e);
  *e = nullptr;
}

/* Both tee branches are unlinked: nothing streams into the viewer any more. */
gboolean finish_removal(gpointer data) {
  const guint id = GPOINTER_TO_UINT(data);
  Viewer *v = find_viewer(id);
  if (!v || ++v->unlinked < 2)
    return G_SOURCE_REMOVE;
  gst_element_release_request_pad(app.vtee, v->vtee);
  gst_element_release_request_pad(app.atee, v->atee);
  gst_object_unref(v->vtee);
  gst_object_unref(v->atee);
  /* webrtcbin first: once it is down no streaming thread adds a talk-back branch */
  remove_element(&v->webrtc);
  remove_element(&v->vqueue);
  remove_element(&v->aqueue);
  GstElement *talk;
  GstPad *mixer_pad;
  {
    std::lock_guard<std::mutex> lk(app.lock);
    talk = v->talk;
    mixer_pad = v->mixer_pad;
    app.viewers.erase(id);
  }
  remove_element(&talk);
  if (mixer_pad) {
    gst_element_release_request_pad(app.mixer, mixer_pad);
    gst_object_unref(mixer_pad);
  }
  if (v->ws)
    g_object_unref(v->ws);
  delete v;
  say("viewer %u left (%zu watching)", id, app.viewers.size());
  broadcast("left\n" + std::to_string(id));
  return G_SOURCE_REMOVE;
}

GstPadProbeReturn unlink_when_idle(GstPad *teepad, GstPadProbeInfo *, gpointer data) {
  GstPad *peer = gst_pad_get_peer(teepad);
  if (peer) {
    gst_pad_unlink(teepad, peer);
    gst_object_unref(peer);
  }
  /* Always from the main loop, later: when the pad was idle this runs inside
   * gst_pad_add_probe(), which must not see its pad released under it. */
  g_idle_add(finish_removal, data);
  return GST_PAD_PROBE_REMOVE;
}

void remove_viewer(Viewer *v) {
  {
    std::lock_guard<std::mutex> lk(app.lock);
    if (v->leaving)
      return;
    v->leaving = true;
  }
  if (v->ws) {
    if (soup_websocket_connection_get_state(v->ws) == SOUP_WEBSOCKET_STATE_OPEN)
      soup_websocket_connection_close(v->ws, SOUP_WEBSOCKET_CLOSE_GOING_AWAY, nullptr);
  }
  /* unlinked between two buffers, in whichever thread gets there first */
  gst_pad_add_probe(v->vtee, GST_PAD_PROBE_TYPE_IDLE, unlink_when_idle, GUINT_TO_POINTER(v->id),
                    nullptr);
  gst_pad_add_probe(v->atee, GST_PAD_PROBE_TYPE_IDLE, unlink_when_idle, GUINT_TO_POINTER(v->id),
                    nullptr);
}

/* ---- signalling ----------------------------------------------------------------------------- */

void on_ws_message(SoupWebsocketConnection *, SoupWebsocketDataType type, GBytes *message,
                   gpointer data) {
  Viewer *v = find_viewer(GPOINTER_TO_UINT(data));
  if (!v || v->leaving || type != SOUP_WEBSOCKET_DATA_TEXT)
    return;
  gsize size = 0;
  const char *bytes = static_cast<const char *>(g_bytes_get_data(message, &size));
  const std::string text(bytes, size);
  const size_t nl = text.find('\n');
  const std::string kind = text.substr(0, nl);
  const std::string body = nl == std::string::npos ? "" : text.substr(nl + 1);
  if (kind == "answer") {
    GstSDPMessage *sdp = nullptr;
    gst_sdp_message_new_from_text(body.c_str(), &sdp);
    if (!sdp || gst_sdp_message_medias_len(sdp) == 0) {
      say("viewer %u sent an answer that is not SDP; closing", v->id);
      if (sdp)
        gst_sdp_message_free(sdp);
      remove_viewer(v);
      return;
    }
    GstWebRTCSessionDescription *answer =
        gst_webrtc_session_description_new(GST_WEBRTC_SDP_TYPE_ANSWER, sdp);
    g_signal_emit_by_name(v->webrtc, "set-remote-description", answer, nullptr);
    gst_webrtc_session_description_free(answer);
  } else if (kind == "ice") {
    const size_t nl2 = body.find('\n');
    if (nl2 == std::string::npos)
      return;
    const guint mline =
        static_cast<guint>(g_ascii_strtoull(body.substr(0, nl2).c_str(), nullptr, 10));
    const std::string cand = body.substr(nl2 + 1);
    if (mline < 2 && !cand.empty())
      g_signal_emit_by_name(v->webrtc, "add-ice-candidate", mline, cand.c_str());
  } else if (kind == "stats") {
    /* one line of the page's getStats() summary */
    say("viewer %u stats %s", v->id, body.substr(0, body.find('\n')).substr(0, 400).c_str());
  } else {
    say("viewer %u sent an unknown message type '%s'", v->id, kind.substr(0, 32).c_str());
  }
}

void on_ws_closed(SoupWebsocketConnection *, gpointer data) {
  if (Viewer *v = find_viewer(GPOINTER_TO_UINT(data)))
    remove_viewer(v);
}

void on_websocket(SoupServer *, SoupServerMessage *, const char *, SoupWebsocketConnection *ws,
                  gpointer) {
  if (app.stopping)
    return;
  if (app.viewers.size() >= app.opt.max_viewers) {
    say("a viewer was turned away: %u are watching (--max-viewers)", app.opt.max_viewers);
    soup_websocket_connection_close(ws, 1013 /* try again later (RFC 6455 registry) */, "full");
    return;
  }
  Viewer *v = add_viewer(ws);
  if (!v) {
    say("cannot make a webrtcbin (install gstreamer1.0-plugins-bad and gstreamer1.0-nice)");
    soup_websocket_connection_close(ws, SOUP_WEBSOCKET_CLOSE_SERVER_ERROR, nullptr);
    return;
  }
  g_signal_connect(ws, "message", G_CALLBACK(on_ws_message), GUINT_TO_POINTER(v->id));
  g_signal_connect(ws, "closed", G_CALLBACK(on_ws_closed), GUINT_TO_POINTER(v->id));
}

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

/* ---- the producer and the back channel ------------------------------------------------------ */

std::string h264_encoder() {
  if (GstElementFactory *f = gst_element_factory_find("x264enc")) {
    gst_object_unref(f);
    return "x264enc tune=zerolatency speed-preset=veryfast bitrate=1000 key-int-max=30 bframes=0";
  }
  if (GstElementFactory *f = gst_element_factory_find("openh264enc")) {
    gst_object_unref(f);
    return "openh264enc bitrate=1000000 complexity=low gop-size=30 rate-control=bitrate";
  }
  return "";
}

/* rtmpbridge's pads, payloaded into the tees as they appear */
void on_bridge_pad(GstElement *, GstPad *pad, gpointer) {
  const bool audio = g_str_equal(GST_PAD_NAME(pad), "audio");
  GstElement *bin = gst_parse_bin_from_description(
      audio ? "queue ! rtpopuspay pt=97"
            : "queue ! rtph264pay pt=96 config-interval=-1 aggregate-mode=zero-latency",
      TRUE, nullptr);
  gst_bin_add(GST_BIN(app.pipeline), bin);
  GstPad *in = gst_element_get_static_pad(bin, "sink");
  GstPad *out = gst_element_get_static_pad(bin, "src");
  GstPad *tee = gst_element_get_static_pad(audio ? app.atee : app.vtee, "sink");
  gst_pad_link(out, tee);
  gst_element_sync_state_with_parent(bin);
  gst_pad_link(pad, in);
  gst_object_unref(in);
  gst_object_unref(out);
  gst_object_unref(tee);
  say("publisher's %s is on the air", audio ? "audio" : "video");
}

bool build_pipeline(std::string *error) {
  std::string producer;
  if (app.opt.rtmp_port) {
    producer = "rtmpbridge name=bridge port=" + std::to_string(app.opt.rtmp_port);
    if (!app.opt.stream_key.empty())
      producer += " stream-key=\"" + app.opt.stream_key + "\"";
    producer += " tee name=vt allow-not-linked=true tee name=at allow-not-linked=true ";
  } else {
    const std::string enc = h264_encoder();
    if (enc.empty()) {
      *error = "no H.264 encoder (install gstreamer1.0-plugins-bad or -ugly)";
      return false;
    }
    producer = "videotestsrc is-live=true pattern=ball ! "
               "video/x-raw,width=640,height=360,framerate=30/1 ! videoconvert ! queue ! " +
               enc +
               " ! h264parse ! rtph264pay pt=96 config-interval=-1 aggregate-mode=zero-latency ! "
               "tee name=vt allow-not-linked=true "
               "audiotestsrc is-live=true wave=sine freq=880 volume=0.1 ! audioconvert ! "
               "audioresample ! opusenc ! rtpopuspay pt=97 ! tee name=at allow-not-linked=true ";
  }
  std::string back = "backchannelmixer name=bc force-live=true ! audioconvert ! audioresample ! ";
  if (!app.opt.rtp_out.empty()) {
    const size_t colon = app.opt.rtp_out.rfind(':');
    if (colon == std::string::npos) {
      *error = "--rtp-out wants HOST:PORT";
      return false;
    }
    back +=
        "opusenc ! rtpopuspay pt=97 ! udpsink name=rec host=" + app.opt.rtp_out.substr(0, colon) +
        " port=" + app.opt.rtp_out.substr(colon + 1) + " sync=false async=false";
  } else {
    gchar *dir = g_path_get_dirname(app.opt.record.c_str());
    g_mkdir_with_parents(dir, 0755);
    g_free(dir);
    back += "audio/x-raw,format=S16LE,rate=48000,channels=1 ! wavenc ! filesink name=rec "
            "async=false location=\"" +
            app.opt.record + "\"";
  }
  GError *err = nullptr;
  app.pipeline = gst_parse_launch((producer + back).c_str(), &err);
  if (!app.pipeline) {
    *error = err ? err->message : "cannot build the pipeline";
    g_clear_error(&err);
    return false;
  }
  app.vtee = gst_bin_get_by_name(GST_BIN(app.pipeline), "vt");
  app.atee = gst_bin_get_by_name(GST_BIN(app.pipeline), "at");
  app.mixer = gst_bin_get_by_name(GST_BIN(app.pipeline), "bc");
  if (GstElement *bridge = gst_bin_get_by_name(GST_BIN(app.pipeline), "bridge")) {
    g_signal_connect(bridge, "pad-added", G_CALLBACK(on_bridge_pad), nullptr);
    gst_object_unref(bridge);
  }
  return true;
}

/* The back channel's last buffer is written: stop. */
GstPadProbeReturn on_record_eos(GstPad *, GstPadProbeInfo *info, gpointer) {
  if (GST_EVENT_TYPE(GST_PAD_PROBE_INFO_EVENT(info)) == GST_EVENT_EOS)
    g_main_context_invoke(
        nullptr,
        [](gpointer) -> gboolean {
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
  /* ends the back channel: the mixer finishes its output with EOS, the recording is closed */
  gst_element_send_event(app.mixer, gst_event_new_eos());
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
  case GST_MESSAGE_ELEMENT: {
    const GstStructure *s = gst_message_get_structure(msg);
    if (gst_structure_has_name(s, "backchannelmixer-talker")) {
      gboolean active = FALSE;
      double level = -127;
      gst_structure_get_boolean(s, "active", &active);
      gst_structure_get_double(s, "level", &level);
      const gchar *pad = gst_structure_get_string(s, "pad-name");
      const guint id = pad && g_str_has_prefix(pad, "sink_")
                           ? static_cast<guint>(g_ascii_strtoull(pad + 5, nullptr, 10))
                           : 0;
      say("talker %u %s %.1f dBov", id, active ? "active" : "quiet", level);
      gchar *line = g_strdup_printf("talker\n%u %d %.1f", id, active ? 1 : 0, level);
      broadcast(line);
      g_free(line);
    } else if (gst_structure_has_name(s, "rtmp-publish-start") ||
               gst_structure_has_name(s, "rtmp-publish-stop")) {
      say("%s", gst_structure_get_name(s));
    }
    break;
  }
  default:
    break;
  }
  return TRUE;
}

void usage(FILE *f) {
  std::fprintf(
      f, "usage: costream-webrtc [options]\n"
         "Serves a talk-back page: every browser watches the producer's stream over WebRTC and\n"
         "talks back with its microphone; all talk-back is mixed by backchannelmixer.\n"
         "  --address ADDR     HTTP address to listen on (default 127.0.0.1; 0.0.0.0 for others)\n"
         "  --port N           HTTP port (default 8080)\n"
         "  --rtmp-port N      the producer is an RTMP publish to rtmp://host:N/live/KEY through\n"
         "                     rtmpbridge (default: built-in test sources)\n"
         "  --stream-key KEY   the key the publisher must use (default: any)\n"
         "  --record FILE      write the back channel to this WAV file\n"
         "                     (default out/webrtc/backchannel.wav)\n"
         "  --rtp-out HOST:PORT  send the back channel as RTP/Opus (payload 97) instead\n"
         "  --stun URI         STUN server for viewers behind NAT (stun://host:port)\n"
         "  --ice-address ADDR offer media only on this local address (repeatable; default: all\n"
         "                     interfaces but loopback, which libnice leaves out)\n"
         "  --tls-cert FILE --tls-key FILE  serve HTTPS (PEM files): browsers on other machines\n"
         "                     give the microphone only to https:// pages\n"
         "  --www DIR          the page's directory (default: this source tree's)\n"
         "  --max-viewers N    viewers at once (default 16); more are turned away\n"
         "  --seconds N        stop after N seconds (default: run until interrupted)\n"
         "  --help\n");
}

bool parse_args(int argc, char **argv) {
  Options &o = app.opt;
  for (int i = 1; i < argc; i++) {
    const std::string a = argv[i];
    auto value = [&](void) -> const char * { return i + 1 < argc ? argv[++i] : nullptr; };
    auto number = [&](guint *out) {
      const char *v = value();
      gchar *end = nullptr;
      const guint64 n = v ? g_ascii_strtoull(v, &end, 10) : 0;
      if (!v || !*v || *end || n > 65535) {
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
    else if (a == "--record")
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
  if (!build_pipeline(&error)) {
    std::fprintf(stderr, "costream-webrtc: %s\n", error.c_str());
    return 1;
  }
  app.loop = g_main_loop_new(nullptr, FALSE);
  GstBus *bus = gst_element_get_bus(app.pipeline);
  gst_bus_add_watch(bus, on_bus, nullptr);
  GstElement *rec = gst_bin_get_by_name(GST_BIN(app.pipeline), "rec");
  GstPad *recpad = gst_element_get_static_pad(rec, "sink");
  gst_pad_add_probe(recpad, GST_PAD_PROBE_TYPE_EVENT_DOWNSTREAM, on_record_eos, nullptr, nullptr);
  gst_object_unref(recpad);
  gst_object_unref(rec);

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
  say("costream-webrtc: open http%s://%s:%u/ (producer: %s; back channel: %s)", https ? "s" : "",
      app.opt.address == "0.0.0.0" ? "<this host>" : app.opt.address.c_str(), app.opt.port,
      app.opt.rtmp_port ? ("RTMP on port " + std::to_string(app.opt.rtmp_port)).c_str()
                        : "test sources",
      app.opt.rtp_out.empty() ? app.opt.record.c_str() : app.opt.rtp_out.c_str());
  g_unix_signal_add(SIGINT, stop, nullptr);
  g_unix_signal_add(SIGTERM, stop, nullptr);
  if (app.opt.seconds)
    g_timeout_add_seconds(app.opt.seconds, stop, nullptr);
  g_main_loop_run(app.loop);

  soup_server_disconnect(app.server);
  for (auto &kv : app.viewers)
    if (kv.second->ws)
      g_signal_handlers_disconnect_matched(kv.second->ws, G_SIGNAL_MATCH_FUNC, 0, 0, nullptr,
                                           reinterpret_cast<gpointer>(on_ws_closed), nullptr);
  gst_element_set_state(app.pipeline, GST_STATE_NULL);
  for (auto &kv : app.viewers) {
    Viewer *v = kv.second;
    for (GstElement *e : {v->webrtc, v->vqueue, v->aqueue, v->talk})
      if (e)
        gst_object_unref(e);
    for (GstPad *p : {v->vtee, v->atee, v->mixer_pad})
      if (p)
        gst_object_unref(p);
    if (v->ws)
      g_object_unref(v->ws);
    delete v;
  }
  app.viewers.clear();
  gst_bus_remove_watch(bus);
  gst_object_unref(bus);
  gst_object_unref(app.vtee);
  gst_object_unref(app.atee);
  gst_object_unref(app.mixer);
  gst_object_unref(app.pipeline);
  g_object_unref(app.server);
  g_main_loop_unref(app.loop);
  say("stopped%s", app.status ? " with an error" : "");
  return app.status;
}
