#pragma once
// A TLS connection's stream: OpenSSL over the connection's own socket, which
// stays in connection::socket so the deadline, peer-watch and drain code that
// works on the socket works unchanged. Only TLS connections allocate one; a
// plain connection carries a null pointer and runs the tcp_socket session.
#include "http/byte_stream.hpp"
#include "http/connection.hpp"

#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>

#include <memory>

namespace keel::detail {

struct tls_stream {
  tls_stream(tcp_socket& socket, std::shared_ptr<asio::ssl::context> c)
      : ctx(std::move(c)), stream(socket, *ctx) {}

  // Declared first: the context (the certificate this connection started
  // with, whatever SIGHUP loads meanwhile) outlives the stream.
  std::shared_ptr<asio::ssl::context> ctx;
  tls_socket_stream stream;
  /// A WebSocket upgrade moved `stream` into its session: do not touch it.
  bool taken = false;
};

/// TLS connections: the handshake under tls_handshake_timeout, then the HTTP
/// session over the TLS stream.
task<void> run_tls_session(std::shared_ptr<connection> c);

/// Sends close_notify and waits briefly for the peer's; bounded, never throws.
task<void> tls_goodbye(connection& c, tls_socket_stream& stream);

extern template task<void> run_session<tls_socket_stream>(std::shared_ptr<connection>, tls_socket_stream&);

}  // namespace keel::detail
