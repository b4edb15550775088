/* costream
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <gst/base/gstpushsrc.h>
#include <gst/gst.h>

G_BEGIN_DECLS

#define GST_TYPE_RTMP_SERVER_SRC (gst_rtmp_server_src_get_type())
G_DECLARE_FINAL_TYPE(GstRtmpServerSrc, gst_rtmp_server_src, GST, RTMP_SERVER_SRC, GstPushSrc)

GST_ELEMENT_REGISTER_DECLARE(rtmpserversrc);

G_END_DECLS
