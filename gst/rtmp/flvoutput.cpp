/* costream
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "flvoutput.h"

#include "flv.h"

#include <algorithm>

namespace costream::rtmp {

namespace {
constexpr uint64_t kMs = 1000000; /* ns */
} // namespace

void FlvOutput::start_publish() {
  have_first_ = false;
  have_keyframe_ = false;
}

void FlvOutput::end_publish() {
  discont_ = true;
  have_first_ = false;
  have_keyframe_ = false;
}

void FlvOutput::reset() {
  *this = FlvOutput();
}

uint64_t FlvOutput::map_time(uint32_t ts, const std::function<uint64_t()> &now) {
  if (!have_first_) {
    have_first_ = true;
    last_ts_ = ts;
    ext_ms_ = 0;
    base_ = std::max(now(), last_pts_); /* the timeline never goes back */
    return base_;
  }
  /* 32-bit wrap and small reorderings between audio and video: signed difference */
  ext_ms_ += static_cast<int32_t>(ts - last_ts_);
  last_ts_ = ts;
  const int64_t ms = std::max<int64_t>(ext_ms_, -static_cast<int64_t>(base_ / kMs));
  return static_cast<uint64_t>(static_cast<int64_t>(base_) + ms * static_cast<int64_t>(kMs));
}

void FlvOutput::message(const SessionEvent &e, const std::function<uint64_t()> &now,
                        std::vector<Item> *out, Notes *notes) {
  *notes = Notes();
  const uint64_t pts = map_time(e.timestamp, now);
  if (!header_sent_) {
    /* the FLV header alone, so downstream can tell it from the tags */
    Item h;
    flv::write_header(true, true, &h.bytes);
    h.pts = pts;
    h.header = true;
    h.discont = true;
    header_sent_ = true;
    discont_ = false;
    out->push_back(std::move(h));
  }
  const uint8_t type = e.kind == SessionEvent::Metadata ? flv::kScript
                       : e.kind == SessionEvent::Audio  ? flv::kAudio
                                                        : flv::kVideo;
  Item t;
  t.pts = pts;
  flv::write_tag(type, static_cast<uint32_t>(pts / kMs), e.payload.data(), e.payload.size(),
                 &t.bytes);
  t.discont = discont_;
  discont_ = false;
  if (type == flv::kVideo) {
    const bool nalu = flv::avc_packet_type(e.payload) == 1;
    notes->bframes = nalu && flv::avc_composition_time(e.payload) != 0;
    if (!flv::is_keyframe(e.payload)) {
      t.delta = true;
    } else if (nalu) {
      if (have_keyframe_ && pts > last_keyframe_)
        notes->keyframe_interval = pts - last_keyframe_;
      have_keyframe_ = true;
      last_keyframe_ = pts;
    }
  }
  last_pts_ = std::max(last_pts_, pts);
  out->push_back(std::move(t));
}

} // namespace costream::rtmp
