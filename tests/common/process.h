/* costream tests
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * What the tests that run other programs share: a child process with its output in a log file,
 * polling for readiness instead of sleeping, and a free TCP or UDP port.
 */
#pragma once

#include <glib.h>

#include <functional>
#include <string>
#include <vector>

namespace testgst {

/* A child (looked up in PATH) whose stdout and stderr go to `log`, in a process group of its own;
 * killed (group) if the test ends early. */
struct Child {
  GPid pid = 0;
  Child(const std::vector<std::string> &args, const std::string &log);
  /* Sends `sig`, then the exit status within `seconds` (-1: it had to be killed). */
  int stop(int sig, int seconds);
  ~Child();
  Child(const Child &) = delete;
  Child &operator=(const Child &) = delete;
};

/* A whole text file ("" when missing). */
std::string read_text(const std::string &path);

/* Polls `ready` every 20 ms until it holds (true) or `seconds` have passed (false): how a test
 * waits for a child or a pipeline, instead of sleeping a fixed time. */
bool wait_until(const std::function<bool()> &ready, double seconds);

/* A TCP port nobody listens on now (bound and released at once). */
unsigned free_tcp_port();

/* A UDP port on 127.0.0.1 nobody has bound now (bound and released at once). */
guint free_udp_port();

} // namespace testgst
