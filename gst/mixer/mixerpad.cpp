/* costream
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * GstCostreamMixerPad: a talker's sink pad. Its properties are what an application sets (volume,
 * mute: TalkerControls) and what the output thread last showed (TalkerShown); its streaming
 * functions are in talkerinput.cpp.
 */

#include "mixerprivate.h"

#define GST_CAT_DEFAULT gst_costream_mixer_debug

using namespace costream::mixer;

/* ------------------------------------------------------------------------------------------ */
/* Pad                                                                                          */

enum {
  PROP_PAD_0,
  PROP_PAD_VOLUME,
  PROP_PAD_MUTE,
  PROP_PAD_BYTES,
  PROP_PAD_BUFFERS,
  PROP_PAD_DROPPED,
  PROP_PAD_LATE,
  PROP_PAD_TIMEOUTS,
  PROP_PAD_LEVEL,
  PROP_PAD_ACTIVE,
  PROP_PAD_CONCEALED,
  PROP_PAD_RECOVERED,
};

typedef struct {
  GstCostreamMixerPadPrivate *priv;
} GstCostreamMixerPadInstancePrivate;

G_DEFINE_TYPE_WITH_PRIVATE(GstCostreamMixerPad, gst_costream_mixer_pad, GST_TYPE_PAD);

GstCostreamMixerPadPrivate *gst_costream_mixer_pad_priv(GstCostreamMixerPad *pad) {
  return static_cast<GstCostreamMixerPadInstancePrivate *>(
             gst_costream_mixer_pad_get_instance_private(pad))
      ->priv;
}

static void gst_costream_mixer_pad_get_property(GObject *object, guint prop_id, GValue *value,
                                                GParamSpec *pspec) {
  auto *pad = GST_COSTREAM_MIXER_PAD(object);
  auto *pp = pad_priv(pad);
  if (prop_id == PROP_PAD_VOLUME || prop_id == PROP_PAD_MUTE) {
    costream::ObjectLock lk(pad);
    if (prop_id == PROP_PAD_VOLUME)
      g_value_set_double(value, pp->controls.volume);
    else
      g_value_set_boolean(value, pp->controls.mute);
    return;
  }
  std::lock_guard<std::mutex> lk(pp->shown.lock);
  const auto &st = pp->shown.stats;
  switch (prop_id) {
  case PROP_PAD_BYTES:
    g_value_set_uint64(value, st.bytes);
    break;
  case PROP_PAD_BUFFERS:
    g_value_set_uint64(value, st.buffers);
    break;
  case PROP_PAD_DROPPED:
    g_value_set_uint64(value, st.dropped);
    break;
  case PROP_PAD_LATE:
    g_value_set_uint64(value, st.late);
    break;
  case PROP_PAD_TIMEOUTS:
    g_value_set_uint64(value, st.timeouts);
    break;
  case PROP_PAD_LEVEL:
    g_value_set_double(value, st.level);
    break;
  case PROP_PAD_ACTIVE:
    g_value_set_boolean(value, st.active);
    break;
  case PROP_PAD_CONCEALED:
    g_value_set_uint64(value, st.opus_concealed);
    break;
  case PROP_PAD_RECOVERED:
    g_value_set_uint64(value, st.opus_recovered);
    break;
  default:
    G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec);
    break;
  }
}

static void gst_costream_mixer_pad_set_property(GObject *object, guint prop_id, const GValue *value,
                                                GParamSpec *pspec) {
  auto *pad = GST_COSTREAM_MIXER_PAD(object);
  auto *pp = pad_priv(pad);
  costream::ObjectLock lk(pad);
  switch (prop_id) {
  case PROP_PAD_VOLUME:
    pp->controls.volume = g_value_get_double(value);
    break;
  case PROP_PAD_MUTE:
    pp->controls.mute = g_value_get_boolean(value);
    break;
  default:
    G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec);
    break;
  }
  pp->controls.gain.store(pp->controls.mute ? 0.f : static_cast<float>(pp->controls.volume),
                          std::memory_order_relaxed);
}

static void gst_costream_mixer_pad_finalize(GObject *object) {
  auto *ip = static_cast<GstCostreamMixerPadInstancePrivate *>(
      gst_costream_mixer_pad_get_instance_private(GST_COSTREAM_MIXER_PAD(object)));
  delete ip->priv;
  ip->priv = nullptr;
  G_OBJECT_CLASS(gst_costream_mixer_pad_parent_class)->finalize(object);
}

static void gst_costream_mixer_pad_class_init(GstCostreamMixerPadClass *klass) {
  auto *gobject_class = G_OBJECT_CLASS(klass);
  gobject_class->get_property = gst_costream_mixer_pad_get_property;
  gobject_class->set_property = gst_costream_mixer_pad_set_property;
  gobject_class->finalize = gst_costream_mixer_pad_finalize;

  const auto ro = static_cast<GParamFlags>(G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);
  const auto rw = static_cast<GParamFlags>(G_PARAM_READWRITE | GST_PARAM_CONTROLLABLE |
                                           GST_PARAM_MUTABLE_PLAYING | G_PARAM_STATIC_STRINGS);

  /**
   * GstCostreamMixerPad:volume:
   *
   * Gain applied to this talker (1.0 = unchanged).
   */
  g_object_class_install_property(
      gobject_class, PROP_PAD_VOLUME,
      g_param_spec_double("volume", "Volume", "Gain applied to this talker (1.0 = unchanged)", 0.0,
                          10.0, DEFAULT_PAD_VOLUME, rw));
  /**
   * GstCostreamMixerPad:mute:
   *
   * Leaves this talker out of the mix (its statistics and level keep updating).
   */
  g_object_class_install_property(
      gobject_class, PROP_PAD_MUTE,
      g_param_spec_boolean("mute", "Mute",
                           "Leave this talker out of the mix (statistics keep updating)",
                           DEFAULT_PAD_MUTE, rw));
  g_object_class_install_property(gobject_class, PROP_PAD_BYTES,
                                  g_param_spec_uint64("bytes", "Bytes",
                                                      "Bytes of audio received on this pad", 0,
                                                      G_MAXUINT64, 0, ro));
  g_object_class_install_property(gobject_class, PROP_PAD_BUFFERS,
                                  g_param_spec_uint64("buffers", "Buffers",
                                                      "Buffers received on this pad", 0,
                                                      G_MAXUINT64, 0, ro));
  g_object_class_install_property(
      gobject_class, PROP_PAD_DROPPED,
      g_param_spec_uint64("dropped", "Dropped",
                          "Buffers dropped whole (unreadable, or too far ahead of the output)", 0,
                          G_MAXUINT64, 0, ro));
  g_object_class_install_property(
      gobject_class, PROP_PAD_LATE,
      g_param_spec_uint64("late", "Late",
                          "Buffers that arrived after their time had been mixed (the late part "
                          "was dropped, not mixed late)",
                          0, G_MAXUINT64, 0, ro));
  g_object_class_install_property(
      gobject_class, PROP_PAD_TIMEOUTS,
      g_param_spec_uint64("timeouts", "Timeouts",
                          "Times this talker stopped sending for longer than the element's "
                          "timeout and was treated as silent",
                          0, G_MAXUINT64, 0, ro));
  g_object_class_install_property(
      gobject_class, PROP_PAD_LEVEL,
      g_param_spec_double("level", "Level",
                          "Smoothed input level in dBov (RFC 6464 meaning; -127 = silence). From "
                          "the buffers' GstAudioLevelMeta when they carry one",
                          costream::kSilenceDbov, 0.0, costream::kSilenceDbov, ro));
  g_object_class_install_property(
      gobject_class, PROP_PAD_ACTIVE,
      g_param_spec_boolean("active", "Active", "Whether this talker is currently heard in the mix",
                           FALSE, ro));
  /**
   * GstCostreamMixerPad:concealed:
   *
   * Opus input: packets lost on the way (a hole in the timestamps, or a GAP from the jitter
   * buffer) and concealed with libopus packet loss concealment.
   */
  g_object_class_install_property(
      gobject_class, PROP_PAD_CONCEALED,
      g_param_spec_uint64("concealed", "Concealed",
                          "Opus input: lost packets concealed (libopus PLC)", 0, G_MAXUINT64, 0,
                          ro));
  /**
   * GstCostreamMixerPad:recovered:
   *
   * Opus input: lost packets recovered from the in-band FEC of the packet after them (senders
   * with `inband-fec` and a `packet-loss-percentage`).
   */
  g_object_class_install_property(
      gobject_class, PROP_PAD_RECOVERED,
      g_param_spec_uint64("recovered", "Recovered",
                          "Opus input: lost packets recovered from the next packet's in-band FEC",
                          0, G_MAXUINT64, 0, ro));
}

static void gst_costream_mixer_pad_init(GstCostreamMixerPad *pad) {
  auto *ip = static_cast<GstCostreamMixerPadInstancePrivate *>(
      gst_costream_mixer_pad_get_instance_private(pad));
  ip->priv = new GstCostreamMixerPadPrivate();
  gst_segment_init(&ip->priv->in.segment, GST_FORMAT_TIME);
  ip->priv->q.meter.configure();
  ip->priv->in.shadow_meter.configure();
}

void gst_costream_mixer_pad_set_active(GstCostreamMixerPad *pad, gboolean active) {
  auto *pp = pad_priv(pad);
  if (pp->shown.stats.active == active) /* only the output thread writes it */
    return;
  std::lock_guard<std::mutex> lk(pp->shown.lock);
  pp->shown.stats.active = active;
}
GstStructure *gst_costream_mixer_pad_stats(GstCostreamMixerPad *p) {
  auto *pp = pad_priv(p);
  costream::TalkerStats st;
  {
    std::lock_guard<std::mutex> lk(pp->shown.lock);
    st = pp->shown.stats;
  }
  double volume;
  gboolean mute;
  {
    costream::ObjectLock lk(p);
    volume = pp->controls.volume;
    mute = pp->controls.mute;
  }
  return gst_structure_new(
      "talker", "pad", G_TYPE_STRING, GST_PAD_NAME(p), "bytes", G_TYPE_UINT64, st.bytes, "buffers",
      G_TYPE_UINT64, st.buffers, "dropped", G_TYPE_UINT64, st.dropped, "late", G_TYPE_UINT64,
      st.late, "late-frames", G_TYPE_UINT64, st.late_frames, "timeouts", G_TYPE_UINT64, st.timeouts,
      "level", G_TYPE_DOUBLE, st.level, "active", G_TYPE_BOOLEAN, st.active, "opus-decoded",
      G_TYPE_UINT64, st.opus_decoded, "opus-skipped", G_TYPE_UINT64, st.opus_skipped,
      "opus-concealed", G_TYPE_UINT64, st.opus_concealed, "opus-recovered", G_TYPE_UINT64,
      st.opus_recovered, "opus-dtx", G_TYPE_UINT64, st.opus_dtx, "unheard", G_TYPE_UINT64,
      st.unheard, "volume", G_TYPE_DOUBLE, volume, "mute", G_TYPE_BOOLEAN, mute, nullptr);
}
