#pragma once
// A blocking WebSocket client on Beast for tests (a keel-independent peer),
// plus raw-socket helpers for frames a well-behaved client never sends.
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/websocket.hpp>

#include <sys/socket.h>

#include <cstdint>
#include <string>

namespace keel::test {

class ws_client {
 public:
  ws_client(std::uint16_t port, std::string const& target, std::string origin = {}) : ws_(ioc_) {
    ws_.next_layer().connect({boost::asio::ip::make_address("127.0.0.1"), port});
    timeval tv{10, 0};
    setsockopt(ws_.next_layer().native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (!origin.empty()) {
      ws_.set_option(boost::beast::websocket::stream_base::decorator(
          [origin](boost::beast::websocket::request_type& req) { req.set("Origin", origin); }));
    }
    ws_.handshake("127.0.0.1:" + std::to_string(port), target);
  }
  void send(std::string const& text, bool binary = false) {
    ws_.binary(binary);
    ws_.write(boost::asio::buffer(text));
  }
  /// The next message; throws boost::system::system_error when the session ended.
  std::string read() {
    buffer_.clear();
    ws_.read(buffer_);
    return boost::beast::buffers_to_string(buffer_.data());
  }
  bool last_was_binary() const { return ws_.got_binary(); }
  /// Reads until the server closes; returns its close code (0 if none).
  std::uint16_t read_until_closed() {
    try {
      for (;;) read();
    } catch (boost::system::system_error const&) {
    }
    return static_cast<std::uint16_t>(ws_.reason().code);
  }
  boost::beast::websocket::stream<boost::asio::ip::tcp::socket>& stream() { return ws_; }

 private:
  boost::asio::io_context ioc_;
  boost::beast::websocket::stream<boost::asio::ip::tcp::socket> ws_;
  boost::beast::flat_buffer buffer_;
};

}  // namespace keel::test
