#pragma once
// WebSocket routes and sessions.
//
//   app.ws("/ws/echo", [](keel::websocket& ws) -> keel::task<void> {
//     for (;;) {
//       auto msg = co_await ws.read();
//       if (!msg) co_return;                 // the session ended (msg.close_code says how)
//       ws.send(msg.data, msg.is_binary());
//     }
//   });
//
// The upgrade request runs through the router and the middleware chain like
// any request (auth, trace ids and rate limits apply; a rejected upgrade gets
// a normal HTTP response; a plain GET gets 426). The handler is one linear
// loop over read(); it must keep reading, since reading is also how pongs and
// close frames arrive. send() may be called from any coroutine or thread: it
// queues the message (bounded by ws_send_queue) for the connection's one
// writer, which writes in order, pings every ws_ping_interval of silence and
// closes a peer whose pong does not come within ws_pong_timeout. A slow
// consumer whose queue overflows is closed with 1008, an oversized message
// with 1009, invalid UTF-8 with 1007, a protocol violation with 1002, and a
// handler that throws with 1011. Drain closes open sessions with 1001 after
// their queued messages.
//
// Text keel sends is UTF-8, as a peer requires (RFC 6455 §8.1: it would fail
// the connection with 1007): a text message or close reason with bytes that
// are not is sent with each bad sequence replaced by U+FFFD (keel/utf8.hpp),
// like a browser's WebSocket.send() does with a lone surrogate; binary
// messages go as they are. A close reason is cut to 123 bytes at a character
// boundary.
#include <keel/context.hpp>
#include <keel/net.hpp>
#include <keel/router.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace keel {

namespace detail {
class ws_state;
}

/// Per-route WebSocket settings; unset fields take the server's (SPEC §2).
struct ws_options {
  /// Origins allowed for browser upgrades (exact "https://host:port" or "*");
  /// nullopt = ws_allowed_origins, whose empty default means same host only.
  std::optional<std::vector<std::string>> allowed_origins;
  /// Subprotocols this route speaks, in preference order.
  std::vector<std::string> subprotocols;
  std::optional<bool> permessage_deflate;
  std::optional<std::size_t> max_message;
  std::optional<std::chrono::milliseconds> ping_interval;
  std::optional<std::chrono::milliseconds> pong_timeout;
  std::optional<std::size_t> send_queue;
  std::optional<std::chrono::milliseconds> handshake_timeout;
};

/// What read() yields: a message, or the end of the session.
struct ws_message {
  enum class kind { text, binary, closed };
  kind type = kind::closed;
  std::string data;
  std::uint16_t close_code = 0;  ///< when closed: the code (1006 if none arrived)
  std::string close_reason;

  bool is_text() const { return type == kind::text; }
  bool is_binary() const { return type == kind::binary; }
  bool closed() const { return type == kind::closed; }
  explicit operator bool() const { return !closed(); }
};

/// A thread-safe handle to a session for sending from anywhere (hubs, other
/// threads). Outlives the session harmlessly: sends then return false.
class ws_handle {
 public:
  ws_handle() = default;
  explicit ws_handle(std::shared_ptr<detail::ws_state> s) : state_(std::move(s)) {}
  /// Queues a message; false when the session is closed or its queue is full
  /// (the session is then closed as a slow consumer). Text that is not valid
  /// UTF-8 goes with U+FFFD in place of each bad sequence (see above).
  bool send(std::string text, bool binary = false) const;
  /// Queues a buffer shared among many recipients (no copy per recipient).
  bool send_shared(std::shared_ptr<std::string const> data, bool binary = false) const;
  bool is_open() const;
  std::uint64_t id() const;
  /// Runs `f` on the session's own thread once it has ended, after the
  /// callbacks registered before it; at once (on that thread) if it has
  /// ended already. From any thread. Hubs leave their rooms this way.
  void on_end(std::function<void()> f) const;
  explicit operator bool() const { return state_ != nullptr; }
  friend bool operator==(ws_handle const& a, ws_handle const& b) { return a.state_ == b.state_; }

 private:
  std::shared_ptr<detail::ws_state> state_;
};

/// The session a WebSocket handler gets.
class websocket {
 public:
  explicit websocket(std::shared_ptr<detail::ws_state> s, context& ctx);

  /// The next message, or kind::closed when the session has ended.
  task<ws_message> read();
  /// Queues a message from any thread; see ws_handle::send.
  bool send(std::string data, bool binary = false) { return handle().send(std::move(data), binary); }
  /// Waits for room in the send queue instead of failing (false once closed).
  task<bool> send_wait(std::string data, bool binary = false);
  /// The close handshake, bounded by write_timeout; then read() yields closed.
  task<void> close(std::uint16_t code = 1000, std::string reason = {});

  /// The upgrade request's context: trace id, principal, params, query.
  context& ctx() { return ctx_; }
  /// The negotiated subprotocol, empty when none.
  std::string const& subprotocol() const;
  ws_handle handle() const { return ws_handle(state_); }
  bool is_open() const { return handle().is_open(); }

 private:
  std::shared_ptr<detail::ws_state> state_;
  context& ctx_;
};

using ws_handler = std::function<task<void>(websocket&)>;

/// Registers a WebSocket route on a router or group (app.ws() does this).
route_ref add_ws_route(route_group group, std::string_view pattern, ws_handler h, ws_options o = {});
route_ref add_ws_route(router& r, std::string_view pattern, ws_handler h, ws_options o = {});

}  // namespace keel
