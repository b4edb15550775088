/* costream
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Bounds-checked big-endian reading and writing for the RTMP/AMF0/FLV codecs. A reader never
 * reads past its end: a short read fails (returns false) and leaves the position unchanged.
 */
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace costream::rtmp {

class ByteReader {
public:
  ByteReader(const uint8_t *data, size_t size) : data_(data), size_(size) {}
  explicit ByteReader(const std::vector<uint8_t> &v) : data_(v.data()), size_(v.size()) {}

  size_t pos() const { return pos_; }
  size_t remaining() const { return size_ - pos_; }
  bool empty() const { return pos_ >= size_; }
  const uint8_t *cursor() const { return data_ + pos_; }

  bool skip(size_t n) {
    if (n > remaining())
      return false;
    pos_ += n;
    return true;
  }
  bool u8(uint8_t *v) {
    if (remaining() < 1)
      return false;
    *v = data_[pos_++];
    return true;
  }
  bool be16(uint16_t *v) {
    if (remaining() < 2)
      return false;
    *v = static_cast<uint16_t>(data_[pos_] << 8 | data_[pos_ + 1]);
    pos_ += 2;
    return true;
  }
  bool be24(uint32_t *v) {
    if (remaining() < 3)
      return false;
    *v = static_cast<uint32_t>(data_[pos_]) << 16 | static_cast<uint32_t>(data_[pos_ + 1]) << 8 |
         data_[pos_ + 2];
    pos_ += 3;
    return true;
  }
  bool be32(uint32_t *v) {
    if (remaining() < 4)
      return false;
    *v = static_cast<uint32_t>(data_[pos_]) << 24 | static_cast<uint32_t>(data_[pos_ + 1]) << 16 |
         static_cast<uint32_t>(data_[pos_ + 2]) << 8 | data_[pos_ + 3];
    pos_ += 4;
    return true;
  }
  bool le32(uint32_t *v) {
    if (remaining() < 4)
      return false;
    *v = static_cast<uint32_t>(data_[pos_ + 3]) << 24 |
         static_cast<uint32_t>(data_[pos_ + 2]) << 16 |
         static_cast<uint32_t>(data_[pos_ + 1]) << 8 | data_[pos_];
    pos_ += 4;
    return true;
  }
  bool be_double(double *v) {
    if (remaining() < 8)
      return false;
    uint64_t bits = 0;
    for (int i = 0; i < 8; i++)
      bits = bits << 8 | data_[pos_ + i];
    std::memcpy(v, &bits, 8);
    pos_ += 8;
    return true;
  }
  bool bytes(size_t n, std::string *out) {
    if (n > remaining())
      return false;
    out->assign(reinterpret_cast<const char *>(data_ + pos_), n);
    pos_ += n;
    return true;
  }

private:
  const uint8_t *data_;
  size_t size_;
  size_t pos_ = 0;
};

class ByteWriter {
public:
  explicit ByteWriter(std::vector<uint8_t> *out) : out_(out) {}
  void u8(uint8_t v) { out_->push_back(v); }
  void be16(uint16_t v) {
    out_->push_back(static_cast<uint8_t>(v >> 8));
    out_->push_back(static_cast<uint8_t>(v));
  }
  void be24(uint32_t v) {
    out_->push_back(static_cast<uint8_t>(v >> 16));
    out_->push_back(static_cast<uint8_t>(v >> 8));
    out_->push_back(static_cast<uint8_t>(v));
  }
  void be32(uint32_t v) {
    be16(static_cast<uint16_t>(v >> 16));
    be16(static_cast<uint16_t>(v));
  }
  void le32(uint32_t v) {
    out_->push_back(static_cast<uint8_t>(v));
    out_->push_back(static_cast<uint8_t>(v >> 8));
    out_->push_back(static_cast<uint8_t>(v >> 16));
    out_->push_back(static_cast<uint8_t>(v >> 24));
  }
  void be_double(double d) {
    uint64_t bits;
    std::memcpy(&bits, &d, 8);
    for (int i = 7; i >= 0; i--)
      out_->push_back(static_cast<uint8_t>(bits >> (8 * i)));
  }
  void bytes(const void *p, size_t n) {
    const auto *b = static_cast<const uint8_t *>(p);
    out_->insert(out_->end(), b, b + n);
  }
  void str(const std::string &s) { bytes(s.data(), s.size()); }

private:
  std::vector<uint8_t> *out_;
};

} // namespace costream::rtmp
