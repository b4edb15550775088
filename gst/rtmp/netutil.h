/* costream
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * The RTMP elements' sockets and TLS certificates (GIO).
 */
#pragma once

#include <gio/gio.h>

#include <memory>
#include <string>

namespace costream::rtmp {

/* "ip:port" of a connected socket's peer ("?" when unknown). */
std::string address_string(GSocket *socket);
/* A non-blocking listening socket on `address` (empty: every interface, IPv4 and IPv6) and
 * `port` (0: a free one); nullptr and `error` when it cannot listen. */
GSocket *bind_socket(const std::string &address, unsigned port, std::string *error);
/* A reference-holding pointer to a certificate (nullptr stays nullptr). */
std::shared_ptr<GTlsCertificate> hold_certificate(GTlsCertificate *certificate);
/* A certificate with its private key from PEM files (the key in `cert_file` when `key_file` is
 * empty); nullptr and `error` when they cannot be read. */
std::shared_ptr<GTlsCertificate> load_certificate(const std::string &cert_file,
                                                  const std::string &key_file, std::string *error);

} // namespace costream::rtmp
