/* costream
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "opusprops.h"

#include <gst/gst.h>

#include <string>

namespace costream {

const char *const kOpusPropNames[] = {"bitrate",    "complexity", "frame-duration",
                                      "inband-fec", "dtx",        "packet-loss-percentage",
                                      nullptr};

namespace {

/* The blurbs live as long as the class (for ever): interned. */
const char *blurb(const OpusPropsClass &c, const char *text) {
  return g_intern_string((std::string(c.prefix) + text).c_str());
}

} // namespace

void opus_props_install(GObjectClass *klass, guint first_id, const OpusPropsClass &c) {
  const auto rw =
      static_cast<GParamFlags>(G_PARAM_READWRITE | GST_PARAM_MUTABLE_PLAYING | G_PARAM_STATIC_NAME |
                               G_PARAM_STATIC_NICK | G_PARAM_STATIC_BLURB);
  const auto rw_ready =
      static_cast<GParamFlags>((rw & ~GST_PARAM_MUTABLE_PLAYING) | GST_PARAM_MUTABLE_READY);
  const OpusSettings &d = c.defaults.settings;
  const auto id = [first_id](OpusProp p) { return first_id + static_cast<guint>(p); };
  g_object_class_install_property(
      klass, id(OpusProp::Bitrate),
      g_param_spec_int("bitrate", "Bitrate", blurb(c, c.bitrate_blurb), 0, 512000, d.bitrate, rw));
  g_object_class_install_property(
      klass, id(OpusProp::Complexity),
      g_param_spec_int("complexity", "Complexity",
                       blurb(c, "encoder complexity, 0 (fastest) to 10 (best quality)"), 0, 10,
                       d.complexity, rw));
  g_object_class_install_property(klass, id(OpusProp::FrameDuration),
                                  g_param_spec_uint("frame-duration", "Frame duration",
                                                    blurb(c, "milliseconds per packet (10 or 20)"),
                                                    10, 20, c.defaults.frame_ms, rw_ready));
  g_object_class_install_property(
      klass, id(OpusProp::InbandFec),
      g_param_spec_boolean("inband-fec", "In-band FEC",
                           blurb(c, "in-band forward error correction (the receiver recovers a "
                                    "lost packet from the next one; needs "
                                    "packet-loss-percentage above 0)"),
                           d.inband_fec, rw));
  g_object_class_install_property(
      klass, id(OpusProp::Dtx),
      g_param_spec_boolean("dtx", "DTX", blurb(c, "discontinuous transmission during silence"),
                           d.dtx, rw));
  g_object_class_install_property(
      klass, id(OpusProp::PacketLoss),
      g_param_spec_int("packet-loss-percentage", "Packet loss percentage",
                       blurb(c, "packet loss (%) the encoder prepares for (with inband-fec: the "
                                "more, the more bits go to FEC)"),
                       0, 100, d.packet_loss_percentage, rw));
}

bool opus_props_set(OpusProps *p, guint first_id, guint prop_id, const GValue *value,
                    const char *who) {
  if (prop_id < first_id || prop_id >= first_id + kOpusPropCount)
    return false;
  OpusSettings &s = p->settings;
  switch (static_cast<OpusProp>(prop_id - first_id)) {
  case OpusProp::Bitrate:
    s.bitrate = g_value_get_int(value);
    break;
  case OpusProp::Complexity:
    s.complexity = g_value_get_int(value);
    break;
  case OpusProp::FrameDuration: {
    const guint ms = g_value_get_uint(value);
    if (ms == 10 || ms == 20)
      p->frame_ms = ms;
    else
      g_warning("%s: frame-duration must be 10 or 20 (ms), not %u", who, ms);
    break;
  }
  case OpusProp::InbandFec:
    s.inband_fec = g_value_get_boolean(value);
    break;
  case OpusProp::Dtx:
    s.dtx = g_value_get_boolean(value);
    break;
  case OpusProp::PacketLoss:
    s.packet_loss_percentage = g_value_get_int(value);
    break;
  }
  return true;
}

bool opus_props_get(const OpusProps &p, guint first_id, guint prop_id, GValue *value) {
  if (prop_id < first_id || prop_id >= first_id + kOpusPropCount)
    return false;
  const OpusSettings &s = p.settings;
  switch (static_cast<OpusProp>(prop_id - first_id)) {
  case OpusProp::Bitrate:
    g_value_set_int(value, s.bitrate);
    break;
  case OpusProp::Complexity:
    g_value_set_int(value, s.complexity);
    break;
  case OpusProp::FrameDuration:
    g_value_set_uint(value, p.frame_ms);
    break;
  case OpusProp::InbandFec:
    g_value_set_boolean(value, s.inband_fec);
    break;
  case OpusProp::Dtx:
    g_value_set_boolean(value, s.dtx);
    break;
  case OpusProp::PacketLoss:
    g_value_set_int(value, s.packet_loss_percentage);
    break;
  }
  return true;
}

} // namespace costream
