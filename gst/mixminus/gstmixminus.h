/* costream
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include "../mixer/gstcostreammixer.h"

#include <gst/gst.h>

G_BEGIN_DECLS

#define GST_TYPE_MIX_MINUS_PAD (gst_mix_minus_pad_get_type())
G_DECLARE_FINAL_TYPE(GstMixMinusPad, gst_mix_minus_pad, GST, MIX_MINUS_PAD, GstCostreamMixerPad)

#define GST_TYPE_MIX_MINUS (gst_mix_minus_get_type())
G_DECLARE_FINAL_TYPE(GstMixMinus, gst_mix_minus, GST, MIX_MINUS, GstCostreamMixer)

GST_ELEMENT_REGISTER_DECLARE(mixminus);

G_END_DECLS
