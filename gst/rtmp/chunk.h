/* costream
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * RTMP handshake (server side, simple form) and chunk stream codec: bytes in, messages out, and
 * messages in, bytes out. Bounds-checked, with limits on chunk size, message size and the number
 * of chunk streams. No GStreamer types, no sockets.
 */
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace costream::rtmp {

constexpr size_t kHandshakeSize = 1536;

/* Simple handshake: C0+C1 in -> S0+S1+S2 out (S1 bytes 4-7 zero, S2 echoing C1); C2 in -> done.
 * Accepted by OBS, ffmpeg, librtmp and rtmp2sink. */
class ServerHandshake {
public:
  enum class State { WaitC0C1, WaitC2, Done, Failed };
  /* Consumes what it needs of `data` (returns the count), appends the reply to `out`. */
  size_t feed(const uint8_t *data, size_t size, std::vector<uint8_t> *out, std::string *why);
  State state() const { return state_; }
  bool done() const { return state_ == State::Done; }

private:
  State state_ = State::WaitC0C1;
  std::vector<uint8_t> buf_;
};

/* Message types. */
enum MessageType : uint8_t {
  kSetChunkSize = 1,
  kAbort = 2,
  kAcknowledgement = 3,
  kUserControl = 4,
  kWindowAckSize = 5,
  kSetPeerBandwidth = 6,
  kAudio = 8,
  kVideo = 9,
  kDataAmf3 = 15,
  kCommandAmf3 = 17,
  kDataAmf0 = 18,
  kCommandAmf0 = 20,
  kAggregate = 22,
};

struct Message {
  uint32_t csid = 0;
  uint8_t type = 0;
  uint32_t stream_id = 0;
  uint32_t timestamp = 0; /* milliseconds, 32 bits, wraps */
  std::vector<uint8_t> payload;
};

class ChunkReader {
public:
  struct Limits {
    uint32_t max_chunk_size = 1 << 20;     /* largest Set Chunk Size accepted */
    uint32_t max_message_size = 16u << 20; /* largest message accepted */
    size_t max_chunk_streams = 64;
    size_t max_buffered = 32u << 20; /* partial messages in all chunk streams */
  };
  ChunkReader() = default;
  explicit ChunkReader(const Limits &limits) : limits_(limits) {}

  /* Appends the complete messages found in `data` (plus what was buffered) to `out`. Set Chunk
   * Size and Abort take effect at once (and are passed on too). False: a protocol error (`why`);
   * the reader is then unusable. */
  bool feed(const uint8_t *data, size_t size, std::vector<Message> *out, std::string *why);

  uint32_t chunk_size() const { return chunk_size_; }
  uint64_t bytes_in() const { return bytes_in_; }
  /* Limits from now on (what is buffered already stays). */
  void set_limits(const Limits &limits) { limits_ = limits; }

private:
  struct Stream {
    uint32_t timestamp = 0;
    uint32_t ts_field = 0; /* last header's timestamp field: absolute (fmt 0) or delta */
    uint32_t length = 0;
    uint8_t type = 0;
    uint32_t stream_id = 0;
    bool extended = false; /* last header used an extended timestamp */
    bool has_header = false;
    std::vector<uint8_t> partial;
  };
  /* One chunk from pending_ at pos_; returns 0 = need more, 1 = parsed, -1 = error. */
  int parse_chunk(std::vector<Message> *out, std::string *why);
  bool apply_control(const Message &m, std::string *why);

  Limits limits_;
  uint32_t chunk_size_ = 128;
  std::map<uint32_t, Stream> streams_;
  std::vector<uint8_t> pending_;
  size_t pos_ = 0;
  size_t buffered_ = 0;
  uint64_t bytes_in_ = 0;
  bool failed_ = false;
};

class ChunkWriter {
public:
  void set_chunk_size(uint32_t size) { chunk_size_ = size ? size : 128; }
  uint32_t chunk_size() const { return chunk_size_; }
  /* Appends the message as chunks (type 0 header, then type 3). */
  void write(uint32_t csid, uint8_t type, uint32_t stream_id, uint32_t timestamp,
             const std::vector<uint8_t> &payload, std::vector<uint8_t> *out) const;

private:
  uint32_t chunk_size_ = 128;
};

} // namespace costream::rtmp
