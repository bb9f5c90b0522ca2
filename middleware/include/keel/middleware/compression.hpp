#pragma once
// Response compression (brotli, gzip, deflate) and request-body decompression.
//
//   app.use(keel::mw::compression());                 // after use_defaults(app)
//   app.use(keel::mw::compression({.min_size = 256}));
//
// Responses: the coding is chosen from Accept-Encoding by q-value (RFC 9110
// §12.5.3; `*` covers codings not named, q=0 refuses one; equal q prefers br,
// then gzip, then deflate). A body is compressed only when it is at least
// `min_size` bytes, its Content-Type starts with one of `types`, and the
// response is a complete 2xx other than 204/206 without a Content-Encoding,
// a Content-Range or `Cache-Control: no-transform`, and is no upgrade
// (WebSocket, SSE). Every response of a compressible type gets
// `Vary: Accept-Encoding`, compressed or not; a strong ETag becomes weak.
//
// Requests: a body sent with `Content-Encoding: gzip`, `deflate` or `br` is
// decompressed before the inner chain runs (ctx.body() is the result). It
// stops at `max_decompressed` bytes or at `max_ratio` times the compressed
// size, whichever is smaller, with 413: a zip bomb never grows past that
// bound. Another coding is 415, a corrupt body 400.
//
// The work runs on the I/O thread: at the defaults (brotli quality 4, zlib
// level 5) a 100 KiB JSON body costs 1.5-2 ms here (docs/compression.md).
#include <keel/middleware.hpp>

#include <cstddef>
#include <string>
#include <vector>

namespace keel::mw {

namespace name {
inline constexpr std::string_view compression = "compression";
}

struct compression_options {
  /// Bodies smaller than this are sent as they are.
  std::size_t min_size = 1024;
  /// Content-Type prefixes worth compressing (compared case-insensitively).
  std::vector<std::string> types = {"text/",
                                    "application/json",
                                    "application/problem+json",
                                    "application/javascript",
                                    "application/xml",
                                    "application/wasm",
                                    "image/svg+xml"};
  bool brotli = true;
  bool gzip = true;
  bool deflate = true;
  /// Brotli quality 0-11 and zlib level 1-9.
  int brotli_quality = 4;
  int zlib_level = 5;
  /// Decompress request bodies sent with Content-Encoding.
  bool decompress_requests = true;
  /// The largest request body after decompression, and the largest ratio of
  /// decompressed to compressed size.
  std::size_t max_decompressed = 8u << 20;
  std::size_t max_ratio = 100;
};

middleware compression(compression_options opts = {});

/// The coding compression() picks for this Accept-Encoding value among the
/// enabled ones: "br", "gzip", "deflate", or "" for none (exposed for tests).
std::string_view choose_encoding(std::string_view accept_encoding, compression_options const& opts);

}  // namespace keel::mw
