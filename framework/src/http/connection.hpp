#pragma once
// One accepted TCP connection: its socket, buffers, reused request storage and
// watchdog. Owned by its session coroutine (and briefly by pending callbacks
// through shared_ptr); lives on one io_context thread for its whole life.
#include <keel/context.hpp>
#include <keel/net.hpp>
#include <keel/request.hpp>
#include <keel/timeout.hpp>

#include <boost/beast/core/flat_buffer.hpp>

#include <functional>
#include <list>
#include <memory>
#include <string>

namespace keel::detail {

struct server_state;
struct io_thread;
struct tls_stream;

/// What the session is waiting for; drain acts on the idle ones at once.
enum class phase { reading_first, idle, reading_head, reading_body, handling, writing, upgraded, streaming };

class connection : public std::enable_shared_from_this<connection> {
 public:
  connection(tcp_socket s, server_state& srv, io_thread& thread);
  ~connection();

  tcp_socket socket;
  /// TLS connections only (null on plain ones): OpenSSL over `socket`.
  std::unique_ptr<tls_stream> tls;
  boost::beast::flat_buffer buffer;
  request req;
  trace_context trace;  // each request's, reused so its strings keep their storage
  std::string out;  // the rendered response head (and small bodies)
  std::shared_ptr<watchdog> wd;
  server_state& server;
  io_thread& thread;
  asio::ip::tcp::endpoint peer;
  clock::time_point accepted_at;
  phase state = phase::reading_first;
  cancel_reason reason = cancel_reason::none;
  std::uint64_t handler_seq = 0;  // which handler run a deferred peer watch belongs to
  /// Set by the exchange when a streamed response ended cleanly
  /// (http1_exchange::end_body): the session then reads the next request
  /// instead of closing.
  bool reuse_after_upgrade = false;
  /// Set through the exchange (on_shutdown) by a takeover to be told about a
  /// drain (WebSocket: close 1001; SSE: end the stream).
  std::function<void()> on_drain;
  /// Set likewise by a takeover that holds the socket: abort it at drain_timeout.
  std::function<void()> on_force_close;

  /// Joins (leaves) its thread's registry; on the connection's own thread.
  void enlist();
  void delist();
  /// Cancels the handler if the peer closes while it runs (SPEC §2).
  void watch_peer();
  void unwatch_peer();
  /// Called on this connection's thread when the server starts draining.
  void drain();
  /// Called at drain_timeout: cancel whatever is pending and close.
  void force_close();

 private:
  void on_peer_event(boost::system::error_code ec);
  std::list<connection*>::iterator registry_pos_;
  bool watching_ = false;
  bool listed_ = false;
};

/// The HTTP/1.1 session: the protocol, top to bottom, over `stream`: the
/// connection's tcp_socket, or its TLS stream (tls_stream.hpp). Instantiated
/// for exactly those two in session.cpp, so the plain path is the same code
/// it always was, with no type erasure.
template <class Stream>
task<void> run_session(std::shared_ptr<connection> c, Stream& stream);

extern template task<void> run_session<tcp_socket>(std::shared_ptr<connection>, tcp_socket&);

}  // namespace keel::detail
