/* costream
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * GstCostreamOpusEnc: a GstAudioEncoder over costream's libopus wrapper (gst/audio/opus.*), the
 * encoding stage of aac2opus. Not registered as an element of its own: aac2opus creates it. The
 * base class keeps the output timestamps sample-accurate on the input timeline and resyncs on
 * discontinuities.
 */
#include "gstcostreamopusenc.h"

#include "../audio/opus.h"
#include "../audio/opusprops.h"
#include "../common/objectlock.h"

#include <vector>

GST_DEBUG_CATEGORY_STATIC(gst_costream_opus_enc_debug);
#define GST_CAT_DEFAULT gst_costream_opus_enc_debug

enum {
  PROP_0,
  PROP_OPUS_FIRST, /* costream::OpusProp order */
};

static GstStaticPadTemplate sink_template = GST_STATIC_PAD_TEMPLATE(
    "sink", GST_PAD_SINK, GST_PAD_ALWAYS,
    GST_STATIC_CAPS("audio/x-raw, format = (string) { F32LE, S16LE }, "
                    "rate = (int) { 48000, 24000, 16000, 12000, 8000 }, channels = (int) [ 1, 2 ], "
                    "layout = (string) interleaved"));
static GstStaticPadTemplate src_template = GST_STATIC_PAD_TEMPLATE(
    "src", GST_PAD_SRC, GST_PAD_ALWAYS,
    GST_STATIC_CAPS(
        "audio/x-opus, channel-mapping-family = (int) 0, "
        "rate = (int) { 48000, 24000, 16000, 12000, 8000 }, channels = (int) [ 1, 2 ]"));

struct _GstCostreamOpusEnc {
  GstAudioEncoder parent;
  /* GST_OBJECT_LOCK */
  costream::OpusProps props;
  bool settings_changed;
  /* streaming thread */
  costream::OpusEnc *enc;
  costream::SampleFormat format;
  gint frame;
  gint channels;
  std::vector<uint8_t> *padded;
};

G_DEFINE_TYPE(GstCostreamOpusEnc, gst_costream_opus_enc, GST_TYPE_AUDIO_ENCODER);

namespace {

costream::OpusSettings settings_of(GstCostreamOpusEnc *self, int rate, int channels) {
  costream::OpusSettings s;
  s.rate = rate;
  s.channels = channels;
  costream::ObjectLock lk(self);
  const costream::OpusSettings &p = self->props.settings;
  /* auto: 96 kbit/s stereo, 64 kbit/s mono (music and voice from a streamer, not a phone) */
  s.bitrate = p.bitrate > 0 ? p.bitrate : (channels == 2 ? 96000 : 64000);
  s.complexity = p.complexity;
  s.inband_fec = p.inband_fec;
  s.dtx = p.dtx;
  s.packet_loss_percentage = p.packet_loss_percentage;
  s.voice = false;
  self->settings_changed = false;
  return s;
}

} // namespace

static gboolean gst_costream_opus_enc_set_format(GstAudioEncoder *benc, GstAudioInfo *info) {
  auto *self = GST_COSTREAM_OPUS_ENC(benc);
  const int rate = GST_AUDIO_INFO_RATE(info);
  const int channels = GST_AUDIO_INFO_CHANNELS(info);
  self->format = GST_AUDIO_INFO_FORMAT(info) == GST_AUDIO_FORMAT_F32LE
                     ? costream::SampleFormat::F32
                     : costream::SampleFormat::S16;
  std::string why;
  if (!self->enc->init(settings_of(self, rate, channels), &why)) {
    GST_ELEMENT_ERROR(self, LIBRARY, INIT, ("Could not create an Opus encoder."),
                      ("%s", why.c_str()));
    return FALSE;
  }
  self->channels = channels;
  self->frame = rate / 1000 * static_cast<int>(costream::locked_copy(self, self->props.frame_ms));
  gst_audio_encoder_set_frame_samples_min(benc, self->frame);
  gst_audio_encoder_set_frame_samples_max(benc, self->frame);
  gst_audio_encoder_set_frame_max(benc, 1);
  gst_audio_encoder_set_hard_min(benc, TRUE);
  /* Packets keep the input's timestamps (packet k starts at t0 + k frames); the encoder's
   * algorithmic delay (its lookahead, 6.5 ms at 48 kHz) is part of the reported latency. */
  const int lookahead = self->enc->lookahead();
  const GstClockTime frame_time = gst_util_uint64_scale_round(self->frame, GST_SECOND, rate);
  const GstClockTime la_time = gst_util_uint64_scale_round(lookahead, GST_SECOND, rate);
  gst_audio_encoder_set_latency(benc, frame_time + la_time, frame_time + la_time);

  GstCaps *caps =
      gst_caps_new_simple("audio/x-opus", "rate", G_TYPE_INT, rate, "channels", G_TYPE_INT,
                          channels, "channel-mapping-family", G_TYPE_INT, 0, "stream-count",
                          G_TYPE_INT, 1, "coupled-count", G_TYPE_INT, channels - 1, nullptr);
  const gboolean ok = gst_audio_encoder_set_output_format(benc, caps);
  gst_caps_unref(caps);
  GST_DEBUG_OBJECT(self, "%d Hz, %d channels, %d-sample frames, lookahead %d", rate, channels,
                   self->frame, lookahead);
  return ok;
}

static GstFlowReturn gst_costream_opus_enc_handle_frame(GstAudioEncoder *benc, GstBuffer *buf) {
  auto *self = GST_COSTREAM_OPUS_ENC(benc);
  if (!buf)
    return GST_FLOW_OK; /* drain: nothing held back (frames are encoded as they come) */
  const bool changed = costream::locked_copy(self, self->settings_changed);
  if (changed)
    self->enc->update(settings_of(self, self->enc->settings().rate, self->channels));

  GstMapInfo map;
  if (!gst_buffer_map(buf, &map, GST_MAP_READ))
    return GST_FLOW_ERROR;
  const size_t bpf =
      static_cast<size_t>(self->channels) * (self->format == costream::SampleFormat::F32 ? 4 : 2);
  const size_t frames = map.size / bpf;
  const uint8_t *pcm = map.data;
  if (frames < static_cast<size_t>(self->frame)) { /* the last, partial frame: pad with silence */
    self->padded->assign(self->frame * bpf, 0);
    std::copy(map.data, map.data + frames * bpf, self->padded->begin());
    pcm = self->padded->data();
  }
  uint8_t packet[4000];
  const int n = self->enc->encode(pcm, self->format, self->frame, packet, sizeof(packet));
  gst_buffer_unmap(buf, &map);
  if (n < 0) {
    GST_ELEMENT_ERROR(self, STREAM, ENCODE, ("Opus encoding failed."), ("libopus error %d", n));
    return GST_FLOW_ERROR;
  }
  GstBuffer *out = gst_audio_encoder_allocate_output_buffer(benc, n);
  gst_buffer_fill(out, 0, packet, n);
  return gst_audio_encoder_finish_frame(benc, out, static_cast<gint>(frames));
}

static gboolean gst_costream_opus_enc_start(GstAudioEncoder *benc) {
  auto *self = GST_COSTREAM_OPUS_ENC(benc);
  delete self->enc;
  self->enc = new costream::OpusEnc();
  /* until the format is known: a frame plus libopus' 48 kHz lookahead (2.5 + 4 ms) */
  const GstClockTime latency =
      costream::locked_copy(self, self->props.frame_ms) * GST_MSECOND + 6500 * GST_USECOND;
  gst_audio_encoder_set_latency(benc, latency, latency);
  return TRUE;
}

static gboolean gst_costream_opus_enc_stop(GstAudioEncoder *benc) {
  auto *self = GST_COSTREAM_OPUS_ENC(benc);
  delete self->enc;
  self->enc = nullptr;
  return TRUE;
}

static void gst_costream_opus_enc_flush(GstAudioEncoder *benc) {
  auto *self = GST_COSTREAM_OPUS_ENC(benc);
  if (self->enc)
    self->enc->reset();
}

static void gst_costream_opus_enc_set_property(GObject *object, guint prop_id, const GValue *value,
                                               GParamSpec *pspec) {
  auto *self = GST_COSTREAM_OPUS_ENC(object);
  costream::ObjectLock lk(self);
  if (costream::opus_props_set(&self->props, PROP_OPUS_FIRST, prop_id, value, "aac2opus"))
    self->settings_changed = true;
  else
    G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec);
}

static void gst_costream_opus_enc_get_property(GObject *object, guint prop_id, GValue *value,
                                               GParamSpec *pspec) {
  auto *self = GST_COSTREAM_OPUS_ENC(object);
  costream::ObjectLock lk(self);
  if (!costream::opus_props_get(self->props, PROP_OPUS_FIRST, prop_id, value))
    G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec);
}

static void gst_costream_opus_enc_finalize(GObject *object) {
  auto *self = GST_COSTREAM_OPUS_ENC(object);
  delete self->enc;
  delete self->padded;
  G_OBJECT_CLASS(gst_costream_opus_enc_parent_class)->finalize(object);
}

/* The encoder's defaults: libopus' complexity 5, bitrate by channels (0), 20 ms packets, no FEC or
 * DTX; music and voice from a streamer (OPUS_APPLICATION_AUDIO, set in settings_of). */
static costream::OpusProps default_props() {
  costream::OpusProps p;
  p.settings.bitrate = 0;
  p.settings.complexity = 5;
  p.frame_ms = 20;
  return p;
}

void gst_costream_opus_enc_install_properties(GObjectClass *klass, guint first_id) {
  costream::OpusPropsClass c;
  c.prefix = "Opus ";
  c.bitrate_blurb = "bits per second (0: auto, 96000 stereo / 64000 mono)";
  c.defaults = default_props();
  costream::opus_props_install(klass, first_id, c);
}

const char *const *gst_costream_opus_enc_property_names = costream::kOpusPropNames;

static void gst_costream_opus_enc_class_init(GstCostreamOpusEncClass *klass) {
  auto *gobject_class = G_OBJECT_CLASS(klass);
  auto *element_class = GST_ELEMENT_CLASS(klass);
  auto *enc_class = GST_AUDIO_ENCODER_CLASS(klass);
  GST_DEBUG_CATEGORY_INIT(gst_costream_opus_enc_debug, "costreamopusenc", 0,
                          "costream libopus encoder");
  gobject_class->set_property = gst_costream_opus_enc_set_property;
  gobject_class->get_property = gst_costream_opus_enc_get_property;
  gobject_class->finalize = gst_costream_opus_enc_finalize;
  gst_costream_opus_enc_install_properties(gobject_class, PROP_OPUS_FIRST);
  gst_element_class_add_static_pad_template(element_class, &sink_template);
  gst_element_class_add_static_pad_template(element_class, &src_template);
  gst_element_class_set_static_metadata(
      element_class, "costream Opus encoder", "Codec/Encoder/Audio",
      "Encodes raw audio to Opus with libopus (aac2opus' encoder)", "costream developers");
  enc_class->start = GST_DEBUG_FUNCPTR(gst_costream_opus_enc_start);
  enc_class->stop = GST_DEBUG_FUNCPTR(gst_costream_opus_enc_stop);
  enc_class->set_format = GST_DEBUG_FUNCPTR(gst_costream_opus_enc_set_format);
  enc_class->handle_frame = GST_DEBUG_FUNCPTR(gst_costream_opus_enc_handle_frame);
  enc_class->flush = GST_DEBUG_FUNCPTR(gst_costream_opus_enc_flush);
}

static void gst_costream_opus_enc_init(GstCostreamOpusEnc *self) {
  new (&self->props) costream::OpusProps(default_props());
  self->settings_changed = false;
  self->enc = nullptr;
  self->frame = 960;
  self->channels = 1;
  self->format = costream::SampleFormat::S16;
  self->padded = new std::vector<uint8_t>();
  gst_audio_encoder_set_drainable(GST_AUDIO_ENCODER(self), TRUE);
}
