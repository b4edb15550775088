/* costream
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * TalkerConverter: the GStreamer side of one mixer input, shared by backchannelmixer and
 * mixminus. It runs in the input's streaming thread: converts each buffer to the mixer's output
 * format with the GStreamer audio library's converter/resampler (or passes it through untouched
 * when the formats already match) and maps its timestamp to running time on the output's frame
 * clock, ready for a TalkerQueue.
 *
 * Not thread-safe: one streaming thread owns it.
 */
#pragma once

#include "talkerqueue.h"

#include <gst/audio/audio.h>
#include <gst/gst.h>

#include <string>

namespace costream {

/* Per-talker statistics, as the mixers expose them on their pads. */
struct TalkerStats {
  guint64 bytes = 0;
  guint64 buffers = 0;
  guint64 dropped = 0; /* input buffers dropped whole (unreadable, unconvertible, too far ahead) */
  guint64 late = 0;    /* input buffers (partly) dropped because their time had been mixed */
  guint64 late_frames = 0;
  guint64 timeouts = 0; /* times the talker stalled longer than the timeout */
  gdouble level = -127.0;
  gboolean active = FALSE;
  guint64 opus_decoded = 0;   /* Opus input: packets decoded */
  guint64 opus_skipped = 0;   /* ... and not decoded, as nobody could hear them */
  guint64 opus_concealed = 0; /* lost packets concealed (libopus PLC) */
  guint64 opus_recovered = 0; /* lost packets recovered from the next packet's in-band FEC */
  guint64 opus_dtx = 0;       /* DTX packets (the talker is silent, not gone) */
  guint64 unheard = 0;        /* raw buffers whose samples were not kept: nobody could hear them */
};

class TalkerConverter {
public:
  TalkerConverter();
  ~TalkerConverter();
  TalkerConverter(const TalkerConverter &) = delete;
  TalkerConverter &operator=(const TalkerConverter &) = delete;

  /* Input caps. Returns false with a human-readable reason when they cannot be mixed. */
  bool set_input_caps(GstCaps *caps, std::string *why);
  bool has_input() const { return in_valid_; }

  /* Output format; rebuilds the converter when it changed. */
  bool set_output(const GstAudioInfo &out, std::string *why);
  bool has_output() const { return out_valid_; }

  struct Converted {
    Chunk chunk;
    double pts = NAN; /* running time of the first frame, in output frames */
    bool discont = false;
    bool unheard = false; /* the samples were replaced by silence (nobody could hear them) */
  };
  /* Takes ownership of `buf`. `segment` is the input pad's segment. Returns false when the
   * buffer could not be read or converted (it is dropped). */
  bool convert(GstBuffer *buf, const GstSegment *segment, Converted *out);

  /* Forget converter history (after a flush or a discontinuity). */
  void reset();

  bool passthrough() const { return converter_ == nullptr; }

  /* The GstBuffer behind a zero-copy chunk (see TalkerQueue::take_exact), or nullptr: set only
   * when the chunk is all of the buffer. */
  static GstBuffer *chunk_buffer(const Chunk &c) { return static_cast<GstBuffer *>(c.tag); }
  /* Wraps (takes) a buffer in the output format as a chunk that keeps it mapped. */
  static Chunk wrap(GstBuffer *buf, guint bpf);

private:
  bool rebuild(std::string *why);

  GstAudioInfo in_info_;
  GstAudioInfo out_info_;
  bool in_valid_ = false;
  bool out_valid_ = false;
  GstAudioConverter *converter_ = nullptr;
  bool converter_fresh_ = true;  /* no output since the converter was (re)set */
  double converter_delay_ = 0.0; /* its filter delay, in output frames */
};

/* GstAudioFormat -> SampleFormat for the formats the mixers work in. */
bool sample_format_from_gst(GstAudioFormat f, SampleFormat *out);

} // namespace costream
