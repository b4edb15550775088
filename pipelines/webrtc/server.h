/* costream-webrtc: browser talk-back server
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * What the server's files share. Everything here is created, changed and destroyed in the main
 * thread (the GLib main loop: HTTP, WebSocket, bus, timers), except where a field says otherwise.
 *
 *   costream-webrtc.cpp  options, the HTTP page and API handlers, the bus, start and stop
 *   streams.cpp          one Stream per producer (test sources, an RTMP publish, an RTSP camera):
 *                        its tees, its backchannelmixer and back channel; producer messages
 *   viewers.cpp          one Viewer per browser: webrtcbin, signalling, joining and leaving
 *   api.cpp              GET /api/streams (JSON) and the webhook sender
 *   gate.cpp             who may watch and talk: users, tokens, Origin, joins per minute
 *   access.cpp           the pure parts of that (users file, tokens, origins, join limiter)
 */
#pragma once

#include "access.h"

#include <gst/gst.h>
#include <libsoup/soup.h>

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace cw {

/* A camera given on the command line: `--camera [name=]rtsp://...`. The URL may carry
 * credentials: it goes to rtspcamera's `location` and nowhere else. */
struct CameraArg {
  std::string name;
  std::string url;
};

struct Options {
  std::string address = "127.0.0.1";
  guint port = 8080;
  std::string www;
  guint rtmp_port = 0; /* 0: no RTMP producer */
  std::string stream_key;
  /* --rtmp-stream NAME=KEY: a stream per key on the RTMP port (the key goes to rtmpbridge's
   * `stream-key` and nowhere else) */
  std::vector<CameraArg> rtmp_streams; /* name, key (in `url`) */
  std::vector<CameraArg> cameras;
  std::string record = "out/webrtc/backchannel.wav";
  std::string rtp_out; /* host:port: the back channel as RTP/Opus instead of a file */
  std::string stun;
  std::string tls_cert,
      tls_key; /* HTTPS: browsers allow the microphone only there (or on localhost) */
  std::vector<std::string> ice_addresses; /* empty: every interface (libnice's choice) */
  std::vector<std::string> webhooks;
  std::string users_file;        /* --users: logins and per-stream permissions */
  std::string token_secret_file; /* --token-secret: signs kiosk tokens */
  std::vector<std::string> allowed_origins;
  bool no_auth = false; /* --no-auth: anyone who reaches the port, on any address */
  std::string auth_url; /* --auth-url: the operator's service decides watch, talk, publish */
  guint max_joins_per_minute = 30;
  std::string make_token; /* --make-token USER: print a token and exit */
  guint token_valid_for = 86400;
  guint seconds = 0;
  guint max_viewers = 16;
};

/* Packets and bytes through one point of the media path, counted by a pad probe in a streaming
 * thread and read by the API in the main thread. */
struct Counter {
  std::atomic<guint64> packets{0}, bytes{0};
  /* counts every buffer (or buffer list) passing `pad` into this counter */
  void attach(GstPad *pad);
};

/* One producer and everything that serves it: the page's `?stream=NAME`. */
struct Stream {
  enum class Kind { Test, Rtmp, Camera };
  std::string name;
  Kind kind = Kind::Test;
  GstElement *producer = nullptr; /* rtspcamera or rtmpbridge (ref), else null */
  GstElement *vtee = nullptr, *atee = nullptr, *mixer = nullptr; /* refs */
  Counter video_in, audio_in;    /* RTP into the tees, what every viewer is offered */
  std::string state = "waiting"; /* waiting, streaming, lost (cameras and RTMP) */
  std::string back_channel;      /* where the talk-back goes, for the log and the API */
  std::string rtmp_key;          /* secret: for rtmpbridge's `stream-key` only ("" any) */
  std::map<guint, bool> talkers; /* viewer id -> active (backchannelmixer-talker messages) */
};

/* One browser. GStreamer threads find it by id under App::lock. */
struct Viewer {
  guint id = 0;
  Stream *stream = nullptr;
  std::string user_agent;
  std::string user;     /* "" without --users */
  bool may_talk = true; /* else its talk-back never reaches the mixer */
  guint malformed = 0;  /* signalling messages dropped */
  SoupWebsocketConnection *ws = nullptr;
  GstElement *webrtc = nullptr;
  GstElement *vqueue = nullptr, *aqueue = nullptr;
  GstPad *vtee = nullptr, *atee = nullptr;
  Counter video_out, audio_out, talk_in; /* RTP to the browser; its talk-back RTP */
  /* set by the streaming thread that gets the talk-back stream (under App::lock) */
  GstElement *talk = nullptr;
  GstPad *mixer_pad = nullptr;
  bool leaving = false;
  int unlinked = 0;
};

class Webhooks;

struct App {
  Options opt;
  GstElement *pipeline = nullptr;
  std::vector<std::unique_ptr<Stream>> streams;
  GMainLoop *loop = nullptr;
  SoupServer *server = nullptr;
  std::mutex lock; /* viewers' talk/mixer_pad/leaving, between the main and streaming threads */
  std::map<guint, Viewer *> viewers;
  guint next_id = 1;
  bool stopping = false;
  int recorders = 0; /* back channels to --record/--rtp-out not yet finished (at the end) */
  int status = 0;
  Webhooks *webhooks = nullptr;
  /* access (gate.cpp) */
  Users users;
  bool auth = false; /* --users given: every request but the page's script needs a login */
  std::string token_secret;
  JoinLimiter *joins = nullptr;
  bool loopback_only = true; /* listening on a loopback address */
  bool https = false;
};

extern App app;

/* One line on stdout (what the tests read). */
void say(const char *fmt, ...) G_GNUC_PRINTF(1, 2);

/* streams.cpp */
bool build_streams(std::string *error);
Stream *find_stream(const std::string &name); /* "" : the first */
Stream *stream_of(GstObject *element);        /* the stream whose producer or mixer this is */
/* A producer's or mixer's element message; true when it was one of theirs. */
bool stream_message(GstMessage *msg);
void free_streams();

/* viewers.cpp */
Viewer *add_viewer(SoupWebsocketConnection *ws, Stream *stream, const std::string &user_agent,
                   const std::string &user, bool may_talk);
void remove_viewer(Viewer *v);
Viewer *find_viewer(guint id);
void send_text(Viewer *v, const std::string &text);
/* a text to every viewer of `stream` */
void broadcast(Stream *stream, const std::string &text);
/* at the end: closing sockets no longer remove their viewers */
void forget_sockets();
void free_viewers();
/* the WebSocket handler: /ws?stream=NAME */
void on_websocket(SoupServer *, SoupServerMessage *msg, const char *, SoupWebsocketConnection *ws,
                  gpointer);

/* gate.cpp */
/* Reads --users and --token-secret, handles --make-token (prints and exits) and refuses an
 * address other than loopback without a way to log in (or --no-auth). False and `error`. */
bool load_access(std::string *error);
/* Installs the login (HTTP Basic, or a token in the address) and the /ws check. */
void setup_access(SoupServer *server);
/* A query parameter of the request's address ("" when absent). */
std::string query_param(SoupServerMessage *msg, const char *name);
/* The user a request logged in as ("" without --users); `stream` "" for none. */
std::string request_user(SoupServerMessage *msg);
Permissions user_permissions(const std::string &user, const std::string &stream);
/* What --auth-url is told of a viewer's join. */
struct AuthQuery {
  std::string stream, user, remote, origin, token;
};
/* Asks --auth-url whether `action` ("watch", "talk") is allowed: a JSON POST, 2xx within 3 s
 * allows; anything else refuses. `done` runs in the main loop, later. */
void ask_auth_service(const char *action, const AuthQuery &query,
                      std::function<void(bool allowed, const std::string &why)> done);
void free_access();

/* api.cpp */
/* the streams `user` may watch */
std::string streams_json(const std::string &user);
std::string json_string(const std::string &s);
/* Posts `{"event": kind, "stream": ..., "time": ..., <fields>}` to every --webhook URL; returns
 * at once (the sender runs in the main loop with bounded retries). `fields` is a JSON object's
 * members without braces ("" for none). */
void event(const char *kind, const Stream *stream, const std::string &fields = "");
Webhooks *webhooks_new(const std::vector<std::string> &urls);
void webhooks_free(Webhooks *w);

} // namespace cw
