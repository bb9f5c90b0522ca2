#include "http/request_parser.hpp"

#include <boost/beast/core/string.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/field.hpp>
#include <boost/beast/http/rfc7230.hpp>

#include <algorithm>

namespace keel::detail {

namespace http = boost::beast::http;
using sv = boost::beast::string_view;

request_parser::request_parser(request& req, std::size_t max_head, std::size_t max_header_count,
                               std::size_t max_body)
    : req_(req), max_head_(max_head), max_header_count_(max_header_count) {
  req_.clear();
  header_limit(static_cast<std::uint32_t>(max_head));
  body_limit(max_body);
}

void request_parser::reject(error_code& ec, unsigned status, std::string_view detail) {
  reject_status_ = status;
  reject_detail_ = detail;
  ec = http::error::bad_value;
}

namespace {

bool starts_with_nocase(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && boost::beast::iequals(s.substr(0, prefix.size()), prefix);
}

}  // namespace

void request_parser::on_request_impl(verb method, sv method_str,
                                     sv target, int version, error_code& ec) {
  req_.method_ = method;
  req_.version_ = static_cast<unsigned>(version);
  req_.method_ref_ = req_.store(method_str);
  request_line_done_ = true;
  std::string_view t(target.data(), target.size());
  std::size_t scheme = starts_with_nocase(t, "http://") ? 7 : starts_with_nocase(t, "https://") ? 8 : 0;
  if (scheme == 0) {
    // Only origin-form routes. Asterisk-form (OPTIONS *) and authority-form
    // (CONNECT) ask for the server or a tunnel, neither of which keel is;
    // refusing them is what nginx does too.
    if (t.empty() || t.front() != '/') return reject(ec, 400, "a request target that is not a path or an absolute URL");
    req_.target_ref_ = req_.store(t);
    return;
  }
  // RFC 9112 §3.2.2: a server MUST accept the absolute-form. It is routed on
  // its path and query, and its authority replaces Host (§3.2.3).
  t.remove_prefix(scheme);
  auto end = t.find_first_of("/?");
  auto authority = t.substr(0, end);
  t.remove_prefix(authority.size());
  // No userinfo (RFC 9110 §4.2.4): "http://a@b/" names two hosts.
  if (authority.empty() || authority.find('@') != std::string_view::npos) {
    return reject(ec, 400, "an absolute-form target without a valid authority");
  }
  authority_ = req_.store(authority);
  if (t.empty() || t.front() == '?') {
    auto slash = req_.store("/");
    req_.store(t);
    req_.target_ref_ = {slash.offset, static_cast<std::uint32_t>(t.size() + 1)};
  } else {
    req_.target_ref_ = req_.store(t);
  }
}

namespace {

// Each coding of a Transfer-Encoding list, trimmed, without its parameters;
// empty list elements are skipped (RFC 9110 §5.6.1).
template <class F>
void for_each_coding(std::string_view value, F&& f) {
  while (!value.empty()) {
    auto comma = value.find(',');
    auto item = value.substr(0, comma);
    value.remove_prefix(comma == std::string_view::npos ? value.size() : comma + 1);
    auto semi = item.find(';');
    bool has_parameters = semi != std::string_view::npos;
    if (has_parameters) item = item.substr(0, semi);
    while (!item.empty() && (item.front() == ' ' || item.front() == '\t')) item.remove_prefix(1);
    while (!item.empty() && (item.back() == ' ' || item.back() == '\t')) item.remove_suffix(1);
    // Parameters without a coding (";x=1") are not an empty element: the caller sees them.
    if (!item.empty() || has_parameters) f(item);
  }
}

}  // namespace

namespace {

// Beast replaces an obs-fold (a field line continued on the next line after
// SP or HTAB) with SP, so the value it hands over is no longer the bytes
// after the name's colon and its whitespace. RFC 9112 §5.2 lets a server
// reject it instead, as nginx does; keel does too, so that no proxy in front
// and keel ever disagree on where a header ends. The name points into the
// parsed bytes, and without a fold so does the value, right after the OWS.
bool obs_folded(sv name, sv value) {
  char const* p = name.data() + name.size() + 1;  // past the ':'
  while (p != value.data() && (*p == ' ' || *p == '\t')) ++p;
  return p != value.data();
}

}  // namespace

void request_parser::on_field_impl(http::field name, sv name_string,
                                   sv value, error_code& ec) {
  if (obs_folded(name_string, value)) return reject(ec, 400, "a field line folded onto the next (obs-fold)");
  if (head_done_) {
    // A trailer: never a header (RFC 9110 §6.5.1), and never stored, since
    // the head's storage must not move under the route's views. Its limits
    // are the head's, counted apart; past them the body is mid-flight, so
    // the connection closes after the 431.
    // The line's own bytes, as oversized_chunk_framing counts a section still
    // arriving, so the bound does not depend on how the bytes arrive: both
    // views are in the parsed bytes (a fold was refused above), and the
    // value's trailing whitespace and CRLF follow it there.
    auto const* end = value.data() + value.size();
    while (*end == ' ' || *end == '\t') ++end;
    trailer_bytes_ += static_cast<std::size_t>(end - name_string.data()) + 2;
    if (++trailer_count_ > max_header_count_) return reject(ec, 431, "too many trailer fields");
    if (trailer_bytes_ > max_head_) return reject(ec, 431, "the trailer section is larger than max_head");
    return;
  }
  if (req_.headers_.size() >= max_header_count_) {
    return reject(ec, 431, "too many header fields");
  }
  std::optional<request::ref> stored_value;
  switch (name) {
    case http::field::host:
      ++host_count_;
      stored_value = authority_;
      break;
    case http::field::transfer_encoding:
      has_transfer_encoding_ = true;
      // The codings of every Transfer-Encoding line, in order, form one list.
      for_each_coding(value, [this](std::string_view coding) {
        if (coding.empty()) te_malformed_ = true;
        if (te_ends_chunked_) te_chunked_twice_ = true;
        te_ends_chunked_ = boost::beast::iequals(coding, "chunked");
        if (!te_ends_chunked_) te_unknown_coding_ = true;
      });
      break;
    case http::field::content_length:
      has_content_length_ = true;
      break;
    case http::field::expect:
      expect_continue_ = boost::beast::iequals(value, "100-continue");
      break;
    case http::field::upgrade:
      for (auto protocol : http::token_list{value}) {
        if (boost::beast::iequals(protocol, "websocket")) upgrade_websocket_ = true;
      }
      break;
    default:
      break;
  }
  auto n = req_.store(name_string);
  auto v = stored_value ? *stored_value : req_.store(value);
  req_.headers_.push_back({n, v});
}

void request_parser::on_header_impl(error_code& ec) {
  head_done_ = true;
  // RFC 9112 §3.2: exactly one Host in HTTP/1.1, at most one otherwise.
  if (req_.version_ >= 11 && host_count_ == 0) return reject(ec, 400, "missing Host header");
  if (host_count_ > 1) return reject(ec, 400, "repeated Host header");
  if (has_transfer_encoding_) {
    // §6.1, §6.3: a request whose final coding is not chunked cannot be
    // framed; chunked twice is malformed; a coding keel does not decode
    // (anything but chunked) is 501; and a request with both framings is a
    // smuggling attempt more often than not.
    if (req_.version_ < 11) return reject(ec, 400, "Transfer-Encoding in an HTTP/1.0 request");
    if (te_malformed_) return reject(ec, 400, "a Transfer-Encoding element without a coding");
    if (!te_ends_chunked_) {
      return reject(ec, 400, "Transfer-Encoding whose final coding is not chunked");
    }
    if (te_chunked_twice_) return reject(ec, 400, "Transfer-Encoding applies chunked more than once");
    if (has_content_length_) return reject(ec, 400, "both Transfer-Encoding and Content-Length");
    if (te_unknown_coding_) return reject(ec, 501, "a transfer coding keel does not implement (only chunked)");
    // Beast frames the body by its own reading of the same fields: where it
    // does not see chunked, the body would be parsed as the next request.
    if (!chunked()) return reject(ec, 400, "a Transfer-Encoding that does not frame the body");
  }
  req_.keep_alive_ = keep_alive();
  chunked_ = chunked();
}

void request_parser::on_body_init_impl(boost::optional<std::uint64_t> const& content_length,
                                       error_code&) {
  // The length is the client's claim: reserve it only up to a bound, so a
  // parser whose caller has not yet held it to the route's limit cannot be
  // made to allocate what the client names (found by fuzz_request_head).
  constexpr std::uint64_t reserve_cap = 1024 * 1024;
  if (content_length && !streaming_) req_.body_.reserve(static_cast<std::size_t>(std::min(*content_length, reserve_cap)));
}

std::size_t request_parser::on_body_impl(sv body, error_code&) {
  // Without eager parsing Beast hands over at most one piece per put().
  if (streaming_) piece_ = std::string_view(body.data(), body.size());
  else req_.body_.append(body);
  return body.size();
}

std::size_t request_parser::on_chunk_body_impl(std::uint64_t, sv body, error_code&) {
  if (streaming_) piece_ = std::string_view(body.data(), body.size());
  else req_.body_.append(body);
  return body.size();
}

std::optional<std::pair<unsigned, std::string_view>> request_parser::oversized_chunk_framing(
    std::string_view pending, std::size_t max_head) {
  constexpr std::pair<unsigned, std::string_view> malformed{400, "malformed chunked body"};
  if (pending.size() <= max_head) return std::nullopt;
  // The previous chunk's data may still end in its CRLF.
  if (pending.substr(0, 2) == "\r\n") pending.remove_prefix(2);
  auto eol = pending.find("\r\n");
  if (eol == std::string_view::npos || eol > max_head) return malformed;
  auto line = pending.substr(0, eol);
  if (line.empty() || line.front() != '0') return malformed;
  auto rest = line.find_first_not_of('0');
  bool last_chunk = rest == std::string_view::npos || line[rest] == ';' || line[rest] == ' ' || line[rest] == '\t';
  if (!last_chunk) return malformed;
  // Beast parses a trailer section once it has all of it. Only its own bytes
  // count against max_head, as the parser counts its fields: the section's
  // field lines, plus the CRLF that ends it.
  if (pending.size() - (eol + 2) <= max_head + 2) return std::nullopt;
  return std::pair<unsigned, std::string_view>{431, "the trailer section is larger than max_head"};
}

void request_parser::release_body() { std::string().swap(req_.body_); }

}  // namespace keel::detail
