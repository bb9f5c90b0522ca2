#include <keel/testing/ws_client.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/websocket.hpp>

#include <sys/socket.h>

#include <stdexcept>

namespace keel::testing {

namespace websocket = boost::beast::websocket;
using boost::asio::ip::tcp;

struct ws_client::impl {
  boost::asio::io_context ioc;
  websocket::stream<tcp::socket> ws{ioc};
  boost::beast::flat_buffer buffer;
};

ws_client::ws_client(std::uint16_t port, std::string const& target,
                     std::vector<std::pair<std::string, std::string>> headers, std::chrono::milliseconds timeout)
    : impl_(std::make_unique<impl>()) {
  auto& ws = impl_->ws;
  ws.next_layer().connect({boost::asio::ip::make_address("127.0.0.1"), port});
  // Blocking reads with a bound: the kernel's receive timeout, so no thread is needed.
  timeval tv{static_cast<time_t>(timeout.count() / 1000), static_cast<suseconds_t>(timeout.count() % 1000 * 1000)};
  ::setsockopt(ws.next_layer().native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ws.set_option(websocket::stream_base::decorator([headers = std::move(headers)](websocket::request_type& req) {
    for (auto const& [name, value] : headers) req.set(name, value);
  }));
  websocket::response_type res;
  boost::system::error_code ec;
  ws.handshake(res, "127.0.0.1:" + std::to_string(port), target, ec);
  if (ec) {
    throw std::runtime_error("WebSocket upgrade of " + target + " failed: " + ec.message() +
                             (res.result_int() ? " (HTTP " + std::to_string(res.result_int()) + ")" : ""));
  }
}

ws_client::~ws_client() = default;
ws_client::ws_client(ws_client&&) noexcept = default;

void ws_client::send(std::string const& data, bool binary) {
  impl_->ws.binary(binary);
  impl_->ws.write(boost::asio::buffer(data));
}

std::string ws_client::read() {
  impl_->buffer.clear();
  boost::system::error_code ec;
  impl_->ws.read(impl_->buffer, ec);
  if (ec) throw std::runtime_error("WebSocket read failed: " + ec.message());
  return boost::beast::buffers_to_string(impl_->buffer.data());
}

bool ws_client::last_was_binary() const { return impl_->ws.got_binary(); }

void ws_client::close(std::uint16_t code) {
  boost::system::error_code ec;
  impl_->ws.close(websocket::close_reason(code), ec);
  // Beast's close waits for the peer's close frame while reading the rest.
  while (!ec) {
    impl_->buffer.clear();
    impl_->ws.read(impl_->buffer, ec);
  }
}

std::uint16_t ws_client::read_until_closed() {
  boost::system::error_code ec;
  while (!ec) {
    impl_->buffer.clear();
    impl_->ws.read(impl_->buffer, ec);
  }
  auto code = static_cast<std::uint16_t>(impl_->ws.reason().code);
  return code ? code : 1006;
}

}  // namespace keel::testing
