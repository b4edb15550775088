/* costream
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "opusfeeds.h"

#include <algorithm>

namespace costream {

namespace {

bool same_rate(const OpusSettings &a, const OpusSettings &b) {
  return a.rate == b.rate && a.channels == b.channels;
}

bool same_tuning(const OpusSettings &a, const OpusSettings &b) {
  return a.bitrate == b.bitrate && a.complexity == b.complexity && a.inband_fec == b.inband_fec &&
         a.packet_loss_percentage == b.packet_loss_percentage && a.dtx == b.dtx;
}

} // namespace

void OpusFeeds::reset() {
  common_.reset();
  common_pending_.clear();
  own_.clear();
  discont_ = true;
}

bool OpusFeeds::block(const Config &cfg, const AudioLayout &layout, const uint8_t *common,
                      size_t bytes, const std::vector<Listener> &listeners, const OwnPcm &own_pcm,
                      const FrameFn &on_frame, std::string *error) {
  if (listeners.empty())
    return true;
  OpusSettings settings = cfg.settings;
  settings.rate = static_cast<int>(layout.rate);
  settings.channels = static_cast<int>(layout.channels);
  const size_t bpf = layout.bytes_per_frame();
  const int frame = settings.rate / 1000 * cfg.frame_ms;
  const size_t frame_bytes = static_cast<size_t>(frame) * bpf;

  if (!common_.valid() || !same_rate(common_.settings(), settings)) {
    if (!common_.init(settings, error))
      return false;
    common_pending_.clear();
    own_.clear(); /* coded at the old rate: new ones start from the shared encoder */
    discont_ = true;
  } else if (!same_tuning(common_.settings(), settings)) {
    common_.update(settings);
    for (auto &[id, own] : own_)
      own->enc.update(settings);
  }

  /* Own streams follow the slots: a new holder starts from the shared stream's state (and the part
   * of the frame already mixed); a former holder hands over after handover_ms. */
  const size_t pending_before = common_pending_.size();
  owns_.assign(listeners.size(), nullptr);
  std::map<uint64_t, std::unique_ptr<Own>> kept;
  for (size_t i = 0; i < listeners.size(); i++) {
    const auto &l = listeners[i];
    auto it = own_.find(l.id);
    std::unique_ptr<Own> own = it != own_.end() ? std::move(it->second) : nullptr;
    if (l.holder) {
      if (!own) {
        own = std::make_unique<Own>();
        own->pending = common_pending_;
      }
      own->handover_frames = -1;
    } else if (own && own->handover_frames < 0) {
      own->handover_frames = std::max(1, cfg.handover_ms / cfg.frame_ms);
    }
    if (own) {
      owns_[i] = own.get();
      kept[l.id] = std::move(own);
    }
  }
  own_.swap(kept); /* a participant no longer listening in Opus loses its own stream */

  common_pending_.insert(common_pending_.end(), common, common + bytes);
  for (size_t i = 0; i < listeners.size(); i++) {
    if (Own *own = owns_[i]) {
      const uint8_t *pcm = listeners[i].holder ? own_pcm(i) : common;
      own->pending.insert(own->pending.end(), pcm, pcm + bytes);
    }
  }

  /* Every complete frame. */
  size_t consumed = 0;
  while (common_pending_.size() - consumed >= frame_bytes) {
    for (auto &[id, own] : own_) {
      if (own->need_clone) {
        own->enc.clone_from(common_);
        own->need_clone = false;
      }
    }
    packets_.resize(static_cast<size_t>(kMaxPacket) * (1 + own_.size()));
    frame_.start = (static_cast<int64_t>(consumed) - static_cast<int64_t>(pending_before)) /
                   static_cast<int64_t>(bpf);
    frame_.frames = frame;
    frame_.discont = discont_;
    frame_.encodes = 1;
    frame_.shared.data = packets_.data();
    frame_.shared.size = common_.encode(common_pending_.data() + consumed, layout.format, frame,
                                        packets_.data(), kMaxPacket);
    frame_.shared.shared = true;
    frame_.packets.assign(listeners.size(), Packet{});
    size_t slot = 1;
    for (size_t i = 0; i < listeners.size(); i++) {
      Own *own = owns_[i];
      if (!own) {
        frame_.packets[i] = frame_.shared;
        continue;
      }
      uint8_t *out = packets_.data() + slot++ * kMaxPacket;
      frame_.encodes++;
      frame_.packets[i].data = out;
      frame_.packets[i].size =
          own->enc.encode(own->pending.data() + consumed, layout.format, frame, out, kMaxPacket);
      if (own->handover_frames > 0 && --own->handover_frames == 0) {
        own_.erase(listeners[i].id); /* the shared packets from the next frame on */
        owns_[i] = nullptr;
      }
    }
    on_frame(frame_);
    discont_ = false;
    consumed += frame_bytes;
  }
  if (consumed > 0) {
    common_pending_.erase(common_pending_.begin(), common_pending_.begin() + consumed);
    for (auto &[id, own] : own_)
      own->pending.erase(own->pending.begin(), own->pending.begin() + consumed);
  }
  return true;
}

} // namespace costream
