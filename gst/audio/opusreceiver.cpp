/* costream
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "opusreceiver.h"

#include <opus.h>

#include <algorithm>

namespace costream {

bool opus_packet_has_fec(const uint8_t *packet, size_t len) {
  if (!packet || len < 2 || len > 1275 * 48)
    return false;
  const int config = packet[0] >> 3;
  if (config >= 16) /* CELT only: no SILK layer, no LBRR */
    return false;
  const unsigned char *frames[48];
  opus_int16 sizes[48];
  unsigned char toc;
  const int n =
      opus_packet_parse(packet, static_cast<opus_int32>(len), &toc, frames, sizes, nullptr);
  if (n <= 0 || sizes[0] <= 0)
    return false;
  /* The SILK header of the first Opus frame: one VAD flag per 20 ms SILK frame, then the LBRR
   * flag, for the mid channel (then the same for the side channel when stereo). With equally
   * likely bits they are the first byte's top bits. */
  const int per_frame = opus_packet_get_samples_per_frame(packet, 48000);
  const int silk_frames = per_frame > 960 ? per_frame / 960 : 1;
  const unsigned char first = frames[0][0];
  bool lbrr = (first >> (7 - silk_frames)) & 1;
  if (opus_packet_get_nb_channels(packet) == 2)
    lbrr = lbrr || ((first >> (6 - 2 * silk_frames)) & 1);
  return lbrr;
}

bool OpusReceiver::init(int channels, std::string *why) {
  channels_ = channels;
  reset();
  return dec_.init(kRate, channels, why);
}

void OpusReceiver::reset() {
  dec_.reset();
  next_ = INT64_MIN;
  real_end_ = INT64_MIN;
  hole_frames_ = 0;
  last_dtx_ = false;
  fresh_ = true;
}

uint64_t OpusReceiver::packets_in(int64_t frames) const {
  /* to the nearest packet: a hole measured from live timestamps is a packet's worth give or take
   * a little, and a sliver of a millisecond or two is timing, not a lost packet */
  return static_cast<uint64_t>((frames + last_frames_ / 2) / last_frames_);
}

void OpusReceiver::count_concealed(int64_t frames) {
  const uint64_t before = packets_in(hole_frames_);
  hole_frames_ += frames;
  counters_.concealed += packets_in(hole_frames_) - before;
  counters_.concealed_frames += static_cast<uint64_t>(frames);
}

void OpusReceiver::plc(int64_t frames, std::vector<float> *pcm) {
  constexpr int kStep = kRate / 400; /* 2.5 ms: PLC sizes are whole steps */
  constexpr int kMax = kRate * 120 / 1000;
  while (frames > 0) {
    const int want = static_cast<int>(std::min<int64_t>(frames, kMax));
    const int ask = (want + kStep - 1) / kStep * kStep;
    scratch_.resize(static_cast<size_t>(ask) * channels_);
    int got = dec_.decode(nullptr, 0, scratch_.data(), ask);
    if (got < 0) { /* should not happen; silence keeps the timeline */
      std::fill(scratch_.begin(), scratch_.end(), 0.f);
      got = ask;
    }
    const int use = std::min(want, got);
    pcm->insert(pcm->end(), scratch_.begin(),
                scratch_.begin() + static_cast<size_t>(use) * channels_);
    frames -= use;
    if (use == 0)
      break;
  }
}

bool OpusReceiver::packet(const uint8_t *data, size_t len, int frames, int64_t pos, bool decode,
                          std::vector<float> *pcm, Output *out) {
  pcm->clear();
  out->start = pos;
  out->frames = 0;
  const bool dtx = len <= 2;

  /* The hole before this packet. */
  int64_t hole = 0;
  if (pos != INT64_MIN && next_ != INT64_MIN)
    hole = pos - next_;
  const bool tolerable = hole > kRate / 1000; /* more than 1 ms: not rounding */
  constexpr int64_t kMaxDtxHole = kRate;      /* 1 s */
  if (decode && tolerable && last_dtx_ && !fresh_ && hole <= kMaxDtxHole) {
    if (fill_dtx_) { /* the sender was silent, not lost */
      out->start = next_;
      plc(hole, pcm);
      counters_.dtx_frames += static_cast<uint64_t>(hole);
    }
  } else if (!decode) {
    fresh_ = true; /* nothing to conceal from: the decoder starts over at the next decode */
  } else if (tolerable && pos - real_end_ > max_conceal_) {
    reset(); /* a pause, not a loss: start over */
  } else if (tolerable && conceal_ && !last_dtx_ && !fresh_) {
    out->start = next_;
    /* A hole a little short of a packet (live timestamps wander by a millisecond or two) is
     * still one lost packet: its FEC is decoded whole and its start trimmed to fit. */
    constexpr int64_t kSlack = kRate / 400; /* 2.5 ms */
    const bool fec = !dtx && hole + kSlack >= frames && opus_packet_has_fec(data, len);
    const int64_t plc_frames = fec ? std::max<int64_t>(0, hole - frames) : hole;
    const int64_t fec_trim = fec ? std::max<int64_t>(0, frames - hole) : 0;
    if (plc_frames > 0) {
      plc(plc_frames, pcm);
      count_concealed(plc_frames);
    }
    if (fec) {
      const size_t at = pcm->size();
      pcm->resize(at + static_cast<size_t>(frames) * channels_);
      const int got = dec_.decode_fec(data, len, pcm->data() + at, frames);
      if (got != frames) { /* conceal that part instead */
        pcm->resize(at);
        plc(frames - fec_trim, pcm);
        counters_.concealed++;
        counters_.concealed_frames += static_cast<uint64_t>(frames - fec_trim);
      } else {
        pcm->erase(pcm->begin() + static_cast<std::ptrdiff_t>(at),
                   pcm->begin() + static_cast<std::ptrdiff_t>(at + fec_trim * channels_));
        counters_.recovered++;
        counters_.recovered_frames += static_cast<uint64_t>(frames - fec_trim);
      }
    }
  }
  /* The packet itself. */
  const size_t at = pcm->size();
  pcm->resize(at + static_cast<size_t>(frames) * channels_);
  if (decode) {
    if (fresh_)
      dec_.reset(); /* its state is from before the skipped packets, or from before a pause */
    const int got = dec_.decode(data, len, pcm->data() + at, frames);
    if (got != frames) {
      pcm->clear();
      out->start = pos;
      return false;
    }
    fresh_ = false;
    counters_.decoded++;
  } else {
    std::fill(pcm->begin() + static_cast<std::ptrdiff_t>(at), pcm->end(), 0.f);
  }
  if (dtx)
    counters_.dtx++;
  last_dtx_ = dtx;
  last_frames_ = frames;
  if (pos != INT64_MIN)
    next_ = pos + frames;
  else if (next_ != INT64_MIN)
    next_ += frames;
  real_end_ = next_;
  hole_frames_ = 0;
  out->frames = static_cast<int64_t>(pcm->size() / channels_);
  return true;
}

void OpusReceiver::gap(int64_t pos, int64_t frames, std::vector<float> *pcm, Output *out) {
  pcm->clear();
  out->start = next_;
  out->frames = 0;
  if (!conceal_ || fresh_ || last_dtx_ || next_ == INT64_MIN || pos == INT64_MIN)
    return;
  /* All but the last packet's worth, which the next packet's FEC may bring back, and no more
   * than max_conceal after the last packet: a longer loss is a pause (the next packet starts
   * over), whether it is announced in one GAP or packet by packet. */
  const int64_t end = pos + frames;
  const int64_t until = std::min(end - last_frames_, real_end_ + max_conceal_);
  if (until <= next_)
    return;
  const int64_t n = until - next_;
  plc(n, pcm);
  count_concealed(n);
  next_ = until;
  out->frames = n;
}

} // namespace costream
