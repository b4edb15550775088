/* costream
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "opus.h"

#include <opus.h>

#include <cstdlib>
#include <cstring>

namespace costream {

bool opus_rate_supported(int rate) {
  return rate == 8000 || rate == 12000 || rate == 16000 || rate == 24000 || rate == 48000;
}

int opus_packet_frames(const uint8_t *packet, size_t len, int rate) {
  if (!packet || len == 0 || len > 1275 * 3 + 7)
    return OPUS_INVALID_PACKET;
  return opus_packet_get_nb_samples(packet, static_cast<opus_int32>(len), rate);
}

OpusEnc::~OpusEnc() {
  std::free(st_);
}

bool OpusEnc::init(const OpusSettings &s, std::string *why) {
  if (!opus_rate_supported(s.rate) || s.channels < 1 || s.channels > 2) {
    if (why)
      *why = "Opus encodes 8, 12, 16, 24 or 48 kHz, mono or stereo";
    return false;
  }
  const size_t size = static_cast<size_t>(opus_encoder_get_size(s.channels));
  if (!st_ || size != size_) {
    std::free(st_);
    st_ = static_cast<OpusEncoder *>(std::malloc(size)); /* malloc: suitably aligned */
    size_ = size;
  }
  if (!st_)
    return false;
  const int err = opus_encoder_init(st_, s.rate, s.channels,
                                    s.voice ? OPUS_APPLICATION_VOIP : OPUS_APPLICATION_AUDIO);
  if (err != OPUS_OK) {
    if (why)
      *why = opus_strerror(err);
    std::free(st_);
    st_ = nullptr;
    return false;
  }
  settings_ = s;
  update(s);
  return true;
}

void OpusEnc::update(const OpusSettings &s) {
  if (!st_)
    return;
  settings_.bitrate = s.bitrate;
  settings_.complexity = s.complexity;
  settings_.inband_fec = s.inband_fec;
  settings_.dtx = s.dtx;
  settings_.packet_loss_percentage = s.packet_loss_percentage;
  opus_encoder_ctl(st_, OPUS_SET_BITRATE(s.bitrate > 0 ? s.bitrate : OPUS_AUTO));
  opus_encoder_ctl(st_, OPUS_SET_COMPLEXITY(s.complexity));
  opus_encoder_ctl(st_, OPUS_SET_INBAND_FEC(s.inband_fec ? 1 : 0));
  opus_encoder_ctl(st_, OPUS_SET_DTX(s.dtx ? 1 : 0));
  opus_encoder_ctl(st_, OPUS_SET_PACKET_LOSS_PERC(s.packet_loss_percentage));
}

void OpusEnc::reset() {
  if (st_)
    opus_encoder_ctl(st_, OPUS_RESET_STATE);
}

void OpusEnc::clone_from(const OpusEnc &other) {
  if (!other.st_)
    return;
  if (!st_ || size_ != other.size_) {
    std::free(st_);
    st_ = static_cast<OpusEncoder *>(std::malloc(other.size_));
    size_ = other.size_;
  }
  std::memcpy(static_cast<void *>(st_), other.st_, size_);
  settings_ = other.settings_;
}

int OpusEnc::lookahead() const {
  opus_int32 l = 0;
  if (st_)
    opus_encoder_ctl(st_, OPUS_GET_LOOKAHEAD(&l));
  return l;
}

int OpusEnc::encode(const void *pcm, SampleFormat fmt, int frames, uint8_t *out, int max_bytes) {
  if (!st_)
    return OPUS_INVALID_STATE;
  switch (fmt) {
  case SampleFormat::S16:
    return opus_encode(st_, static_cast<const opus_int16 *>(pcm), frames, out, max_bytes);
  case SampleFormat::F32:
    return opus_encode_float(st_, static_cast<const float *>(pcm), frames, out, max_bytes);
  case SampleFormat::S32: {
    const size_t n = static_cast<size_t>(frames) * settings_.channels;
    scratch_.resize(n);
    const auto *in = static_cast<const int32_t *>(pcm);
    for (size_t i = 0; i < n; i++)
      scratch_[i] = static_cast<float>(in[i] * (1.0 / 2147483648.0));
    return opus_encode_float(st_, scratch_.data(), frames, out, max_bytes);
  }
  }
  return OPUS_BAD_ARG;
}

OpusDec::~OpusDec() {
  if (st_)
    opus_decoder_destroy(st_);
}

bool OpusDec::init(int rate, int channels, std::string *why) {
  if (st_)
    opus_decoder_destroy(st_);
  st_ = nullptr;
  int err = OPUS_OK;
  st_ = opus_decoder_create(rate, channels, &err);
  if (err != OPUS_OK || !st_) {
    if (why)
      *why = opus_strerror(err);
    st_ = nullptr;
    return false;
  }
  channels_ = channels;
  return true;
}

int OpusDec::decode(const uint8_t *packet, size_t len, float *out, int max_frames) {
  if (!st_)
    return OPUS_INVALID_STATE;
  return opus_decode_float(st_, packet, static_cast<opus_int32>(len), out, max_frames, 0);
}

int OpusDec::decode_fec(const uint8_t *packet, size_t len, float *out, int frames) {
  if (!st_)
    return OPUS_INVALID_STATE;
  return opus_decode_float(st_, packet, static_cast<opus_int32>(len), out, frames, 1);
}

void OpusDec::reset() {
  if (st_)
    opus_decoder_ctl(st_, OPUS_RESET_STATE);
}

} // namespace costream
