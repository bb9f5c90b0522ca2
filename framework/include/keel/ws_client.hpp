#pragma once
// keel::ws_client: a WebSocket client that keeps its link up, reconnecting
// with exponential backoff and full jitter (SPEC §2: 0.5 s, ×2, cap 30 s,
// reset after 30 s connected).
//
//   keel::ws_client ws(co_await asio::this_coro::executor, "ws://127.0.0.1:9000/feed");
//   ws.on_connect([](keel::ws_handle link) -> keel::task<void> {
//     link.send(R"({"subscribe":"prices"})");   // goes out before any ws.send()
//     co_return;
//   });
//   auto consume = [&ws]() -> keel::task<void> {
//     while (auto msg = co_await ws.read()) handle(msg.data);   // across reconnects
//   };
//   co_await (ws.run() && consume());           // both end after ws.stop()
//
// The client runs on the keel::executor it is constructed with (in a handler:
// `co_await asio::this_coro::executor`; standalone: an io_context's executor
// run by one thread). run() is the connection loop, awaited once by its owner;
// it ends, with state() == closed, after stop(), close() or max_attempts
// failed attempts in a row. The client must outlive run().
//
// Each connection is the same session as the server side: one reader, one
// writer draining a bounded queue (send_queue), keel's own pings after
// ping_interval without a frame and a close when no pong comes within
// pong_timeout, which counts as a lost connection and is retried.
//
// Messages sent while disconnected: send() returns false at once unless the
// state is open; nothing is buffered for later, so nothing stale is replayed
// after a reconnect (re-send from on_connect what the server must know).
// true means queued on the current connection: a connection that drops
// before writing it loses it (at most once).
//
// Threads: send(), stop() and state() from any thread; read(), close(),
// wait_state() and run() on the client's executor, read() from one coroutine
// at a time.
//
// wss:// speaks TLS 1.2 or 1.3 and verifies the server: its certificate must
// chain to a trusted CA (the system's store, or only those in ca_file) and
// name the URL's host (DNS name or IP address SAN); the name also goes out as
// SNI. A server that fails verification is a failed attempt, retried with the
// backoff like any other.
#include <keel/backoff.hpp>
#include <keel/net.hpp>
#include <keel/ws.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace keel {

namespace detail {
class ws_client_impl;
}

struct ws_client_options {
  /// Delays between attempts: base, multiplier, cap (full jitter).
  backoff_options reconnect{};
  /// A connection that stayed open this long resets the backoff.
  std::chrono::milliseconds reset_after{std::chrono::seconds(30)};
  /// Give up (state closed, run() returns) after this many failed attempts in
  /// a row; nullopt keeps trying.
  std::optional<unsigned> max_attempts;
  /// TCP connect plus the WebSocket handshake (ws_handshake_timeout).
  std::chrono::milliseconds connect_timeout{std::chrono::seconds(10)};
  std::chrono::milliseconds ping_interval{std::chrono::seconds(30)};
  std::chrono::milliseconds pong_timeout{std::chrono::seconds(10)};
  /// Each write, and the whole close handshake (close(), stop()).
  std::chrono::milliseconds write_timeout{std::chrono::seconds(30)};
  std::chrono::milliseconds close_timeout{std::chrono::seconds(1)};
  std::size_t max_message = 64 * 1024;
  std::size_t send_queue = 1024 * 1024;  ///< bytes; a full queue makes send() false
  /// Extra handshake headers (Authorization, ...).
  std::vector<std::pair<std::string, std::string>> headers;
  /// Offered in Sec-WebSocket-Protocol.
  std::vector<std::string> subprotocols;
  /// wss:// only: PEM file of the CAs to trust instead of the system's.
  std::string ca_file;
  /// Called on the client's executor before each backoff sleep with the
  /// delay drawn and `attempt`, the delays drawn since the backoff last reset
  /// (1: under the base ceiling), for logs, metrics and tests.
  std::function<void(unsigned attempt, std::chrono::milliseconds delay)> on_retry;
};

enum class ws_client_state {
  connecting,    ///< the first attempt
  open,          ///< connected and on_connect done: send() queues
  reconnecting,  ///< lost or failed, backing off or trying again
  closed         ///< for good: stop(), close() or max_attempts
};

char const* to_string(ws_client_state s);

class ws_client {
 public:
  /// `url` is ws:// or wss://host[:port][/path][?query]; throws
  /// std::invalid_argument otherwise, or when ca_file does not load.
  ws_client(executor const& ex, std::string_view url, ws_client_options o = {});
  ~ws_client();
  ws_client(ws_client const&) = delete;
  ws_client& operator=(ws_client const&) = delete;

  /// Runs after every successful handshake (the first and each reconnect)
  /// before the state becomes open; `link` sends on the new connection ahead
  /// of anything sent through the client, and read() already yields its
  /// messages (an auth reply). A hook that throws fails that attempt.
  void on_connect(std::function<task<void>(ws_handle link)> hook);

  /// The connection loop; see the top of this file.
  task<void> run();

  /// The next message from whichever connection is current, waiting across
  /// reconnects; kind::closed only once the client is closed for good.
  task<ws_message> read();
  /// Queues a message on the open connection; false when not open or full.
  bool send(std::string data, bool binary = false);
  /// Closes for good: the close handshake with `code` after what is queued,
  /// bounded by close_timeout; returns once run() has nothing left to do.
  task<void> close(std::uint16_t code = 1000, std::string reason = {});
  /// Any thread: closes for good promptly (a pending backoff sleep or
  /// connect attempt ends at once, an open connection closes with 1000).
  void stop();

  ws_client_state state() const;
  /// Waits until the state differs from `seen`; returns the new state.
  task<ws_client_state> wait_state(ws_client_state seen);
  /// The connection attempts made so far (successful or not).
  unsigned attempts() const;

 private:
  std::shared_ptr<detail::ws_client_impl> impl_;
};

}  // namespace keel
