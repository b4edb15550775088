/* costream
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "authhttp.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>

namespace costream::rtmp {

std::string json_quote(const std::string &s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20 || c == 0x7f) {
      char esc[8];
      std::snprintf(esc, sizeof esc, "\\u%04x", c);
      out += esc;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

bool parse_http_url(const std::string &url, HttpTarget *target, std::string *why) {
  const std::string scheme = "http://";
  if (url.compare(0, scheme.size(), scheme) != 0) {
    *why = url.compare(0, 8, "https://") == 0 ? "https:// is not supported (use http://)"
                                              : "not an http:// URL";
    return false;
  }
  const size_t start = scheme.size();
  size_t end = url.find_first_of("/?", start);
  if (end == std::string::npos)
    end = url.size();
  std::string authority = url.substr(start, end - start);
  if (authority.find('@') != std::string::npos) {
    *why = "credentials in the URL are not supported";
    return false;
  }
  HttpTarget t;
  std::string port;
  if (!authority.empty() && authority[0] == '[') {
    const size_t close = authority.find(']');
    if (close == std::string::npos) {
      *why = "unterminated IPv6 address";
      return false;
    }
    t.host = authority.substr(1, close - 1);
    if (close + 1 < authority.size()) {
      if (authority[close + 1] != ':') {
        *why = "junk after the IPv6 address";
        return false;
      }
      port = authority.substr(close + 2);
    }
  } else {
    const size_t colon = authority.rfind(':');
    t.host = authority.substr(0, colon);
    if (colon != std::string::npos)
      port = authority.substr(colon + 1);
  }
  if (t.host.empty()) {
    *why = "no host";
    return false;
  }
  for (char c : t.host)
    if (static_cast<unsigned char>(c) <= ' ' || c == '/' || c == '?' || c == '#') {
      *why = "a bad character in the host";
      return false;
    }
  if (!port.empty() || authority.back() == ':') {
    if (port.empty() || port.size() > 5 ||
        port.find_first_not_of("0123456789") != std::string::npos || std::atoi(port.c_str()) < 1 ||
        std::atoi(port.c_str()) > 65535) {
      *why = "a bad port";
      return false;
    }
    t.port = static_cast<unsigned>(std::atoi(port.c_str()));
  }
  t.path = end < url.size() ? url.substr(end) : "/";
  if (t.path[0] == '?')
    t.path = "/" + t.path;
  const size_t hash = t.path.find('#');
  if (hash != std::string::npos)
    t.path.resize(hash);
  for (char c : t.path)
    if (static_cast<unsigned char>(c) <= ' ' || c == 0x7f) {
      *why = "a space or control character in the path";
      return false;
    }
  *target = t;
  return true;
}

std::string http_post(const HttpTarget &target, const std::string &body) {
  const bool v6 = target.host.find(':') != std::string::npos;
  const std::string host = (v6 ? "[" + target.host + "]" : target.host) +
                           (target.port != 80 ? ":" + std::to_string(target.port) : "");
  return "POST " + target.path + " HTTP/1.1\r\nHost: " + host +
         "\r\nUser-Agent: costream-rtmpserversrc\r\nContent-Type: application/json\r\n"
         "Content-Length: " +
         std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
}

int http_status(const std::string &head) {
  /* "HTTP/1.x SP 3DIGIT" then SP or CR: decided as soon as the character after the code is in, so
   * the answer never changes as more bytes come. */
  static const char kForm[] = "HTTP/1.x ddd";
  const size_t form = sizeof kForm - 1;
  const size_t n = std::min(head.size(), form);
  for (size_t i = 0; i < n; i++) {
    const char c = head[i], f = kForm[i];
    const bool ok = f == 'x' ? c == '0' || c == '1' : f == 'd' ? c >= '0' && c <= '9' : c == f;
    if (!ok)
      return -1;
  }
  if (head.size() <= form)
    return 0;
  if (head[form] != ' ' && head[form] != '\r')
    return -1;
  const int code = (head[9] - '0') * 100 + (head[10] - '0') * 10 + (head[11] - '0');
  return code >= 100 && code <= 599 ? code : -1;
}

} // namespace costream::rtmp
