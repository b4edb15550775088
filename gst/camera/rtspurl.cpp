/* costream
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "rtspurl.h"

#include <cctype>

namespace costream {

namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

std::string percent_decode(const std::string &s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); i++) {
    if (s[i] == '%' && i + 2 < s.size()) {
      int hi = hex_value(s[i + 1]), lo = hex_value(s[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out.push_back(static_cast<char>(hi * 16 + lo));
        i += 2;
        continue;
      }
    }
    out.push_back(s[i]);
  }
  return out;
}

bool scheme_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '+' || c == '-' || c == '.';
}

/* Where the authority that starts at `begin` ends: the first '/', '?' or '#', or
 * whitespace or a quote when the URL sits in a longer text. */
size_t authority_end(const std::string &s, size_t begin) {
  size_t i = begin;
  while (i < s.size() && s[i] != '/' && s[i] != '?' && s[i] != '#' &&
         !std::isspace(static_cast<unsigned char>(s[i])) && s[i] != '"' && s[i] != '\'')
    i++;
  return i;
}

} // namespace

RtspUrl split_rtsp_url(const std::string &url) {
  RtspUrl r;
  size_t sep = url.find("://");
  if (sep == std::string::npos)
    return r;
  std::string scheme = url.substr(0, sep);
  for (auto &c : scheme)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  size_t begin = sep + 3;
  size_t end = authority_end(url, begin);
  std::string authority = url.substr(begin, end - begin);
  size_t at = authority.rfind('@');
  std::string host = authority;
  if (at != std::string::npos) {
    std::string info = authority.substr(0, at);
    host = authority.substr(at + 1);
    size_t colon = info.find(':');
    r.user = percent_decode(info.substr(0, colon));
    if (colon != std::string::npos)
      r.password = percent_decode(info.substr(colon + 1));
  }
  r.address = url.substr(0, begin) + host + url.substr(end);
  r.valid = (scheme == "rtsp" || scheme == "rtsps" || scheme == "rtspt" || scheme == "rtsph") &&
            !host.empty() && url.find_first_of(" \t\r\n") == std::string::npos;
  return r;
}

std::string redact_url(const std::string &text) {
  std::string out;
  size_t pos = 0;
  while (true) {
    size_t sep = text.find("://", pos);
    if (sep == std::string::npos) {
      out.append(text, pos, std::string::npos);
      return out;
    }
    size_t begin = sep + 3;
    /* Only a real scheme before "://". */
    if (sep == 0 || !scheme_char(text[sep - 1])) {
      out.append(text, pos, begin - pos);
      pos = begin;
      continue;
    }
    size_t end = authority_end(text, begin);
    out.append(text, pos, begin - pos);
    std::string authority = text.substr(begin, end - begin);
    size_t at = authority.rfind('@');
    if (at != std::string::npos)
      out += "***@" + authority.substr(at + 1);
    else
      out += authority;
    /* The path, then every query value redacted. */
    size_t i = end;
    while (i < text.size() && text[i] != '?' && text[i] != '#' &&
           !std::isspace(static_cast<unsigned char>(text[i])) && text[i] != '"' && text[i] != '\'')
      i++;
    out.append(text, end, i - end);
    if (i < text.size() && text[i] == '?') {
      out.push_back('?');
      i++;
      bool in_value = false;
      while (i < text.size() && text[i] != '#' &&
             !std::isspace(static_cast<unsigned char>(text[i])) && text[i] != '"' &&
             text[i] != '\'') {
        char c = text[i++];
        if (c == '&') {
          in_value = false;
          out.push_back(c);
        } else if (c == '=' && !in_value) {
          in_value = true;
          out += "=***";
        } else if (!in_value) {
          out.push_back(c);
        }
      }
    }
    pos = i;
  }
}

} // namespace costream
