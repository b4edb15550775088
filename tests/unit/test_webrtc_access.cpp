/* costream tests
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * The talk-back server's access control, its pure parts (pipelines/webrtc/access.*): the users
 * file, passwords against crypt(3) hashes, tokens, Origin/Host, joins per minute.
 */
#include "access.h"

#include <crypt.h>

#include <catch2/catch.hpp>

using namespace cw;

namespace {

std::string hash_of(const std::string &password) {
  crypt_data data = {};
  const char *h = crypt_r(password.c_str(), "$6$unit$", &data);
  REQUIRE(h != nullptr);
  return h;
}

} // namespace

TEST_CASE("Users file: permissions per stream, passwords, malformed lines", "[webrtc][access]") {
  Users u;
  std::string error;
  const std::string text = "# comment\n\nalice:" + hash_of("pw-a") +
                           ":talk=*\nguest:" + hash_of("pw-g") + ": watch=door , talk=yard\n";
  REQUIRE(u.parse(text, &error));
  CHECK(u.size() == 2);
  CHECK(u.check_password("alice", "pw-a"));
  CHECK_FALSE(u.check_password("alice", "pw-g"));
  CHECK_FALSE(u.check_password("alice", ""));
  CHECK_FALSE(u.check_password("nobody", "pw-a"));
  CHECK(u.check_password("guest", "pw-g"));
  auto p = u.permissions("alice", "door");
  CHECK((p.watch && p.talk));
  p = u.permissions("guest", "door");
  CHECK((p.watch && !p.talk));
  p = u.permissions("guest", "yard"); /* talk implies watch */
  CHECK((p.watch && p.talk));
  p = u.permissions("guest", "garage");
  CHECK((!p.watch && !p.talk));
  p = u.permissions("nobody", "door");
  CHECK((!p.watch && !p.talk));

  for (const std::string bad :
       {std::string("alice\n"), std::string("alice:$6$x:talk=*\n") /* short hash */,
        std::string("alice:plain-password:talk=*\n"), ":" + hash_of("x") + ":talk=*\n",
        "a:" + hash_of("x") + ":shout=*\n", "a:" + hash_of("x") + ":watch=\n",
        "a:" + hash_of("x") + ":watch=*\na:" + hash_of("y") + ":watch=*\n"}) {
    INFO(bad);
    Users v;
    CHECK_FALSE(v.parse(bad, &error));
    CHECK(error.find("line ") == 0);
    CHECK(error.find("$6$") == std::string::npos); /* no hash in the message */
  }
}

TEST_CASE("Tokens: signed, for one user, until they expire", "[webrtc][access]") {
  const std::string secret = "0123456789abcdef";
  const std::string t = make_token(secret, "alice", 1000);
  CHECK(check_token(secret, t, 999) == "alice");
  CHECK(check_token(secret, t, 1000).empty()); /* expired */
  CHECK(check_token("another secret..", t, 999).empty());
  std::string forged = t;
  forged[0] = forged[0] == 'a' ? 'b' : 'a';
  CHECK(check_token(secret, forged, 999).empty());
  CHECK(check_token(secret, "", 0).empty());
  CHECK(check_token(secret, "no-dot", 0).empty());
  CHECK(check_token(secret, ".", 0).empty());
  CHECK(check_token("", t, 0).empty());
  CHECK(check_token(secret, std::string(2000, 'a') + "." + "b", 0).empty());
}

TEST_CASE("Origin and Host: the page's own, allowed ones, loopback names", "[webrtc][access]") {
  std::string why;
  const std::vector<std::string> none, allowed = {"https://app.example"};
  CHECK(origin_allowed("http://127.0.0.1:8080", "127.0.0.1:8080", false, true, none, &why));
  CHECK(origin_allowed("http://localhost:8080", "localhost:8080", false, true, none, &why));
  CHECK(origin_allowed("http://[::1]:8080", "[::1]:8080", false, true, none, &why));
  CHECK(origin_allowed("", "127.0.0.1:8080", false, true, none, &why)); /* not a browser */
  CHECK_FALSE(origin_allowed("http://evil.example", "127.0.0.1:8080", false, true, none, &why));
  CHECK(why.find("evil.example") != std::string::npos);
  /* DNS rebinding: evil.example resolving to 127.0.0.1 */
  CHECK_FALSE(
      origin_allowed("http://evil.example:8080", "evil.example:8080", false, true, none, &why));
  CHECK_FALSE(origin_allowed("http://127.0.0.1:8080", "127.0.0.1:8080", true, true, none, &why));
  CHECK(origin_allowed("https://cam.example", "cam.example", true, false, none, &why));
  CHECK(origin_allowed("https://app.example", "cam.example", true, false, allowed, &why));
  CHECK_FALSE(
      origin_allowed("https://app.example.evil", "cam.example", true, false, allowed, &why));
}

TEST_CASE("Joins per minute per address", "[webrtc][access]") {
  JoinLimiter j(3);
  const int64_t s = 1000000;
  CHECK(j.admit("a", 0));
  CHECK(j.admit("a", s));
  CHECK(j.admit("a", 2 * s));
  CHECK_FALSE(j.admit("a", 3 * s));
  CHECK(j.admit("b", 3 * s)); /* another address */
  CHECK_FALSE(j.admit("a", 59 * s));
  CHECK(j.admit("a", 60 * s)); /* the first one is a minute old */
  CHECK_FALSE(j.admit("a", 60 * s));
}
