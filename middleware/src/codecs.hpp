#pragma once
// zlib (gzip, deflate) and brotli behind one small interface, with the
// decompressed size bounded while it is produced. Private to the middleware
// library.
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace keel::mw::codecs {

enum class coding { br, gzip, deflate };

/// "br", "gzip" (or "x-gzip"), "deflate", case-insensitive; nullopt otherwise.
std::optional<coding> parse(std::string_view token) noexcept;
std::string_view token(coding c) noexcept;

/// Compresses `in` into `out` (replaced); false if the library failed.
/// `level` is brotli's quality for br, zlib's level otherwise.
bool compress(coding c, std::string_view in, int level, std::string& out);

enum class result { ok, too_large, corrupt };
/// Decompresses `in` into `out` (replaced), stopping with too_large as soon
/// as more than `limit` bytes come out: memory never grows past the limit.
result decompress(coding c, std::string_view in, std::size_t limit, std::string& out);

}  // namespace keel::mw::codecs
