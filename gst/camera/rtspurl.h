/* costream
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * RTSP addresses with credentials in them, kept out of logs: split the user info from the address
 * (so rtspsrc, and its own logs and progress messages, never see a password) and redact what is
 * shown to people. Pure C++, unit-tested.
 */
#pragma once

#include <string>

namespace costream {

struct RtspUrl {
  std::string address;  /* the URL without user info: what rtspsrc gets as its location */
  std::string user;     /* percent-decoded, empty when none */
  std::string password; /* percent-decoded, empty when none */
  bool valid = false;   /* rtsp://, rtsps:// or rtspt:// with a host */
};

RtspUrl split_rtsp_url(const std::string &url);

/* For logs, messages, stats and APIs: the user info replaced by `***` when present
 * (rtsp:// ***@host:554/path?user=***, without the space), and every query value replaced by `***`.
 * Works on any text that holds a URL (an error's debug string, say): every user:pass@ after a
 * scheme is redacted. */
std::string redact_url(const std::string &text);

/* Reconnection delays: `min` first, doubling up to `max` (milliseconds); reset() after a
 * connection that streamed. */
class Backoff {
public:
  Backoff(unsigned min_ms, unsigned max_ms)
      : min_(min_ms), max_(max_ms < min_ms ? min_ms : max_ms), next_(min_) {}
  unsigned next() {
    unsigned d = next_;
    next_ = next_ > max_ / 2 ? max_ : next_ * 2;
    return d;
  }
  void reset() { next_ = min_; }

private:
  unsigned min_, max_, next_;
};

} // namespace costream
