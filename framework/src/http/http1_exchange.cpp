// HTTP/1.1's exchange: what a streamed body, an event stream or a WebSocket
// asks of the connection, framed as HTTP/1.1 frames it.
#include "http/http1_exchange.hpp"

#include "http/server_state.hpp"
#include "http/tls_stream.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/write.hpp>

#include <charconv>

namespace keel::detail {

executor http1_exchange::get_executor() const { return c_.socket.get_executor(); }

cancel_reason http1_exchange::cancellation() const {
  if (c_.reason != cancel_reason::none) return c_.reason;
  return c_.wd->fired() ? cancel_reason::deadline : cancel_reason::none;
}

bool http1_exchange::draining() const { return c_.server.draining.load(std::memory_order_relaxed); }

asio::ip::address http1_exchange::client_address(asio::ip::address peer, request const& req) const {
  return c_.server.proxies.empty() ? peer : c_.server.proxies.client(peer, req);
}

task<std::optional<std::string_view>> http1_exchange::read_body() {
  if (body_ == nullptr) co_return std::nullopt;
  co_return co_await next_body_piece(*body_);
}

void http1_exchange::begin_body(response const& head, std::optional<std::uint64_t> length, bool ends_exchange) {
  auto const& req = c_.req;
  mode_ = body_framing::chunked;
  length_ = 0;
  if (length) {
    mode_ = body_framing::length;
    length_ = *length;
  }
  if (!length && (ends_exchange || req.version() < 11)) mode_ = body_framing::close;
  head_only_ = req.method() == verb::head || head.status < 200 || head.status == 204 || head.status == 304;
  keep_alive_ = req.keep_alive() && !head.close && !ends_exchange && mode_ != body_framing::close && !draining();
  written_ = 0;
  head_sent_ = false;
  failed_ = false;
  c_.out.clear();
  render_streamed_head(c_.out, head, {req.version(), keep_alive_, req.method() == verb::head}, mode_, length_);
}

// One gathered write: [head][chunk size line][pieces][CRLF, last chunk],
// each part present only when needed. write_timeout guards it.
template <class Stream>
task<bool> http1_exchange::send(Stream& s, std::span<asio::const_buffer const> pieces, bool last_chunk) {
  static constexpr std::string_view crlf = "\r\n";
  static constexpr std::string_view crlf_last = "\r\n0\r\n\r\n";
  static constexpr std::string_view last = "0\r\n\r\n";
  gather_.clear();
  if (!head_sent_) gather_.push_back(asio::buffer(c_.out));
  std::size_t size = head_only_ ? 0 : asio::buffer_size(pieces);
  bool chunked = mode_ == body_framing::chunked && !head_only_;
  char size_line[24];
  if (chunked && size != 0) {
    auto end = std::to_chars(size_line, size_line + 20, size, 16).ptr;
    *end++ = '\r';
    *end++ = '\n';
    gather_.push_back(asio::buffer(size_line, static_cast<std::size_t>(end - size_line)));
  }
  if (size != 0) gather_.insert(gather_.end(), pieces.begin(), pieces.end());
  if (chunked && size != 0) gather_.push_back(asio::buffer(last_chunk ? crlf_last : crlf));
  else if (chunked && last_chunk) gather_.push_back(asio::buffer(last));
  if (asio::buffer_size(gather_) == 0) co_return true;
  c_.wd->arm_after(c_.server.opts.write_timeout);
  auto [ec, n] = co_await asio::async_write(s, gather_, asio::as_tuple(use_task));
  c_.wd->disarm();
  if (ec) {
    failed_ = true;
    co_return false;
  }
  head_sent_ = true;
  written_ += size;
  co_return true;
}

task<bool> http1_exchange::write(std::span<asio::const_buffer const> pieces, bool last_chunk) {
  if (failed_) co_return false;
  if (mode_ == body_framing::length && !head_only_ && length_ - written_ < asio::buffer_size(pieces)) {
    // More than promised: the framing would lie. End the stream.
    failed_ = true;
    co_return false;
  }
  bool ok = false;
  if (c_.tls) {
    ok = co_await send(c_.tls->stream, pieces, last_chunk);
  } else {
    ok = co_await send(c_.socket, pieces, last_chunk);
  }
  co_return ok;
}

task<bool> http1_exchange::write_body(std::span<asio::const_buffer const> pieces) {
  return write(pieces, false);
}

task<bool> http1_exchange::end_body() {
  c_.reuse_after_upgrade = false;
  if (failed_) co_return false;
  if (mode_ == body_framing::length && !head_only_ && written_ != length_) co_return false;
  std::span<asio::const_buffer const> nothing;
  bool ok = co_await write(nothing, true);  // the head if unsent, the last chunk
  if (!ok) co_return false;
  c_.reuse_after_upgrade = keep_alive_ && !draining();
  co_return true;
}

byte_stream http1_exchange::bytes() {
  if (c_.tls) return byte_stream(c_.tls->stream);
  return byte_stream(c_.socket);
}

void http1_exchange::hand_over() {
  // An idle WebSocket holds only what it needs: no bytes may follow the
  // upgrade request before the 101, so the HTTP read buffer goes.
  c_.buffer.clear();
  c_.buffer.shrink_to_fit();
  if (c_.tls) c_.tls->taken = true;  // the takeover says its own goodbye
}

void http1_exchange::watch_peer(bool on) {
  if (on) {
    c_.state = phase::streaming;
    c_.watch_peer();
  } else {
    c_.unwatch_peer();
  }
}

void http1_exchange::on_shutdown(std::function<void()> drain, std::function<void()> force_close) {
  c_.on_drain = std::move(drain);
  c_.on_force_close = std::move(force_close);
}

void http1_exchange::count_websocket(int delta) {
  if (delta > 0) c_.server.ws_active.fetch_add(static_cast<std::uint64_t>(delta));
  else c_.server.ws_active.fetch_sub(static_cast<std::uint64_t>(-delta));
}

}  // namespace keel::detail
