/* costream
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * The Opus encoder settings as GObject properties, declared once for every element that encodes
 * Opus with gst/audio/opus.* (mixminus's return feeds, the AAC->Opus encoder, and the bins that
 * expose it: aac2opus, rtmpbridge). The GObject glue beside the pure OpusSettings.
 */
#pragma once

#include "opus.h"

#include <glib-object.h>

namespace costream {

/* The properties, installed from a `first_id` on in this order. */
enum class OpusProp : guint { Bitrate, Complexity, FrameDuration, InbandFec, Dtx, PacketLoss };
constexpr guint kOpusPropCount = 6;
/* Their names, in that order, null-terminated. */
extern const char *const kOpusPropNames[];

/* What the properties hold (an element keeps one, under its object lock). */
struct OpusProps {
  OpusSettings settings;
  guint frame_ms = 20; /* 10 or 20 */
};

/* What differs between the elements: the blurbs' prefix ("Opus feeds: "), what a bitrate of 0
 * means, and the defaults. */
struct OpusPropsClass {
  const char *prefix;
  const char *bitrate_blurb; /* e.g. "bits per second of every encoder (0 = libopus chooses)" */
  OpusProps defaults;
};

void opus_props_install(GObjectClass *klass, guint first_id, const OpusPropsClass &c);
/* Under the caller's lock. false: prop_id is not one of the Opus properties. A frame-duration
 * other than 10 or 20 is refused with a warning naming `who`. */
bool opus_props_set(OpusProps *p, guint first_id, guint prop_id, const GValue *value,
                    const char *who);
bool opus_props_get(const OpusProps &p, guint first_id, guint prop_id, GValue *value);

} // namespace costream
