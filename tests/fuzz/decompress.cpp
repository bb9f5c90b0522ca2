// Any bytes as a gzip, deflate or brotli request body: decoding stops at the
// limit (memory bounded) and never crashes on corrupt input.
#include "codecs.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* data, std::size_t size) {
  if (size == 0) return 0;
  auto c = static_cast<keel::mw::codecs::coding>(data[0] % 3);
  std::string_view in(reinterpret_cast<char const*>(data + 1), size - 1);
  constexpr std::size_t limit = 1 << 20;
  std::string out;
  auto r = keel::mw::codecs::decompress(c, in, limit, out);
  if (out.size() > limit) std::abort();  // the bound is the promise
  if (r == keel::mw::codecs::result::ok) {
    // What decoded must round-trip.
    std::string again, back;
    if (!keel::mw::codecs::compress(c, out, 1, again)) std::abort();
    if (keel::mw::codecs::decompress(c, again, limit, back) != keel::mw::codecs::result::ok || back != out) std::abort();
  }
  return 0;
}
