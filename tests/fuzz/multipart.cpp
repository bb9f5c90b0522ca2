// multipart/form-data bodies through the scanner in pieces of a size the
// input picks (first byte), the caller's way (unconsumed rest + next piece);
// the first line is also tried as a Content-Type for its boundary.
#include "http/multipart_scanner.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* data, std::size_t size) {
  if (size < 1) return 0;
  std::size_t step = 1 + data[0] % 64;
  std::string_view input(reinterpret_cast<char const*>(data) + 1, size - 1);
  auto eol = input.find('\n');
  (void)keel::detail::multipart_boundary(input.substr(0, eol));

  using keel::detail::multipart_scanner;
  multipart_scanner s("fuzzb", {256, 16});
  std::string held;
  std::size_t fed = 0;
  std::size_t data_bytes = 0;
  for (int guard = 0; guard < 1 << 20; ++guard) {
    auto e = s.next(held);
    if (s.consumed() > held.size()) std::abort();
    if (e == multipart_scanner::event::data) {
      auto d = s.data();
      if (d.empty() || d.data() < held.data() || d.data() + d.size() > held.data() + held.size()) std::abort();
      data_bytes += d.size();
    }
    held.erase(0, s.consumed());
    if (e == multipart_scanner::event::error || e == multipart_scanner::event::done) break;
    if (e == multipart_scanner::event::need_more) {
      if (fed == input.size()) {
        (void)s.finish();
        break;
      }
      auto n = std::min(step, input.size() - fed);
      held.append(input.substr(fed, n));
      fed += n;
    }
  }
  if (data_bytes > input.size()) std::abort();
  return 0;
}
