/* costream
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * rtmpserversrc's output as GStreamer objects: FLV bytes as a buffer, onMetaData as a structure.
 */
#pragma once

#include "amf0.h"

#include <gst/gst.h>

#include <cstdint>
#include <vector>

namespace costream::rtmp {

/* A read-only buffer owning `bytes`, with PTS and DTS `pts`. */
GstBuffer *make_buffer(std::vector<uint8_t> &&bytes, GstClockTime pts);
/* onMetaData's numbers, booleans and UTF-8 strings, under field names made safe for a
 * GstStructure (names that cannot be made so are left out). */
GstStructure *metadata_structure(const amf0::Value &v);

} // namespace costream::rtmp
