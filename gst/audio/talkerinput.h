/* costream
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * TalkerInput: the GStreamer side of one mixer input, shared by backchannelmixer and mixminus.
 * It converts incoming buffers to the mixer's output format with the GStreamer audio library's
 * converter/resampler (or passes them through untouched when the formats already match), maps
 * their timestamps to running time on the output's frame clock, and feeds them to a TalkerQueue.
 * It also keeps the per-talker statistics and level meter.
 *
 * Not thread-safe: the owner serialises access (the mixers take their pad's input lock).
 */
#pragma once

#include "level.h"
#include "talkerqueue.h"

#include <gst/audio/audio.h>
#include <gst/gst.h>

#include <string>

namespace costream {

struct TalkerStats {
  guint64 bytes = 0;
  guint64 buffers = 0;
  guint64 dropped = 0; /* input buffers dropped whole (invalid, unconvertible, too far ahead) */
  guint64 late = 0;    /* input buffers (partly) dropped because their time had been mixed */
  guint64 late_frames = 0;
  guint64 timeouts = 0; /* times the talker stalled longer than the timeout */
  gdouble level = kSilenceDbov;
  gboolean active = FALSE;
};

class TalkerInput {
public:
  TalkerInput();
  ~TalkerInput();
  TalkerInput(const TalkerInput &) = delete;
  TalkerInput &operator=(const TalkerInput &) = delete;

  /* Input caps. Returns false with a human-readable reason when they cannot be mixed. */
  bool set_input_caps(GstCaps *caps, std::string *why);
  bool has_input() const { return in_valid_; }
  const GstAudioInfo &input_info() const { return in_info_; }

  /* Output format and queue behaviour; drops queued data when the output format changes. */
  bool set_output(const GstAudioInfo &out, const TalkerQueue::Config &qcfg, std::string *why);

  /* Takes ownership of `buf`. `segment` is the input pad's segment (TIME). */
  TalkerQueue::PushResult push(GstBuffer *buf, const GstSegment *segment);

  void flush();

  TalkerQueue &queue() { return queue_; }
  LevelMeter &meter() { return meter_; }
  TalkerStats &stats() { return stats_; }
  bool passthrough() const { return converter_ == nullptr; }

  /* The GstBuffer behind a zero-copy chunk (see TalkerQueue::take_exact), or nullptr. */
  static GstBuffer *chunk_buffer(const Chunk &c) { return static_cast<GstBuffer *>(c.tag); }

private:
  Chunk wrap(GstBuffer *buf);
  bool rebuild_converter(std::string *why);

  GstAudioInfo in_info_;
  GstAudioInfo out_info_;
  bool in_valid_ = false;
  bool out_valid_ = false;
  GstAudioConverter *converter_ = nullptr;
  bool converter_fresh_ = true;  /* no output since the converter was (re)set */
  double converter_delay_ = 0.0; /* its filter delay, in output frames */
  TalkerQueue queue_;
  TalkerQueue::Config qcfg_;
  LevelMeter meter_;
  TalkerStats stats_;
};

/* GstAudioFormat -> SampleFormat for the formats the mixers work in. */
bool sample_format_from_gst(GstAudioFormat f, SampleFormat *out);

} // namespace costream
