#include <keel/testing.hpp>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>

#include <poll.h>
#include <sys/socket.h>

#include <stdexcept>
#include <thread>

namespace keel::testing {

namespace http = boost::beast::http;
using boost::asio::ip::tcp;

std::string http_response::header(std::string_view name) const {
  for (auto const& [n, v] : headers) {
    if (boost::beast::iequals(n, name)) return v;
  }
  return {};
}

bool http_response::has_header(std::string_view name) const {
  for (auto const& [n, v] : headers) {
    if (boost::beast::iequals(n, name)) return true;
  }
  return false;
}

void poll_pause() { std::this_thread::sleep_for(std::chrono::milliseconds(5)); }

struct client::impl {
  boost::asio::io_context ioc;
  tcp::socket socket{ioc};
  boost::beast::flat_buffer buffer;
  std::string host;

  // Blocking reads with a bound: a hung server fails the test, not the suite.
  bool wait_readable(std::chrono::milliseconds timeout) {
    pollfd p{socket.native_handle(), POLLIN, 0};
    return ::poll(&p, 1, static_cast<int>(timeout.count())) > 0;
  }
};

client::client(std::uint16_t port, std::string host) : impl_(std::make_unique<impl>()) {
  impl_->host = host;
  impl_->socket.connect({boost::asio::ip::make_address(host), port});
  timeval tv{10, 0};
  setsockopt(impl_->socket.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
}

client::~client() = default;
client::client(client&&) noexcept = default;

http_response client::request(std::string_view method, std::string_view target, std::string body,
                              header_list headers) {
  std::string req;
  req.append(method).append(" ").append(target).append(" HTTP/1.1\r\n");
  bool has_host = false;
  for (auto const& [n, v] : headers) {
    if (boost::beast::iequals(n, "Host")) has_host = true;
  }
  if (!has_host) req.append("Host: ").append(impl_->host).append("\r\n");
  for (auto const& [n, v] : headers) req.append(n).append(": ").append(v).append("\r\n");
  if (!body.empty() || method == "POST" || method == "PUT" || method == "PATCH") {
    req.append("Content-Length: ").append(std::to_string(body.size())).append("\r\n");
  }
  req.append("\r\n").append(body);
  send_raw(req);
  return read_response(method == "HEAD");
}

void client::send_raw(std::string_view bytes) {
  boost::asio::write(impl_->socket, boost::asio::buffer(bytes.data(), bytes.size()));
}

http_response client::read_response(bool head_request) {
  http::response_parser<http::string_body> parser;
  parser.body_limit(1ull << 30);
  parser.skip(head_request);
  http::read(impl_->socket, impl_->buffer, parser);
  auto& msg = parser.get();
  http_response out;
  out.status = msg.result_int();
  out.version = msg.version();
  for (auto const& f : msg) out.headers.emplace_back(std::string(f.name_string()), std::string(f.value()));
  out.body = std::move(msg.body());
  return out;
}

std::string client::read_until_close(std::chrono::milliseconds timeout) {
  std::string out(static_cast<char const*>(impl_->buffer.data().data()), impl_->buffer.size());
  impl_->buffer.clear();
  auto end = std::chrono::steady_clock::now() + timeout;
  char chunk[8192];
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(end - std::chrono::steady_clock::now());
    if (left.count() <= 0 || !impl_->wait_readable(left)) break;
    boost::system::error_code ec;
    auto n = impl_->socket.read_some(boost::asio::buffer(chunk), ec);
    if (ec) break;
    out.append(chunk, n);
  }
  return out;
}

bool client::closed_by_server(std::chrono::milliseconds timeout) {
  auto end = std::chrono::steady_clock::now() + timeout;
  char chunk[4096];
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(end - std::chrono::steady_clock::now());
    if (left.count() <= 0 || !impl_->wait_readable(left)) return false;
    boost::system::error_code ec;
    impl_->socket.read_some(boost::asio::buffer(chunk), ec);
    if (ec) return true;
  }
}

void client::close() {
  boost::system::error_code ec;
  impl_->socket.close(ec);
}

http_response request(std::uint16_t port, std::string_view method, std::string_view target,
                      std::string body, header_list headers) {
  client c(port);
  return c.request(method, target, std::move(body), std::move(headers));
}

running_app::running_app(app& a) : app_(a) {
  if (a.port() == 0) a.listen("127.0.0.1:0");
  a.start();
}

running_app::~running_app() { stop(); }

void running_app::stop() {
  if (stopped_) return;
  stopped_ = true;
  app_.stop();
  app_.wait();
}

}  // namespace keel::testing
