#pragma once
// Renders a response's status line and headers into one contiguous buffer:
// Beast's serializer costs more in buffer-sequence views than the formatting
// itself (see docs/performance.md), so keel frames sized bodies on its own.
#include <keel/response.hpp>

#include <cstdint>
#include <string>

namespace keel::detail {

struct framing {
  unsigned version = 11;   // of the request
  bool keep_alive = true;  // what the server decided
  bool head = false;       // a HEAD request: Content-Length, no body
};

/// Appends status line, headers and the blank line to `out`. Returns whether the
/// body must follow (false for HEAD, 1xx, 204 and 304).
bool render_head(std::string& out, response const& r, framing f);

/// How a streamed body (keel/stream.hpp) is delimited on the wire.
enum class body_framing { length, chunked, close };

/// render_head for a streamed response: the same status line and headers, then
/// Content-Length `length`, Transfer-Encoding: chunked, or nothing (close-
/// delimited) as `b` says. Returns whether a body follows.
bool render_streamed_head(std::string& out, response const& r, framing f, body_framing b, std::uint64_t length);

/// Content-Length, Connection, Date, Server, Transfer-Encoding: keel frames
/// responses itself, so a handler's own values for these are dropped.
bool is_framework_header(std::string_view name);

/// The current IMF-fixdate, cached per thread per second.
std::string_view http_date();

}  // namespace keel::detail
