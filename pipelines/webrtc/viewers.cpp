/* costream-webrtc: the viewers
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * One webrtcbin per browser, fed from its stream's tees through leaky queues; its talk-back is
 * decoded into its own pad of the stream's backchannelmixer. Signalling is plain text over the
 * WebSocket (see costream-webrtc.cpp). Viewers are created and destroyed in the main thread;
 * streaming threads find them by id under App::lock.
 */
#include "server.h"

#include <gst/sdp/sdp.h>
#include <gst/webrtc/webrtc.h>

namespace cw {

namespace {

/* No profile-level-id: the stream's own (test encoder, publisher or camera) is accepted, and
 * browsers read its absence as constrained baseline while their decoders take any profile. */
const char *const kVideoCaps = "application/x-rtp,media=video,encoding-name=H264,payload=96,"
                               "clock-rate=90000,packetization-mode=(string)1";
const char *const kAudioCaps = "application/x-rtp,media=audio,encoding-name=OPUS,payload=97,"
                               "clock-rate=48000,encoding-params=(string)2";

} // namespace

Viewer *find_viewer(guint id) {
  auto it = app.viewers.find(id);
  return it == app.viewers.end() ? nullptr : it->second;
}

void send_text(Viewer *v, const std::string &text) {
  if (v->ws && soup_websocket_connection_get_state(v->ws) == SOUP_WEBSOCKET_STATE_OPEN)
    soup_websocket_connection_send_text(v->ws, text.c_str());
}

void broadcast(Stream *stream, const std::string &text) {
  for (auto &kv : app.viewers)
    if (kv.second->stream == stream)
      send_text(kv.second, text);
}

namespace {

guint viewer_id_of(GstElement *webrtc) {
  return GPOINTER_TO_UINT(g_object_get_data(G_OBJECT(webrtc), "costream-viewer"));
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
  if (v && !v->may_talk && !v->leaving)
    say("viewer %u may not talk: its audio is dropped", id);
  if (!v || v->leaving || v->talk || mline != 1 || !v->stream->mixer || !v->may_talk) {
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
      gst_element_class_get_pad_template(GST_ELEMENT_GET_CLASS(v->stream->mixer), "sink_%u");
  v->mixer_pad = gst_element_request_pad(v->stream->mixer, templ, name, nullptr);
  g_free(name);
  GstPad *in = gst_element_get_static_pad(v->talk, "sink");
  GstPad *out = gst_element_get_static_pad(v->talk, "src");
  const bool linked = v->mixer_pad && gst_pad_link(out, v->mixer_pad) == GST_PAD_LINK_OK;
  gst_element_sync_state_with_parent(v->talk);
  v->talk_in.attach(pad);
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
GstPad *add_branch(Viewer *v, GstElement *tee, GstElement **queue, Counter *counter,
                   const char *caps_str, GstWebRTCRTPTransceiverDirection direction) {
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
  counter->attach(qsrc);
  gst_pad_link(qsrc, sink);
  gst_object_unref(qsrc);
  gst_object_unref(sink);
  GstPad *teepad = gst_element_request_pad_simple(tee, "src_%u");
  GstPad *qsink = gst_element_get_static_pad(*queue, "sink");
  gst_pad_link(teepad, qsink);
  gst_object_unref(qsink);
  return teepad;
}

} // namespace

Viewer *add_viewer(SoupWebsocketConnection *ws, Stream *stream, const std::string &user_agent,
                   const std::string &user, bool may_talk) {
  auto *v = new Viewer;
  v->id = app.next_id++;
  v->stream = stream;
  v->user_agent = user_agent;
  v->user = user;
  v->may_talk = may_talk;
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
  v->vtee = add_branch(v, stream->vtee, &v->vqueue, &v->video_out, kVideoCaps,
                       GST_WEBRTC_RTP_TRANSCEIVER_DIRECTION_SENDONLY);
  /* a viewer who may not talk is offered the audio to receive only */
  v->atee = add_branch(v, stream->atee, &v->aqueue, &v->audio_out, kAudioCaps,
                       may_talk ? GST_WEBRTC_RTP_TRANSCEIVER_DIRECTION_SENDRECV
                                : GST_WEBRTC_RTP_TRANSCEIVER_DIRECTION_SENDONLY);
  send_text(v, "hello\n" + std::to_string(v->id) + "\n" + (may_talk ? "talk" : "watch"));
  make_offer(v);
  say("viewer %u joined stream %s (%zu watching)%s", v->id, stream->name.c_str(),
      app.viewers.size(), may_talk ? "" : "; it may watch, not talk");
  event("viewer.joined", stream,
        "\"viewer\": " + std::to_string(v->id) + ", \"user_agent\": " + json_string(user_agent));
  return v;
}

namespace {

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
  gst_element_release_request_pad(v->stream->vtee, v->vtee);
  gst_element_release_request_pad(v->stream->atee, v->atee);
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
    gst_element_release_request_pad(v->stream->mixer, mixer_pad);
    gst_object_unref(mixer_pad);
  }
  if (v->ws)
    g_object_unref(v->ws);
  Stream *stream = v->stream;
  delete v;
  say("viewer %u left (%zu watching)", id, app.viewers.size());
  broadcast(stream, "left\n" + std::to_string(id));
  auto talker = stream->talkers.find(id);
  if (talker != stream->talkers.end()) {
    if (talker->second)
      event("talker.stopped", stream, "\"viewer\": " + std::to_string(id) + ", \"level\": -127");
    stream->talkers.erase(talker);
  }
  event("viewer.left", stream, "\"viewer\": " + std::to_string(id));
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

} // namespace

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

namespace {

/* A signalling message that is not one: dropped, said (the first few times). */
void dropped(Viewer *v, const char *what) {
  if (++v->malformed <= 5)
    say("viewer %u sent %s: dropped%s", v->id, what,
        v->malformed == 5 ? " (further ones are dropped without a word)" : "");
}

/* ---- signalling ----------------------------------------------------------------------------- */

void on_ws_message(SoupWebsocketConnection *, SoupWebsocketDataType type, GBytes *message,
                   gpointer data) {
  Viewer *v = find_viewer(GPOINTER_TO_UINT(data));
  if (!v || v->leaving)
    return;
  if (type != SOUP_WEBSOCKET_DATA_TEXT) {
    dropped(v, "a binary message");
    return;
  }
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
    gchar *end = nullptr;
    const std::string index = body.substr(0, nl2);
    const guint64 mline = g_ascii_strtoull(index.c_str(), &end, 10);
    const std::string cand = nl2 == std::string::npos ? "" : body.substr(nl2 + 1);
    if (index.empty() || !end || *end || mline >= 2 || cand.empty() || cand.size() > 1024 ||
        cand.find('\n') != std::string::npos) {
      dropped(v, "an ICE candidate that is not one");
      return;
    }
    g_signal_emit_by_name(v->webrtc, "add-ice-candidate", static_cast<guint>(mline), cand.c_str());
  } else if (kind == "stats") {
    /* one line of the page's getStats() summary */
    say("viewer %u stats %s", v->id, body.substr(0, body.find('\n')).substr(0, 400).c_str());
  } else {
    dropped(v, "a message of an unknown type");
  }
}

void on_ws_closed(SoupWebsocketConnection *, gpointer data) {
  if (Viewer *v = find_viewer(GPOINTER_TO_UINT(data)))
    remove_viewer(v);
}

} // namespace

namespace {

/* A viewer whose handshake passed; it becomes a Viewer once --auth-url (if any) agreed. */
struct Join {
  SoupWebsocketConnection *ws; /* ref */
  Stream *stream;
  std::string user, user_agent;
  bool may_talk;
  ~Join() { g_object_unref(ws); }
};

void admit(std::unique_ptr<Join> j) {
  if (app.stopping || soup_websocket_connection_get_state(j->ws) != SOUP_WEBSOCKET_STATE_OPEN)
    return; /* it went away while the service was asked */
  if (app.viewers.size() >= app.opt.max_viewers) {
    say("a viewer was turned away: %u are watching (--max-viewers)", app.opt.max_viewers);
    soup_websocket_connection_close(j->ws, 1013 /* try again later (RFC 6455 registry) */, "full");
    return;
  }
  Viewer *v = add_viewer(j->ws, j->stream, j->user_agent, j->user, j->may_talk);
  if (!v) {
    say("cannot make a webrtcbin (install gstreamer1.0-plugins-bad and gstreamer1.0-nice)");
    soup_websocket_connection_close(j->ws, SOUP_WEBSOCKET_CLOSE_SERVER_ERROR, nullptr);
    return;
  }
  g_signal_connect(j->ws, "message", G_CALLBACK(on_ws_message), GUINT_TO_POINTER(v->id));
  g_signal_connect(j->ws, "closed", G_CALLBACK(on_ws_closed), GUINT_TO_POINTER(v->id));
}

} // namespace

void on_websocket(SoupServer *, SoupServerMessage *msg, const char *, SoupWebsocketConnection *ws,
                  gpointer) {
  if (app.stopping)
    return;
  /* checked before the handshake (gate.cpp: origin, joins, login, permissions) */
  auto *stream = static_cast<Stream *>(g_object_get_data(G_OBJECT(msg), "cw-stream"));
  const int talk = GPOINTER_TO_INT(g_object_get_data(G_OBJECT(msg), "cw-talk"));
  const char *user = static_cast<const char *>(g_object_get_data(G_OBJECT(msg), "cw-user"));
  if (!stream || !talk || !user) {
    soup_websocket_connection_close(ws, SOUP_WEBSOCKET_CLOSE_POLICY_VIOLATION, "not checked");
    return;
  }
  /* signalling messages are small: an SDP is a few kB */
  soup_websocket_connection_set_max_incoming_payload_size(ws, 64 * 1024);
  SoupMessageHeaders *h = soup_server_message_get_request_headers(msg);
  const char *ua = soup_message_headers_get_one(h, "User-Agent");
  auto j = std::unique_ptr<Join>(new Join{static_cast<SoupWebsocketConnection *>(g_object_ref(ws)),
                                          stream, user, ua ? std::string(ua).substr(0, 256) : "",
                                          talk == 1});
  if (app.opt.auth_url.empty()) {
    admit(std::move(j));
    return;
  }
  /* the operator's service decides: watch, then (if the login allows it) talk */
  const char *origin = soup_message_headers_get_one(h, "Origin");
  const char *remote = soup_server_message_get_remote_host(msg);
  AuthQuery q{stream->name, user, remote ? remote : "", origin ? origin : "",
              query_param(msg, "token")};
  Join *pending = j.release();
  ask_auth_service("watch", q, [pending, q](bool allowed, const std::string &why) {
    std::unique_ptr<Join> j(pending);
    if (!allowed) {
      say("a viewer was refused: %s", why.c_str());
      if (soup_websocket_connection_get_state(j->ws) == SOUP_WEBSOCKET_STATE_OPEN)
        soup_websocket_connection_close(j->ws, 4403, "forbidden");
      return;
    }
    if (!j->may_talk) {
      admit(std::move(j));
      return;
    }
    Join *again = j.release();
    ask_auth_service("talk", q, [again](bool talk_allowed, const std::string &talk_why) {
      std::unique_ptr<Join> j(again);
      if (!talk_allowed) {
        say("a viewer may watch, not talk: %s", talk_why.c_str());
        j->may_talk = false;
      }
      admit(std::move(j));
    });
  });
}

void forget_sockets() {
  for (auto &kv : app.viewers)
    if (kv.second->ws)
      g_signal_handlers_disconnect_matched(kv.second->ws, G_SIGNAL_MATCH_FUNC, 0, 0, nullptr,
                                           reinterpret_cast<gpointer>(on_ws_closed), nullptr);
}

void free_viewers() {
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
}

} // namespace cw
