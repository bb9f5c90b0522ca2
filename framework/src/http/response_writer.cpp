#include "http/response_writer.hpp"

#include <boost/beast/core/string.hpp>

#include <charconv>
#include <ctime>

namespace keel::detail {

std::string_view http_date() {
  struct cache {
    std::time_t second = 0;
    char text[32] = {};
    std::size_t size = 0;
  };
  thread_local cache c;
  std::time_t now = std::time(nullptr);
  if (now != c.second) {
    std::tm tm{};
    gmtime_r(&now, &tm);
    c.size = std::strftime(c.text, sizeof c.text, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    c.second = now;
  }
  return {c.text, c.size};
}

namespace {

void append_number(std::string& out, std::size_t n) {
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, n);
  out.append(buf, end);
}

}  // namespace

bool is_framework_header(std::string_view name) {
  if (name.empty()) return false;
  // Dispatch on the first letter: most headers are compared once or not at all.
  switch (name[0] | 0x20) {
    case 'c':
      return boost::beast::iequals(name, "Content-Length") || boost::beast::iequals(name, "Connection");
    case 'd':
      return boost::beast::iequals(name, "Date");
    case 't':
      return boost::beast::iequals(name, "Transfer-Encoding");
    case 's':
      return boost::beast::iequals(name, "Server");
    default:
      return false;
  }
}

namespace {

// The status line and the handler's headers: shared by sized and streamed
// responses (inlined into render_head, so a plain response pays nothing).
inline void render_status_and_fields(std::string& out, response const& r, framing f) {
  out.append(f.version == 10 ? "HTTP/1.0 " : "HTTP/1.1 ");
  append_number(out, r.status);
  out.push_back(' ');
  out.append(reason_phrase(r.status));
  out.append("\r\nServer: keel\r\nDate: ");
  out.append(http_date());
  out.append("\r\n");
  if (!r.has_framework_header()) {
    out.append(r.header_lines());
  } else {
    // Rare: a handler set a header keel frames itself; keel's own wins.
    for (auto h : r.headers()) {
      if (is_framework_header(h.name)) continue;
      out.append(h.name);
      out.append(": ");
      out.append(h.value);
      out.append("\r\n");
    }
  }
}

inline void render_connection(std::string& out, framing f) {
  if (!f.keep_alive) {
    out.append("Connection: close\r\n");
  } else if (f.version == 10) {
    out.append("Connection: keep-alive\r\n");
  }
  out.append("\r\n");
}

}  // namespace

bool render_head(std::string& out, response const& r, framing f) {
  render_status_and_fields(out, r, f);
  bool no_body = r.status < 200 || r.status == 204 || r.status == 304;
  if (!no_body || (r.status == 304 && !r.body.empty())) {
    out.append("Content-Length: ");
    append_number(out, r.body.size());
    out.append("\r\n");
  }
  render_connection(out, f);
  return !no_body && !f.head;
}

bool render_streamed_head(std::string& out, response const& r, framing f, body_framing b, std::uint64_t length) {
  render_status_and_fields(out, r, f);
  bool no_body = r.status < 200 || r.status == 204 || r.status == 304;
  if (!no_body) {
    if (b == body_framing::length) {
      out.append("Content-Length: ");
      append_number(out, length);
      out.append("\r\n");
    } else if (b == body_framing::chunked) {
      out.append("Transfer-Encoding: chunked\r\n");
    }
  }
  render_connection(out, f);
  return !no_body && !f.head;
}

}  // namespace keel::detail
