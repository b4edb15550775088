/* costream
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "netutil.h"

#include <netinet/in.h>

namespace costream::rtmp {

std::string address_string(GSocket *socket) {
  GSocketAddress *sa = g_socket_get_remote_address(socket, nullptr);
  if (!sa)
    return "?";
  std::string s = "?";
  if (G_IS_INET_SOCKET_ADDRESS(sa)) {
    gchar *ip =
        g_inet_address_to_string(g_inet_socket_address_get_address(G_INET_SOCKET_ADDRESS(sa)));
    s = std::string(ip) + ":" +
        std::to_string(g_inet_socket_address_get_port(G_INET_SOCKET_ADDRESS(sa)));
    g_free(ip);
  }
  g_object_unref(sa);
  return s;
}

GSocket *bind_socket(const std::string &address, unsigned port, std::string *error) {
  GError *err = nullptr;
  GInetAddress *ia = nullptr;
  GSocketFamily family = G_SOCKET_FAMILY_IPV6;
  if (address.empty()) {
    ia = g_inet_address_new_any(G_SOCKET_FAMILY_IPV6);
  } else {
    ia = g_inet_address_new_from_string(address.c_str());
    if (!ia) {
      *error = "\"" + address + "\" is not an IP address to listen on.";
      return nullptr;
    }
    family = g_inet_address_get_family(ia);
  }
  GSocket *sock = g_socket_new(family, G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_TCP, &err);
  if (!sock && address.empty()) { /* no IPv6 here: IPv4 only */
    g_clear_error(&err);
    g_object_unref(ia);
    ia = g_inet_address_new_any(G_SOCKET_FAMILY_IPV4);
    family = G_SOCKET_FAMILY_IPV4;
    sock = g_socket_new(family, G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_TCP, &err);
  }
  if (!sock) {
    *error = std::string("Could not create a socket: ") + err->message;
    g_error_free(err);
    g_object_unref(ia);
    return nullptr;
  }
  if (family == G_SOCKET_FAMILY_IPV6 && address.empty())
    g_socket_set_option(sock, IPPROTO_IPV6, IPV6_V6ONLY, 0, nullptr); /* IPv4 too */
  GSocketAddress *sa = g_inet_socket_address_new(ia, static_cast<guint16>(port));
  g_object_unref(ia);
  const gboolean bound = g_socket_bind(sock, sa, TRUE, &err) && g_socket_listen(sock, &err);
  g_object_unref(sa);
  if (!bound) {
    *error = "Could not listen on port " + std::to_string(port) + ": " + err->message;
    g_error_free(err);
    g_object_unref(sock);
    return nullptr;
  }
  g_socket_set_blocking(sock, FALSE);
  return sock;
}

std::shared_ptr<GTlsCertificate> hold_certificate(GTlsCertificate *certificate) {
  if (!certificate)
    return nullptr;
  g_object_ref(certificate);
  return std::shared_ptr<GTlsCertificate>(certificate,
                                          [](GTlsCertificate *c) { g_object_unref(c); });
}

std::shared_ptr<GTlsCertificate> load_certificate(const std::string &cert_file,
                                                  const std::string &key_file, std::string *error) {
  GError *err = nullptr;
  const std::string &key = key_file.empty() ? cert_file : key_file;
  GTlsCertificate *cert = g_tls_certificate_new_from_files(cert_file.c_str(), key.c_str(), &err);
  if (!cert) {
    *error = "Could not load the TLS certificate and key (" + cert_file + ", " + key +
             "): " + err->message;
    g_error_free(err);
    return nullptr;
  }
  auto held = hold_certificate(cert);
  g_object_unref(cert);
  return held;
}

} // namespace costream::rtmp
