/* costream
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * costream::rtmp::FlvOutput: what an rtmpserversrc outputs for its publishes, as FLV (pure C++,
 * no GStreamer): the FLV header once, then one tag per metadata, audio and video message, on one
 * timeline across publishes.
 *
 * Timeline: the publisher's millisecond clock is mapped to running time at the first message of
 * each publish (never before the end of the previous publish, so a second publish continues the
 * timeline); the 32-bit wrap and small audio/video reorderings are followed with a signed
 * difference. The tags carry the mapped time too. The first item after a new publish is DISCONT.
 *
 * Also noticed on the way (for the element's warnings and stats): H.264 with B-frames (a non-zero
 * composition time) and the interval between keyframes.
 */
#pragma once

#include "session.h"

#include <cstdint>
#include <functional>
#include <vector>

namespace costream::rtmp {

class FlvOutput {
public:
  /* One buffer to output; times in nanoseconds of running time. */
  struct Item {
    std::vector<uint8_t> bytes;
    uint64_t pts = 0;
    bool header = false;  /* the FLV header */
    bool discont = false; /* the first after a new publish (or the very first) */
    bool delta = false;   /* a video tag that is not a keyframe */
  };
  struct Notes {
    bool bframes = false;           /* this message is H.264 with B-frames */
    uint64_t keyframe_interval = 0; /* this message is a keyframe: ns since the previous one */
  };

  /* A publish starts: its first message maps the publisher's clock. */
  void start_publish();
  /* The publish ended: the next item is DISCONT. */
  void end_publish();
  /* Forgets everything (the element restarts): the next item is the FLV header again. */
  void reset();

  /* One metadata, audio or video message of the publish: appends what to output. `now` gives the
   * running time now (asked at a publish's first message only). */
  void message(const SessionEvent &e, const std::function<uint64_t()> &now, std::vector<Item> *out,
               Notes *notes);

  /* End of the timeline so far (the latest pts). */
  uint64_t end() const { return last_pts_; }

private:
  uint64_t map_time(uint32_t ts, const std::function<uint64_t()> &now);

  bool header_sent_ = false;
  bool discont_ = true;
  uint64_t last_pts_ = 0;
  /* this publish */
  bool have_first_ = false;
  uint32_t last_ts_ = 0;
  int64_t ext_ms_ = 0; /* publisher clock, extended past 32 bits */
  uint64_t base_ = 0;
  bool have_keyframe_ = false;
  uint64_t last_keyframe_ = 0;
};

} // namespace costream::rtmp
