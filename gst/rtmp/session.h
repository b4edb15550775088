/* costream
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * One RTMP publisher's connection, as a protocol state machine: fed the bytes read from the
 * socket, it returns the bytes to send back and what happened (connected, publishing, metadata,
 * audio and video messages, unpublished, refused). No sockets, no threads, no GStreamer: the
 * element owns those. The stream key is compared in constant time and never appears in events.
 */
#pragma once

#include "amf0.h"
#include "chunk.h"

#include <functional>
#include <string>
#include <vector>

namespace costream::rtmp {

struct SessionConfig {
  std::string application = "live";
  std::string stream_key;         /* empty: any key */
  uint32_t out_chunk_size = 4096; /* what we send with */
  uint32_t window_ack_size = 2500000;
  ChunkReader::Limits limits;
};

/* Where publishes may go. Empty functions: the session serves config.application and
 * config.stream_key alone (an empty key: any key). */
struct SessionRoutes {
  /* At `connect`: whether the application (slashes and query trimmed) is served. */
  std::function<bool(const std::string &app)> has_application;
  /* At `publish` on a served application: accept, or refuse with a reason that does not contain
   * the key. Compare keys with Session::keys_equal (constant time). */
  std::function<bool(const std::string &app, const std::string &key, std::string *why)> may_publish;
  /* After may_publish accepted: true when someone else decides (an authorization service), and
   * the session waits, sending nothing for the publish, until authorized() is called. Empty: no
   * one else decides. */
  std::function<bool(const std::string &app, const std::string &key)> ask;
};

struct SessionEvent {
  enum Kind {
    Connected,   /* `text`: the application */
    Publishing,  /* accepted */
    Refused,     /* `text`: why (no key in it); the connection should close */
    Asking,      /* routes.ask() took the publish: waiting for authorized() */
    Unpublished, /* FCUnpublish / deleteStream / closeStream */
    Metadata,    /* `value`: onMetaData's object or ECMA array; `payload`: the AMF0 bytes */
    Audio,       /* `timestamp`, `payload` (FLV AUDIODATA) */
    Video,       /* `timestamp`, `payload` (FLV VIDEODATA) */
    Warning,     /* `text`: something ignored */
  };
  Kind kind;
  uint32_t timestamp = 0;
  std::string text;
  std::vector<uint8_t> payload;
  amf0::Value value;
};

/* An application name as routes compare it: without leading and trailing slashes. */
std::string trim_slashes(std::string s);

class Session {
public:
  explicit Session(SessionConfig config, SessionRoutes routes = {});

  /* Feeds received bytes. Appends what to send to `out` and what happened to `events`. Returns
   * false on a protocol error (`why`): the connection must be closed. */
  bool feed(const uint8_t *data, size_t size, std::vector<uint8_t> *out,
            std::vector<SessionEvent> *events, std::string *why);

  bool handshake_done() const { return handshake_.done(); }
  bool publishing() const { return publishing_; }
  /* A publish waits for authorized(): read nothing more from the peer meanwhile. */
  bool asking() const { return asking_; }
  /* The answer to an Asking publish: Publish.Start (and a Publishing event), or BadName (a
   * Refused event with `why`, and the connection is to close). No-op when not asking. */
  void authorized(bool allowed, const std::string &why, std::vector<uint8_t> *out,
                  std::vector<SessionEvent> *events);
  /* After a refusal: the reply has been queued, close once it is sent. */
  bool should_close() const { return close_; }
  uint64_t bytes_in() const { return reader_.bytes_in() + handshake_bytes_; }
  uint64_t messages() const { return messages_; }
  /* The application of the `connect` (empty before), and what its command said of the client. */
  const std::string &application() const { return app_; }
  const std::string &tc_url() const { return tc_url_; }
  const std::string &flash_ver() const { return flash_ver_; }
  /* New limits from now on (a publish routed to an element with its own). */
  void set_limits(const ChunkReader::Limits &limits) { reader_.set_limits(limits); }

  static bool keys_equal(const std::string &a, const std::string &b); /* constant time */

private:
  bool on_message(Message &m, std::vector<uint8_t> *out, std::vector<SessionEvent> *events,
                  std::string *why);
  bool on_command(const Message &m, size_t skip, std::vector<uint8_t> *out,
                  std::vector<SessionEvent> *events, std::string *why);
  void on_data(const Message &m, size_t skip, std::vector<SessionEvent> *events);
  void on_aggregate(const Message &m, std::vector<SessionEvent> *events);
  void send(uint32_t csid, uint8_t type, uint32_t stream_id, const std::vector<uint8_t> &payload,
            std::vector<uint8_t> *out);
  void send_command(uint32_t stream_id, const std::vector<amf0::Value> &values,
                    std::vector<uint8_t> *out);
  void unpublish(std::vector<SessionEvent> *events);
  void start_publish(uint32_t sid, std::vector<uint8_t> *out, std::vector<SessionEvent> *events);
  void refuse_publish(uint32_t sid, const std::string &why, std::vector<uint8_t> *out,
                      std::vector<SessionEvent> *events);

  SessionConfig config_;
  SessionRoutes routes_;
  std::string app_, tc_url_, flash_ver_;
  ServerHandshake handshake_;
  ChunkReader reader_;
  ChunkWriter writer_;
  uint64_t handshake_bytes_ = 0;
  uint64_t messages_ = 0;
  bool connected_ = false;
  bool publishing_ = false;
  bool close_ = false;
  bool asking_ = false;
  uint32_t publish_stream_ = 0;
  uint32_t peer_window_ = 2500000;
  uint64_t last_ack_ = 0;
};

} // namespace costream::rtmp
