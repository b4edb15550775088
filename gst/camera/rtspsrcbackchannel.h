/* costream
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Sending one RTP packet into rtspsrc's ONVIF back channel, with the same reference semantics on
 * every GStreamer version: the caller keeps its reference to `sample`.
 *
 * rtspsrc's `push-backchannel-sample` (1.22) was wired to the `push-backchannel-buffer` handler
 * in 1.22.0, which unrefs the sample; 1.22.1 fixed it (gst-plugins-good 3ce43c8014), and Debian
 * bookworm ships 1.22.0. Before 1.22 only `push-backchannel-buffer` exists, and it always unrefs.
 */
#pragma once

#include <gst/gst.h>

namespace costream {

/* Whether rtspsrc's back-channel signal takes the sample's reference on this GStreamer. */
bool rtspsrc_backchannel_takes_sample();

GstFlowReturn rtspsrc_push_backchannel(GstElement *rtspsrc, guint stream_id, GstSample *sample);

} // namespace costream
