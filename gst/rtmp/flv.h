/* costream
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * FLV container: header and tag writer, and a bounds-checked streaming tag reader. No GStreamer.
 */
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace costream::flv {

enum TagType : uint8_t { kAudio = 8, kVideo = 9, kScript = 18 };

/* "FLV", version 1, flags, header size 9, then PreviousTagSize0. */
void write_header(bool audio, bool video, std::vector<uint8_t> *out);
/* One tag (11-byte header, data, PreviousTagSize). `timestamp_ms` is 32 bits (extended byte). */
void write_tag(uint8_t type, uint32_t timestamp_ms, const uint8_t *data, size_t size,
               std::vector<uint8_t> *out);

struct Tag {
  uint8_t type = 0;
  uint32_t timestamp = 0;
  std::vector<uint8_t> data;
};

/* Streaming reader: feed bytes, get complete tags. The header is optional (a stream may start
 * at a tag boundary after it). */
class TagReader {
public:
  explicit TagReader(size_t max_tag_size = 16u << 20) : max_tag_size_(max_tag_size) {}
  /* False on malformed input (`why`). */
  bool feed(const uint8_t *data, size_t size, std::vector<Tag> *out, std::string *why);
  bool header_seen() const { return header_seen_; }
  bool has_audio() const { return has_audio_; }
  bool has_video() const { return has_video_; }

private:
  size_t max_tag_size_;
  std::vector<uint8_t> buf_;
  size_t pos_ = 0;
  bool started_ = false;
  bool header_seen_ = false;
  bool has_audio_ = false, has_video_ = false;
};

/* Video tag helpers (FLV VIDEODATA with AVC). */
inline bool is_avc(const std::vector<uint8_t> &d) {
  return !d.empty() && (d[0] & 0x0f) == 7;
}
inline bool is_keyframe(const std::vector<uint8_t> &d) {
  return !d.empty() && (d[0] >> 4) == 1;
}
/* AVCPacketType: 0 sequence header, 1 NALUs, 2 end of sequence; -1 if not AVC or short. */
inline int avc_packet_type(const std::vector<uint8_t> &d) {
  return d.size() >= 2 && is_avc(d) ? d[1] : -1;
}
/* Composition time offset (ms) of an AVC NALU tag; 0 if none. */
inline int32_t avc_composition_time(const std::vector<uint8_t> &d) {
  if (d.size() < 5 || !is_avc(d))
    return 0;
  int32_t v = static_cast<int32_t>(d[2]) << 16 | d[3] << 8 | d[4];
  if (v & 0x800000)
    v -= 0x1000000;
  return v;
}

} // namespace costream::flv
