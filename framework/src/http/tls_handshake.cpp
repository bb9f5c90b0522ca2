// A TLS connection's life around the HTTP session: the server handshake
// (tls_handshake_timeout, cancelled like every other wait by the connection's
// watchdog, so drain and deadlines reach it) and close_notify at the end.
#include "http/tls_stream.hpp"

#include "http/server_state.hpp"

#include <keel/log.hpp>
#include <keel/metrics.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/this_coro.hpp>

#include <algorithm>

namespace keel::detail {

namespace {
// How long a closing connection waits for the peer's close_notify: enough for
// a client that is closing too, short enough that an idle keep-alive peer,
// which will not answer until it next reads, does not hold a drain up.
constexpr std::chrono::milliseconds goodbye_wait{100};

metrics::counter& handshake_failures() {
  static auto& c = metrics::global().add_counter(
      "keel_tls_handshake_failures_total", "TLS handshakes that failed or ran past tls_handshake_timeout.");
  return c;
}
}  // namespace

task<void> run_tls_session(std::shared_ptr<connection> self) {
  auto& c = *self;
  auto& stream = c.tls->stream;
  co_await asio::this_coro::throw_if_cancelled(false);
  c.enlist();  // a drain cuts a handshake in progress (phase::reading_first)
  c.wd->arm_after(c.server.opts.tls_handshake_timeout);
  auto [ec] = co_await stream.async_handshake(asio::ssl::stream_base::server, tuple_task);
  c.wd->disarm();
  if (ec) {
    // A drain cutting a handshake short is not the client's failure.
    if (c.reason != cancel_reason::shutdown) {
      handshake_failures().inc();
      log::debug("TLS handshake failed", {{"peer", c.peer.address().to_string()},
                                          {"error", c.wd->fired() ? std::string("timeout") : ec.message()}});
    }
    boost::system::error_code ignored;
    c.socket.close(ignored);
    c.delist();
    co_return;
  }
  // header_timeout counts from here: the handshake had its own deadline.
  c.accepted_at = clock::now();
  co_await run_session(self, stream);
}

task<void> tls_goodbye(connection& c, tls_socket_stream& stream) {
  // The session may end on a fired deadline: this wait has its own.
  co_await asio::this_coro::reset_cancellation_state();
  co_await asio::this_coro::throw_if_cancelled(false);
  c.wd->arm_after(std::min(goodbye_wait, c.server.opts.write_timeout));
  // Writes close_notify first, then waits for the peer's until the deadline.
  auto [ec] = co_await stream.async_shutdown(tuple_task);
  c.wd->disarm();
  (void)ec;
}

}  // namespace keel::detail
