/* costream
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * costream::OpusFeeds: the Opus return feeds of a mix-minus room, one block at a time (pure C++,
 * no GStreamer).
 *
 * Every listener without a speaker slot hears the same common mix, so one shared encoder codes it
 * once and all of them get the same packet. A slot holder hears the common mix minus themselves
 * and gets an encoder of their own. The seams are where a listener moves between the two:
 *   - joining the slots, the own encoder starts as a byte copy of the shared one (and the part of
 *     the frame already mixed), so the listener's decoder continues without a seam;
 *   - leaving them, the own encoder keeps running on the common mix for `handover_ms` before the
 *     listener is switched to the shared packets: by then both encoders have coded the same audio
 *     long enough for the decoder to take the shared stream without a seam.
 * Frames are `frame_ms` long, independent of the block length: audio is kept across blocks until a
 * frame is complete.
 */
#pragma once

#include "../audio/opus.h"

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace costream {

class OpusFeeds {
public:
  struct Config {
    OpusSettings settings; /* rate and channels are the block's */
    int frame_ms = 20;
    int handover_ms = 200;
  };
  /* One Opus listener of a block. */
  struct Listener {
    uint64_t id = 0;     /* stable per participant: own encoders are kept by it */
    bool holder = false; /* holds a speaker slot in this block */
  };
  /* One encoded frame: `packets[i]` for listener i (size <= 0: none, the encoding failed). Shared
   * packets point to the same bytes (`shared`), so a caller can send one buffer to all of them. */
  struct Packet {
    const uint8_t *data = nullptr;
    int size = 0;
    bool shared = false;
  };
  struct Frame {
    int64_t start = 0;    /* where it starts, in mix frames from the block's first (< 0: before) */
    int frames = 0;       /* its length in mix frames */
    bool discont = false; /* the first frame of the streams */
    Packet shared;        /* the shared stream's packet */
    std::vector<Packet> packets;
    int encodes = 0; /* encoder runs for this frame (the shared one plus every own stream) */
  };

  /* A holder's own mix for this block (`bytes` of PCM), asked for lazily, once per holder that
   * has an own stream. */
  using OwnPcm = std::function<const uint8_t *(size_t listener)>;
  using FrameFn = std::function<void(const Frame &)>;

  /* Codes one block: `common` is the common mix (`bytes` in `layout`), `listeners` every Opus
   * listener in this block (a participant missing from it loses its own stream). Calls `on_frame`
   * for each frame completed. False (and `error`) when no encoder could be made. */
  bool block(const Config &cfg, const AudioLayout &layout, const uint8_t *common, size_t bytes,
             const std::vector<Listener> &listeners, const OwnPcm &own_pcm, const FrameFn &on_frame,
             std::string *error);
  /* A new stream: every encoder forgets, and the next frame is a discont. */
  void reset();
  /* Listeners with an own encoder (holders and those being handed over). */
  size_t own_streams() const { return own_.size(); }
  bool has_own(uint64_t id) const { return own_.count(id) > 0; }

private:
  struct Own {
    OpusEnc enc;
    std::vector<uint8_t> pending; /* PCM of the frame being filled */
    bool need_clone = true;       /* starts as a copy of the shared encoder */
    int handover_frames = -1;     /* >= 0: no longer a holder, frames left before the switch */
  };
  OpusEnc common_;
  std::vector<uint8_t> common_pending_;
  bool discont_ = true;
  std::map<uint64_t, std::unique_ptr<Own>> own_;
  std::vector<Own *> owns_; /* per listener of the current block (nullptr: shared) */
  static constexpr int kMaxPacket = 4000;
  std::vector<uint8_t> packets_; /* the shared packet, then one per own stream of the block */
  Frame frame_;
};

} // namespace costream
