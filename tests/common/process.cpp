/* costream tests
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "process.h"

#include <catch2/catch.hpp>
#include <gio/gio.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

namespace testgst {

Child::Child(const std::vector<std::string> &args, const std::string &log) {
  std::vector<char *> argv;
  for (auto &a : args)
    argv.push_back(const_cast<char *>(a.c_str()));
  argv.push_back(nullptr);
  const int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  REQUIRE(fd >= 0);
  GError *err = nullptr;
  const gboolean ok = g_spawn_async_with_fds(
      nullptr, argv.data(), nullptr,
      static_cast<GSpawnFlags>(G_SPAWN_SEARCH_PATH | G_SPAWN_DO_NOT_REAP_CHILD),
      [](gpointer) { setpgid(0, 0); }, nullptr, &pid, -1, fd, fd, &err);
  close(fd);
  INFO((err ? err->message : ""));
  REQUIRE(ok);
}

int Child::stop(int sig, int seconds) {
  if (!pid)
    return -1;
  kill(pid, sig);
  int status = 0;
  for (int i = 0; i < seconds * 10; i++) {
    if (waitpid(pid, &status, WNOHANG) == pid) {
      kill(-pid, SIGKILL); /* whatever it left behind */
      g_spawn_close_pid(pid);
      pid = 0;
      return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    }
    g_usleep(100000);
  }
  kill(-pid, SIGKILL);
  waitpid(pid, &status, 0);
  g_spawn_close_pid(pid);
  pid = 0;
  return -1;
}

Child::~Child() {
  if (pid) {
    kill(-pid, SIGKILL);
    waitpid(pid, nullptr, 0);
    g_spawn_close_pid(pid);
  }
}

std::string read_text(const std::string &path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

bool wait_until(const std::function<bool()> &ready, double seconds) {
  const gint64 end = g_get_monotonic_time() + static_cast<gint64>(seconds * 1e6);
  while (!ready()) {
    if (g_get_monotonic_time() > end)
      return false;
    g_usleep(20000);
  }
  return true;
}

unsigned free_tcp_port() {
  GSocket *s =
      g_socket_new(G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_TCP, nullptr);
  REQUIRE(s != nullptr);
  GInetAddress *any = g_inet_address_new_any(G_SOCKET_FAMILY_IPV4);
  GSocketAddress *sa = g_inet_socket_address_new(any, 0);
  REQUIRE(g_socket_bind(s, sa, TRUE, nullptr));
  GSocketAddress *local = g_socket_get_local_address(s, nullptr);
  const unsigned port = g_inet_socket_address_get_port(G_INET_SOCKET_ADDRESS(local));
  g_object_unref(local);
  g_object_unref(sa);
  g_object_unref(any);
  g_socket_close(s, nullptr);
  g_object_unref(s);
  return port;
}

guint free_udp_port() {
  GSocket *s =
      g_socket_new(G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_DATAGRAM, G_SOCKET_PROTOCOL_UDP, nullptr);
  GInetAddress *lo = g_inet_address_new_loopback(G_SOCKET_FAMILY_IPV4);
  GSocketAddress *sa = g_inet_socket_address_new(lo, 0);
  g_socket_bind(s, sa, FALSE, nullptr);
  GSocketAddress *local = g_socket_get_local_address(s, nullptr);
  const guint port = g_inet_socket_address_get_port(G_INET_SOCKET_ADDRESS(local));
  g_object_unref(local);
  g_object_unref(sa);
  g_object_unref(lo);
  g_socket_close(s, nullptr);
  g_object_unref(s);
  return port;
}

} // namespace testgst
