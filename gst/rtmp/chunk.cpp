/* costream
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "chunk.h"

#include "bytes.h"

#include <algorithm>
#include <random>

namespace costream::rtmp {

size_t ServerHandshake::feed(const uint8_t *data, size_t size, std::vector<uint8_t> *out,
                             std::string *why) {
  size_t used = 0;
  while (used < size && state_ != State::Done && state_ != State::Failed) {
    const size_t need = state_ == State::WaitC0C1 ? 1 + kHandshakeSize : kHandshakeSize;
    const size_t take = std::min(need - buf_.size(), size - used);
    buf_.insert(buf_.end(), data + used, data + used + take);
    used += take;
    if (buf_.size() < need)
      break;
    if (state_ == State::WaitC0C1) {
      if (buf_[0] != 3) {
        if (why)
          *why = "unsupported RTMP version " + std::to_string(buf_[0]) + " (only 3, plain RTMP)";
        state_ = State::Failed;
        return used;
      }
      ByteWriter w(out);
      w.u8(3);
      /* S1: time 0, four zero bytes, random */
      w.be32(0);
      w.be32(0);
      std::random_device rd;
      std::mt19937 rng(rd());
      for (size_t i = 0; i < kHandshakeSize - 8; i++)
        w.u8(static_cast<uint8_t>(rng()));
      /* S2: C1 echoed */
      w.bytes(buf_.data() + 1, kHandshakeSize);
      state_ = State::WaitC2;
    } else {
      state_ = State::Done; /* C2's content is not checked: clients differ */
    }
    buf_.clear();
  }
  return used;
}

bool ChunkReader::feed(const uint8_t *data, size_t size, std::vector<Message> *out,
                       std::string *why) {
  if (failed_)
    return false;
  bytes_in_ += size;
  if (pos_ > 0 && pos_ == pending_.size()) {
    pending_.clear();
    pos_ = 0;
  } else if (pos_ > (1u << 16)) {
    pending_.erase(pending_.begin(), pending_.begin() + pos_);
    pos_ = 0;
  }
  pending_.insert(pending_.end(), data, data + size);
  for (;;) {
    const int r = parse_chunk(out, why);
    if (r < 0) {
      failed_ = true;
      return false;
    }
    if (r == 0)
      return true;
  }
}

int ChunkReader::parse_chunk(std::vector<Message> *out, std::string *why) {
  ByteReader r(pending_.data() + pos_, pending_.size() - pos_);
  uint8_t b0;
  if (!r.u8(&b0))
    return 0;
  const uint8_t fmt = b0 >> 6;
  uint32_t csid = b0 & 0x3f;
  if (csid == 0) {
    uint8_t b1;
    if (!r.u8(&b1))
      return 0;
    csid = 64 + b1;
  } else if (csid == 1) {
    uint8_t b1, b2;
    if (!r.u8(&b1) || !r.u8(&b2))
      return 0;
    csid = 64 + b1 + 256u * b2;
  }
  auto it = streams_.find(csid);
  if (it == streams_.end()) {
    if (streams_.size() >= limits_.max_chunk_streams) {
      *why = "too many chunk streams";
      return -1;
    }
    if (fmt != 0) {
      *why = "chunk stream " + std::to_string(csid) + " starts without a full (type 0) header";
      return -1;
    }
  }
  /* Nothing changes until the whole chunk is here: the header goes to `h` first. */
  static const Stream kEmpty;
  const Stream &cur = it != streams_.end() ? it->second : kEmpty;
  struct {
    uint32_t timestamp, ts_field, length, stream_id;
    uint8_t type;
    bool extended;
  } h{cur.timestamp, cur.ts_field, cur.length, cur.stream_id, cur.type, cur.extended};
  const bool new_message = cur.partial.empty();
  if (fmt < 3) {
    if (!new_message) {
      *why = "a new message header in the middle of a message";
      return -1;
    }
    uint32_t ts;
    if (!r.be24(&ts))
      return 0;
    if (fmt <= 1) {
      uint32_t len;
      uint8_t type;
      if (!r.be24(&len) || !r.u8(&type))
        return 0;
      h.length = len;
      h.type = type;
      if (fmt == 0) {
        uint32_t sid;
        if (!r.le32(&sid))
          return 0;
        h.stream_id = sid;
      }
    }
    h.extended = ts == 0xffffff;
    if (h.extended && !r.be32(&ts))
      return 0;
    h.ts_field = ts;
    h.timestamp = fmt == 0 ? ts : h.timestamp + ts;
  } else {
    if (!cur.has_header) {
      *why = "a type 3 chunk with nothing to continue";
      return -1;
    }
    if (h.extended) {
      /* The extended timestamp is repeated in type 3 chunks by most clients, and was omitted by
       * OBS until 2024: take it when the next four bytes are that value. */
      uint32_t ext;
      ByteReader peek = r;
      if (!peek.be32(&ext))
        return 0;
      if (ext == h.ts_field)
        r.skip(4);
    }
    if (new_message)
      h.timestamp += h.ts_field;
  }
  if (new_message && h.length > limits_.max_message_size) {
    *why = "message of " + std::to_string(h.length) + " bytes (limit " +
           std::to_string(limits_.max_message_size) + ")";
    return -1;
  }
  const size_t want = std::min<size_t>(chunk_size_, h.length - cur.partial.size());
  if (r.remaining() < want)
    return 0;
  if (buffered_ + want > limits_.max_buffered) {
    *why = "too much data in unfinished messages";
    return -1;
  }

  /* Commit. */
  Stream &st = streams_[csid];
  st.timestamp = h.timestamp;
  st.ts_field = h.ts_field;
  st.length = h.length;
  st.type = h.type;
  st.stream_id = h.stream_id;
  st.extended = h.extended;
  st.has_header = true;
  if (st.partial.empty()) /* a new message: room for it, but not more than data can justify (an
                           * announced length alone must not allocate) */
    st.partial.reserve(std::min<size_t>(st.length, 256 * 1024));
  st.partial.insert(st.partial.end(), r.cursor(), r.cursor() + want);
  r.skip(want);
  buffered_ += want;
  pos_ += r.pos();
  if (st.partial.size() < st.length)
    return 1;
  Message m;
  m.csid = csid;
  m.type = st.type;
  m.stream_id = st.stream_id;
  m.timestamp = st.timestamp;
  m.payload.swap(st.partial);
  buffered_ -= m.payload.size();
  if (!apply_control(m, why))
    return -1;
  out->push_back(std::move(m));
  return 1;
}

bool ChunkReader::apply_control(const Message &m, std::string *why) {
  if (m.type != kSetChunkSize && m.type != kAbort)
    return true;
  ByteReader r(m.payload);
  uint32_t v;
  if (m.type == kSetChunkSize) {
    if (!r.be32(&v)) {
      *why = "short Set Chunk Size";
      return false;
    }
    v &= 0x7fffffff;
    if (v < 1 || v > limits_.max_chunk_size) {
      *why = "chunk size " + std::to_string(v) + " (limit " +
             std::to_string(limits_.max_chunk_size) + ")";
      return false;
    }
    chunk_size_ = v;
  } else if (m.type == kAbort) {
    if (!r.be32(&v)) {
      *why = "short Abort";
      return false;
    }
    auto it = streams_.find(v);
    if (it != streams_.end()) {
      buffered_ -= it->second.partial.size();
      it->second.partial.clear();
    }
  }
  return true;
}

void ChunkWriter::write(uint32_t csid, uint8_t type, uint32_t stream_id, uint32_t timestamp,
                        const std::vector<uint8_t> &payload, std::vector<uint8_t> *out) const {
  ByteWriter w(out);
  auto basic = [&](uint8_t fmt) {
    if (csid < 64) {
      w.u8(static_cast<uint8_t>(fmt << 6 | csid));
    } else if (csid < 64 + 256) {
      w.u8(static_cast<uint8_t>(fmt << 6));
      w.u8(static_cast<uint8_t>(csid - 64));
    } else {
      w.u8(static_cast<uint8_t>(fmt << 6 | 1));
      w.u8(static_cast<uint8_t>((csid - 64) & 0xff));
      w.u8(static_cast<uint8_t>((csid - 64) >> 8));
    }
  };
  const bool ext = timestamp >= 0xffffff;
  basic(0);
  w.be24(ext ? 0xffffff : timestamp);
  w.be24(static_cast<uint32_t>(payload.size()));
  w.u8(type);
  w.le32(stream_id);
  if (ext)
    w.be32(timestamp);
  size_t off = 0;
  do {
    const size_t n = std::min<size_t>(chunk_size_, payload.size() - off);
    if (off > 0) {
      basic(3);
      if (ext)
        w.be32(timestamp);
    }
    w.bytes(payload.data() + off, n);
    off += n;
  } while (off < payload.size());
}

} // namespace costream::rtmp
