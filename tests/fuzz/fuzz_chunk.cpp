/* costream fuzz target: the chunk reader, fed in pieces whose sizes come from the input; the
 * whole-buffer and the piecewise readings must agree. */
#include "rtmp/chunk.h"

#include <cstdlib>

using namespace costream::rtmp;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1)
    return 0;
  const size_t piece = 1 + data[0] % 64;
  data++;
  size--;
  ChunkReader::Limits limits;
  limits.max_message_size = 1 << 20;
  limits.max_buffered = 4 << 20;
  ChunkReader whole(limits), pieces(limits);
  std::vector<Message> a, b;
  std::string why;
  const bool ok_whole = whole.feed(data, size, &a, &why);
  bool ok_pieces = true;
  for (size_t off = 0; off < size && ok_pieces; off += piece)
    ok_pieces = pieces.feed(data + off, std::min(piece, size - off), &b, &why);
  if (ok_whole != ok_pieces)
    std::abort();
  if (ok_whole) {
    if (a.size() != b.size())
      std::abort();
    for (size_t i = 0; i < a.size(); i++)
      if (a[i].payload != b[i].payload || a[i].timestamp != b[i].timestamp)
        std::abort();
  }
  ServerHandshake hs;
  std::vector<uint8_t> out;
  hs.feed(data, size, &out, &why);
  return 0;
}
