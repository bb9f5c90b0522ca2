#include <keel/utf8.hpp>

namespace keel {

std::size_t utf8_sequence_length(std::string_view s, std::size_t* bad) noexcept {
  auto const* p = reinterpret_cast<unsigned char const*>(s.data());
  std::size_t const n = s.size();
  unsigned char const c = p[0];
  if (c < 0x80) return 1;
  // The ranges allowed for the second byte encode RFC 3629's exclusions.
  std::size_t len = 0;
  unsigned char lo = 0x80, hi = 0xbf;
  if (c >= 0xc2 && c <= 0xdf) {
    len = 2;
  } else if (c >= 0xe0 && c <= 0xef) {
    len = 3;
    if (c == 0xe0) lo = 0xa0;
    if (c == 0xed) hi = 0x9f;
  } else if (c >= 0xf0 && c <= 0xf4) {
    len = 4;
    if (c == 0xf0) lo = 0x90;
    if (c == 0xf4) hi = 0x8f;
  }
  std::size_t ok = len ? 1 : 0;
  if (len && n > 1 && p[1] >= lo && p[1] <= hi) {
    ok = 2;
    while (ok < len && ok < n && p[ok] >= 0x80 && p[ok] <= 0xbf) ++ok;
  }
  if (len && ok == len) return len;
  if (bad) *bad = ok ? ok : 1;
  return 0;
}

bool is_valid_utf8(std::string_view s) noexcept {
  std::size_t i = 0;
  while (i < s.size()) {
    // ASCII runs are the common case: skip them a byte at a time without the call.
    if (static_cast<unsigned char>(s[i]) < 0x80) {
      ++i;
      continue;
    }
    auto len = utf8_sequence_length(s.substr(i), nullptr);
    if (len == 0) return false;
    i += len;
  }
  return true;
}

std::string to_valid_utf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  std::size_t i = 0;
  while (i < s.size()) {
    std::size_t bad = 0;
    auto len = utf8_sequence_length(s.substr(i), &bad);
    if (len) {
      out.append(s.substr(i, len));
      i += len;
    } else {
      out += "\xEF\xBF\xBD";
      i += bad;
    }
  }
  return out;
}

}  // namespace keel
