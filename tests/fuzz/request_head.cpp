// Any bytes as pipelined HTTP/1.1 requests through keel's parser (Beast's
// grammar plus keel's own RFC 9112 checks), delivered in pieces of any size
// as a socket would, consumed the way the session consumes them.
//
// The session matches the route on the head and keeps views into it (the
// path parameters, a stream_body handler's headers) while the body arrives, so
// once the head is done: the views taken then still read what they read after
// the body (a chunked body's trailer fields must not move the head's storage:
// issue 21 #1, under ASan), and the header section is the same (a trailer
// field is never a header: #2).
#include "http/request_parser.hpp"

#include <keel/request.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace {

// What the head said, as views into the request and as copies.
struct head_snapshot {
  std::string_view target_view, path_view;
  std::string target;
  std::vector<keel::header_view> views;
  std::vector<std::pair<std::string, std::string>> copies;

  explicit head_snapshot(keel::request const& req)
      : target_view(req.target()), path_view(req.path()), target(target_view), views(req.headers()) {
    for (auto const& h : views) copies.emplace_back(h.name, h.value);
  }

  void check(keel::request const& req) const {
    if (target_view != target || req.target() != target || path_view != req.path()) {
      std::fprintf(stderr, "request_head: the target moved or changed while the body was parsed (#1)\n");
      std::abort();
    }
    if (req.header_count() != copies.size()) {
      std::fprintf(stderr, "request_head: %zu header fields after the body, %zu in the head (#2)\n",
                   req.header_count(), copies.size());
      std::abort();
    }
    for (std::size_t i = 0; i < copies.size(); ++i) {
      if (views[i].name != copies[i].first || views[i].value != copies[i].second) {
        std::fprintf(stderr, "request_head: a header view changed while the body was parsed (#1)\n");
        std::abort();
      }
    }
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* data, std::size_t size) {
  if (size == 0) return 0;
  std::size_t piece = 1 + data[0] % 64;  // the first byte picks the read size
  std::string_view in(reinterpret_cast<char const*>(data + 1), size - 1);
  std::string buffer;  // what has arrived and is not consumed yet
  auto arrive = [&] {
    auto take = std::min(piece, in.size());
    buffer.append(in.substr(0, take));
    in.remove_prefix(take);
    return take > 0;
  };
  for (int requests = 0; requests < 64; ++requests) {
    keel::request req;
    keel::detail::request_parser p(req, 8 * 1024, 100, 64 * 1024);
    p.body_limit(boost::none);
    bool head_phase = true;
    std::optional<head_snapshot> head;
    for (;;) {
      // As the session does: a chunked body is parsed with five bytes or more
      // (Beast 1.81 asserts on less at the final chunk, boostorg/beast#2861).
      if (!buffer.empty() && !(p.chunked_body() && !head_phase && buffer.size() < 5)) {
        boost::beast::error_code ec;
        auto n = p.put(boost::asio::buffer(buffer.data(), buffer.size()), ec);
        buffer.erase(0, n);
        if (ec && ec != boost::beast::http::error::need_more) return 0;  // rejected: the connection ends
        if (head_phase && p.is_header_done()) {
          head_phase = false;
          // The route's limit applies once the head is known, as in the session.
          p.body_limit(std::uint64_t{64 * 1024});
          (void)req.header("Host");
          head.emplace(req);
        }
        if (p.is_done()) break;
        if (n > 0) continue;
        if (buffer.size() > 8 * 1024) return 0;  // head or chunk header over the limit
      }
      if (!arrive()) return 0;  // the peer stopped mid-request
    }
    (void)req.method();
    (void)req.body().size();
    if (head) head->check(req);
    if (buffer.empty() && in.empty()) return 0;
  }
  return 0;
}
