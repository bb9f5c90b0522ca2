// The exchange seam (framework/src/http/exchange.hpp) over a transport of the
// test's own, in memory, with no socket anywhere: a streamed response, a
// Server-Sent Events stream, a stream_body route and a WebSocket echo run over
// it through the router and the middleware chain, as they run over HTTP/1.1.
// They know only the seam, so a second transport (HTTP/2's streams) plugs in
// the same way.
#include <catch2/catch.hpp>

#include "http/exchange.hpp"
#include "http/request_parser.hpp"
#include "http/route_tree.hpp"

#include <keel/body_stream.hpp>
#include <keel/context.hpp>
#include <keel/middleware.hpp>
#include <keel/router.hpp>
#include <keel/sse.hpp>
#include <keel/stream.hpp>
#include <keel/ws.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/_experimental/test/stream.hpp>

#include <deque>
#include <optional>
#include <string>

namespace asio = boost::asio;
namespace beast = boost::beast;
using keel::task;
using boost::system::error_code;

namespace {

constexpr auto tuple_task = asio::as_tuple(keel::use_task);

// A byte stream that is one end of Beast's in-memory stream pair.
class memory_bytes final : public keel::detail::virtual_stream {
 public:
  explicit memory_bytes(asio::io_context& ioc) : ex_(ioc.get_executor()), end_(ioc) {}

  keel::executor get_executor() override { return ex_; }
  task<keel::detail::io_result> read_some(asio::mutable_buffer into) override {
    auto [ec, n] = co_await end_.async_read_some(into, tuple_task);
    co_return keel::detail::io_result{ec, n};
  }
  task<keel::detail::io_result> write_some(asio::const_buffer from) override {
    auto [ec, n] = co_await end_.async_write_some(from, tuple_task);
    co_return keel::detail::io_result{ec, n};
  }
  // Beast's in-memory stream cannot cancel one operation: ending it is the
  // nearest this transport has, and all these tests need.
  void cancel() override { end_.close(); }
  void close() override { end_.close(); }

  beast::test::stream& end() { return end_; }

 private:
  keel::executor ex_;
  beast::test::stream end_;
};

// What the transport saw: the head, the body bytes, how the body ended.
class memory_exchange final : public keel::detail::exchange {
 public:
  memory_exchange(asio::io_context& ioc, keel::request const& req)
      : ex_(ioc.get_executor()),
        req_(req),
        bytes_(ioc),
        deadline_(keel::watchdog::create(ex_, std::chrono::milliseconds(10))) {}
  ~memory_exchange() override { deadline_->stop(); }

  keel::executor get_executor() const override { return ex_; }
  keel::trace_context& trace_storage() override { return trace_; }
  keel::cancel_reason cancellation() const override { return keel::cancel_reason::none; }
  bool draining() const override { return false; }
  bool secure() const override { return false; }
  asio::ip::address client_address(asio::ip::address peer, keel::request const&) const override { return peer; }

  task<std::optional<std::string_view>> read_body() override {
    if (pieces.empty()) co_return std::nullopt;
    current_ = std::move(pieces.front());
    pieces.pop_front();
    co_return std::string_view(current_);
  }

  void begin_body(keel::response const& h, std::optional<std::uint64_t> l, bool ends) override {
    head = h;
    length = l;
    ends_exchange = ends;
  }
  bool body_allowed() const override { return req_.method() != keel::verb::head; }
  task<bool> write_body(std::span<asio::const_buffer const> pieces_out) override {
    head_sent = true;
    for (auto b : pieces_out) body.append(static_cast<char const*>(b.data()), b.size());
    ++writes;
    co_return true;
  }
  task<bool> end_body() override {
    head_sent = true;
    ended = true;
    co_return true;
  }
  bool head_written() const override { return head_sent; }

  keel::detail::byte_stream bytes() override { return keel::detail::byte_stream(bytes_); }
  void hand_over() override { handed_over = true; }
  std::shared_ptr<void> keep_alive() override { return {}; }

  keel::watchdog& deadline() override { return *deadline_; }
  void watch_peer(bool on) override { watching = on; }
  void on_shutdown(std::function<void()> drain, std::function<void()>) override { on_drain = std::move(drain); }
  void count_websocket(int delta) override { websockets += delta; }

  beast::test::stream& peer() { return bytes_.end(); }

  std::deque<std::string> pieces;  // the request body, as it "arrives"
  std::optional<keel::response> head;
  std::optional<std::uint64_t> length;
  bool ends_exchange = false;
  bool head_sent = false;
  bool ended = false;
  bool handed_over = false;
  bool watching = false;
  int writes = 0;
  int websockets = 0;
  std::string body;
  std::function<void()> on_drain;

 private:
  keel::executor ex_;
  keel::request const& req_;
  memory_bytes bytes_;
  std::shared_ptr<keel::watchdog> deadline_;
  keel::trace_context trace_;
  std::string current_;
};

keel::request parse(std::string const& raw) {
  keel::request req;
  keel::detail::request_parser p(req, 8192, 100, 1 << 20);
  error_code ec;
  p.put(asio::buffer(raw), ec);
  REQUIRE(!ec);
  REQUIRE(p.is_header_done());
  return req;
}

// Routes `req` through `r` (middleware, then the handler) and, when the
// response takes the exchange over, hands it `x`: what a transport does.
task<keel::response> serve(keel::router& r, keel::request const& req, memory_exchange& x,
                           keel::options const& opts) {
  keel::detail::path_params params;
  auto m = r.match(req.method(), req.method_string(), req.path(), params);
  keel::context ctx(req, opts, &x);
  ctx.set_route(m.pattern, &params);
  if (m.options && m.options->stream_body) ctx.body_stream().attach(&x);
  auto res = co_await keel::run_chain(*m.chain, ctx);
  if (res.upgrade) co_await res.upgrade(ctx, res, x);
  co_return res;
}

keel::middleware security_headers() {
  return [](keel::context&, keel::next next) -> task<keel::response> {
    auto res = co_await next();
    res.set_header("Access-Control-Allow-Origin", "https://app.example");
    res.set_header("X-Content-Type-Options", "nosniff");
    co_return res;
  };
}

template <class T>
T run(asio::io_context& ioc, task<T> t) {
  std::optional<T> result;
  std::exception_ptr failure;
  asio::co_spawn(ioc, std::move(t), [&](std::exception_ptr e, T v) {
    failure = e;
    if (!e) result = std::move(v);
  });
  ioc.run_for(std::chrono::seconds(20));
  if (failure) std::rethrow_exception(failure);
  REQUIRE(result.has_value());
  return std::move(*result);
}

}  // namespace

TEST_CASE("a streamed response writes through the exchange, which frames and ends it", "[exchange]") {
  asio::io_context ioc;
  keel::options opts;
  keel::router r;
  r.use(security_headers());
  r.get("/numbers", [](keel::context&) -> task<keel::response> {
    co_return keel::stream_response([](keel::response_stream& out) -> task<void> {
      for (auto piece : {"one ", "two ", "three"}) {
        bool ok = co_await out.write(piece);
        if (!ok) co_return;
      }
    });
  });
  r.freeze();
  auto req = parse("GET /numbers HTTP/1.1\r\nHost: test\r\n\r\n");
  memory_exchange x(ioc, req);
  run(ioc, serve(r, req, x, opts));
  REQUIRE(x.head.has_value());
  CHECK(x.head->status == 200);
  CHECK(x.head->header("X-Content-Type-Options") == std::optional<std::string_view>("nosniff"));
  CHECK_FALSE(x.length.has_value());
  CHECK_FALSE(x.ends_exchange);
  CHECK(x.body == "one two three");
  CHECK(x.writes == 3);
  CHECK(x.ended);
  CHECK_FALSE(x.watching);  // watched while the handler ran, not after
}

TEST_CASE("an event stream carries every header middleware set and runs until the exchange ends", "[exchange]") {
  asio::io_context ioc;
  keel::options opts;
  keel::router r;
  r.use(security_headers());
  keel::add_sse_route(r, "/events", [](keel::sse_stream& s) -> task<void> {
    bool ok = co_await s.send("tick", "one", "1");
    if (ok) co_await s.send("tick", "two", "2");
  });
  r.freeze();
  auto req = parse("GET /events HTTP/1.1\r\nHost: test\r\nAccept: text/event-stream\r\n\r\n");
  memory_exchange x(ioc, req);
  run(ioc, serve(r, req, x, opts));
  REQUIRE(x.head.has_value());
  CHECK(x.head->status == 200);
  CHECK(x.head->header("Content-Type") == std::optional<std::string_view>("text/event-stream"));
  CHECK(x.head->header("Access-Control-Allow-Origin") == std::optional<std::string_view>("https://app.example"));
  CHECK(x.head->header("X-Content-Type-Options") == std::optional<std::string_view>("nosniff"));
  CHECK(x.ends_exchange);
  CHECK(x.body.find("event: tick\nid: 1\ndata: one\n\n") != std::string::npos);
  CHECK(x.body.find("event: tick\nid: 2\ndata: two\n\n") != std::string::npos);
}

TEST_CASE("a stream_body route reads the body as the transport hands it over", "[exchange]") {
  asio::io_context ioc;
  keel::options opts;
  keel::router r;
  r.put("/upload", [](keel::context& ctx) -> task<keel::response> {
     auto& body = ctx.body_stream();
     std::string seen;
     int pieces = 0;
     while (auto piece = co_await body.read_some()) {
       seen.append(*piece);
       ++pieces;
     }
     co_return keel::response::text(seen + " in " + std::to_string(pieces));
   }).stream_body(1 << 20);
  r.freeze();
  auto req = parse("PUT /upload HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n");
  memory_exchange x(ioc, req);
  x.pieces = {"hello", ", ", "world"};
  auto res = run(ioc, serve(r, req, x, opts));
  CHECK(res.status == 200);
  CHECK(res.body == "hello, world in 3");
}

namespace {

// A client's frame: FIN, `opcode`, masked as RFC 6455 §5.3 requires.
std::string client_frame(unsigned char opcode, std::string const& payload) {
  std::string f;
  f.push_back(static_cast<char>(0x80 | opcode));
  f.push_back(static_cast<char>(0x80 | payload.size()));  // short payloads only
  unsigned char const mask[4] = {0x11, 0x22, 0x33, 0x44};
  for (auto m : mask) f.push_back(static_cast<char>(m));
  for (std::size_t i = 0; i < payload.size(); ++i) f.push_back(static_cast<char>(payload[i] ^ mask[i % 4]));
  return f;
}

task<std::string> read_frame(beast::test::stream& s, std::string& pending) {
  while (pending.size() < 2 || pending.size() < 2 + static_cast<std::size_t>(pending[1] & 0x7f)) {
    char buf[256];
    auto [ec, n] = co_await s.async_read_some(asio::buffer(buf), tuple_task);
    if (ec) co_return std::string();
    pending.append(buf, n);
  }
  auto size = 2 + static_cast<std::size_t>(pending[1] & 0x7f);
  auto frame = pending.substr(0, size);
  pending.erase(0, size);
  co_return frame;
}

// The client's side: read the 101, send a text message, read its echo, close.
task<std::string> client(beast::test::stream& s) {
  std::string in;
  while (in.find("\r\n\r\n") == std::string::npos) {
    char buf[512];
    auto [ec, n] = co_await s.async_read_some(asio::buffer(buf), tuple_task);
    if (ec) co_return "no 101: " + ec.message();
    in.append(buf, n);
  }
  auto head_end = in.find("\r\n\r\n") + 4;
  std::string head = in.substr(0, head_end);
  std::string pending = in.substr(head_end);
  auto hello = client_frame(0x1, "hello over memory");
  co_await asio::async_write(s, asio::buffer(hello), tuple_task);
  auto echo = co_await read_frame(s, pending);
  std::string close_payload("\x03\xe8", 2);  // 1000
  auto bye = client_frame(0x8, close_payload);
  co_await asio::async_write(s, asio::buffer(bye), tuple_task);
  auto their_close = co_await read_frame(s, pending);
  std::string text = echo.size() > 2 ? echo.substr(2) : std::string();
  bool chain_headers = head.find("X-Content-Type-Options: nosniff\r\n") != std::string::npos;
  co_return head.substr(0, head.find("\r\n")) + (chain_headers ? "|nosniff|" : "|") + text + "|" +
      (their_close.size() >= 2 && (static_cast<unsigned char>(their_close[0]) & 0x0f) == 0x8 ? "closed" : "open");
}

}  // namespace

TEST_CASE("a WebSocket echo runs over the exchange's bytes, with no socket", "[exchange]") {
  asio::io_context ioc;
  keel::options opts;
  keel::router r;
  r.use(security_headers());
  keel::add_ws_route(r, "/echo", [](keel::websocket& ws) -> task<void> {
    while (auto m = co_await ws.read()) ws.send(m.data, m.is_binary());
  });
  r.freeze();
  auto req = parse(
      "GET /echo HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n");
  memory_exchange x(ioc, req);
  beast::test::stream client_end(ioc);
  x.peer().connect(client_end);
  std::string seen;
  asio::co_spawn(ioc, client(client_end), [&](std::exception_ptr e, std::string s) {
    seen = e ? std::string("client failed") : s;
  });
  auto res = run(ioc, serve(r, req, x, opts));
  CHECK(res.status == 101);
  CHECK(seen == "HTTP/1.1 101 Switching Protocols|nosniff|hello over memory|closed");
  CHECK(x.handed_over);
  CHECK(x.websockets == 0);  // counted while open, uncounted at the end
}
