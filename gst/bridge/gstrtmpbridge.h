/* costream
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <gst/gst.h>

G_BEGIN_DECLS

#define GST_TYPE_RTMP_BRIDGE (gst_rtmp_bridge_get_type())
G_DECLARE_FINAL_TYPE(GstRtmpBridge, gst_rtmp_bridge, GST, RTMP_BRIDGE, GstBin)

GST_ELEMENT_REGISTER_DECLARE(rtmpbridge);

G_END_DECLS
