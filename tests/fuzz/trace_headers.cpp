// Any traceparent, X-Request-Id and tracestate values through the live keel
// app (live_app.hpp), whose default stack runs keel::mw::request_id: the
// input is split at NUL bytes into those three values (CR and LF removed, so
// each stays one header line). For every 200 the response's X-Request-Id is
// valid ([A-Za-z0-9._-]{1,128}), kept when the incoming one was, the
// handler saw the same id, and traceresponse is `00-<32 hex>-<16 hex>-<2
// hex>` with non-zero ids, continuing the caller's trace when its
// version-00 traceparent was valid.
#include "live_app.hpp"

#include <keel/middleware/request_id.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace {

[[noreturn]] void fail(char const* what, std::string const& response) {
  std::fprintf(stderr, "trace_headers: %s\n%s\n", what, response.c_str());
  std::abort();
}

bool lower_hex(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

bool all_zero(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return c == '0'; });
}

// The W3C Trace Context rules for a version-00 header, written again here.
bool valid_v00_traceparent(std::string_view v) {
  if (v.size() != 55 || v[2] != '-' || v[35] != '-' || v[52] != '-') return false;
  auto trace = v.substr(3, 32), parent = v.substr(36, 16);
  return v.substr(0, 2) == "00" && lower_hex(trace) && lower_hex(parent) && lower_hex(v.substr(53, 2)) &&
         !all_zero(trace) && !all_zero(parent);
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// The first header of that name in a response head (names compared exactly:
// keel writes them in one spelling).
std::optional<std::string_view> header(std::string_view head, std::string_view name) {
  std::string needle = "\r\n" + std::string(name) + ": ";
  auto at = head.find(needle);
  if (at == std::string_view::npos) return std::nullopt;
  auto value = head.substr(at + needle.size());
  return value.substr(0, value.find("\r\n"));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* data, std::size_t size) {
  std::vector<std::string> values(3);
  std::size_t part = 0;
  for (std::size_t i = 0; i < size && part < values.size(); ++i) {
    char c = static_cast<char>(data[i]);
    if (c == '\0') ++part;
    else if (c != '\r' && c != '\n') values[part] += c;
  }
  std::string req = "GET /trace HTTP/1.1\r\nHost: fuzz\r\n";
  static constexpr char const* names[] = {"traceparent", "X-Request-Id", "tracestate"};
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (i <= part) req += std::string(names[i]) + ": " + values[i] + "\r\n";
  }
  req += "Connection: close\r\n\r\n";
  auto r = keel_fuzz::exchange(req);
  if (r.timed_out) fail("no answer within 5 s", r.received);
  if (!r.received.starts_with("HTTP/1.1 ")) fail("not an HTTP/1.1 response", r.received);
  if (!r.received.starts_with("HTTP/1.1 200 ")) return 0;  // a header the parser refused: a 400
  auto end = r.received.find("\r\n\r\n");
  if (end == std::string::npos) fail("no end of head", r.received);
  std::string_view head(r.received.data(), end + 2);
  std::string_view body(r.received.data() + end + 4, r.received.size() - end - 4);

  auto id = header(head, "X-Request-Id");
  if (!id || !keel::mw::valid_request_id(*id)) fail("no valid X-Request-Id", r.received);
  if (*id != body) fail("the handler saw another request id", r.received);
  auto incoming_id = trim(values[1]);
  if (part >= 1 && keel::mw::valid_request_id(incoming_id) && *id != incoming_id) {
    fail("a valid X-Request-Id was not kept", r.received);
  }
  auto tr = header(head, "traceresponse");
  if (!tr || tr->size() != 55 || tr->substr(0, 3) != "00-" || (*tr)[35] != '-' || (*tr)[52] != '-' ||
      !lower_hex(tr->substr(3, 32)) || !lower_hex(tr->substr(36, 16)) || !lower_hex(tr->substr(53, 2)) ||
      all_zero(tr->substr(3, 32)) || all_zero(tr->substr(36, 16))) {
    fail("a malformed traceresponse", r.received);
  }
  auto incoming = trim(values[0]);
  if (valid_v00_traceparent(incoming) && tr->substr(3, 32) != incoming.substr(3, 32)) {
    fail("a valid traceparent's trace was not continued", r.received);
  }
  return 0;
}
