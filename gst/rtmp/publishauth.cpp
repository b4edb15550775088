/* costream
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "publishauth.h"

#include "authhttp.h"

#include <gst/gst.h>

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

GST_DEBUG_CATEGORY_STATIC(rtmp_auth_debug);
#define GST_CAT_DEFAULT rtmp_auth_debug

namespace costream::rtmp {

namespace {

/* Longest answer head read: the status line is all that counts. */
constexpr size_t kMaxHead = 4096;

/* Waits for `events` on `fd` until `deadline` (monotonic us) or `stop`; false on timeout/stop. */
bool wait_fd(int fd, short events, gint64 deadline, const bool &stop, std::mutex &lock) {
  for (;;) {
    {
      std::lock_guard<std::mutex> lk(lock);
      if (stop)
        return false;
    }
    const gint64 left = deadline - g_get_monotonic_time();
    if (left <= 0)
      return false;
    pollfd p = {fd, events, 0};
    const int r = poll(&p, 1, static_cast<int>(std::min<gint64>(left / 1000 + 1, 50)));
    if (r > 0)
      return true;
    if (r < 0 && errno != EINTR)
      return false;
  }
}

} // namespace

bool PublishAuthorizer::check_url(const std::string &url, std::string *why) {
  HttpTarget t;
  return url.empty() || parse_http_url(url, &t, why);
}

std::string PublishAuthorizer::body(const std::string &element, const AuthRequest &r) {
  return "{\"action\": \"publish\", \"element\": " + json_quote(element) +
         ", \"application\": " + json_quote(r.application) +
         ", \"stream_key\": " + json_quote(r.stream_key) +
         ", \"remote_address\": " + json_quote(r.remote) + ", \"tc_url\": " + json_quote(r.tc_url) +
         ", \"flash_ver\": " + json_quote(r.flash_ver) + "}";
}

PublishAuthorizer::PublishAuthorizer(Config config, Done done)
    : config_(std::move(config)), done_(std::move(done)) {
  static std::once_flag once;
  std::call_once(once, [] {
    GST_DEBUG_CATEGORY_INIT(rtmp_auth_debug, "rtmpauth", 0, "costream RTMP publish authorization");
  });
  thread_ = std::thread([this] { run(); });
}

PublishAuthorizer::~PublishAuthorizer() {
  {
    std::lock_guard<std::mutex> lk(lock_);
    stop_ = true;
  }
  cond_.notify_all();
  thread_.join();
}

void PublishAuthorizer::submit(uint64_t ticket, const AuthRequest &request) {
  {
    std::lock_guard<std::mutex> lk(lock_);
    queue_.emplace_back(ticket, request);
  }
  cond_.notify_one();
}

void PublishAuthorizer::run() {
  for (;;) {
    std::pair<uint64_t, AuthRequest> job;
    {
      std::unique_lock<std::mutex> lk(lock_);
      cond_.wait(lk, [this] { return stop_ || !queue_.empty(); });
      if (stop_)
        return;
      job = std::move(queue_.front());
      queue_.pop_front();
    }
    const AuthRequest &r = job.second;
    bool allowed = true;
    std::string why;
    const int in_process = config_.decide ? config_.decide(r) : -1;
    if (in_process == 0) {
      allowed = false;
      why = "refused by the authorize-publish handler";
    } else if (!config_.url.empty()) {
      allowed = ask_url(r, &why);
    }
    {
      std::lock_guard<std::mutex> lk(lock_);
      if (stop_)
        return;
    }
    if (!allowed)
      GST_WARNING("%s: publish from %s refused: %s", config_.element.c_str(), r.remote.c_str(),
                  why.c_str());
    else
      GST_INFO("%s: publish from %s authorized", config_.element.c_str(), r.remote.c_str());
    done_(job.first, allowed, why);
  }
}

bool PublishAuthorizer::ask_url(const AuthRequest &r, std::string *why) {
  HttpTarget t;
  if (!parse_http_url(config_.url, &t, why)) {
    *why = "publish-auth-url: " + *why;
    return false;
  }
  const gint64 deadline =
      g_get_monotonic_time() + static_cast<gint64>(config_.timeout_ms) * G_TIME_SPAN_MILLISECOND;
  addrinfo hints = {};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo *res = nullptr;
  const int gai = getaddrinfo(t.host.c_str(), std::to_string(t.port).c_str(), &hints, &res);
  if (gai != 0 || !res) {
    *why = std::string("the authorization service's host does not resolve: ") + gai_strerror(gai);
    return false;
  }
  const std::string request = http_post(t, body(config_.element, r));
  std::string head;
  std::string failure = "the authorization service cannot be reached";
  int status = 0;
  for (addrinfo *a = res; a && status == 0; a = a->ai_next) {
    const int fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
      continue;
    bool ok = connect(fd, a->ai_addr, a->ai_addrlen) == 0 || errno == EINPROGRESS;
    if (ok) {
      ok = wait_fd(fd, POLLOUT, deadline, stop_, lock_);
      int err = 0;
      socklen_t len = sizeof err;
      if (ok && (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0)) {
        failure = std::string("the authorization service cannot be reached: ") +
                  g_strerror(err ? err : errno);
        ok = false;
      } else if (!ok) {
        failure = "no connection to the authorization service within " +
                  std::to_string(config_.timeout_ms) + " ms";
      }
    }
    for (size_t sent = 0; ok && sent < request.size();) {
      const ssize_t n = send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
      if (n > 0)
        sent += static_cast<size_t>(n);
      else if (n < 0 && errno != EAGAIN && errno != EINTR)
        ok = false;
      else
        ok = wait_fd(fd, POLLOUT, deadline, stop_, lock_);
      if (!ok)
        failure = "the authorization service did not take the request";
    }
    while (ok && status == 0) {
      char buf[1024];
      const ssize_t n = recv(fd, buf, sizeof buf, 0);
      if (n > 0) {
        head.append(buf, static_cast<size_t>(n));
        status = http_status(head);
        if (status == 0 && head.size() > kMaxHead) /* (cannot happen: decided by byte 13) */
          status = -1;
      } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
        failure = "the authorization service closed the connection without an answer";
        ok = false;
      } else if (!wait_fd(fd, POLLIN, deadline, stop_, lock_)) {
        failure = "no answer from the authorization service within " +
                  std::to_string(config_.timeout_ms) + " ms";
        ok = false;
      }
    }
    close(fd);
  }
  freeaddrinfo(res);
  if (status == 0) {
    *why = failure;
    return false;
  }
  if (status < 0) {
    *why = "the authorization service's answer is not HTTP";
    return false;
  }
  if (status < 200 || status > 299) {
    *why = "the authorization service answered " + std::to_string(status);
    return false;
  }
  return true;
}

} // namespace costream::rtmp
