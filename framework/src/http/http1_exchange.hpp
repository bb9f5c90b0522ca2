#pragma once
// HTTP/1.1's side of the exchange seam (http/exchange.hpp): one request on a
// connection, made by the session for each request it reads. It frames a
// streamed response (Content-Length, chunked, or close-delimited for
// HTTP/1.0 and event streams), decides whether the connection is kept for the
// next request, and reaches the socket or the TLS stream the connection has.
#include "http/body_source.hpp"
#include "http/connection.hpp"
#include "http/exchange.hpp"
#include "http/response_writer.hpp"

#include <vector>

namespace keel::detail {

class http1_exchange final : public exchange {
 public:
  explicit http1_exchange(connection& c) : c_(c) {}

  /// A route with stream_body: read_body() reads through `b`.
  void attach_body(body_source* b) { body_ = b; }

  executor get_executor() const override;
  trace_context& trace_storage() override { return c_.trace; }
  cancel_reason cancellation() const override;
  bool draining() const override;
  bool secure() const override { return c_.tls != nullptr; }
  asio::ip::address client_address(asio::ip::address peer, request const& req) const override;

  task<std::optional<std::string_view>> read_body() override;

  void begin_body(response const& head, std::optional<std::uint64_t> length, bool ends_exchange) override;
  bool body_allowed() const override { return !head_only_; }
  task<bool> write_body(std::span<asio::const_buffer const> pieces) override;
  task<bool> end_body() override;
  bool head_written() const override { return head_sent_; }

  byte_stream bytes() override;
  void hand_over() override;
  std::shared_ptr<void> keep_alive() override { return c_.shared_from_this(); }

  watchdog& deadline() override { return *c_.wd; }
  void watch_peer(bool on) override;
  void on_shutdown(std::function<void()> drain, std::function<void()> force_close) override;
  void count_websocket(int delta) override;

 private:
  template <class Stream>
  task<bool> send(Stream& s, std::span<asio::const_buffer const> pieces, bool last_chunk);
  task<bool> write(std::span<asio::const_buffer const> pieces, bool last_chunk);

  connection& c_;
  body_source* body_ = nullptr;
  // A streamed response; its head is rendered into the connection's `out`.
  body_framing mode_ = body_framing::chunked;
  std::uint64_t length_ = 0;  // body_framing::length only
  std::uint64_t written_ = 0;
  bool keep_alive_ = false;
  bool head_only_ = false;
  bool head_sent_ = false;
  bool failed_ = false;
  std::vector<asio::const_buffer> gather_;
};

}  // namespace keel::detail
