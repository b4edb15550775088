/* costream fuzz target: AMF0 decoding; whatever decodes must re-encode and decode the same. */
#include "rtmp/amf0.h"

#include <cstdlib>

using namespace costream::rtmp;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  std::vector<amf0::Value> values;
  std::string why;
  if (!amf0::decode_all(data, size, &values, &why))
    return 0;
  std::vector<uint8_t> enc;
  for (auto &v : values) {
    amf0::encode(v, &enc);
    (void)amf0::to_string(v);
  }
  std::vector<amf0::Value> again;
  if (!amf0::decode_all(enc.data(), enc.size(), &again, &why) || again.size() != values.size())
    std::abort();
  std::vector<uint8_t> enc2;
  for (auto &v : again)
    amf0::encode(v, &enc2);
  if (enc2 != enc)
    std::abort();
  return 0;
}
