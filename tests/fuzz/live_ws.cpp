// WebSocket frames after a real upgrade, through the live keel app of
// live_app.hpp (WS /ws, an echo): keel's upgrade, its reader and writer
// coroutines, Beast's frame parser, close codes, UTF-8 validation of text,
// fragmentation and control frames interleaved, the message size limit.
//
// The first byte is the mode: bit 0 set sends the rest as raw bytes after the
// upgrade request (seeds: the RFC 6455 §5.7 examples); clear, the rest is a
// list of frames the harness encodes, so mutations stay well-formed enough to
// get past the frame header:
//   [b0: FIN RSV1-3 opcode, as on the wire][b1][payload]
//   b1 bits 0-5: payload length (×64 when bit 6 is set; bytes past the input
//   are 'x'); bit 7: a 64-bit length field even when shorter would do (RFC
//   6455 wants the minimal one). Frames are masked (key from b0, b1) unless
//   mode bit 1 is set. Mode bits 2-7: the write size (0: all at once).
// Whatever the frames, the upgrade succeeds, the server never answers with
// anything a browser would reject as a frame stream, and it closes once the
// client half-closes.
#include "live_app.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

namespace {

std::string encode_frames(std::string_view in, bool masked) {
  std::string out;
  while (in.size() >= 2) {
    auto h0 = static_cast<std::uint8_t>(in[0]);
    auto h1 = static_cast<std::uint8_t>(in[1]);
    in.remove_prefix(2);
    std::size_t len = h1 & 0x3f;
    if (h1 & 0x40) len *= 64;
    std::string payload(in.substr(0, len));
    in.remove_prefix(payload.size());
    payload.resize(len, 'x');
    out += static_cast<char>(h0);
    auto const mask_bit = masked ? 0x80 : 0x00;
    if (len < 126 && !(h1 & 0x80)) {
      out += static_cast<char>(mask_bit | len);
    } else if (len < 65536 && !(h1 & 0x80)) {
      out += static_cast<char>(mask_bit | 126);
      out += static_cast<char>(len >> 8);
      out += static_cast<char>(len & 0xff);
    } else {
      out += static_cast<char>(mask_bit | 127);
      for (int shift = 56; shift >= 0; shift -= 8) out += static_cast<char>((len >> shift) & 0xff);
    }
    if (masked) {
      char const key[4] = {static_cast<char>(h0), static_cast<char>(h1), 0x5a, static_cast<char>(0xa5)};
      out.append(key, 4);
      for (std::size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<char>(payload[i] ^ key[i % 4]);
    }
    out += payload;
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* data, std::size_t size) {
  if (size == 0) return 0;
  auto const mode = data[0];
  std::string_view rest(reinterpret_cast<char const*>(data + 1), size - 1);
  std::string bytes(keel_fuzz::ws_upgrade_request());
  if (mode & 1) bytes += rest;
  else bytes += encode_frames(rest, !(mode & 2));
  auto r = keel_fuzz::exchange(bytes, mode >> 2);
  if (r.timed_out) {
    std::fprintf(stderr, "live_ws: the server kept a half-closed WebSocket open past 5 s\n");
    std::abort();
  }
  if (!r.received.starts_with("HTTP/1.1 101 ")) {
    std::fprintf(stderr, "live_ws: the upgrade failed: %.60s\n", r.received.c_str());
    std::abort();
  }
  // The server's frames are unmasked (RFC 6455 §5.1).
  auto frames = r.received.find("\r\n\r\n");
  if (frames != std::string::npos && frames + 5 < r.received.size() &&
      (static_cast<std::uint8_t>(r.received[frames + 5]) & 0x80)) {
    std::fprintf(stderr, "live_ws: a masked frame from the server\n");
    std::abort();
  }
  return 0;
}
