/* costream
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "flv.h"

#include "bytes.h"

namespace costream::flv {

using rtmp::ByteReader;
using rtmp::ByteWriter;

void write_header(bool audio, bool video, std::vector<uint8_t> *out) {
  ByteWriter w(out);
  w.str("FLV");
  w.u8(1);
  w.u8(static_cast<uint8_t>((audio ? 4 : 0) | (video ? 1 : 0)));
  w.be32(9);
  w.be32(0);
}

void write_tag(uint8_t type, uint32_t timestamp_ms, const uint8_t *data, size_t size,
               std::vector<uint8_t> *out) {
  out->reserve(out->size() + 15 + size); /* one allocation, not a growth per field */
  ByteWriter w(out);
  w.u8(type);
  w.be24(static_cast<uint32_t>(size));
  w.be24(timestamp_ms & 0xffffff);
  w.u8(static_cast<uint8_t>(timestamp_ms >> 24));
  w.be24(0);
  w.bytes(data, size);
  w.be32(static_cast<uint32_t>(11 + size));
}

bool TagReader::feed(const uint8_t *data, size_t size, std::vector<Tag> *out, std::string *why) {
  if (pos_ > 0 && pos_ == buf_.size()) {
    buf_.clear();
    pos_ = 0;
  } else if (pos_ > (1u << 16)) {
    buf_.erase(buf_.begin(), buf_.begin() + pos_);
    pos_ = 0;
  }
  buf_.insert(buf_.end(), data, data + size);
  for (;;) {
    ByteReader r(buf_.data() + pos_, buf_.size() - pos_);
    if (!started_) {
      if (r.remaining() < 3)
        return true;
      if (r.cursor()[0] == 'F' && r.cursor()[1] == 'L' && r.cursor()[2] == 'V') {
        uint8_t version, flags;
        uint32_t header_size, prev0;
        if (r.remaining() < 13)
          return true;
        r.skip(3);
        r.u8(&version);
        r.u8(&flags);
        r.be32(&header_size);
        if (header_size < 9 || header_size > 1024) {
          *why = "bad FLV header size";
          return false;
        }
        if (!r.skip(header_size - 9) || !r.be32(&prev0))
          return true;
        has_audio_ = flags & 4;
        has_video_ = flags & 1;
        header_seen_ = true;
      }
      started_ = true;
      pos_ += r.pos();
      continue;
    }
    uint8_t type, ts_ext;
    uint32_t dsize, ts, sid;
    if (!r.u8(&type) || !r.be24(&dsize) || !r.be24(&ts) || !r.u8(&ts_ext) || !r.be24(&sid))
      return true;
    if ((type & 0x1f) != kAudio && (type & 0x1f) != kVideo && (type & 0x1f) != kScript) {
      *why = "unknown FLV tag type " + std::to_string(type);
      return false;
    }
    if (dsize > max_tag_size_) {
      *why = "FLV tag of " + std::to_string(dsize) + " bytes";
      return false;
    }
    if (r.remaining() < static_cast<size_t>(dsize) + 4)
      return true;
    Tag t;
    t.type = type & 0x1f;
    t.timestamp = ts | static_cast<uint32_t>(ts_ext) << 24;
    t.data.assign(r.cursor(), r.cursor() + dsize);
    r.skip(dsize + 4); /* and PreviousTagSize, not checked: writers differ */
    pos_ += r.pos();
    out->push_back(std::move(t));
  }
}

} // namespace costream::flv
