#pragma once
// An HTTP/1.x request as keel's parser received it.
//
// The storage belongs to the connection and is reused from one request to the
// next, so the views this class hands out are valid for the request's lifetime
// (the handler and its middleware), never beyond: copy what must outlive it.
// Beast 1.81's verb.hpp defines operator<< with only <iosfwd> included.
#include <ostream>

#include <boost/beast/http/verb.hpp>

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace keel {

namespace detail {
class request_parser;
}

using verb = boost::beast::http::verb;

/// One received header field, name as sent.
struct header_view {
  std::string_view name;
  std::string_view value;
};

class request {
 public:
  verb method() const { return method_; }
  /// The method as sent (useful when method() is verb::unknown).
  std::string_view method_string() const { return view(method_ref_); }
  /// The request-target as sent: path and query, percent-encoded. Of an
  /// absolute-form target (`http://host/path?q`, RFC 9112 §3.2.2) only the
  /// path and query; its authority is then what header("Host") returns.
  std::string_view target() const { return view(target_ref_); }
  /// The target before '?'.
  std::string_view path() const;
  /// The target after '?', without it; empty when absent.
  std::string_view query_string() const;
  /// 10 for HTTP/1.0, 11 for HTTP/1.1.
  unsigned version() const { return version_; }

  /// The first header with this name (case-insensitive), if any.
  std::optional<std::string_view> header(std::string_view name) const;
  std::size_t header_count() const { return headers_.size(); }
  /// All headers in arrival order.
  std::vector<header_view> headers() const;

  std::string_view body() const { return body_; }
  /// Whether the connection may stay open after this request (RFC 9112 §9.3).
  bool keep_alive() const { return keep_alive_; }

 private:
  friend class detail::request_parser;
  struct ref {
    std::uint32_t offset = 0;
    std::uint32_t size = 0;
  };
  struct header_ref {
    ref name;
    ref value;
  };
  std::string_view view(ref r) const { return {head_.data() + r.offset, r.size}; }
  ref store(std::string_view s);
  void clear();

  verb method_ = verb::unknown;
  unsigned version_ = 11;
  bool keep_alive_ = true;
  ref method_ref_;
  ref target_ref_;
  std::string head_;  // method, target, names and values, back to back
  std::vector<header_ref> headers_;
  std::string body_;
};

}  // namespace keel
