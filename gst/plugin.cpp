/* costream
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * The costream plugin: live, low-latency audio between people.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "backchannelmixer/gstbackchannelmixer.h"
#include "mixminus/gstmixminus.h"
#include "rtmp/gstrtmpserversrc.h"
#include "bridge/gstaac2opus.h"
#include "bridge/gstrtmpbridge.h"
#include "camera/gstrtspcamera.h"

#include <gst/gst.h>

static gboolean plugin_init(GstPlugin *plugin) {
  gboolean ret = FALSE;
  ret |= GST_ELEMENT_REGISTER(backchannelmixer, plugin);
  ret |= GST_ELEMENT_REGISTER(mixminus, plugin);
  ret |= GST_ELEMENT_REGISTER(rtmpserversrc, plugin);
  ret |= GST_ELEMENT_REGISTER(aac2opus, plugin);
  ret |= GST_ELEMENT_REGISTER(rtmpbridge, plugin);
  ret |= GST_ELEMENT_REGISTER(rtspcamera, plugin);
  return ret;
}

GST_PLUGIN_DEFINE(GST_VERSION_MAJOR, GST_VERSION_MINOR, costream,
                  "Live talk-back, mix-minus conferencing and RTMP ingest for RTP/WebRTC",
                  plugin_init, VERSION, GST_LICENSE, GST_PACKAGE_NAME, GST_PACKAGE_ORIGIN)
