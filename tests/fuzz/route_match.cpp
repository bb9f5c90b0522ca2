// Arbitrary paths matched against a route tree with static, parameter and
// catch-all routes; arbitrary patterns inserted (rejected ones throw).
#include "http/route_tree.hpp"

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string_view>

namespace {

keel::detail::route_tree const& tree() {
  static keel::detail::route_tree const t = [] {
    keel::detail::route_tree r;
    for (auto p : {"/", "/plaintext", "/json", "/users/{id}", "/users/{id}/posts/{post}", "/users/me",
                   "/files/{*path}", "/api/rooms/{room}/events", "/a/b/c/d/e/f", "/{first}/x"}) {
      r.insert(p);
    }
    return r;
  }();
  return t;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* data, std::size_t size) {
  std::string_view text(reinterpret_cast<char const*>(data), size);
  keel::detail::path_params params;
  auto leaf = tree().match(text, params);
  if (leaf != keel::detail::route_tree::npos) (void)tree().pattern(leaf);
  // The same bytes as a pattern: either inserted or refused with an exception.
  keel::detail::route_tree fresh;
  try {
    fresh.insert(text);
    keel::detail::path_params p2;
    (void)fresh.match(text, p2);
  } catch (std::invalid_argument const&) {
  }
  return 0;
}
