#include <keel/response.hpp>

#include "response_writer.hpp"

#include <boost/beast/core/string.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

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
response response::redirect(std::string location, unsigned status) {
  response r(status);
  r.set_header("Location", std::move(location));
  return r;
}

namespace {

// Where the line of the first header called `name` starts and ends, or npos.
std::pair<std::size_t, std::size_t> find_line(std::string const& lines, std::string_view name, std::size_t from = 0) {
  while (from < lines.size()) {
    auto end = lines.find("\r\n", from);
    if (end == std::string::npos) break;
    auto colon = lines.find(':', from);
    if (colon < end && boost::beast::iequals(std::string_view(lines).substr(from, colon - from), name)) {
      return {from, end + 2};
    }
    from = end + 2;
  }
  return {std::string::npos, std::string::npos};
}

void append_clean(std::string& out, std::string_view text) {
  // memchr is vectorised; a clean value (nearly all) is then one append.
  auto has = [&](char c) { return std::memchr(text.data(), c, text.size()) != nullptr; };
  if (!has('\r') && !has('\n') && !has('\0')) {
    out.append(text);
    return;
  }
  for (char c : text) out.push_back(c == '\r' || c == '\n' || c == '\0' ? ' ' : c);
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
  // Enough for the usual few headers of a response in one allocation.
  if (fields_.empty()) fields_.reserve(256);
  append_clean(fields_, name.substr(0, name.find(':')));
  fields_.append(": ");
  append_clean(fields_, value);
  fields_.append("\r\n");
  if (detail::is_framework_header(name)) framework_header_ = true;
}

std::optional<std::string_view> response::header(std::string_view name) const {
  auto [begin, end] = find_line(fields_, name);
  if (begin == std::string::npos) return std::nullopt;
  auto value = begin + name.size() + 2;
  return std::string_view(fields_).substr(value, end - 2 - value);
}

void response::remove_header(std::string_view name) {
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
