#include "codecs.hpp"

#include <brotli/decode.h>
#include <brotli/encode.h>
#include <zlib.h>

#include <algorithm>
#include <array>
#include <cstdint>

namespace keel::mw::codecs {

namespace {

bool iequal(std::string_view a, std::string_view b) noexcept {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return (x >= 'A' && x <= 'Z' ? x + 32 : x) == (y >= 'A' && y <= 'Z' ? y + 32 : y);
         });
}

// gzip wraps deflate in a gzip header (windowBits + 16); HTTP's "deflate" is
// the zlib format (RFC 9110 §8.4.1.2), windowBits alone.
int window_bits(coding c) { return c == coding::gzip ? 15 + 16 : 15; }

constexpr std::size_t chunk = 16 * 1024;

bool zlib_compress(coding c, std::string_view in, int level, std::string& out) {
  z_stream z{};
  if (deflateInit2(&z, std::clamp(level, 1, 9), Z_DEFLATED, window_bits(c), 8, Z_DEFAULT_STRATEGY) != Z_OK) {
    return false;
  }
  out.resize(deflateBound(&z, static_cast<uLong>(in.size())));
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.avail_in = static_cast<uInt>(in.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  int rc = deflate(&z, Z_FINISH);  // deflateBound guarantees one call suffices
  out.resize(z.total_out);
  deflateEnd(&z);
  return rc == Z_STREAM_END;
}

result zlib_decompress(coding c, std::string_view in, std::size_t limit, std::string& out) {
  z_stream z{};
  if (inflateInit2(&z, window_bits(c)) != Z_OK) return result::corrupt;
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.avail_in = static_cast<uInt>(in.size());
  std::array<char, chunk> buf;
  result r = result::corrupt;
  for (;;) {
    z.next_out = reinterpret_cast<Bytef*>(buf.data());
    z.avail_out = static_cast<uInt>(buf.size());
    int rc = inflate(&z, Z_NO_FLUSH);
    std::size_t got = buf.size() - z.avail_out;
    if (out.size() + got > limit) {
      r = result::too_large;
      break;
    }
    out.append(buf.data(), got);
    if (rc == Z_STREAM_END) {
      // Bytes after the stream's end are not part of any body we accept.
      r = z.avail_in == 0 ? result::ok : result::corrupt;
      break;
    }
    if (rc != Z_OK || (got == 0 && z.avail_in == 0)) break;  // corrupt or truncated
  }
  inflateEnd(&z);
  return r;
}

bool brotli_compress(std::string_view in, int quality, std::string& out) {
  out.resize(BrotliEncoderMaxCompressedSize(in.size()));
  std::size_t size = out.size();
  bool ok = BrotliEncoderCompress(std::clamp(quality, 0, 11), BROTLI_DEFAULT_WINDOW, BROTLI_MODE_GENERIC,
                                  in.size(), reinterpret_cast<std::uint8_t const*>(in.data()), &size,
                                  reinterpret_cast<std::uint8_t*>(out.data())) == BROTLI_TRUE;
  out.resize(ok ? size : 0);
  return ok;
}

result brotli_decompress(std::string_view in, std::size_t limit, std::string& out) {
  auto* d = BrotliDecoderCreateInstance(nullptr, nullptr, nullptr);
  if (d == nullptr) return result::corrupt;
  auto const* next_in = reinterpret_cast<std::uint8_t const*>(in.data());
  std::size_t avail_in = in.size();
  std::array<std::uint8_t, chunk> buf;
  result r = result::corrupt;
  for (;;) {
    std::uint8_t* next_out = buf.data();
    std::size_t avail_out = buf.size();
    auto rc = BrotliDecoderDecompressStream(d, &avail_in, &next_in, &avail_out, &next_out, nullptr);
    std::size_t got = buf.size() - avail_out;
    if (out.size() + got > limit) {
      r = result::too_large;
      break;
    }
    out.append(reinterpret_cast<char const*>(buf.data()), got);
    if (rc == BROTLI_DECODER_RESULT_SUCCESS) {
      r = avail_in == 0 ? result::ok : result::corrupt;
      break;
    }
    if (rc != BROTLI_DECODER_RESULT_NEEDS_MORE_OUTPUT) break;  // error, or input ended early
  }
  BrotliDecoderDestroyInstance(d);
  return r;
}

}  // namespace

std::optional<coding> parse(std::string_view t) noexcept {
  if (iequal(t, "br")) return coding::br;
  if (iequal(t, "gzip") || iequal(t, "x-gzip")) return coding::gzip;
  if (iequal(t, "deflate")) return coding::deflate;
  return std::nullopt;
}

std::string_view token(coding c) noexcept {
  switch (c) {
    case coding::br: return "br";
    case coding::gzip: return "gzip";
    case coding::deflate: return "deflate";
  }
  return "";
}

bool compress(coding c, std::string_view in, int level, std::string& out) {
  return c == coding::br ? brotli_compress(in, level, out) : zlib_compress(c, in, level, out);
}

result decompress(coding c, std::string_view in, std::size_t limit, std::string& out) {
  out.clear();
  return c == coding::br ? brotli_decompress(in, limit, out) : zlib_decompress(c, in, limit, out);
}

}  // namespace keel::mw::codecs
