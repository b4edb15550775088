/* costream-webrtc: who may watch and talk
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * With --users FILE every request needs a login, except the page's script (nothing secret in
 * it): HTTP Basic (over TLS when not on loopback), or `?token=` in the address, a signed kiosk
 * token (--token-secret, made with --make-token). The WebSocket (/ws) is checked before its
 * handshake: the Origin must be the page's own (or --allowed-origin), on a loopback server the
 * Host a loopback name, the address under --max-joins-per-minute, and the user allowed to watch
 * the stream; whether it may talk is decided here too. Refusals are HTTP 401/403/429 with a line
 * on stdout that names no password or token.
 */
#include "server.h"

#include <cstdio>
#include <memory>

namespace cw {

namespace {

SoupAuthDomain *domain = nullptr;
SoupSession *auth_session = nullptr; /* --auth-url */

std::string token_user(SoupServerMessage *msg) {
  const std::string token = query_param(msg, "token");
  if (token.empty() || app.token_secret.empty())
    return "";
  const std::string user = check_token(app.token_secret, token, g_get_real_time() / G_USEC_PER_SEC);
  return app.users.known(user) ? user : "";
}

gboolean check_password(SoupAuthDomain *, SoupServerMessage *, const char *user,
                        const char *password, gpointer) {
  const bool ok = app.users.check_password(user, password);
  if (!ok)
    say("a login was refused (wrong user or password)");
  return ok;
}

/* Requests that need no login: the page's script, and those with a valid token. */
gboolean needs_login(SoupAuthDomain *, SoupServerMessage *msg, gpointer) {
  const char *path = g_uri_get_path(soup_server_message_get_uri(msg));
  if (g_str_equal(path, "/app.js"))
    return FALSE;
  return token_user(msg).empty();
}

void refuse(SoupServerMessage *msg, guint status, const std::string &why) {
  say("a viewer was refused (%u): %s", status, why.c_str());
  soup_server_message_set_status(msg, status, nullptr);
  soup_server_message_set_response(msg, "text/plain", SOUP_MEMORY_COPY, why.c_str(), why.size());
}

/* /ws before its handshake (a status set here stops it). */
void check_ws(SoupServer *, SoupServerMessage *msg, const char *, GHashTable *, gpointer) {
  SoupMessageHeaders *h = soup_server_message_get_request_headers(msg);
  const char *origin = soup_message_headers_get_one(h, "Origin");
  const char *host = soup_message_headers_get_one(h, "Host");
  std::string why;
  if (!origin_allowed(origin ? origin : "", host ? host : "", app.https, app.loopback_only,
                      app.opt.allowed_origins, &why)) {
    refuse(msg, SOUP_STATUS_FORBIDDEN, why);
    return;
  }
  const char *remote = soup_server_message_get_remote_host(msg);
  if (!app.joins->admit(remote ? remote : "?", g_get_monotonic_time())) {
    refuse(msg, 429 /* Too Many Requests */,
           std::string("joins from ") + (remote ? remote : "?") + " over " +
               std::to_string(app.opt.max_joins_per_minute) + " per minute");
    return;
  }
  const std::string user = request_user(msg);
  const std::string wanted = query_param(msg, "stream");
  Stream *stream = find_stream(wanted);
  if (!stream) {
    refuse(msg, SOUP_STATUS_NOT_FOUND, "no such stream");
    return;
  }
  const Permissions p = user_permissions(user, stream->name);
  if (!p.watch) {
    refuse(msg, SOUP_STATUS_FORBIDDEN, "user " + user + " may not watch " + stream->name);
    return;
  }
  /* for on_websocket, after the handshake */
  g_object_set_data_full(G_OBJECT(msg), "cw-user", g_strdup(user.c_str()), g_free);
  g_object_set_data(G_OBJECT(msg), "cw-stream", stream);
  g_object_set_data(G_OBJECT(msg), "cw-talk", GINT_TO_POINTER(p.talk ? 1 : 2));
}

struct Ask {
  std::function<void(bool, const std::string &)> done;
};

void on_auth_answer(GObject *source, GAsyncResult *res, gpointer data) {
  std::unique_ptr<Ask> ask(static_cast<Ask *>(data));
  GError *err = nullptr;
  GBytes *reply = soup_session_send_and_read_finish(SOUP_SESSION(source), res, &err);
  SoupMessage *msg = soup_session_get_async_result_message(SOUP_SESSION(source), res);
  const guint status = msg ? soup_message_get_status(msg) : 0;
  if (reply)
    g_bytes_unref(reply);
  if (err) {
    const std::string why = std::string("--auth-url did not answer: ") + err->message;
    g_error_free(err);
    ask->done(false, why);
    return;
  }
  if (status >= 200 && status < 300)
    ask->done(true, "");
  else
    ask->done(false, "--auth-url answered " + std::to_string(status));
}

} // namespace

std::string query_param(SoupServerMessage *msg, const char *name) {
  std::string value;
  if (const char *query = g_uri_get_query(soup_server_message_get_uri(msg))) {
    if (GHashTable *params = g_uri_parse_params(query, -1, "&", G_URI_PARAMS_NONE, nullptr)) {
      if (const char *v = static_cast<const char *>(g_hash_table_lookup(params, name)))
        value = v;
      g_hash_table_unref(params);
    }
  }
  return value;
}

bool load_access(std::string *error) {
  Options &o = app.opt;
  if (!o.users_file.empty()) {
    gchar *text = nullptr;
    GError *err = nullptr;
    if (!g_file_get_contents(o.users_file.c_str(), &text, nullptr, &err)) {
      *error = std::string("--users: ") + err->message;
      g_error_free(err);
      return false;
    }
    const bool ok = app.users.parse(text, error);
    g_free(text);
    if (!ok) {
      *error = "--users " + o.users_file + ": " + *error;
      return false;
    }
    if (app.users.size() == 0) {
      *error = "--users " + o.users_file + ": no user in it";
      return false;
    }
    app.auth = true;
  }
  if (!o.token_secret_file.empty()) {
    gchar *text = nullptr;
    gsize len = 0;
    if (!g_file_get_contents(o.token_secret_file.c_str(), &text, &len, nullptr) || len < 16) {
      g_free(text);
      *error = "--token-secret: a file of at least 16 bytes (e.g. head -c 32 /dev/urandom > F)";
      return false;
    }
    app.token_secret.assign(text, len);
    g_free(text);
    if (!app.auth) {
      *error = "--token-secret needs --users (a token carries a user's permissions)";
      return false;
    }
  }
  if (!o.make_token.empty()) {
    if (!app.auth || app.token_secret.empty() || !app.users.known(o.make_token)) {
      *error = "--make-token USER needs --users (with USER in it) and --token-secret";
      return false;
    }
    const gint64 expiry = g_get_real_time() / G_USEC_PER_SEC + o.token_valid_for;
    std::printf("%s\n", make_token(app.token_secret, o.make_token, expiry).c_str());
    std::exit(0);
  }
  GInetAddress *a = g_inet_address_new_from_string(o.address.c_str());
  app.loopback_only = a && g_inet_address_get_is_loopback(a);
  if (a)
    g_object_unref(a);
  if (!o.auth_url.empty()) {
    if ((!g_str_has_prefix(o.auth_url.c_str(), "http://") &&
         !g_str_has_prefix(o.auth_url.c_str(), "https://")) ||
        !g_uri_is_valid(o.auth_url.c_str(), G_URI_FLAGS_NONE, nullptr)) {
      *error = "--auth-url wants an http:// or https:// URL";
      return false;
    }
    if (o.rtmp_port && !g_str_has_prefix(o.auth_url.c_str(), "http://")) {
      *error = "--auth-url: RTMP publishers are authorized by rtmpbridge, which speaks http:// "
               "only";
      return false;
    }
    auth_session = soup_session_new_with_options("timeout", 3, nullptr);
  }
  if (!app.loopback_only && !app.auth && o.auth_url.empty() && !o.no_auth) {
    *error = "--address " + o.address +
             " lets anyone who reaches it watch every stream and talk into every back channel: "
             "give --users FILE (with --tls-cert/--tls-key, since browsers send passwords), "
             "--auth-url URL, or "
             "--no-auth to accept that (docs/security.md)";
    return false;
  }
  if (!app.loopback_only && app.auth && o.tls_cert.empty())
    say("warning: --users on %s without --tls-cert: passwords cross the network in clear",
        o.address.c_str());
  app.https = !o.tls_cert.empty();
  app.joins = new JoinLimiter(o.max_joins_per_minute);
  return true;
}

void setup_access(SoupServer *server) {
  soup_server_add_handler(server, "/ws", check_ws, nullptr, nullptr);
  if (!app.auth)
    return;
  domain = soup_auth_domain_basic_new("realm", "costream", nullptr);
  soup_auth_domain_add_path(domain, "/");
  soup_auth_domain_set_filter(domain, needs_login, nullptr, nullptr);
  soup_auth_domain_basic_set_auth_callback(domain, check_password, nullptr, nullptr);
  soup_server_add_auth_domain(server, domain);
}

std::string request_user(SoupServerMessage *msg) {
  if (!app.auth)
    return "";
  std::string user = token_user(msg);
  if (user.empty() && domain) {
    if (char *u = soup_auth_domain_accepts(domain, msg)) {
      user = u;
      g_free(u);
    }
  }
  return user;
}

Permissions user_permissions(const std::string &user, const std::string &stream) {
  if (!app.auth)
    return Permissions{true, true};
  return app.users.permissions(user, stream);
}

void ask_auth_service(const char *action, const AuthQuery &q,
                      std::function<void(bool allowed, const std::string &why)> done) {
  SoupMessage *msg = soup_message_new("POST", app.opt.auth_url.c_str());
  if (!msg || !auth_session) {
    if (msg)
      g_object_unref(msg);
    done(false, "--auth-url is not usable");
    return;
  }
  const std::string body =
      std::string("{\"action\": ") + json_string(action) +
      ", \"stream\": " + json_string(q.stream) + ", \"user\": " + json_string(q.user) +
      ", \"remote_address\": " + json_string(q.remote) + ", \"origin\": " + json_string(q.origin) +
      ", \"token\": " + json_string(q.token) + "}";
  GBytes *bytes = g_bytes_new(body.data(), body.size());
  soup_message_set_request_body_from_bytes(msg, "application/json", bytes);
  g_bytes_unref(bytes);
  soup_session_send_and_read_async(auth_session, msg, G_PRIORITY_DEFAULT, nullptr, on_auth_answer,
                                   new Ask{std::move(done)});
  g_object_unref(msg);
}

void free_access() {
  if (auth_session)
    g_object_unref(auth_session);
  auth_session = nullptr;
  if (domain)
    g_object_unref(domain);
  domain = nullptr;
  delete app.joins;
  app.joins = nullptr;
}

} // namespace cw
