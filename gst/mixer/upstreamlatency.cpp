/* costream
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "upstreamlatency.h"

#include <algorithm>

namespace costream {

UpstreamLatency::Result UpstreamLatency::query(const std::vector<GstPad *> &pads) {
  Result r;
  for (auto *p : pads) {
    if (!gst_pad_is_linked(p))
      continue;
    GstQuery *q = gst_query_new_latency();
    if (gst_pad_peer_query(p, q)) {
      gboolean live;
      GstClockTime mn, mx;
      gst_query_parse_latency(q, &live, &mn, &mx);
      if (live) {
        r.live = TRUE;
        r.min = std::max(r.min, mn);
        if (GST_CLOCK_TIME_IS_VALID(mx))
          r.max = GST_CLOCK_TIME_IS_VALID(r.max) ? std::min(r.max, mx) : mx;
      }
    }
    gst_query_unref(q);
  }
  return r;
}

} // namespace costream
