/* costream-webrtc: who may watch and talk
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "access.h"

#include <crypt.h>

#include <algorithm>
#include <cstring>
#include <iterator>
#include <memory>

namespace cw {

namespace {

/* A hash of the right shape for users that do not exist, so that checking one costs a crypt()
 * run like a real user (sha512-crypt, 5000 rounds). */
const char *const kDummyHash =
    "$6$costreamdummy$Pk0E7lH6qVQp7wN3F1hV1f5y0q8C1kS5v0pQv7mVb2o2VJv1ZK6oQ6a8r3f0E8m0dZ9m1m8Qn4Q"
    "V7n2bq2Y7C1";

bool constant_time_equal(const std::string &a, const std::string &b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  const size_t n = std::max(a.size(), b.size());
  for (size_t i = 0; i < n; i++)
    diff |= static_cast<unsigned char>((i < a.size() ? a[i] : 0) ^ (i < b.size() ? b[i] : 0));
  return diff == 0;
}

std::string trim(const std::string &s) {
  const size_t a = s.find_first_not_of(" \t\r");
  const size_t b = s.find_last_not_of(" \t\r");
  return a == std::string::npos ? "" : s.substr(a, b - a + 1);
}

std::string hmac_hex(const std::string &secret, const std::string &payload) {
  gchar *h = g_compute_hmac_for_data(
      G_CHECKSUM_SHA256, reinterpret_cast<const guchar *>(secret.data()), secret.size(),
      reinterpret_cast<const guchar *>(payload.data()), payload.size());
  std::string out = h;
  g_free(h);
  return out;
}

std::string base64url(const std::string &in) {
  gchar *b = g_base64_encode(reinterpret_cast<const guchar *>(in.data()), in.size());
  std::string out = b;
  g_free(b);
  for (char &c : out)
    c = c == '+' ? '-' : c == '/' ? '_' : c;
  while (!out.empty() && out.back() == '=')
    out.pop_back();
  return out;
}

bool unbase64url(std::string in, std::string *out) {
  for (char &c : in) {
    if (c == '-')
      c = '+';
    else if (c == '_')
      c = '/';
    else if (!g_ascii_isalnum(c))
      return false;
  }
  while (in.size() % 4)
    in += '=';
  gsize len = 0;
  guchar *d = g_base64_decode(in.c_str(), &len);
  out->assign(reinterpret_cast<const char *>(d), len);
  g_free(d);
  return true;
}

bool loopback_host(std::string host) {
  /* strip the port: [v6]:port, v4:port, name:port */
  if (!host.empty() && host[0] == '[') {
    const size_t close = host.find(']');
    host = close == std::string::npos ? "" : host.substr(1, close - 1);
  } else if (host.find(':') != host.rfind(':')) {
    /* a bare IPv6 address (no port) */
  } else if (host.find(':') != std::string::npos) {
    host = host.substr(0, host.find(':'));
  }
  for (char &c : host)
    c = g_ascii_tolower(c);
  if (host == "localhost" || host == "::1")
    return true;
  GInetAddress *a = g_inet_address_new_from_string(host.c_str());
  if (!a)
    return false;
  const bool lo = g_inet_address_get_is_loopback(a);
  g_object_unref(a);
  return lo;
}

} // namespace

bool Users::parse(const std::string &text, std::string *error) {
  users_.clear();
  size_t lineno = 0, pos = 0;
  while (pos <= text.size()) {
    const size_t nl = text.find('\n', pos);
    std::string line = text.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
    pos = nl == std::string::npos ? text.size() + 1 : nl + 1;
    lineno++;
    line = trim(line);
    if (line.empty() || line[0] == '#')
      continue;
    const size_t c1 = line.find(':');
    const size_t c2 = c1 == std::string::npos ? std::string::npos : line.rfind(':');
    const std::string where = "line " + std::to_string(lineno);
    if (c1 == std::string::npos || c2 == c1) {
      *error = where + ": want name:hash:permissions";
      return false;
    }
    const std::string name = line.substr(0, c1);
    User u;
    u.hash = line.substr(c1 + 1, c2 - c1 - 1);
    if (name.empty() || u.hash.size() < 13 || u.hash[0] != '$') {
      *error = where + ": want name:hash:permissions with a crypt(3) hash (openssl passwd -6)";
      return false;
    }
    if (users_.count(name)) {
      *error = where + ": user " + name.substr(0, 64) + " twice";
      return false;
    }
    gchar **perms = g_strsplit(line.substr(c2 + 1).c_str(), ",", -1);
    for (gchar **p = perms; *p; p++) {
      const std::string perm = trim(*p);
      if (perm.empty())
        continue;
      const size_t eq = perm.find('=');
      const std::string what = perm.substr(0, eq);
      const std::string stream = eq == std::string::npos ? "" : trim(perm.substr(eq + 1));
      if ((what != "watch" && what != "talk") || stream.empty()) {
        g_strfreev(perms);
        *error = where + ": a permission is watch=STREAM or talk=STREAM (STREAM may be *)";
        return false;
      }
      Permissions &ps = u.streams[stream];
      ps.watch = true;
      ps.talk = ps.talk || what == "talk";
    }
    g_strfreev(perms);
    users_[name] = u;
  }
  return true;
}

bool Users::check_password(const std::string &user, const std::string &password) const {
  auto it = users_.find(user);
  const char *hash = it == users_.end() ? kDummyHash : it->second.hash.c_str();
  auto data = std::make_unique<crypt_data>();
  std::memset(data.get(), 0, sizeof(crypt_data));
  const char *out = crypt_r(password.c_str(), hash, data.get());
  const bool same = out && out[0] == '$' && constant_time_equal(out, hash);
  return it != users_.end() && same;
}

Permissions Users::permissions(const std::string &user, const std::string &stream) const {
  Permissions p;
  auto it = users_.find(user);
  if (it == users_.end())
    return p;
  for (const char *key : {stream.c_str(), "*"}) {
    auto s = it->second.streams.find(key);
    if (s != it->second.streams.end()) {
      p.watch = p.watch || s->second.watch;
      p.talk = p.talk || s->second.talk;
    }
  }
  return p;
}

std::string make_token(const std::string &secret, const std::string &user, int64_t expiry) {
  const std::string payload = base64url(user + "\n" + std::to_string(expiry));
  return payload + "." + hmac_hex(secret, payload);
}

std::string check_token(const std::string &secret, const std::string &token, int64_t now) {
  const size_t dot = token.find('.');
  if (secret.empty() || dot == std::string::npos || token.size() > 1024)
    return "";
  const std::string payload = token.substr(0, dot);
  if (!constant_time_equal(hmac_hex(secret, payload), token.substr(dot + 1)))
    return "";
  std::string text;
  if (!unbase64url(payload, &text))
    return "";
  const size_t nl = text.find('\n');
  if (nl == std::string::npos || nl == 0)
    return "";
  gchar *end = nullptr;
  const gint64 expiry = g_ascii_strtoll(text.c_str() + nl + 1, &end, 10);
  if (!end || *end || expiry <= now)
    return "";
  return text.substr(0, nl);
}

bool origin_allowed(const std::string &origin, const std::string &host, bool https,
                    bool loopback_only, const std::vector<std::string> &allowed, std::string *why) {
  for (const auto &a : allowed)
    if (!origin.empty() && origin == a)
      return true;
  if (loopback_only && !loopback_host(host)) {
    *why = "the page's host is not a loopback name on a server that listens on loopback only "
           "(DNS rebinding?)";
    return false;
  }
  if (origin.empty())
    return true; /* not a browser: nothing to hijack */
  if (origin == (https ? "https://" : "http://") + host)
    return true;
  *why = "origin " + origin.substr(0, 128) + " is not this page's";
  return false;
}

bool JoinLimiter::admit(const std::string &address, int64_t now_us) {
  auto &q = joins_[address];
  while (!q.empty() && now_us - q.front() >= 60 * G_USEC_PER_SEC)
    q.pop_front();
  if (q.size() >= per_minute_)
    return false;
  q.push_back(now_us);
  /* forget quiet addresses now and then */
  if (joins_.size() > 4096)
    for (auto it = joins_.begin(); it != joins_.end();)
      it = it->second.empty() || now_us - it->second.back() >= 60 * G_USEC_PER_SEC
               ? joins_.erase(it)
               : std::next(it);
  return true;
}

} // namespace cw
