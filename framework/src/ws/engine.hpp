#pragma once
// One WebSocket connection's state: the send queue drained by the one writer
// coroutine, the inbox the one reader fills, and the heartbeat (ws_state), and
// the Beast stream they work on (ws_session<NextLayer>: over a tcp_socket, or
// over TLS). Lives on its connection's executor; only send() and the atomics
// are touched from other threads. Shared by both ends: the server's sessions
// (upgrade.cpp) and keel::ws_client (ws_client.cpp) differ only in how the
// handshake happens.
//
// Handles (ws_handle, websocket) hold the stream-independent base; the stream
// type is known only where the reader and writer are spawned, so a message
// costs no virtual call and a plain connection no TLS code.
#include <keel/net.hpp>
#include <keel/task_scope.hpp>
#include <keel/timeout.hpp>
#include <keel/ws.hpp>

#include "core/alarm.hpp"
#include "core/event.hpp"
#include "core/fifo.hpp"
#include "http/byte_stream.hpp"

#include <boost/asio/ssl/stream.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/websocket/stream.hpp>

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace keel::detail {

struct ws_settings {
  std::size_t max_message;
  std::chrono::milliseconds ping_interval;
  std::chrono::milliseconds pong_timeout;
  std::size_t send_queue;
  std::chrono::milliseconds write_timeout;
  std::chrono::milliseconds drain_timeout;
  /// keel_ws_* metrics describe the server's connections: a client's are not counted.
  bool counted = true;
};

/// Tests only: when set, the reader (with "reader") before each read and the
/// writer (with "writer") before each wait call it, on the session's thread;
/// throwing from it is how a test makes either fail. Set it before the app
/// starts and clear it after the app has stopped.
inline std::function<void(std::string_view)> ws_fault_for_tests;

class ws_state : public std::enable_shared_from_this<ws_state> {
 public:
  ws_state(executor ex, ws_settings settings);
  virtual ~ws_state() = default;
  ws_state(ws_state const&) = delete;
  ws_state& operator=(ws_state const&) = delete;

  /// Any thread: queue a message; false when closed or over the queue limit.
  bool send(std::shared_ptr<std::string const> data, bool binary);
  /// Any thread: ask the writer to close with `code` after what is queued.
  void request_close(std::uint16_t code, std::string reason);
  /// Any thread: the server is draining (close 1001 after the queue).
  void drain();
  /// This thread: close the TCP connection now.
  virtual void abort() = 0;

  /// A pong or data frame arrived: the peer is alive.
  void ping_pong_seen();
  /// Whether `size` more bytes fit the send queue now.
  bool has_room(std::size_t size) const {
    auto q = queued_bytes_.load(std::memory_order_relaxed);
    return q == 0 || q + size <= settings.send_queue;
  }
  /// This thread: queues a message once it fits the send queue (text already
  /// made valid UTF-8), waiting for the writer to make room; false once closed.
  task<bool> send_when_room(std::shared_ptr<std::string const> data, bool binary);

  /// The writer coroutine: queue, pings, close. Spawned once by the session.
  virtual task<void> writer() = 0;
  /// Stops the writer and waits for it.
  task<void> join_writer();
  /// The reader coroutine: reads frames continuously (so pongs and close
  /// frames are seen even while the handler is busy) into a bounded inbox.
  virtual task<void> reader() = 0;
  /// The handler's side of the inbox.
  task<ws_message> next_message();
  /// Closes the socket and waits for the reader to end.
  task<void> join_reader();
  /// Waits, without closing anything, until the reader or the writer has
  /// ended: the connection is over (peer closed, dead, or closed by us).
  task<void> wait_ended();
  /// Spawns the writer and the reader into `tasks`. An exception either lets
  /// escape is logged with `trace_id` and ends it as a return would.
  void start(std::string_view trace_id);
  /// What a writer's or a reader's end means to the others (flags, wakes).
  void writer_ended();
  void reader_ended();
  /// The writer and the reader; the session joins them before it ends.
  task_scope tasks;

  executor ex;
  ws_settings settings;
  std::uint64_t id;
  std::string subprotocol;
  boost::beast::flat_buffer read_buffer;
  std::atomic<bool> open{true};
  clock::time_point last_rx;
  std::uint16_t peer_close_code = 0;
  std::string peer_close_reason;
  /// Run once when the session ends (hub membership, ...), on this thread.
  std::vector<std::function<void()>> on_end;
  /// True once request_close() ran: a close frame is on its way or sent.
  bool close_requested() const { return close_requested_; }

 protected:
  struct outbound {
    std::shared_ptr<std::string const> data;
    bool binary = false;
  };
  void enqueue(outbound m);
  void wake();
  /// The writer's heartbeat: wake the writer at `due` (or earlier).
  void overflow();

  fifo<outbound> queue_;
  std::atomic<std::size_t> queued_bytes_{0};
  event wake_;  // the writer waits here for a message, a close or its heartbeat
  event room_;  // send_when_room() waits here: the writer took a message off, or ended
  // Rings wake_ when the next ping (or a pong's deadline) is due. Moved only
  // when that comes earlier than it would ring, never per message: ringing
  // early costs the writer one look at the clock.
  alarm heartbeat_;
  std::shared_ptr<watchdog> write_wd_;
  bool close_requested_ = false;
  std::uint16_t close_code_ = 1000;
  std::string close_reason_;
  bool slow_ = false;
  bool ping_outstanding_ = false;
  clock::time_point ping_sent_;
  bool writer_done_ = false;
  bool reader_done_ = false;
  fifo<ws_message> inbox_;
  std::size_t inbox_bytes_ = 0;
  event inbox_filled_;  // the handler waits here for a message or the reader's end
  event reader_wake_;   // the reader waits here while the inbox is full, or for the writer's end
  bool writer_stop_ = false;
  event side_ended_;  // the writer or the reader ended
  steady_timer close_timer_;  // bounds the closing handshake (see close_within)
  bool close_expired_ = false;
};

/// A ws_state over a concrete stream: tcp_socket (ws://) or TLS over a socket
/// (wss://), whose socket `owner` keeps alive (the server's connection, or the
/// client's own socket and TLS context).
template <class NextLayer>
class ws_session final : public ws_state {
 public:
  using stream_type = boost::beast::websocket::stream<NextLayer>;

  ws_session(NextLayer&& next, ws_settings settings, std::shared_ptr<void> owner = {});

  void abort() override;
  task<void> writer() override;
  task<void> reader() override;
  /// Feeds control frames (pings, pongs) to the heartbeat; once, before the handshake.
  void watch_control_frames();

 private:
  /// The closing handshake, cut by closing the socket after `limit`; true when it completed in time.
  task<bool> close_within(boost::beast::websocket::close_reason why, std::chrono::milliseconds limit);

 public:

  // Declared before the stream, so it goes after it.
  std::shared_ptr<void> owner;
  stream_type stream;
};

using tls_next_layer = asio::ssl::stream<tcp_socket&>;
extern template class ws_session<tcp_socket>;
extern template class ws_session<tls_next_layer>;
extern template class ws_session<byte_stream>;

}  // namespace keel::detail
