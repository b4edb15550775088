/* costream
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <gst/gst.h>

G_BEGIN_DECLS

#define GST_TYPE_AAC2OPUS (gst_aac2opus_get_type())
G_DECLARE_FINAL_TYPE(GstAac2Opus, gst_aac2opus, GST, AAC2OPUS, GstBin)

GST_ELEMENT_REGISTER_DECLARE(aac2opus);

G_END_DECLS
