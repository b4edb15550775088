/* costream
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * GstFlvTagDemux: the FLV demuxer inside rtmpbridge. `flvdemux` in 1.22 waits up to 6 s for a
 * stream announced in the header that may never come (an audio-only publish); this one exposes
 * `audio` (audio/mpeg, mpegversion 4, raw, with codec_data) and `video` (video/x-h264, avc, au,
 * with codec_data) the moment each sequence header arrives, keeps them across a publisher
 * restart, and renegotiates when the codec configuration changes. Tag timestamps (ms) are the
 * DTS; video PTS adds the composition time. Other codecs are logged and skipped.
 */
#include "gstflvtagdemux.h"

#include "../rtmp/flv.h"

#include <gst/base/gstflowcombiner.h>

#include <string>
#include <vector>

GST_DEBUG_CATEGORY_STATIC(gst_flv_tag_demux_debug);
#define GST_CAT_DEFAULT gst_flv_tag_demux_debug

static GstStaticPadTemplate sink_template =
    GST_STATIC_PAD_TEMPLATE("sink", GST_PAD_SINK, GST_PAD_ALWAYS, GST_STATIC_CAPS("video/x-flv"));
static GstStaticPadTemplate audio_template = GST_STATIC_PAD_TEMPLATE(
    "audio", GST_PAD_SRC, GST_PAD_SOMETIMES,
    GST_STATIC_CAPS("audio/mpeg, mpegversion = (int) 4, stream-format = (string) raw"));
static GstStaticPadTemplate video_template = GST_STATIC_PAD_TEMPLATE(
    "video", GST_PAD_SRC, GST_PAD_SOMETIMES,
    GST_STATIC_CAPS("video/x-h264, stream-format = (string) avc, alignment = (string) au"));

namespace {
struct Stream {
  GstPad *pad = nullptr;
  std::vector<uint8_t> config; /* the sequence header's codec configuration */
  bool need_segment = true;
  bool discont = true;
};
} // namespace

struct _GstFlvTagDemux {
  GstElement parent;
  GstPad *sinkpad;
  /* streaming thread */
  costream::flv::TagReader *reader;
  Stream *audio, *video;
  GstFlowCombiner *flows;
  guint group_id;
  bool warned_audio, warned_video;
};

G_DEFINE_TYPE(GstFlvTagDemux, gst_flv_tag_demux, GST_TYPE_ELEMENT);

namespace {

/* AudioSpecificConfig: object type (5 bits), frequency index (4, or 15 + 24 bits), channels (4). */
bool parse_asc(const std::vector<uint8_t> &asc, int *rate, int *channels) {
  static const int rates[] = {96000, 88200, 64000, 48000, 44100, 32000, 24000,
                              22050, 16000, 12000, 11025, 8000,  7350};
  if (asc.size() < 2)
    return false;
  uint64_t bits = 0;
  for (size_t i = 0; i < std::min<size_t>(asc.size(), 8); i++)
    bits |= static_cast<uint64_t>(asc[i]) << (56 - 8 * i);
  int pos = 0;
  auto take = [&](int n) {
    const int v = static_cast<int>((bits << pos) >> (64 - n));
    pos += n;
    return v;
  };
  int object = take(5);
  if (object == 31)
    object = 32 + take(6);
  const int index = take(4);
  if (index == 15) {
    if (asc.size() < 5)
      return false;
    *rate = take(24);
  } else if (index < 13) {
    *rate = rates[index];
  } else {
    return false;
  }
  *channels = take(4);
  return *rate > 0 && *channels >= 1 && *channels <= 8;
}

void push_sticky(GstFlvTagDemux *self, Stream &s, GstCaps *caps) {
  gchar *id = gst_pad_create_stream_id(s.pad, GST_ELEMENT(self), GST_PAD_NAME(s.pad));
  GstEvent *ss = gst_event_new_stream_start(id);
  gst_event_set_group_id(ss, self->group_id);
  g_free(id);
  gst_pad_push_event(s.pad, ss);
  gst_pad_push_event(s.pad, gst_event_new_caps(caps));
}

/* The stream for a sequence header: created (pad added) the first time, new caps after. */
void configure(GstFlvTagDemux *self, Stream **sp, bool audio, const std::vector<uint8_t> &config) {
  GstBuffer *cd = gst_buffer_new_memdup(config.data(), config.size());
  GstCaps *caps;
  if (audio) {
    int rate = 0, channels = 0;
    caps = gst_caps_new_simple("audio/mpeg", "mpegversion", G_TYPE_INT, 4, "stream-format",
                               G_TYPE_STRING, "raw", "codec_data", GST_TYPE_BUFFER, cd, nullptr);
    if (parse_asc(config, &rate, &channels))
      gst_caps_set_simple(caps, "rate", G_TYPE_INT, rate, "channels", G_TYPE_INT, channels,
                          nullptr);
  } else {
    caps = gst_caps_new_simple("video/x-h264", "stream-format", G_TYPE_STRING, "avc", "alignment",
                               G_TYPE_STRING, "au", "codec_data", GST_TYPE_BUFFER, cd, nullptr);
  }
  gst_buffer_unref(cd);
  if (!*sp) {
    auto *s = new Stream();
    s->pad = gst_pad_new_from_static_template(audio ? &audio_template : &video_template,
                                              audio ? "audio" : "video");
    gst_pad_use_fixed_caps(s->pad);
    gst_pad_set_active(s->pad, TRUE);
    s->config = config;
    *sp = s;
    push_sticky(self, *s, caps);
    gst_flow_combiner_add_pad(self->flows, s->pad);
    GST_INFO_OBJECT(self, "%s: %" GST_PTR_FORMAT, audio ? "audio" : "video", caps);
    gst_element_add_pad(GST_ELEMENT(self), s->pad);
    /* with both or one stream known the application may link: tell it no more are coming
     * only at EOS (a publisher may add the other codec later) */
  } else if ((*sp)->config != config) {
    (*sp)->config = config;
    GST_INFO_OBJECT(self, "new %s configuration: %" GST_PTR_FORMAT, audio ? "audio" : "video",
                    caps);
    gst_pad_push_event((*sp)->pad, gst_event_new_caps(caps));
  }
  gst_caps_unref(caps);
}

GstFlowReturn push(GstFlvTagDemux *self, Stream &s, GstBuffer *buf) {
  if (s.need_segment) {
    GstSegment seg;
    gst_segment_init(&seg, GST_FORMAT_TIME);
    gst_pad_push_event(s.pad, gst_event_new_segment(&seg));
    s.need_segment = false;
  }
  if (s.discont) {
    GST_BUFFER_FLAG_SET(buf, GST_BUFFER_FLAG_DISCONT);
    s.discont = false;
  }
  const GstFlowReturn r = gst_pad_push(s.pad, buf);
  return gst_flow_combiner_update_pad_flow(self->flows, s.pad, r);
}

GstFlowReturn handle_tag(GstFlvTagDemux *self, costream::flv::Tag &t) {
  const GstClockTime dts = static_cast<GstClockTime>(t.timestamp) * GST_MSECOND;
  if (t.type == costream::flv::kAudio) {
    if (t.data.size() < 2 || (t.data[0] >> 4) != 10) {
      if (!self->warned_audio && !t.data.empty()) {
        self->warned_audio = true;
        GST_ELEMENT_WARNING(self, STREAM, CODEC_NOT_FOUND,
                            ("The publisher sends audio that is not AAC (FLV sound format %d): "
                             "it is ignored.",
                             t.data[0] >> 4),
                            (nullptr));
      }
      return GST_FLOW_OK;
    }
    std::vector<uint8_t> payload(t.data.begin() + 2, t.data.end());
    if (t.data[1] == 0) {
      configure(self, &self->audio, true, payload);
      return GST_FLOW_OK;
    }
    if (!self->audio)
      return GST_FLOW_OK; /* no sequence header yet */
    GstBuffer *b = gst_buffer_new_memdup(payload.data(), payload.size());
    GST_BUFFER_PTS(b) = GST_BUFFER_DTS(b) = dts;
    return push(self, *self->audio, b);
  }
  if (t.type == costream::flv::kVideo) {
    const int type = costream::flv::avc_packet_type(t.data);
    if (type < 0) {
      if (!self->warned_video && !t.data.empty()) {
        self->warned_video = true;
        GST_ELEMENT_WARNING(self, STREAM, CODEC_NOT_FOUND,
                            ("The publisher sends video that is not H.264 (FLV codec %d): it is "
                             "ignored.",
                             t.data[0] & 0x0f),
                            (nullptr));
      }
      return GST_FLOW_OK;
    }
    if (t.data.size() < 5)
      return GST_FLOW_OK;
    std::vector<uint8_t> payload(t.data.begin() + 5, t.data.end());
    if (type == 0) {
      configure(self, &self->video, false, payload);
      return GST_FLOW_OK;
    }
    if (type != 1 || !self->video || payload.empty())
      return GST_FLOW_OK;
    const int32_t cts = costream::flv::avc_composition_time(t.data);
    GstBuffer *b = gst_buffer_new_memdup(payload.data(), payload.size());
    GST_BUFFER_DTS(b) = dts;
    GST_BUFFER_PTS(b) = cts >= 0 || dts >= static_cast<GstClockTime>(-cts) * GST_MSECOND
                            ? dts + static_cast<GstClockTimeDiff>(cts) * GST_MSECOND
                            : dts;
    if (!costream::flv::is_keyframe(t.data))
      GST_BUFFER_FLAG_SET(b, GST_BUFFER_FLAG_DELTA_UNIT);
    return push(self, *self->video, b);
  }
  return GST_FLOW_OK; /* script data: rtmpserversrc posted it already */
}

void free_stream(GstFlvTagDemux *self, Stream *&s) {
  if (!s)
    return;
  gst_flow_combiner_remove_pad(self->flows, s->pad);
  gst_pad_set_active(s->pad, FALSE);
  gst_element_remove_pad(GST_ELEMENT(self), s->pad);
  delete s;
  s = nullptr;
}

} // namespace

static GstFlowReturn gst_flv_tag_demux_chain(GstPad *pad, GstObject *parent, GstBuffer *buf) {
  auto *self = GST_FLV_TAG_DEMUX(parent);
  if (GST_BUFFER_FLAG_IS_SET(buf, GST_BUFFER_FLAG_DISCONT)) {
    for (Stream *s : {self->audio, self->video})
      if (s)
        s->discont = true;
  }
  GstMapInfo map;
  if (!gst_buffer_map(buf, &map, GST_MAP_READ)) {
    gst_buffer_unref(buf);
    return GST_FLOW_ERROR;
  }
  std::vector<costream::flv::Tag> tags;
  std::string why;
  const bool ok = self->reader->feed(map.data, map.size, &tags, &why);
  gst_buffer_unmap(buf, &map);
  gst_buffer_unref(buf);
  if (!ok) {
    GST_ELEMENT_ERROR(self, STREAM, DEMUX, ("Malformed FLV stream."), ("%s", why.c_str()));
    return GST_FLOW_ERROR;
  }
  GstFlowReturn ret = GST_FLOW_OK;
  for (auto &t : tags) {
    ret = handle_tag(self, t);
    if (ret != GST_FLOW_OK)
      break;
  }
  return ret;
}

static gboolean gst_flv_tag_demux_sink_event(GstPad *pad, GstObject *parent, GstEvent *event) {
  auto *self = GST_FLV_TAG_DEMUX(parent);
  switch (GST_EVENT_TYPE(event)) {
  case GST_EVENT_CAPS:
  case GST_EVENT_SEGMENT:
  case GST_EVENT_STREAM_START:
    gst_event_unref(event); /* ours are our own */
    return TRUE;
  case GST_EVENT_EOS:
    if (!self->audio && !self->video) {
      GST_ELEMENT_ERROR(self, STREAM, DEMUX,
                        ("The stream ended with no AAC audio and no H.264 video."), (nullptr));
      gst_event_unref(event);
      return TRUE;
    }
    gst_element_no_more_pads(GST_ELEMENT(self));
    return gst_pad_event_default(pad, parent, event);
  case GST_EVENT_FLUSH_STOP:
    gst_flow_combiner_reset(self->flows);
    for (Stream *s : {self->audio, self->video})
      if (s)
        s->need_segment = true;
    return gst_pad_event_default(pad, parent, event);
  default:
    return gst_pad_event_default(pad, parent, event);
  }
}

static GstStateChangeReturn gst_flv_tag_demux_change_state(GstElement *element,
                                                           GstStateChange transition) {
  auto *self = GST_FLV_TAG_DEMUX(element);
  if (transition == GST_STATE_CHANGE_READY_TO_PAUSED) {
    delete self->reader;
    self->reader = new costream::flv::TagReader();
    self->group_id = gst_util_group_id_next();
  }
  GstStateChangeReturn ret =
      GST_ELEMENT_CLASS(gst_flv_tag_demux_parent_class)->change_state(element, transition);
  if (transition == GST_STATE_CHANGE_PAUSED_TO_READY) {
    free_stream(self, self->audio);
    free_stream(self, self->video);
    gst_flow_combiner_reset(self->flows);
    self->warned_audio = self->warned_video = false;
  }
  return ret;
}

static void gst_flv_tag_demux_finalize(GObject *object) {
  auto *self = GST_FLV_TAG_DEMUX(object);
  delete self->reader;
  delete self->audio;
  delete self->video;
  gst_flow_combiner_free(self->flows);
  G_OBJECT_CLASS(gst_flv_tag_demux_parent_class)->finalize(object);
}

static void gst_flv_tag_demux_class_init(GstFlvTagDemuxClass *klass) {
  auto *element_class = GST_ELEMENT_CLASS(klass);
  G_OBJECT_CLASS(klass)->finalize = gst_flv_tag_demux_finalize;
  GST_DEBUG_CATEGORY_INIT(gst_flv_tag_demux_debug, "flvtagdemux", 0, "rtmpbridge's FLV demuxer");
  element_class->change_state = GST_DEBUG_FUNCPTR(gst_flv_tag_demux_change_state);
  gst_element_class_add_static_pad_template(element_class, &sink_template);
  gst_element_class_add_static_pad_template(element_class, &audio_template);
  gst_element_class_add_static_pad_template(element_class, &video_template);
  gst_element_class_set_static_metadata(element_class, "FLV tag demuxer", "Codec/Demuxer",
                                        "AAC and H.264 out of FLV tags, pads as soon as the codecs "
                                        "are known (rtmpbridge)",
                                        "costream developers");
}

static void gst_flv_tag_demux_init(GstFlvTagDemux *self) {
  self->sinkpad = gst_pad_new_from_static_template(&sink_template, "sink");
  gst_pad_set_chain_function(self->sinkpad, GST_DEBUG_FUNCPTR(gst_flv_tag_demux_chain));
  gst_pad_set_event_function(self->sinkpad, GST_DEBUG_FUNCPTR(gst_flv_tag_demux_sink_event));
  gst_element_add_pad(GST_ELEMENT(self), self->sinkpad);
  self->reader = new costream::flv::TagReader();
  self->audio = self->video = nullptr;
  self->flows = gst_flow_combiner_new();
  self->group_id = gst_util_group_id_next();
  self->warned_audio = self->warned_video = false;
}
