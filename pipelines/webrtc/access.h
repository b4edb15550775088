/* costream-webrtc: who may watch and talk
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Pure parts of the server's access control (GLib, GIO and libcrypt only, unit-tested):
 *   - the users file: one user per line, `name:crypt-hash:permissions`, permissions a comma list
 *     of `watch=STREAM` and `talk=STREAM` (`*`: every stream; talk implies watch), e.g.
 *       alice:$6$rounds=5000$salt$...:talk=*
 *       guest:$y$j9T$...:watch=door
 *     Hashes are crypt(3)'s (`openssl passwd -6`, `mkpasswd -m yescrypt`); '#' starts a comment.
 *   - signed tokens for kiosk links: base64url("user\nexpiry") "." hex HMAC-SHA256 over that
 *     payload with the server's secret; they carry the user's permissions until expiry.
 *   - the WebSocket's Origin: the page's own origin (Host), or one of the allowed origins; on a
 *     loopback address the Host must be a loopback name (DNS rebinding).
 *   - joins per address per minute.
 */
#pragma once

#include <gio/gio.h>

#include <cstdint>
#include <deque>
#include <map>
#include <string>
#include <vector>

namespace cw {

struct Permissions {
  bool watch = false, talk = false;
};

class Users {
public:
  /* Parses a users file's text; false and `error` (with the line number, never a hash) when a
   * line is malformed. */
  bool parse(const std::string &text, std::string *error);
  /* The user whose password this is; false for an unknown user or a wrong password (both take
   * a crypt(3) run, so a wrong name is not faster). */
  bool check_password(const std::string &user, const std::string &password) const;
  bool known(const std::string &user) const { return users_.count(user) > 0; }
  /* What `user` may do on `stream`. */
  Permissions permissions(const std::string &user, const std::string &stream) const;
  size_t size() const { return users_.size(); }

private:
  struct User {
    std::string hash;
    std::map<std::string, Permissions> streams; /* "*": every stream */
  };
  std::map<std::string, User> users_;
};

/* A token for `user` valid until `expiry` (Unix seconds). */
std::string make_token(const std::string &secret, const std::string &user, int64_t expiry);
/* The user of a valid, unexpired token (at `now`), else "". */
std::string check_token(const std::string &secret, const std::string &token, int64_t now);

/* Whether a WebSocket request with these headers may connect: `origin` empty (not a browser) or
 * equal to http(s)://`host` or one of `allowed`; `loopback_only`: `host` must then name a
 * loopback address (127.x, ::1, localhost) unless the origin is in `allowed`. `why` says what
 * failed. */
bool origin_allowed(const std::string &origin, const std::string &host, bool https,
                    bool loopback_only, const std::vector<std::string> &allowed, std::string *why);

/* Joins per address in a sliding minute. */
class JoinLimiter {
public:
  explicit JoinLimiter(unsigned per_minute) : per_minute_(per_minute) {}
  /* Counts a join from `address` at `now_us` (monotonic); false when over the limit (not
   * counted then). */
  bool admit(const std::string &address, int64_t now_us);

private:
  unsigned per_minute_;
  std::map<std::string, std::deque<int64_t>> joins_;
};

} // namespace cw
