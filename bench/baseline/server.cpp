// beast_baseline: what Beast alone costs, for keel's bench.
//
// A minimal Beast coroutine server written the way Beast's documentation and
// PERF-NOTES' "tuned" row suggest: one io_context per thread with the concrete
// io_context::executor_type (no any_io_executor), concurrency hint 1, SO_REUSEPORT
// acceptor per thread, flat_buffer reused per connection, Date cached once a
// second, as_tuple instead of exceptions. HTTP goes through Beast's
// request_parser and its stock serializer (http::async_write); a request with
// Upgrade: websocket on any path becomes a WebSocket echo. No router, no context,
// no deadlines, no middleware: the difference to keel is keel's own cost.
//
//   GET /plaintext -> Hello, World!   GET /json -> {"message":"Hello, World!"}
//
// Usage: beast_baseline [--listen HOST:PORT] [--threads N]
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>

#include <csignal>
#include <cstdio>
#include <ctime>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;

using executor = asio::io_context::executor_type;
using socket_t = asio::basic_stream_socket<tcp, executor>;
using acceptor_t = asio::basic_socket_acceptor<tcp, executor>;
template <class T>
using task = asio::awaitable<T, executor>;
constexpr auto tok = asio::as_tuple(asio::use_awaitable_t<executor>{});

namespace {

std::string const& http_date() {
  thread_local std::time_t at = 0;
  thread_local std::string text;
  std::time_t now = std::time(nullptr);
  if (now != at) {
    at = now;
    char buf[64];
    std::tm tm;
    gmtime_r(&now, &tm);
    auto n = std::strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    text.assign(buf, n);
  }
  return text;
}

task<void> echo(websocket::stream<socket_t> ws, http::request<http::string_body> req) {
  ws.set_option(websocket::stream_base::timeout::suggested(beast::role_type::server));
  if (auto [ec] = co_await ws.async_accept(req, tok); ec) co_return;
  beast::flat_buffer buf;
  for (;;) {
    auto [ec, n] = co_await ws.async_read(buf, tok);
    if (ec) co_return;
    ws.text(ws.got_text());
    auto [wec, m] = co_await ws.async_write(buf.data(), tok);
    if (wec) co_return;
    buf.consume(buf.size());
  }
}

task<void> session(socket_t s) {
  beast::flat_buffer buf;
  for (;;) {
    http::request_parser<http::string_body> parser;
    parser.body_limit(1 << 20);
    auto [ec, n] = co_await http::async_read(s, buf, parser, tok);
    if (ec) break;
    auto& req = parser.get();
    if (websocket::is_upgrade(req)) {
      websocket::stream<socket_t> ws(std::move(s));
      co_await echo(std::move(ws), parser.release());
      co_return;
    }
    http::response<http::string_body> res;
    res.version(req.version());
    res.keep_alive(req.keep_alive());
    res.set(http::field::server, "beast");
    res.set(http::field::date, http_date());
    auto target = req.target();
    if (req.method() == http::verb::get && target == "/plaintext") {
      res.result(http::status::ok);
      res.set(http::field::content_type, "text/plain; charset=utf-8");
      res.body() = "Hello, World!";
    } else if (req.method() == http::verb::get && target == "/json") {
      res.result(http::status::ok);
      res.set(http::field::content_type, "application/json");
      res.body() = R"({"message":"Hello, World!"})";
    } else {
      res.result(http::status::not_found);
      res.set(http::field::content_type, "text/plain; charset=utf-8");
      res.body() = "Not Found";
    }
    res.prepare_payload();
    auto [wec, m] = co_await http::async_write(s, res, tok);
    if (wec || !res.keep_alive()) break;
  }
  boost::system::error_code ignored;
  s.shutdown(tcp::socket::shutdown_send, ignored);
}

task<void> listen(acceptor_t& acceptor) {
  for (;;) {
    auto [ec, s] = co_await acceptor.async_accept(tok);
    if (ec) {
      if (ec == asio::error::operation_aborted) co_return;
      continue;  // EMFILE and friends: keep accepting
    }
    s.set_option(tcp::no_delay(true));
    asio::co_spawn(acceptor.get_executor(), session(std::move(s)), asio::detached);
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::string listen_at = "127.0.0.1:8080";
  int threads = 1;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--listen" && i + 1 < argc) listen_at = argv[++i];
    else if (a == "--threads" && i + 1 < argc) threads = std::max(1, std::atoi(argv[++i]));
    else {
      std::cerr << "usage: beast_baseline [--listen HOST:PORT] [--threads N]\n";
      return 2;
    }
  }
  auto colon = listen_at.rfind(':');
  auto host = listen_at.substr(0, colon);
  auto port = static_cast<unsigned short>(std::stoi(listen_at.substr(colon + 1)));
  tcp::endpoint ep(asio::ip::make_address(host), port);

  std::vector<std::unique_ptr<asio::io_context>> ctxs;
  std::vector<std::unique_ptr<acceptor_t>> acceptors;
  for (int t = 0; t < threads; ++t) {
    ctxs.push_back(std::make_unique<asio::io_context>(1));
    auto a = std::make_unique<acceptor_t>(ctxs.back()->get_executor());
    a->open(ep.protocol());
    a->set_option(asio::socket_base::reuse_address(true));
    int one = 1;
    ::setsockopt(a->native_handle(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    a->bind(ep);
    a->listen(asio::socket_base::max_listen_connections);
    asio::co_spawn(ctxs.back()->get_executor(), listen(*a), asio::detached);
    acceptors.push_back(std::move(a));
  }

  asio::signal_set signals(*ctxs[0], SIGINT, SIGTERM);
  signals.async_wait([&](auto, int) {
    for (auto& c : ctxs) c->stop();
  });

  std::printf("listening on http://%s:%u\n", host.c_str(), unsigned(port));
  std::fflush(stdout);
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) pool.emplace_back([&, t] { ctxs[t]->run(); });
  ctxs[0]->run();
  for (auto& c : ctxs) c->stop();
  for (auto& th : pool) th.join();
  return 0;
}
