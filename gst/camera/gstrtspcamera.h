/* costream
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <gst/gst.h>

G_BEGIN_DECLS

#define GST_TYPE_RTSP_CAMERA (gst_rtsp_camera_get_type())
G_DECLARE_FINAL_TYPE(GstRtspCamera, gst_rtsp_camera, GST, RTSP_CAMERA, GstBin)

GST_ELEMENT_REGISTER_DECLARE(rtspcamera);

G_END_DECLS
