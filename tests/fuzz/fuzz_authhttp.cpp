/* costream fuzz target: what a publish authorization service answers (the status line, read
 * byte by byte as it arrives), and the URL and JSON helpers around it. Properties checked: a
 * status is 0 (incomplete), -1 or 100-599, and once decided it does not change as more bytes
 * come; a parsed URL's request is well formed; a JSON string has no raw control character. */
#include "rtmp/authhttp.h"

#include <cstdlib>
#include <string>

using namespace costream::rtmp;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const std::string in(reinterpret_cast<const char *>(data), size);
  int decided = 0;
  std::string head;
  for (char c : in) {
    head += c;
    const int s = http_status(head);
    if (s != 0 && s != -1 && (s < 100 || s > 599))
      std::abort();
    if (decided != 0 && s != decided)
      std::abort();
    if (s != 0)
      decided = s;
  }
  HttpTarget t;
  std::string why;
  if (parse_http_url(in, &t, &why)) {
    if (t.host.empty() || t.port < 1 || t.port > 65535 || t.path.empty() || t.path[0] != '/')
      std::abort();
    const std::string req = http_post(t, in);
    const size_t head_end = req.find("\r\n\r\n");
    if (head_end == std::string::npos)
      std::abort();
    for (size_t i = 0; i < head_end; i++) /* no bare CR or LF from the URL in the head */
      if ((req[i] == '\r' && req[i + 1] != '\n') || (req[i] == '\n' && req[i - 1] != '\r'))
        std::abort();
  } else if (why.empty()) {
    std::abort();
  }
  const std::string q = json_quote(in);
  for (size_t i = 1; i + 1 < q.size(); i++)
    if (static_cast<unsigned char>(q[i]) < 0x20)
      std::abort();
  return 0;
}
