/* costream
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <gst/gst.h>

G_BEGIN_DECLS

/* rtmpbridge's FLV demuxer: AAC and H.264 (AVC) tags to `audio` and `video` sometimes pads, added
 * as soon as each codec's sequence header arrives (no waiting for a stream that never comes). */
#define GST_TYPE_FLV_TAG_DEMUX (gst_flv_tag_demux_get_type())
G_DECLARE_FINAL_TYPE(GstFlvTagDemux, gst_flv_tag_demux, GST, FLV_TAG_DEMUX, GstElement)

G_END_DECLS
