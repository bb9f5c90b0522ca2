#include <keel/response.hpp>

#include <boost/beast/core/string.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

namespace keel {

namespace {
response with_type(std::string body, unsigned status, std::string_view type) {
  response r(status);
  r.body = std::move(body);
  r.add_header("Content-Type", std::string(type));  // a fresh response: nothing to replace
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

void response::set_header(std::string_view name, std::string value) {
  for (auto it = headers_.begin(); it != headers_.end(); ++it) {
    if (boost::beast::iequals(it->name, name)) {
      it->value = std::move(value);
      // Later duplicates would contradict the value just set.
      for (auto j = it + 1; j != headers_.end();) {
        if (boost::beast::iequals(j->name, name)) j = headers_.erase(j);
        else ++j;
      }
      return;
    }
  }
  headers_.push_back({std::string(name), std::move(value)});
}

void response::add_header(std::string name, std::string value) {
  headers_.push_back({std::move(name), std::move(value)});
}

std::optional<std::string_view> response::header(std::string_view name) const {
  for (auto const& f : headers_) {
    if (boost::beast::iequals(f.name, name)) return std::string_view(f.value);
  }
  return std::nullopt;
}

void response::remove_header(std::string_view name) {
  for (auto it = headers_.begin(); it != headers_.end();) {
    if (boost::beast::iequals(it->name, name)) it = headers_.erase(it);
    else ++it;
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
