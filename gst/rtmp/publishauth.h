/* costream
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * costream::rtmp::PublishAuthorizer: an element's publish authorization, off the listener's I/O
 * thread. Each publish (an AuthRequest with a ticket, see listener.h) is decided in the
 * authorizer's own thread, in order: first the in-process decision (the element's
 * `authorize-publish` signal), then, if there is a URL, a JSON POST to it: a 2xx answer within
 * the timeout allows, anything else (another status, no answer in time, no connection) refuses.
 * Fail closed. The decision goes to `done`, from that thread. The key is in the POST body only,
 * never in a log line or a reason.
 */
#pragma once

#include "listener.h"

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <utility>

namespace costream::rtmp {

class PublishAuthorizer {
public:
  struct Config {
    std::string element; /* for the body and logs */
    std::string url;     /* http://...; empty: none */
    unsigned timeout_ms = 3000;
    /* In-process decision: -1 none (then the URL decides; no URL: allowed), 0 refuse, 1 allow. */
    std::function<int(const AuthRequest &)> decide;
  };
  using Done = std::function<void(uint64_t ticket, bool allowed, const std::string &why)>;

  /* False (and `why`) when `url` is set and not a usable http:// URL. */
  static bool check_url(const std::string &url, std::string *why);

  PublishAuthorizer(Config config, Done done);
  /* Stops: a request in flight is abandoned (within 50 ms), undecided tickets get no answer. */
  ~PublishAuthorizer();
  PublishAuthorizer(const PublishAuthorizer &) = delete;
  PublishAuthorizer &operator=(const PublishAuthorizer &) = delete;

  void submit(uint64_t ticket, const AuthRequest &request);
  /* The JSON body posted for `request` (tests). */
  static std::string body(const std::string &element, const AuthRequest &request);

private:
  void run();
  bool ask_url(const AuthRequest &request, std::string *why);

  Config config_;
  Done done_;
  std::mutex lock_;
  std::condition_variable cond_;
  std::deque<std::pair<uint64_t, AuthRequest>> queue_;
  bool stop_ = false;
  std::thread thread_;
};

} // namespace costream::rtmp
