/* costream fuzz target: the FLV tag reader, and the AVC helpers on every tag. */
#include "rtmp/flv.h"

using namespace costream::flv;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  TagReader r(1 << 20);
  std::vector<Tag> tags;
  std::string why;
  const size_t half = size / 2;
  if (r.feed(data, half, &tags, &why))
    r.feed(data + half, size - half, &tags, &why);
  for (auto &t : tags) {
    (void)avc_packet_type(t.data);
    (void)avc_composition_time(t.data);
    (void)is_keyframe(t.data);
  }
  return 0;
}
