// Middleware on WebSocket routes: the chain runs for the upgrade request
// before the upgrade, so auth, ids, the access log, metrics and rate limits
// apply to WebSockets too (SPEC §1).
#include <catch2/catch.hpp>

#include "capture_stderr.hpp"
#include "test_app.hpp"

#include <keel/metrics.hpp>
#include <keel/middleware/auth.hpp>
#include <keel/middleware/defaults.hpp>
#include <keel/middleware/rate_limit.hpp>
#include <keel/ws.hpp>

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/websocket.hpp>

using namespace keel::test;
using keel::task;
using keel::websocket;
namespace kt = keel::testing;
namespace mw = keel::mw;
namespace bws = boost::beast::websocket;

namespace {

task<void> echo(websocket& ws) {
  for (;;) {
    auto msg = co_await ws.read();
    if (!msg) co_return;
    ws.send(msg.data, msg.is_binary());
  }
}

// A Beast WebSocket client that can send headers and shows the 101.
struct ws_peer {
  boost::asio::io_context ioc;
  bws::stream<boost::asio::ip::tcp::socket> ws{ioc};
  bws::response_type upgrade;

  ws_peer(std::uint16_t port, std::string const& target, kt::header_list headers = {}) {
    ws.next_layer().connect({boost::asio::ip::make_address("127.0.0.1"), port});
    ws.set_option(bws::stream_base::decorator([headers](bws::request_type& req) {
      for (auto const& [k, v] : headers) req.set(k, v);
    }));
    ws.handshake(upgrade, "127.0.0.1:" + std::to_string(port), target);
  }
  std::string echo(std::string const& text) {
    ws.write(boost::asio::buffer(text));
    boost::beast::flat_buffer b;
    ws.read(b);
    return boost::beast::buffers_to_string(b.data());
  }
};

// The upgrade request by hand, to see a refusal's status and headers.
kt::http_response raw_upgrade(std::uint16_t port, std::string const& target, std::string const& extra = {}) {
  kt::client c(port);
  c.send_raw("GET " + target +
             " HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
             "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" +
             extra + "\r\n");
  return c.read_response();
}

}  // namespace

TEST_CASE("auth on a WebSocket group refuses the upgrade with 401 and lets credentials through", "[ws][auth]") {
  keel::app app(test_options());
  auto g = app.group("/ws", {mw::authenticate(mw::bearer_tokens({{"t1", {.subject = "u", .scopes = {"chat"}}}},
                                                                 {.allow_query_token = true}))});
  keel::add_ws_route(g, "/echo", echo);
  keel::add_ws_route(g, "/admin", echo).use(mw::require_scope("admin"));
  kt::running_app run(app);
  auto refused = raw_upgrade(run.port(), "/ws/echo");
  CHECK(refused.status == 401);
  CHECK(refused.header("WWW-Authenticate") == "Bearer realm=\"keel\"");
  CHECK_THROWS(ws_peer(run.port(), "/ws/echo"));
  ws_peer by_header(run.port(), "/ws/echo", {{"Authorization", "Bearer t1"}});
  CHECK(by_header.echo("hi") == "hi");
  ws_peer by_query(run.port(), "/ws/echo?access_token=t1");
  CHECK(by_query.echo("there") == "there");
  CHECK(raw_upgrade(run.port(), "/ws/admin", "Authorization: Bearer t1\r\n").status == 403);
}

TEST_CASE("the default stack stamps the 101 and logs and counts the upgrade", "[ws][defaults]") {
  capture_stderr err;
  keel::app app(test_options());
  mw::use_defaults(app);
  app.ws("/wsd/echo", echo);
  kt::running_app run(app);
  {
    ws_peer peer(run.port(), "/wsd/echo?token=SECRET",
                 {{"traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}});
    CHECK(peer.upgrade.result_int() == 101);
    CHECK(peer.echo("x") == "x");
  }
  auto lines = err.lines("access");
  REQUIRE_FALSE(lines.empty());
  auto const& l = lines.front();
  CHECK(l.at("status").to_number<int>() == 101);
  CHECK(l.at("trace_id").as_string() == "4bf92f3577b34da6a3ce929d0e0e4736");
  CHECK(l.at("route").as_string() == "/wsd/echo");
  CHECK(l.at("path").as_string() == "/wsd/echo?token=REDACTED");
  auto text = run.get("/metrics").body;
  CHECK(text.find("keel_http_requests_total{method=\"GET\",route=\"/wsd/echo\",status=\"101\"} 1\n") !=
        std::string::npos);
}

TEST_CASE("a rate limit on a WebSocket route refuses upgrades over the limit with 429", "[ws][rate_limit]") {
  keel::app app(test_options());
  app.ws("/wsr/echo", echo).use(mw::rate_limit({.rate = 0.01, .burst = 1}));
  kt::running_app run(app);
  ws_peer first(run.port(), "/wsr/echo");
  CHECK(first.echo("a") == "a");
  auto second = raw_upgrade(run.port(), "/wsr/echo");
  CHECK(second.status == 429);
  CHECK(second.has_header("Retry-After"));
}

// The framework copies the chain's headers into the handshake's answer.
TEST_CASE("the 101 of an upgrade carries X-Request-Id and traceresponse", "[ws][defaults]") {
  keel::app app(test_options());
  mw::use_defaults(app);
  app.ws("/wsd/echo", echo);
  kt::running_app run(app);
  ws_peer peer(run.port(), "/wsd/echo", {{"traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}});
  CHECK(peer.upgrade["X-Request-Id"] == "4bf92f3577b34da6a3ce929d0e0e4736");
  CHECK(peer.upgrade["traceresponse"].starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));
}
