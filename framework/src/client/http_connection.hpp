#pragma once
// One pooled connection of keel::http_client: a TCP socket on the client's own
// io_context, TLS on top for https, and the read buffer kept between requests.
// Used by one call at a time (the pool's lease); never shared.
#include <keel/net.hpp>

#include <boost/asio/ssl/stream.hpp>
#include <boost/beast/core/flat_buffer.hpp>

#include <memory>

namespace keel::detail {

struct http_connection {
  explicit http_connection(asio::io_context& ioc) : sock(ioc.get_executor()) {}

  tcp_socket sock;
  // Declared after the socket it wraps, so it goes first.
  std::unique_ptr<asio::ssl::stream<tcp_socket&>> tls;
  boost::beast::flat_buffer buffer;
};

// What the pool holds: a slot under the per-origin connection limit, empty
// until a call connects it. Connecting in the call (not in the pool's factory)
// puts the connect under that call's deadline and cancellation.
struct http_slot {
  std::unique_ptr<http_connection> conn;
};

}  // namespace keel::detail
