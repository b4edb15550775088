/* costream tests
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Who may watch and talk on the browser talk-back server (issue 17): logins from a users file
 * (crypt hashes made by `openssl passwd -6`), signed kiosk tokens, the WebSocket's Origin and
 * Host, joins per minute, garbage signalling, and a watch-only viewer in headless Chromium whose
 * tone never reaches the back channel while a talking viewer's does. Raw HTTP and WebSocket
 * handshakes from the test itself; the server in a network namespace of its own when root.
 */
#include "testsig.h"
#include "webrtc_harness.h"

#include <signal.h>

#include <catch2/catch.hpp>
#include <gio/gio.h>

#include <algorithm>

using namespace testgst;

namespace {

/* Sends `request` to 127.0.0.1:port and returns the response head (up to the blank line) and,
 * when the server closes first, what came with it; the connection is kept in `*keep` (a
 * WebSocket) if given. */
std::string exchange(guint16 port, const std::string &request, GSocketConnection **keep = nullptr) {
  GSocketClient *client = g_socket_client_new();
  g_socket_client_set_timeout(client, 5);
  GSocketConnection *conn =
      g_socket_client_connect_to_host(client, "127.0.0.1", port, nullptr, nullptr);
  g_object_unref(client);
  std::string response;
  if (!conn)
    return response;
  GOutputStream *out = g_io_stream_get_output_stream(G_IO_STREAM(conn));
  GInputStream *in = g_io_stream_get_input_stream(G_IO_STREAM(conn));
  if (g_output_stream_write_all(out, request.data(), request.size(), nullptr, nullptr, nullptr)) {
    char c;
    while (response.find("\r\n\r\n") == std::string::npos &&
           g_input_stream_read(in, &c, 1, nullptr, nullptr) == 1)
      response += c;
  }
  if (keep)
    *keep = conn;
  else
    g_object_unref(conn);
  return response;
}

int status_of(const std::string &response) {
  return response.size() > 12 ? std::atoi(response.c_str() + 9) : 0;
}

std::string basic(const std::string &user, const std::string &password) {
  const std::string up = user + ":" + password;
  gchar *b = g_base64_encode(reinterpret_cast<const guchar *>(up.data()), up.size());
  std::string h = "Authorization: Basic " + std::string(b) + "\r\n";
  g_free(b);
  return h;
}

std::string get(const std::string &target, const std::string &headers = "") {
  return "GET " + target + " HTTP/1.1\r\nHost: 127.0.0.1:18084\r\nConnection: close\r\n" + headers +
         "\r\n";
}

std::string ws_request(const std::string &target, const std::string &headers,
                       const std::string &host = "127.0.0.1:18084") {
  return "GET " + target + " HTTP/1.1\r\nHost: " + host +
         "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n" +
         headers + "\r\n";
}

/* One client WebSocket frame (masked, as a client must): opcode 1 text, 2 binary. */
std::string ws_frame(int opcode, const std::string &payload) {
  std::string f;
  f += static_cast<char>(0x80 | opcode);
  const size_t n = payload.size();
  if (n < 126) {
    f += static_cast<char>(0x80 | n);
  } else if (n < 65536) {
    f += static_cast<char>(0x80 | 126);
    f += static_cast<char>(n >> 8);
    f += static_cast<char>(n & 0xff);
  } else {
    f += static_cast<char>(0x80 | 127);
    for (int i = 7; i >= 0; i--)
      f += static_cast<char>((static_cast<uint64_t>(n) >> (8 * i)) & 0xff);
  }
  const char mask[4] = {0x12, 0x34, 0x56, 0x78};
  f.append(mask, 4);
  for (size_t i = 0; i < n; i++)
    f += static_cast<char>(payload[i] ^ mask[i % 4]);
  return f;
}

/* `openssl passwd -6` of `password`. */
std::string crypt_hash(const std::string &password) {
  std::string out;
  REQUIRE(run_command({"openssl", "passwd", "-6", "-salt", "c0stream", password}, &out) == 0);
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r'))
    out.pop_back();
  REQUIRE(out.rfind("$6$", 0) == 0);
  return out;
}

std::string token_for(const std::vector<std::string> &access, const std::string &user,
                      const std::string &valid_for = "3600") {
  std::vector<std::string> args = {COSTREAM_WEBRTC_SERVER};
  args.insert(args.end(), access.begin(), access.end());
  for (const std::string &a :
       {std::string("--make-token"), user, std::string("--token-valid-for"), valid_for})
    args.push_back(a);
  std::string out;
  REQUIRE(run_command(args, &out) == 0);
  while (!out.empty() && out.back() == '\n')
    out.pop_back();
  REQUIRE(out.find('.') != std::string::npos);
  return out;
}

} // namespace

TEST_CASE("costream-webrtc access: logins, tokens, Origin, joins per minute, garbage signalling, "
          "a watch-only viewer",
          "[webrtc][browser][auth]") {
  enter_private_network();
  const std::string dir = test_tmpdir() + "/webrtc-auth";
  g_mkdir_with_parents(dir.c_str(), 0755);
  const std::string users = dir + "/users", secret = dir + "/secret";
  REQUIRE(g_file_set_contents(users.c_str(),
                              ("# name:hash:permissions\nalice:" + crypt_hash("alice-Pw1") +
                               ":talk=*\nguest:" + crypt_hash("guest-Pw2") + ":watch=test\n")
                                  .c_str(),
                              -1, nullptr));
  REQUIRE(g_file_set_contents(secret.c_str(), "0123456789abcdef-not-a-real-secret", -1, nullptr));
  const std::vector<std::string> access = {"--users", users, "--token-secret", secret};
  const std::string alice_token = token_for(access, "alice"),
                    guest_token = token_for(access, "guest");
  const std::string expired = token_for(access, "alice", "0");

  /* any address but loopback needs logins or --no-auth */
  {
    std::string out;
    CHECK(run_command({COSTREAM_WEBRTC_SERVER, "--address", "0.0.0.0", "--port", "18085"}, &out) !=
          0);
  }

  const std::string server_log = dir + "/server.log";
  std::vector<std::string> args = {
      "--port", "18084",     "--record", dir + "/backchannel.wav", "--max-joins-per-minute",
      "12",     "--seconds", "150"};
  args.insert(args.end(), access.begin(), access.end());
  auto server = start_server(args, server_log);

  /* logins: the page needs one, its script not; wrong passwords and tokens are refused */
  CHECK(status_of(exchange(18084, get("/"))) == 401);
  CHECK(status_of(exchange(18084, get("/", basic("alice", "wrong")))) == 401);
  CHECK(status_of(exchange(18084, get("/", basic("mallory", "alice-Pw1")))) == 401);
  CHECK(status_of(exchange(18084, get("/", basic("alice", "alice-Pw1")))) == 200);
  CHECK(status_of(exchange(18084, get("/app.js"))) == 200);
  CHECK(status_of(exchange(18084, get("/?token=" + guest_token))) == 200);
  CHECK(status_of(exchange(18084, get("/?token=" + expired))) == 401);
  std::string forged = guest_token;
  forged[forged.size() - 1] = forged.back() == '0' ? '1' : '0';
  CHECK(status_of(exchange(18084, get("/?token=" + forged))) == 401);
  CHECK(status_of(exchange(18084, get("/api/streams?token=" + guest_token))) == 200);

  /* the WebSocket: Origin and Host, login, permissions (each handshake is a join) */
  const std::string self = "Origin: http://127.0.0.1:18084\r\n";
  const std::string ws_alice = "/ws?stream=test&token=" + alice_token;
  CHECK(status_of(exchange(18084, ws_request(ws_alice, "Origin: http://evil.example\r\n"))) == 403);
  CHECK(status_of(exchange(18084, ws_request(ws_alice, "Origin: http://evil.example:18084\r\n",
                                             "evil.example:18084"))) == 403); /* DNS rebinding */
  CHECK(status_of(exchange(18084, ws_request("/ws?stream=test", self))) == 401);
  CHECK(status_of(exchange(18084, ws_request("/ws?stream=nothere&token=" + alice_token, self))) ==
        404);

  /* a viewer that sends garbage: dropped messages, an oversized one closes it; the server goes
   * on */
  {
    GSocketConnection *conn = nullptr;
    const std::string head = exchange(18084, ws_request(ws_alice, self), &conn);
    REQUIRE(status_of(head) == 101);
    GOutputStream *out = g_io_stream_get_output_stream(G_IO_STREAM(conn));
    for (const std::string &f :
         {ws_frame(1, "garbage\nxx"), ws_frame(1, "ice\nabc\n"), ws_frame(1, "ice\n7\ncandidate"),
          ws_frame(2, std::string("\x00\xff\x10", 3)), ws_frame(1, ""), ws_frame(1, "stats"),
          ws_frame(1, "answer\nnot sdp at all"), ws_frame(1, std::string(70000, 'x'))})
      g_output_stream_write_all(out, f.data(), f.size(), nullptr, nullptr, nullptr);
    g_object_unref(conn);
  }
  REQUIRE(
      wait_until([&] { return read_text(server_log).find("dropped") != std::string::npos; }, 10));
  CHECK(status_of(exchange(18084, get("/api/streams", basic("alice", "alice-Pw1")))) == 200);

  /* the browsers: alice talks (440 Hz file), guest may only watch and tries a 660 Hz tone */
  const std::string mic = make_mic(dir + "/mic-440.wav");
  const std::string base = "http://127.0.0.1:18084/?stream=test&talk=1";
  Browser browser(dir, mic, base + "&processing=0&token=" + alice_token);
  browser.open_tab(base + "&tone=660&token=" + guest_token);
  std::map<int, ViewerStats> viewers;
  int talker = -1, watcher = -1;
  const bool ok = wait_until(
      [&] {
        viewers = parse_server_log(read_text(server_log));
        talker = watcher = -1;
        for (auto &kv : viewers)
          if (receives(kv.second))
            (kv.second.samples.back().tone == 660 ? watcher : talker) = kv.first;
        return talker >= 0 && watcher >= 0 && viewers[talker].heard;
      },
      90);
  if (ok)
    g_usleep(5 * G_USEC_PER_SEC); /* both "talking" */

  /* a flood of joins from one address: refused past the limit, the server goes on */
  int refused = 0, accepted = 0;
  for (int i = 0; i < 14; i++) {
    const int st = status_of(exchange(18084, ws_request(ws_alice, self)));
    refused += st == 429;
    accepted += st == 101;
  }
  const bool still_serving =
      status_of(exchange(18084, get("/api/streams", basic("alice", "alice-Pw1")))) == 200;

  const int server_status = server->stop(SIGINT, 15);
  browser.child->stop(SIGTERM, 10);
  const std::string log = read_text(server_log);
  INFO("server log (tail):\n" << log.substr(log.size() > 4000 ? log.size() - 4000 : 0));
  REQUIRE(ok);
  CHECK(server_status == 0);
  INFO("flood: " << accepted << " accepted, " << refused << " refused");
  CHECK(refused >= 1);
  CHECK(accepted + refused == 14);
  CHECK(still_serving);
  CHECK(log.find("viewer " + std::to_string(watcher) + " joined stream test (") !=
        std::string::npos);
  CHECK(log.find("it may watch, not talk") != std::string::npos);
  CHECK(log.find("viewer " + std::to_string(talker) + " talks back") != std::string::npos);
  CHECK(log.find("viewer " + std::to_string(watcher) + " talks back") == std::string::npos);
  CHECK(viewers[watcher].samples.back().sent == 0); /* its browser was not let to send */
  /* secrets nowhere in the output */
  for (const std::string &secret_text : {std::string("alice-Pw1"), std::string("guest-Pw2"),
                                         alice_token, guest_token, std::string("$6$c0stream")})
    CHECK(log.find(secret_text) == std::string::npos);

  /* the back channel: alice's 440 Hz, never the watcher's 660 Hz */
  const auto x = wav_samples(dir + "/backchannel.wav");
  REQUIRE(x.size() >= 4 * 48000);
  /* in 100 ms windows: 440 Hz heard, 660 Hz never at a talker's level (a talking tab's tone is
   * 0.1-0.25 here; codec transients at the talker's start reach a few thousandths at 660 Hz) */
  int with440 = 0;
  std::vector<double> a660;
  for (size_t s = 0; s + 4800 <= x.size(); s += 4800) {
    with440 += testsig::amplitude_near(&x[s], 4800, 440, 48000) > 0.02;
    a660.push_back(testsig::amplitude_at(&x[s], 4800, 660, 48000));
  }
  std::sort(a660.begin(), a660.end());
  INFO("100 ms windows: " << with440 << " with 440 Hz; 660 Hz median " << a660[a660.size() / 2]
                          << ", max " << a660.back());
  CHECK(with440 >= 30);
  CHECK(a660[a660.size() / 2] < 0.002);
  CHECK(a660.back() < 0.02);
}

namespace {

/* Waits (bounded) for the server to close a WebSocket: true when it did. */
bool closed_by_server(GSocketConnection *conn, int seconds) {
  GSocket *s = g_socket_connection_get_socket(conn);
  g_socket_set_timeout(s, seconds);
  GInputStream *in = g_io_stream_get_input_stream(G_IO_STREAM(conn));
  char buf[256];
  for (;;) {
    GError *err = nullptr;
    const gssize n = g_input_stream_read(in, buf, sizeof buf, nullptr, &err);
    if (n == 0)
      return true;
    if (n < 0) {
      const bool timed_out = g_error_matches(err, G_IO_ERROR, G_IO_ERROR_TIMED_OUT);
      g_error_free(err);
      return !timed_out;
    }
    if (static_cast<unsigned char>(buf[0]) == 0x88) /* a close frame */
      return true;
  }
}

} // namespace

TEST_CASE("costream-webrtc --auth-url: the operator's service decides watch, talk and publish",
          "[webrtc][auth]") {
  enter_private_network();
  const std::string dir = test_tmpdir() + "/webrtc-auth-url";
  g_mkdir_with_parents(dir.c_str(), 0755);
  HookReceiver service;
  service.decide = [](const std::string &b) {
    auto has = [&](const char *s) { return b.find(s) != std::string::npos; };
    if (has("\"action\": \"publish\""))
      return has("\"stream_key\": \"good-K3y\"") ? 200 : 403;
    if (has("\"action\": \"watch\""))
      return has("\"token\": \"talker\"") || has("\"token\": \"watcher\"") ? 200 : 403;
    if (has("\"action\": \"talk\""))
      return has("\"token\": \"talker\"") ? 204 : 403;
    return 500;
  };
  const std::string server_log = dir + "/server.log";
  auto server =
      start_server({"--address", "127.0.0.1", "--port", "18086", "--rtmp-port", "19453",
                    "--auth-url", "http://127.0.0.1:" + std::to_string(service.port) + "/decide",
                    "--record", dir + "/backchannel.wav", "--seconds", "60"},
                   server_log);
  const std::string self = "Origin: http://127.0.0.1:18086\r\n";
  auto join = [&](const std::string &token) {
    GSocketConnection *conn = nullptr;
    const std::string head = exchange(
        18086, ws_request("/ws?stream=live&token=" + token, self, "127.0.0.1:18086"), &conn);
    REQUIRE(status_of(head) == 101);
    return conn;
  };
  /* refused to watch: the socket is closed */
  GSocketConnection *nobody = join("nobody");
  CHECK(closed_by_server(nobody, 10));
  g_object_unref(nobody);
  /* allowed to watch, not to talk; allowed both */
  GSocketConnection *watcher = join("watcher");
  REQUIRE(wait_until(
      [&] { return read_text(server_log).find("it may watch, not talk") != std::string::npos; },
      10));
  GSocketConnection *talker = join("talker");
  REQUIRE(wait_until(
      [&] {
        const std::string log = read_text(server_log);
        return log.find("joined stream live (2 watching)\n") != std::string::npos;
      },
      10));
  /* publishes: the same service */
  const std::string flv = dir + "/publish.flv";
  make_av_flv(flv, "sine=frequency=440:sample_rate=48000");
  auto publish = [&](const std::string &key) {
    return run_command({"timeout", "60", "ffmpeg", "-hide_banner", "-loglevel", "error", "-i", flv,
                        "-c", "copy", "-f", "flv", "rtmp://127.0.0.1:19453/live/" + key});
  };
  CHECK(publish("bad-K3y") != 0);
  CHECK(publish("good-K3y") == 0);
  CHECK(wait_until(
      [&] {
        return read_text(server_log).find("rtmp-publish-start (stream live)") != std::string::npos;
      },
      10));
  /* the service gone: joins are refused */
  const auto asked = service.events();
  service.decide = [](const std::string &) { return 503; };
  GSocketConnection *late = join("talker");
  CHECK(closed_by_server(late, 10));
  g_object_unref(late);
  g_object_unref(watcher);
  g_object_unref(talker);

  const int server_status = server->stop(SIGINT, 15);
  const std::string log = read_text(server_log);
  INFO("server log:\n" << log);
  CHECK(server_status == 0);
  CHECK(log.find("a viewer was refused: --auth-url answered 403") != std::string::npos);
  CHECK(log.find("a viewer was refused: --auth-url answered 503") != std::string::npos);
  CHECK(log.find("a viewer may watch, not talk: --auth-url answered 403") != std::string::npos);
  CHECK(log.find("K3y") == std::string::npos);
  std::string all;
  for (auto &b : asked)
    all += b + "\n";
  INFO("asked:\n" << all);
  size_t watch = 0, talk = 0, publishes = 0;
  for (auto &b : asked) {
    watch += b.find("\"action\": \"watch\"") != std::string::npos &&
             b.find("\"stream\": \"live\"") != std::string::npos &&
             b.find("\"remote_address\": \"127.0.0.1\"") != std::string::npos &&
             b.find("\"origin\": \"http://127.0.0.1:18086\"") != std::string::npos;
    talk += b.find("\"action\": \"talk\"") != std::string::npos;
    publishes += b.find("\"action\": \"publish\"") != std::string::npos;
  }
  CHECK(watch == 3);     /* nobody, watcher, talker */
  CHECK(talk == 2);      /* watcher (refused), talker */
  CHECK(publishes == 2); /* bad, good */
}
