/* costream
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * costream::rtmp auth HTTP: what a publish authorization request and its answer look like on the
 * wire (pure: no sockets). The request is a JSON POST; the answer's status decides: 2xx allows,
 * anything else refuses.
 */
#pragma once

#include <string>

namespace costream::rtmp {

/* A JSON string literal of `s` (quotes, backslashes and control characters escaped; bytes over
 * 0x7f passed as they are). */
std::string json_quote(const std::string &s);

/* An http:// URL split for a request. */
struct HttpTarget {
  std::string host; /* as in the URL (an IPv6 literal without brackets) */
  unsigned port = 80;
  std::string path = "/"; /* with the query */
};

/* Splits `url`; false (and `why`) unless it is http://host[:port][/path][?query] (https is not
 * supported: the service is expected on the same host or a trusted network). */
bool parse_http_url(const std::string &url, HttpTarget *target, std::string *why);

/* The whole request: POST with `body` as application/json, Connection: close. */
std::string http_post(const HttpTarget &target, const std::string &body);

/* The status code of a response that starts with `head` ("HTTP/1.1 200 OK\r\n..."): 100-599,
 * 0 when `head` is too short to tell yet, -1 when it is not HTTP. Decided from the first 13
 * bytes: more bytes never change a decided answer. */
int http_status(const std::string &head);

} // namespace costream::rtmp
