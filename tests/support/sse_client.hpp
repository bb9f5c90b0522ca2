#pragma once
// A blocking Server-Sent Events client for tests: one request on a raw
// socket, the stream read as it comes, every wait bounded and polled.
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>

#include <sys/socket.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <string>

namespace keel::test {

class sse_client {
 public:
  /// Sends `METHOD target` with `extra` header lines (each ending in CRLF).
  sse_client(std::uint16_t port, std::string const& target, std::string const& extra = {},
             std::string const& method = "GET") {
    s.connect({boost::asio::ip::make_address("127.0.0.1"), port});
    timeval tv{0, 50'000};  // reads poll every 50 ms so waits stay bounded
    setsockopt(s.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    std::string req = method + " " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n" +
                      extra + "\r\n";
    boost::asio::write(s, boost::asio::buffer(req));
  }
  /// Reads until `pred(in)` holds, EOF, or the timeout; returns pred(in).
  template <class Pred>
  bool read_until(Pred pred, std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    auto end = std::chrono::steady_clock::now() + timeout;
    char buf[4096];
    while (!pred(in)) {
      if (eof || std::chrono::steady_clock::now() >= end) return pred(in);
      auto n = ::recv(s.native_handle(), buf, sizeof buf, 0);
      if (n > 0) in.append(buf, static_cast<std::size_t>(n));
      else if (n == 0) eof = true;
      else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) eof = true;
    }
    return true;
  }
  bool read_contains(std::string const& needle, std::chrono::milliseconds t = std::chrono::seconds(10)) {
    return read_until([&](std::string const& got) { return got.find(needle) != std::string::npos; }, t);
  }
  bool read_to_eof(std::chrono::milliseconds t = std::chrono::seconds(10)) {
    read_until([&](std::string const&) { return eof; }, t);
    return eof;
  }
  std::string head() const { return in.substr(0, in.find("\r\n\r\n") + 4); }
  std::string body() const {
    auto p = in.find("\r\n\r\n");
    return p == std::string::npos ? std::string() : in.substr(p + 4);
  }

  boost::asio::io_context ioc;
  boost::asio::ip::tcp::socket s{ioc};
  std::string in;
  bool eof = false;
};

}  // namespace keel::test
