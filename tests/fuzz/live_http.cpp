// Any bytes as HTTP/1.1 requests (pipelined, in pieces, stopping anywhere)
// through the live keel app of live_app.hpp: accept, the session's read loop
// with its limits and timeouts, the parser, the router, the default
// middleware, compression and the handlers, on a real socket.
//
// The first byte picks the write size (0: all at once, else 1–255 bytes per
// write); the rest is what the client sends before it half-closes. Whatever
// the bytes, the server answers with HTTP/1.x responses only (1.0 to a 1.0 request) and closes the
// connection once the client has finished, well inside the 5 s cap.
#include "live_app.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* data, std::size_t size) {
  if (size == 0) return 0;
  std::size_t piece = data[0];
  std::string_view in(reinterpret_cast<char const*>(data + 1), size - 1);
  auto r = keel_fuzz::exchange(in, piece);
  if (std::getenv("KEEL_FUZZ_SHOW")) {  // replaying one input: what came back
    std::fprintf(stderr, "--- received\n%s\n---\n", r.received.c_str());
  }
  if (r.timed_out) {
    std::fprintf(stderr, "live_http: the server kept a half-closed connection open past 5 s\n");
    std::abort();
  }
  if (!r.received.empty() && !r.received.starts_with("HTTP/1.")) {
    std::fprintf(stderr, "live_http: a response that is not HTTP/1.x: %.40s\n", r.received.c_str());
    std::abort();
  }
  return 0;
}
