/* costream
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <gst/audio/gstaudioencoder.h>
#include <gst/gst.h>

G_BEGIN_DECLS

#define GST_TYPE_COSTREAM_OPUS_ENC (gst_costream_opus_enc_get_type())
G_DECLARE_FINAL_TYPE(GstCostreamOpusEnc, gst_costream_opus_enc, GST, COSTREAM_OPUS_ENC,
                     GstAudioEncoder)

G_END_DECLS

/* The encoder's properties (bitrate, complexity, frame-duration, inband-fec, dtx,
 * packet-loss-percentage) installed on another class from `first_id` on, in that order, so a bin
 * can expose and forward them. */
void gst_costream_opus_enc_install_properties(GObjectClass *klass, guint first_id);
extern const char *const *gst_costream_opus_enc_property_names;
