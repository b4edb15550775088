/* costream
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Thin RAII wrappers over libopus (no GStreamer): an encoder whose whole state can be copied
 * (`clone_from`, used by mixminus to hand a listener from the shared encoder to their own
 * without a seam at the receiver), and a decoder.
 *
 * libopus keeps an encoder's state in one flat block (opus_encoder_get_size / _init exist so
 * applications can place it themselves); its only pointers refer to libopus' constant mode
 * tables, so a byte copy in the same process is a faithful copy of the state.
 */
#pragma once

#include "sampleformat.h"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

struct OpusEncoder;
struct OpusDecoder;

namespace costream {

struct OpusSettings {
  int rate = 48000;    /* 8000, 12000, 16000, 24000 or 48000 */
  int channels = 1;    /* 1 or 2 */
  int bitrate = 32000; /* bits/s; 0: libopus chooses */
  int complexity = 5;  /* 0-10 */
  bool inband_fec = false;
  bool dtx = false;
  int packet_loss_percentage = 0;
  bool voice = true; /* OPUS_APPLICATION_VOIP, else AUDIO */
};

bool opus_rate_supported(int rate);
/* Frames a packet decodes to at `rate`, or a negative libopus error (bounds-checked). */
int opus_packet_frames(const uint8_t *packet, size_t len, int rate);

class OpusEnc {
public:
  OpusEnc() = default;
  ~OpusEnc();
  OpusEnc(const OpusEnc &) = delete;
  OpusEnc &operator=(const OpusEnc &) = delete;

  bool init(const OpusSettings &s, std::string *why = nullptr);
  bool valid() const { return st_ != nullptr; }
  const OpusSettings &settings() const { return settings_; }
  /* Applies bitrate, complexity, FEC, DTX and loss settings (rate and channels stay). */
  void update(const OpusSettings &s);
  /* Forgets the stream so far (a new stream starts). */
  void reset();
  /* Becomes an exact copy of `other` (same rate and channels). */
  void clone_from(const OpusEnc &other);
  /* Samples the encoder looks ahead (its algorithmic delay), at its rate. */
  int lookahead() const;

  /* Encodes one frame of `frames` interleaved samples (2.5 to 60 ms). Returns the packet size,
   * or a negative libopus error. S32 input is converted to float. */
  int encode(const void *pcm, SampleFormat fmt, int frames, uint8_t *out, int max_bytes);

private:
  OpusEncoder *st_ = nullptr;
  size_t size_ = 0;
  OpusSettings settings_;
  std::vector<float> scratch_;
};

class OpusDec {
public:
  OpusDec() = default;
  ~OpusDec();
  OpusDec(const OpusDec &) = delete;
  OpusDec &operator=(const OpusDec &) = delete;

  bool init(int rate, int channels, std::string *why = nullptr);
  bool valid() const { return st_ != nullptr; }
  /* Decodes a packet (nullptr/0: conceal a lost one of `max_frames`) into float samples.
   * Returns frames decoded or a negative libopus error. */
  int decode(const uint8_t *packet, size_t len, float *out, int max_frames);
  /* Decodes the in-band FEC that `packet` carries for the packet before it: `frames` (the lost
   * packet's duration, a multiple of 2.5 ms) of float samples. Without FEC data libopus conceals
   * instead. Returns frames or a negative libopus error. */
  int decode_fec(const uint8_t *packet, size_t len, float *out, int frames);
  void reset();

private:
  OpusDecoder *st_ = nullptr;
  int channels_ = 1;
};

} // namespace costream
