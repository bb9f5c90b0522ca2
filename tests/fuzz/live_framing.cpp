// Pipelined requests whose heads and framing this harness builds, with bodies,
// chunk extensions and trailer fields from the input, through the live keel app
// of live_app.hpp. Where live_http's raw bytes mostly stop at the parser, these
// reach every body mode of every route: whole bodies (Content-Length or
// chunked, with trailers), stream_body routes that read none, some or all of
// their body, answered by a text, a streamed response or an SSE stream,
// multipart forms and Expect: 100-continue.
//
// Because the harness frames every request itself, the app can check what no
// raw-bytes target can (the oracles in live_app.hpp): each request it routes on
// the connection carries an X-Seq greater than the one before (a request parsed
// out of another's body has none: issue 21 #3), and X-Trailer-Only, sent only
// as a trailer field, is never seen as a header (#2). Neither name can occur in
// a body (body_of) or among the extra lines (field_lines). The handlers read every
// view of the request after the body (#1 under ASan).
//
// Input: the first byte picks the write size (under 200: all at once; else
// 1-56 bytes a write). The rest splits at NUL into groups of four fields, one
// request each (at most 8):
//   control  [route][method][flags][more][param...]: route and method index
//            the tables below; the rest, cut to URL-safe bytes, is the path
//            parameter and the `q` query value. Flags: bits 0-1 framing (none,
//            Content-Length, chunked, chunked with trailers), bit 2 Expect:
//            100-continue, bit 3 chunk extensions, bits 4-5 chunk size (all,
//            1, 7, 64 bytes), bit 6 Connection: close, bit 7 ?read=all on
//            the stream_body routes (else none is read, or one byte on the
//            route that says so). More: bit 0, the body starts with a whole
//            request (a smuggler's), which only a server that mistakes body
//            bytes for requests ever routes.
//   head     header lines `name: value` split at LF, names cut to token
//            bytes, values to printable ones; framing and oracle names dropped
//   body     the body, as is but for the two names above
//   trailers trailer lines, the same way but any name (Host, Content-Length,
//            Authorization), and always X-Trailer-Only
#include "live_app.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

namespace {

constexpr std::array<std::string_view, 12> routes{
    "/",      "/echo",   "/users/{}", "/files/{}/x", "/upload/{}", "/pipe/{}",
    "/events/{}", "/form", "/trace",  "/nope/{}",    "/upload",    "/pipe/{}?read=1"};
constexpr std::array<std::string_view, 7> methods{"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"};

bool tchar(unsigned char c) {
  return std::isalnum(c) || std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) != std::string_view::npos;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// `name: value` lines from `in` (split at LF): name cut to tchar, value to
// visible bytes, spaces and tabs (no CR, LF, NUL); names in `drop` skipped.
std::string field_lines(std::string_view in, bool head) {
  std::string out;
  int count = 0;
  while (!in.empty() && count < 12) {
    auto eol = in.find('\n');
    auto line = in.substr(0, eol);
    in.remove_prefix(eol == std::string_view::npos ? in.size() : eol + 1);
    auto colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    std::string name, value;
    for (unsigned char c : line.substr(0, colon)) {
      if (tchar(c)) name += static_cast<char>(c);
    }
    for (unsigned char c : line.substr(colon + 1)) {
      if (c == '\t' || c >= 0x20) value += static_cast<char>(c);
    }
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.erase(0, 1);
    while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.pop_back();
    auto n = lower(name);
    if (name.empty() || n == "x-seq" || n == "x-trailer-only") continue;
    if (head && (n == "host" || n == "content-length" || n == "transfer-encoding" || n == "expect" ||
                 n == "connection" || n == "upgrade")) {
      continue;
    }
    out += name + ": " + value + "\r\n";
    ++count;
  }
  return out;
}

std::string url_safe(std::string_view in) {
  std::string out;
  for (unsigned char c : in) {
    if (std::isalnum(c) || std::string_view("-._~%").find(static_cast<char>(c)) != std::string_view::npos) {
      out += static_cast<char>(c);
    }
  }
  return out.empty() ? "1" : out.substr(0, 64);
}

// The body as given, except that the oracles' header names cannot occur in it
// (their first letter becomes '_'), so a request parsed out of it carries neither.
std::string body_of(std::string_view in) {
  std::string body(in);
  auto low = lower(body);
  for (std::string_view name : {"x-seq", "x-trailer-only"}) {
    for (auto at = low.find(name); at != std::string::npos; at = low.find(name, at + 1)) body[at] = '_';
  }
  return body;
}

std::string build(std::vector<std::string_view> const& fields) {
  std::string out;
  std::size_t seq = 0;
  for (std::size_t i = 0; i < fields.size() && seq < 8; i += 4, ++seq) {
    auto field = [&](std::size_t k) { return i + k < fields.size() ? fields[i + k] : std::string_view(); };
    auto ctl = field(0);
    auto at = [&](std::size_t k) { return k < ctl.size() ? static_cast<std::uint8_t>(ctl[k]) : std::uint8_t{0}; };
    auto route = routes[at(0) % routes.size()];
    auto method = methods[at(1) % methods.size()];
    auto flags = at(2);
    auto more = at(3);
    auto param = url_safe(ctl.size() > 4 ? ctl.substr(4) : std::string_view());
    std::string target(route);
    if (auto brace = target.find("{}"); brace != std::string::npos) target.replace(brace, 2, param);
    target += target.find('?') == std::string::npos ? "?" : "&";
    target += "q=" + param + ((flags & 0x80) ? "&read=all" : "");

    auto framing = flags & 3;
    // What a smuggler's body holds: a whole request, then the body's own bytes.
    auto body = ((more & 1) ? "GET /users/" + param + " HTTP/1.1\r\nHost: fuzz\r\n\r\n" : std::string()) +
                body_of(field(2));
    out += std::string(method) + " " + target + " HTTP/1.1\r\nHost: fuzz\r\nX-Seq: " + std::to_string(seq) + "\r\n";
    out += field_lines(field(1), true);
    if (flags & 4) out += "Expect: 100-continue\r\n";
    if (flags & 0x40) out += "Connection: close\r\n";
    if (framing == 1) out += "Content-Length: " + std::to_string(body.size()) + "\r\n";
    if (framing >= 2) out += "Transfer-Encoding: chunked\r\n";
    out += "\r\n";
    if (framing == 1) out += body;
    if (framing >= 2) {
      static constexpr std::size_t sizes[] = {0, 1, 7, 64};
      auto size = sizes[(flags >> 4) & 3];
      if (size == 0) size = std::max<std::size_t>(body.size(), 1);
      char line[32];
      for (std::size_t off = 0; off < body.size(); off += size) {
        auto piece = std::string_view(body).substr(off, size);
        std::snprintf(line, sizeof line, "%zx", piece.size());
        out += line;
        if (flags & 8) out += ";ext=" + param.substr(0, 8) + ";q=\"a b\"";
        out += "\r\n";
        out += piece;
        out += "\r\n";
      }
      out += (flags & 8) ? "0;last\r\n" : "0\r\n";
      if (framing == 3) out += field_lines(field(3), false) + "X-Trailer-Only: " + std::to_string(seq) + "\r\n";
      out += "\r\n";
    }
    if (flags & 0x40) return out;  // nothing after a close is read
  }
  // The last request asks to close, so the client need not half-close (which
  // keel takes for leaving while a response streams: see exchange()).
  return out + "GET /?final HTTP/1.1\r\nHost: fuzz\r\nX-Seq: " + std::to_string(std::min<std::size_t>((fields.size() + 3) / 4, 8)) +
         "\r\nConnection: close\r\n\r\n";
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* data, std::size_t size) {
  if (size == 0) return 0;
  std::size_t piece = data[0] < 200 ? 0 : data[0] - 199u;
  std::string_view in(reinterpret_cast<char const*>(data + 1), size - 1);
  std::vector<std::string_view> fields;
  for (;;) {
    auto nul = in.find('\0');
    fields.push_back(in.substr(0, nul));
    if (nul == std::string_view::npos) break;
    in.remove_prefix(nul + 1);
  }
  auto request = build(fields);
  // Replaying one input: what went each way (what was sent first: an oracle traps mid-exchange).
  bool show = std::getenv("KEEL_FUZZ_SHOW") != nullptr;
  if (show) std::fprintf(stderr, "--- sent\n%s\n", request.c_str());
  auto r = keel_fuzz::exchange(request, piece, true);
  if (show) std::fprintf(stderr, "--- received\n%s\n---\n", r.received.c_str());
  if (r.timed_out) {
    std::fprintf(stderr, "live_framing: the server kept a half-closed connection open past 5 s\n");
    std::abort();
  }
  if (!r.received.empty() && !r.received.starts_with("HTTP/1.1 ")) {
    std::fprintf(stderr, "live_framing: a response that is not HTTP/1.1: %.40s\n", r.received.c_str());
    std::abort();
  }
  return 0;
}
