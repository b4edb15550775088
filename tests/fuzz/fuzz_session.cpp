/* costream fuzz target: a whole publish session after a valid handshake: commands, control
 * messages, media, metadata, aggregates, all from the fuzzer. */
#include "rtmp/session.h"

using namespace costream::rtmp;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  SessionConfig cfg;
  cfg.stream_key = size > 0 && data[0] & 1 ? "key" : "";
  cfg.limits.max_message_size = 1 << 20;
  cfg.limits.max_buffered = 4 << 20;
  bool live = size > 0 && data[0] & 2;
  SessionRoutes routes;
  routes.may_publish = [live, &cfg](const std::string &, const std::string &key, std::string *why) {
    if (live)
      *why = "busy";
    else if (!cfg.stream_key.empty() && !Session::keys_equal(key, cfg.stream_key))
      *why = "wrong stream key";
    return why->empty();
  };
  Session s(cfg, routes);
  std::vector<uint8_t> hs(1 + 2 * kHandshakeSize, 0);
  hs[0] = 3;
  std::vector<uint8_t> out;
  std::vector<SessionEvent> events;
  std::string why;
  s.feed(hs.data(), hs.size(), &out, &events, &why);
  if (size > 1)
    s.feed(data + 1, size - 1, &out, &events, &why);
  return 0;
}
