#include <keel/response.hpp>

#include "http/response_writer.hpp"

#include <boost/beast/core/string.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include <cstdint>
#include <algorithm>
#include <cstring>
#include <tuple>

namespace keel {

namespace {
response with_type(std::string body, unsigned status, std::string_view type) {
  response r(status);
  r.body = std::move(body);
  r.add_header("Content-Type", type);  // a fresh response: nothing to replace
  return r;
}
}  // namespace

response response::text(std::string body, unsigned status) {
  return with_type(std::move(body), status, "text/plain; charset=utf-8");
}
response response::html(std::string body, unsigned status) {
  return with_type(std::move(body), status, "text/html; charset=utf-8");
}
response response::json(boost::json::value const& value, unsigned status) {
  return with_type(boost::json::serialize(value), status, "application/json");
}
response response::json_text(std::string body, unsigned status) {
  return with_type(std::move(body), status, "application/json");
}
response response::redirect(std::string_view location, unsigned status) {
  response r(status);
  r.set_header("Location", location);
  return r;
}

namespace {

// Where the line of the first header called `name` starts and ends, or npos.
// A line is `Name: value\r\n` and names hold no colon, so a line is a
// candidate only when its first colon sits exactly where `name` would end:
// one memchr per line finds its end, and iequals runs on candidates only.
std::pair<std::size_t, std::size_t> find_line(std::string_view lines, std::string_view name, std::size_t from = 0) {
  constexpr auto npos = std::string::npos;
  while (from < lines.size()) {
    auto const* line = lines.data() + from;
    auto const* nl = static_cast<char const*>(std::memchr(line, '\n', lines.size() - from));
    if (nl == nullptr) break;
    auto end = static_cast<std::size_t>(nl - lines.data()) + 1;
    if (from + name.size() < end && line[name.size()] == ':' &&
        std::memchr(line, ':', name.size()) == nullptr &&
        boost::beast::iequals(std::string_view(line, name.size()), name)) {
      return {from, end};
    }
    from = end;
  }
  return {npos, npos};
}

constexpr bool breaks_line(unsigned char c) noexcept { return c == '\r' || c == '\n' || c == '\0'; }

// Whether `text` holds CR, LF or NUL. Eight bytes at a time: a word has a
// byte below 14 exactly when this leaves a high bit set (Hacker's Delight,
// "has less"); only such a word (a tab, or a real break) is looked at byte by
// byte. Three memchr calls per value cost more than the header itself.
bool has_line_break(std::string_view text) noexcept {
  constexpr std::uint64_t ones = 0x0101010101010101ULL;
  constexpr std::uint64_t highs = 0x8080808080808080ULL;
  auto const* b = reinterpret_cast<unsigned char const*>(text.data());
  auto n = text.size();
  auto word_may_break = [&](std::size_t at) {
    std::uint64_t x;
    std::memcpy(&x, b + at, 8);
    return ((x - ones * 14) & ~x & highs) != 0;
  };
  auto bytes_break = [&](std::size_t from, std::size_t to) {
    for (std::size_t k = from; k < to; ++k) {
      if (breaks_line(b[k])) return true;
    }
    return false;
  };
  if (n < 8) return bytes_break(0, n);
  // Whole words, then the last eight bytes (overlapping) for the tail.
  for (std::size_t i = 0; i + 8 <= n; i += 8) {
    if (word_may_break(i) && bytes_break(i, i + 8)) return true;
  }
  return word_may_break(n - 8) && bytes_break(n - 8, n);
}

// Replaces CR, LF and NUL in place: no value can start another header.
void clean_in_place(char* text, std::size_t size) noexcept {
  if (!has_line_break(std::string_view(text, size))) return;
  for (std::size_t i = 0; i < size; ++i) {
    if (breaks_line(static_cast<unsigned char>(text[i]))) text[i] = ' ';
  }
}

}  // namespace

void response::header_range::iterator::parse() {
  auto end = rest_.find("\r\n");
  if (end == std::string_view::npos) {
    rest_ = rest_.substr(rest_.size());
    line_ = 0;
    return;
  }
  line_ = end + 2;
  auto colon = rest_.find(':');
  current_.name = rest_.substr(0, colon);
  current_.value = rest_.substr(colon + 2, end - colon - 2);
}

void response::set_header(std::string_view name, std::string_view value) {
  if (value.data() >= fields_.data() && value.data() < fields_.data() + fields_.size()) {
    std::string own(value);  // a view of a header about to move
    set_header(name, own);
    return;
  }
  remove_header(name);
  add_header(name, value);
}

void response::add_header(std::string_view name, std::string_view value) {
  name = name.substr(0, name.find(':'));
  // The whole line in one resize and two copies, then one scan over it: a
  // default-stack response adds three headers, and appends piece by piece
  // cost more than the header itself (callgrind).
  auto at = fields_.size();
  auto line = name.size() + 2 + value.size();
  if (fields_.capacity() < at + line + 2) fields_.reserve(std::max<std::size_t>(256, 2 * (at + line + 2)));
  fields_.resize(at + line + 2);
  char* p = fields_.data() + at;
  std::memcpy(p, name.data(), name.size());
  p[name.size()] = ':';
  p[name.size() + 1] = ' ';
  std::memcpy(p + name.size() + 2, value.data(), value.size());
  p[line] = '\r';
  p[line + 1] = '\n';
  clean_in_place(p, line);
  names_ |= name_bit(name);
  if (detail::is_framework_header(name)) framework_header_ = true;
}

std::optional<std::string_view> response::header(std::string_view name) const {
  if ((names_ & name_bit(name)) == 0) return std::nullopt;
  auto [begin, end] = find_line(fields_, name);
  if (begin == std::string::npos) return std::nullopt;
  auto value = begin + name.size() + 2;
  return std::string_view(fields_).substr(value, end - 2 - value);
}

void response::remove_header(std::string_view name) {
  if ((names_ & name_bit(name)) == 0) return;
  for (auto [begin, end] = find_line(fields_, name); begin != std::string::npos; std::tie(begin, end) = find_line(fields_, name, begin)) {
    fields_.erase(begin, end - begin);
  }
}

std::string_view reason_phrase(unsigned status) {
  switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 416: return "Range Not Satisfiable";
    case 417: return "Expectation Failed";
    case 422: return "Unprocessable Content";
    case 426: return "Upgrade Required";
    case 428: return "Precondition Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 499: return "Client Closed Request";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
  }
}

}  // namespace keel
