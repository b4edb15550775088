/* costream
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include "../mixer/gstcostreammixer.h"

#include <gst/gst.h>

G_BEGIN_DECLS

#define GST_TYPE_BACKCHANNEL_MIXER_PAD (gst_backchannel_mixer_pad_get_type())
G_DECLARE_FINAL_TYPE(GstBackchannelMixerPad, gst_backchannel_mixer_pad, GST, BACKCHANNEL_MIXER_PAD,
                     GstCostreamMixerPad)

#define GST_TYPE_BACKCHANNEL_MIXER (gst_backchannel_mixer_get_type())
G_DECLARE_FINAL_TYPE(GstBackchannelMixer, gst_backchannel_mixer, GST, BACKCHANNEL_MIXER,
                     GstCostreamMixer)

GST_ELEMENT_REGISTER_DECLARE(backchannelmixer);

G_END_DECLS
