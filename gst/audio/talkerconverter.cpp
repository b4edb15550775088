/* costream
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "talkerconverter.h"

#include <algorithm>
#include <cmath>

namespace costream {

namespace {

struct MappedBuffer {
  GstBuffer *buffer;
  GstMapInfo map;
  ~MappedBuffer() {
    gst_buffer_unmap(buffer, &map);
    gst_buffer_unref(buffer);
  }
};

} // namespace

bool sample_format_from_gst(GstAudioFormat f, SampleFormat *out) {
  switch (f) {
  case GST_AUDIO_FORMAT_S16:
    *out = SampleFormat::S16;
    return true;
  case GST_AUDIO_FORMAT_S32:
    *out = SampleFormat::S32;
    return true;
  case GST_AUDIO_FORMAT_F32:
    *out = SampleFormat::F32;
    return true;
  default:
    return false;
  }
}

TalkerConverter::TalkerConverter() {
  gst_audio_info_init(&in_info_);
  gst_audio_info_init(&out_info_);
}

TalkerConverter::~TalkerConverter() {
  if (converter_)
    gst_audio_converter_free(converter_);
}

bool TalkerConverter::set_input_caps(GstCaps *caps, std::string *why) {
  GstAudioInfo info;
  if (!gst_audio_info_from_caps(&info, caps)) {
    *why = "caps are not complete raw audio caps";
    return false;
  }
  if (GST_AUDIO_INFO_LAYOUT(&info) != GST_AUDIO_LAYOUT_INTERLEAVED) {
    *why = "only interleaved audio is accepted";
    return false;
  }
  SampleFormat sf;
  if (!sample_format_from_gst(GST_AUDIO_INFO_FORMAT(&info), &sf)) {
    *why = std::string("sample format ") + GST_AUDIO_INFO_NAME(&info) +
           " is not one of S16LE, S32LE, F32LE";
    return false;
  }
  if (GST_AUDIO_INFO_RATE(&info) < 8000 || GST_AUDIO_INFO_RATE(&info) > 48000) {
    *why = "rate " + std::to_string(GST_AUDIO_INFO_RATE(&info)) + " Hz is outside 8000-48000 Hz";
    return false;
  }
  if (GST_AUDIO_INFO_CHANNELS(&info) < 1 || GST_AUDIO_INFO_CHANNELS(&info) > 2) {
    *why = std::to_string(GST_AUDIO_INFO_CHANNELS(&info)) + " channels: only mono or stereo";
    return false;
  }
  const bool changed = !in_valid_ || !gst_audio_info_is_equal(&info, &in_info_);
  GstAudioInfo old = in_info_;
  bool old_valid = in_valid_;
  in_info_ = info;
  in_valid_ = true;
  if (changed && out_valid_ && !rebuild(why)) {
    in_info_ = old;
    in_valid_ = old_valid;
    return false;
  }
  return true;
}

bool TalkerConverter::set_output(const GstAudioInfo &out, std::string *why) {
  if (out_valid_ && gst_audio_info_is_equal(&out, &out_info_))
    return true;
  out_info_ = out;
  out_valid_ = true;
  return in_valid_ ? rebuild(why) : true;
}

bool TalkerConverter::rebuild(std::string *why) {
  if (converter_) {
    gst_audio_converter_free(converter_);
    converter_ = nullptr;
  }
  if (gst_audio_info_is_equal(&in_info_, &out_info_))
    return true;
  converter_ =
      gst_audio_converter_new(GST_AUDIO_CONVERTER_FLAG_NONE, &in_info_, &out_info_, nullptr);
  converter_fresh_ = true;
  converter_delay_ = 0.0;
  if (!converter_) {
    *why = "no conversion from the input format to the output format";
    return false;
  }
  return true;
}

Chunk TalkerConverter::wrap(GstBuffer *buf, guint bpf) {
  Chunk c;
  GstMapInfo map;
  if (!gst_buffer_map(buf, &map, GST_MAP_READ)) {
    gst_buffer_unref(buf);
    return c;
  }
  auto mb = std::make_shared<MappedBuffer>();
  mb->buffer = buf;
  mb->map = map;
  c.data = map.data;
  c.frames = static_cast<uint32_t>(map.size / bpf);
  if (static_cast<gsize>(c.frames) * bpf == map.size)
    c.tag = buf; /* the chunk is the whole buffer: it may be forwarded as it is */
  c.keepalive = std::move(mb);
  return c;
}

bool TalkerConverter::convert(GstBuffer *buf, const GstSegment *segment, Converted *result) {
  if (!in_valid_ || !out_valid_) {
    gst_buffer_unref(buf);
    return false;
  }

  double pts_frames = NAN;
  if (GST_BUFFER_PTS_IS_VALID(buf) && segment->format == GST_FORMAT_TIME) {
    guint64 rt = gst_segment_to_running_time(segment, GST_FORMAT_TIME, GST_BUFFER_PTS(buf));
    if (GST_CLOCK_TIME_IS_VALID(rt))
      pts_frames = static_cast<double>(rt) * GST_AUDIO_INFO_RATE(&out_info_) / GST_SECOND;
  }
  const bool discont = GST_BUFFER_IS_DISCONT(buf);

  GstBuffer *out = buf;
  if (gst_buffer_get_size(buf) == 0 && GST_BUFFER_FLAG_IS_SET(buf, GST_BUFFER_FLAG_GAP) &&
      GST_BUFFER_DURATION_IS_VALID(buf)) {
    /* A GAP event (GstAggregator turns them into empty GAP buffers): silence for its duration,
     * so non-live inputs stay aligned and the time counts as covered. At most 10 s. */
    const guint rate = GST_AUDIO_INFO_RATE(&out_info_);
    const guint64 frames =
        std::min<guint64>(gst_util_uint64_scale_round(GST_BUFFER_DURATION(buf), rate, GST_SECOND),
                          static_cast<guint64>(rate) * 10);
    const gsize size = frames * GST_AUDIO_INFO_BPF(&out_info_);
    gst_buffer_unref(buf);
    out = gst_buffer_new_allocate(nullptr, size, nullptr);
    gst_buffer_memset(out, 0, 0, size);
  } else if (converter_) {
    GstMapInfo in_map;
    if (!gst_buffer_map(buf, &in_map, GST_MAP_READ)) {
      gst_buffer_unref(buf);
      return false;
    }
    const gsize in_frames = in_map.size / GST_AUDIO_INFO_BPF(&in_info_);
    const gsize out_frames = gst_audio_converter_get_out_frames(converter_, in_frames);
    out = gst_buffer_new_allocate(nullptr, out_frames * GST_AUDIO_INFO_BPF(&out_info_), nullptr);
    GstMapInfo out_map;
    gst_buffer_map(out, &out_map, GST_MAP_WRITE);
    gpointer in_ptr = in_map.data, out_ptr = out_map.data;
    const gboolean ok = gst_audio_converter_samples(converter_, GST_AUDIO_CONVERTER_FLAG_NONE,
                                                    &in_ptr, in_frames, &out_ptr, out_frames);
    gst_buffer_unmap(out, &out_map);
    gst_buffer_unmap(buf, &in_map);
    gst_buffer_unref(buf);
    /* A resampling converter's first output is short by its filter delay, and every later
     * output starts that much before its input's timestamp. Measure the shortfall once and
     * shift later timestamps by it, or the drift loop would take the constant offset for drift. */
    if (converter_fresh_) {
      converter_fresh_ = false;
      const double expected = static_cast<double>(in_frames) * GST_AUDIO_INFO_RATE(&out_info_) /
                              GST_AUDIO_INFO_RATE(&in_info_);
      converter_delay_ = std::max(0.0, expected - static_cast<double>(out_frames));
    } else if (std::isfinite(pts_frames)) {
      pts_frames -= converter_delay_;
    }
    if (!ok) {
      gst_buffer_unref(out);
      return false;
    }
  }

  result->chunk = wrap(out, GST_AUDIO_INFO_BPF(&out_info_));
  result->pts = pts_frames;
  result->discont = discont;
  return result->chunk.keepalive != nullptr;
}

void TalkerConverter::reset() {
  if (converter_) {
    gst_audio_converter_reset(converter_);
    converter_fresh_ = true;
    converter_delay_ = 0.0;
  }
}

} // namespace costream
