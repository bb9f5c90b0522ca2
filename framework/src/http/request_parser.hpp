#pragma once
// keel's request parser: Beast's basic_parser (the RFC 9112 grammar) feeding a
// keel::request whose storage is reused across requests, plus the checks RFC
// 9112 makes a server's duty that Beast leaves to its user (Host rules,
// Transfer-Encoding rules, header count, absolute-form targets, trailers).
//
// The request's head storage is final once the head is parsed: the route's
// parameters and every view a handler holds point into it while the body is
// still arriving. Trailer fields (which Beast hands over like header fields)
// are counted against their limits and dropped, never stored.
#include <keel/request.hpp>

#include <boost/beast/http/basic_parser.hpp>

#include <optional>
#include <string_view>
#include <utility>

namespace keel::detail {

class request_parser final : public boost::beast::http::basic_parser<true> {
 public:
  using error_code = boost::beast::error_code;
  using sv = boost::beast::string_view;

  request_parser(request& req, std::size_t max_head, std::size_t max_header_count,
                 std::size_t max_body);

  /// Non-zero when the request broke a rule of ours: the status to answer with.
  unsigned reject_status() const { return reject_status_; }
  std::string_view reject_detail() const { return reject_detail_; }
  bool expects_continue() const { return expect_continue_; }
  bool chunked_body() const { return chunked_; }
  /// A WebSocket opening handshake by its head (Connection: upgrade, Upgrade: websocket).
  bool websocket_upgrade() const { return upgrade_websocket_ && upgrade(); }
  /// Whether the request line has been parsed (Beast consumes it before the fields).
  bool request_line_done() const { return request_line_done_; }

  /// Streaming mode (routes with stream_body): body bytes are not stored in
  /// the request; each put() leaves at most one piece, a view into the bytes
  /// it was given, for take_piece(). Switch on after the head, before the body.
  void stream_body() { streaming_ = true; }
  std::string_view take_piece() { return std::exchange(piece_, {}); }

  /// For a chunked body's unparsed bytes (`pending`) that the parser took
  /// none of: the answer once they outgrow their bound, else nullopt (read
  /// on). 431 for a trailer section past max_head bytes (counted from the
  /// last chunk's line, as the parser counts its fields), 400 for a chunk
  /// line longer than max_head, which no sane client sends.
  static std::optional<std::pair<unsigned, std::string_view>> oversized_chunk_framing(std::string_view pending,
                                                                                      std::size_t max_head);

  /// Frees the body's storage (not only its bytes): for a connection that a
  /// streamed response or an upgrade keeps for long.
  void release_body();

 private:
  void reject(error_code& ec, unsigned status, std::string_view detail);

  void on_request_impl(verb method, sv method_str, sv target,
                       int version, error_code& ec) override;
  void on_response_impl(int, sv, int, error_code&) override {}
  void on_field_impl(boost::beast::http::field name, sv name_string,
                     sv value, error_code& ec) override;
  void on_header_impl(error_code& ec) override;
  void on_body_init_impl(boost::optional<std::uint64_t> const& content_length,
                         error_code& ec) override;
  std::size_t on_body_impl(sv body, error_code& ec) override;
  void on_chunk_header_impl(std::uint64_t, sv, error_code&) override {}
  std::size_t on_chunk_body_impl(std::uint64_t remain, sv body,
                                 error_code& ec) override;
  void on_finish_impl(error_code&) override {}

  request& req_;
  std::size_t max_head_;
  std::size_t max_header_count_;
  unsigned reject_status_ = 0;
  std::string_view reject_detail_;
  unsigned host_count_ = 0;
  std::optional<request::ref> authority_;  // an absolute-form target's: it stands for Host
  bool head_done_ = false;               // fields from now on are trailers
  std::size_t trailer_count_ = 0;
  std::size_t trailer_bytes_ = 0;
  bool has_transfer_encoding_ = false;
  bool has_content_length_ = false;
  bool te_ends_chunked_ = false;    // the last coding so far is chunked
  bool te_chunked_twice_ = false;   // chunked before another coding, or twice
  bool te_malformed_ = false;       // an element with parameters but no coding
  bool te_unknown_coding_ = false;  // a coding keel does not decode
  bool upgrade_websocket_ = false;
  bool expect_continue_ = false;
  bool chunked_ = false;
  bool request_line_done_ = false;
  bool streaming_ = false;
  std::string_view piece_;
};

}  // namespace keel::detail
