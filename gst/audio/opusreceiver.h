/* costream
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * OpusReceiver: one talker's Opus packets in, PCM out, with lost packets concealed (no GStreamer;
 * unit-tested). What a receiving peer does with `opusdec plc=true use-inband-fec=true`, for the
 * mixers' Opus inputs:
 *   - A packet that starts after a hole in the timestamps (lost packets, whether or not the jitter
 *     buffer announced them with a GAP) first conceals the hole: libopus PLC, and when the packet
 *     carries in-band FEC (LBRR), its last packet's worth is recovered from that FEC instead
 *     (`decode_fec`). A hole longer than `max_conceal` is not concealed (the talker paused; PLC
 *     would only fade out) and the decoder starts over.
 *   - A GAP (a loss the jitter buffer gave up on) is concealed at once, except its last packet's
 *     worth, left for the next packet's FEC, and up to `max_conceal` after the last packet
 *     received: GAPs beyond that are a pause too (silence, then the decoder starts over).
 *   - DTX: a packet of at most 2 bytes is the encoder's "nothing to send" frame. It decodes to
 *     silence, and the hole after it (the sender stops sending while silent, up to 400 ms) is
 *     silence too, not a loss (filled when the next packet comes, see set_fill_dtx; holes of up
 *     to 1 s).
 * Positions are in frames at 48 kHz on the talker's timeline (INT64_MIN when unknown).
 */
#pragma once

#include "opus.h"

#include <cstddef>
#include <cstdint>
#include <vector>

namespace costream {

/* Whether an Opus packet carries in-band FEC (SILK LBRR data) for the packet before it
 * (RFC 6716 section 4.2.3-4.2.4; bounds-checked). */
bool opus_packet_has_fec(const uint8_t *packet, size_t len);

class OpusReceiver {
public:
  static constexpr int kRate = 48000;

  struct Counters {
    uint64_t decoded = 0;   /* packets decoded */
    uint64_t concealed = 0; /* lost packets concealed with PLC */
    uint64_t recovered = 0; /* lost packets recovered from the next one's FEC */
    uint64_t concealed_frames = 0;
    uint64_t recovered_frames = 0;
    uint64_t dtx = 0;        /* DTX packets */
    uint64_t dtx_frames = 0; /* frames of DTX holes filled */
  };

  struct Output {
    int64_t start = INT64_MIN; /* position of pcm[0] (the hole's start when one was concealed) */
    int64_t frames = 0;        /* frames in pcm */
  };

  bool init(int channels, std::string *why = nullptr);
  int channels() const { return channels_; }
  /* Concealment on or off (off: holes stay holes, as before). */
  void set_conceal(bool on) { conceal_ = on; }
  /* Longest hole concealed, in frames at 48 kHz. */
  void set_max_conceal(int64_t frames) { max_conceal_ = frames; }
  /* Whether the hole after a DTX packet is filled (with what libopus makes of it: silence or
   * comfort noise) when the next packet comes. On for non-live input, where the mixer waits for
   * every talker's data; live, that audio would come too late to be mixed, and the mixer counts a
   * talker in DTX as present instead. */
  void set_fill_dtx(bool on) { fill_dtx_ = on; }

  /* Forgets timing and decoder state (a flush, a new segment). */
  void reset();

  /* A packet at `pos` (its duration: `frames`, from opus_packet_frames()). `pcm` receives float
   * samples from out->start: the concealed hole before the packet, then the packet. When
   * `decode` is false the packet is not decoded (nobody hears it): zeros of its length, no
   * concealment, and the decoder starts over at the next decoded packet. Returns false when the
   * packet does not decode (nothing written). */
  bool packet(const uint8_t *data, size_t len, int frames, int64_t pos, bool decode,
              std::vector<float> *pcm, Output *out);

  /* A loss announced without a packet, [pos, pos + frames). Conceals it now except its last
   * packet's worth (see above). out->frames is 0 when nothing is concealed yet. */
  void gap(int64_t pos, int64_t frames, std::vector<float> *pcm, Output *out);

  /* The last packet was DTX: the talker is silent, not gone. */
  bool in_dtx() const { return last_dtx_; }
  const Counters &counters() const { return counters_; }

private:
  /* Appends `frames` of PLC output (whole 2.5 ms steps, the last one trimmed). */
  void plc(int64_t frames, std::vector<float> *pcm);
  uint64_t packets_in(int64_t frames) const; /* lost packets a hole of `frames` stands for */
  /* Counts `frames` more concealed in the current hole. The hole is counted in packets as a
   * whole (rounded once), however many GAP events and packets it is concealed in. */
  void count_concealed(int64_t frames);

  OpusDec dec_;
  int channels_ = 1;
  bool conceal_ = true;
  bool fill_dtx_ = true;
  int64_t max_conceal_ = kRate * 120 / 1000;
  int64_t next_ = INT64_MIN;     /* where the next packet should start */
  int64_t real_end_ = INT64_MIN; /* where the last packet received ended (concealment aside) */
  int64_t hole_frames_ = 0;      /* concealed since then */
  int last_frames_ = 960;        /* duration of the last packet */
  bool last_dtx_ = false;
  bool fresh_ = true; /* nothing decoded since the decoder (re)started: nothing to conceal from */
  Counters counters_;
  std::vector<float> scratch_;
};

} // namespace costream
