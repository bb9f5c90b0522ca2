#pragma once
// The one seam between a request's exchange and the transport that carries
// it. keel::context, streamed request bodies (body_stream), and the responses
// that keep the exchange (streamed bodies, Server-Sent Events, WebSocket) see
// only this: never the connection, never whether the bytes go over plain TCP,
// TLS or (next) an HTTP/2 stream.
//
// The transport owns the framing: HTTP/1.1 chooses Content-Length, chunked or
// close-delimited, says `Connection: close` and hands a cleanly ended stream
// back to keep-alive; an HTTP/2 stream would send HEADERS and DATA frames and
// END_STREAM. It also owns the exchange's deadline (per connection on
// HTTP/1.1, per stream on HTTP/2) and applies write_timeout to each write.
// The contract in full: docs/architecture.md, "The exchange".
//
// One exchange at a time per HTTP/1.1 connection, one per HTTP/2 stream; all
// of it runs on get_executor().
#include <keel/context.hpp>
#include <keel/net.hpp>
#include <keel/request.hpp>
#include <keel/response.hpp>
#include <keel/timeout.hpp>

#include "http/byte_stream.hpp"

#include <boost/asio/ip/address.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string_view>

namespace keel::detail {

class exchange {
 public:
  exchange() = default;
  exchange(exchange const&) = delete;
  exchange& operator=(exchange const&) = delete;
  virtual ~exchange() = default;

  // --- What keel::context asks of the transport.
  virtual executor get_executor() const = 0;
  /// Where the request's trace context lives (a connection reuses its strings).
  virtual trace_context& trace_storage() = 0;
  /// Why the exchange was cancelled, if it was.
  virtual cancel_reason cancellation() const = 0;
  virtual bool draining() const = 0;
  /// The bytes are encrypted (https, wss).
  virtual bool secure() const = 0;
  /// The client's address: `peer`, or what a trusted proxy says for it.
  virtual asio::ip::address client_address(asio::ip::address peer, request const& req) const = 0;

  // --- The request body as it arrives (routes with stream_body).
  /// The next piece, nullopt at the end; throws http_error (400, 408, 413)
  /// or the system_error of a cancelled read.
  virtual task<std::optional<std::string_view>> read_body() = 0;

  // --- A response whose body follows as it is produced.
  /// The head to send: the response as the middleware chain left it (its
  /// body ignored). `length` when the body's size is known; `ends_exchange`
  /// when the exchange ends with this body (Server-Sent Events, whose body
  /// runs until then; a failure's answer).
  virtual void begin_body(response const& head, std::optional<std::uint64_t> length, bool ends_exchange) = 0;
  /// False when the response has no body (HEAD, 1xx, 204, 304): writes then send only the head.
  virtual bool body_allowed() const = 0;
  /// The head, if not yet sent, then `pieces` (possibly none) as body, in one
  /// write bounded by write_timeout. False once nothing more can be written
  /// (peer gone, timeout, more than `length`); it stays false.
  virtual task<bool> write_body(std::span<asio::const_buffer const> pieces) = 0;
  /// Ends the body. True when it ended cleanly: all promised bytes written,
  /// and the transport may carry the next exchange.
  virtual task<bool> end_body() = 0;
  virtual bool head_written() const = 0;

  // --- A takeover's own bytes (a WebSocket after its handshake).
  virtual byte_stream bytes() = 0;
  /// The takeover owns the bytes from now on: the transport keeps no read
  /// buffer for them and says no goodbye of its own when it ends.
  virtual void hand_over() = 0;
  /// Keeps what bytes() points to alive, for as long as the takeover holds it.
  virtual std::shared_ptr<void> keep_alive() = 0;

  // --- Deadline and lifecycle.
  /// The exchange's deadline: arming it bounds whatever the exchange's
  /// coroutine awaits next; fired() says it cut.
  virtual watchdog& deadline() = 0;
  /// While on, a client that leaves cancels the exchange (client_gone).
  virtual void watch_peer(bool on) = 0;
  /// What a drain and a forced close do to a long exchange (close 1001, end
  /// the stream; abort). Empty functions clear them.
  virtual void on_shutdown(std::function<void()> drain, std::function<void()> force_close) = 0;
  /// WebSocket connections are counted apart from HTTP ones.
  virtual void count_websocket(int delta) = 0;
};

/// exchange::on_shutdown for a takeover held by `weak`: `drain` and `abort`
/// run on it while it lives, and not after.
template <class T>
void on_shutdown_of(exchange& x, std::weak_ptr<T> weak, void (T::*drain)(), void (T::*abort)()) {
  x.on_shutdown(
      [weak, drain] {
        if (auto t = weak.lock()) (t.get()->*drain)();
      },
      [weak, abort] {
        if (auto t = weak.lock()) (t.get()->*abort)();
      });
}

}  // namespace keel::detail
