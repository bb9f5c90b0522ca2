// Every HTTP timeout of SPEC §2 firing for a misbehaving client and staying
// quiet for a well-behaved one. Timeouts are set to milliseconds here.
#include <catch2/catch.hpp>

#include "test_app.hpp"

#include <keel/context.hpp>

#include <boost/asio/as_tuple.hpp>

#include <thread>

using namespace keel::test;
using keel::context;
using keel::response;
using keel::task;
namespace kt = keel::testing;

namespace {

task<response> hello(context&) { co_return response::text("hello"); }
task<response> echo(context& ctx) { co_return response::text(std::string(ctx.body())); }
task<response> big(context&) { co_return response::text(std::string(32 << 20, 'x')); }

task<response> sleepy(context& ctx) {
  keel::steady_timer t(ctx.get_executor());
  t.expires_after(std::chrono::milliseconds(std::stoi(ctx.query("ms").value_or("0"))));
  co_await t.async_wait(keel::use_task);
  co_return response::text("slept");
}

struct fixture {
  keel::app app;
  explicit fixture(keel::options o) : app(o) {
    app.get("/hello", hello);
    app.post("/echo", echo);
    app.get("/big", big);
    app.get("/sleep", sleepy);
    app.get("/sleep-short", sleepy).timeout(100ms);
  }
};

}  // namespace

TEST_CASE("header_timeout answers 408 when part of a head arrived", "[timeouts]") {
  auto o = test_options();
  o.header_timeout = 200ms;
  fixture f(o);
  kt::running_app run(f.app);
  kt::client c(run.port());
  c.send_raw("GET /hello HTTP/1.1\r\nHo");
  auto text = c.read_until_close(5s);
  CHECK(text.rfind("HTTP/1.1 408 ", 0) == 0);
}

TEST_CASE("header_timeout closes quietly a connection that sent nothing", "[timeouts]") {
  auto o = test_options();
  o.header_timeout = 200ms;
  fixture f(o);
  kt::running_app run(f.app);
  kt::client c(run.port());
  auto t0 = std::chrono::steady_clock::now();
  auto text = c.read_until_close(5s);
  CHECK(text.empty());
  CHECK(std::chrono::steady_clock::now() - t0 < 4s);
}

TEST_CASE("a head that arrives slowly but within header_timeout is served", "[timeouts]") {
  auto o = test_options();
  o.header_timeout = 2s;
  fixture f(o);
  kt::running_app run(f.app);
  kt::client c(run.port());
  c.send_raw("GET /hello HTTP/1.1\r\n");
  std::this_thread::sleep_for(50ms);
  c.send_raw("Host: x\r\n\r\n");
  CHECK(c.read_response().status == 200);
}

TEST_CASE("idle_timeout closes a quiet keep-alive connection without a response", "[timeouts]") {
  auto o = test_options();
  o.idle_timeout = 200ms;
  fixture f(o);
  kt::running_app run(f.app);
  kt::client c(run.port());
  CHECK(c.get("/hello").status == 200);
  auto t0 = std::chrono::steady_clock::now();
  CHECK(c.read_until_close(5s).empty());
  CHECK(std::chrono::steady_clock::now() - t0 < 4s);
}

TEST_CASE("a keep-alive connection used within idle_timeout stays open", "[timeouts]") {
  auto o = test_options();
  o.idle_timeout = 1s;
  fixture f(o);
  kt::running_app run(f.app);
  kt::client c(run.port());
  for (int i = 0; i < 3; ++i) {
    CHECK(c.get("/hello").status == 200);
    std::this_thread::sleep_for(100ms);
  }
}

TEST_CASE("body_timeout answers 408 when the body stalls", "[timeouts]") {
  auto o = test_options();
  o.body_timeout = 200ms;
  fixture f(o);
  kt::running_app run(f.app);
  kt::client c(run.port());
  c.send_raw("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc");
  auto text = c.read_until_close(5s);
  CHECK(text.rfind("HTTP/1.1 408 ", 0) == 0);
}

TEST_CASE("body_min_rate cuts a body that trickles in below the rate", "[timeouts]") {
  auto o = test_options();
  o.body_timeout = 10s;
  o.body_min_rate = 1000;
  o.body_min_rate_grace = 200ms;
  fixture f(o);
  kt::running_app run(f.app);
  kt::client c(run.port());
  c.send_raw("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\nab");
  auto t0 = std::chrono::steady_clock::now();
  std::string text;
  // Trickle a byte every 50 ms: far below 1000 B/s.
  for (int i = 0; i < 100 && text.empty(); ++i) {
    try {
      c.send_raw("x");
    } catch (std::exception const&) {
      break;
    }
    std::this_thread::sleep_for(50ms);
    if (std::chrono::steady_clock::now() - t0 > 500ms) break;
  }
  text = c.read_until_close(5s);
  CHECK(text.rfind("HTTP/1.1 408 ", 0) == 0);
}

TEST_CASE("write_timeout closes a connection whose client stops reading", "[timeouts]") {
  auto o = test_options();
  o.write_timeout = 300ms;
  fixture f(o);
  kt::running_app run(f.app);
  kt::client c(run.port());
  c.send_raw("GET /big HTTP/1.1\r\nHost: x\r\n\r\n");
  // Never read: the 32 MiB response cannot fit in the socket buffers, so the
  // server's write stalls and its write_timeout must close the connection.
  CHECK(kt::eventually([&] { return run.request("GET", "/hello").status == 200; }));
  std::this_thread::sleep_for(1s);
  auto text = c.read_until_close(5s);
  CHECK(text.size() < (32u << 20));
}

TEST_CASE("handler_timeout cancels the handler and answers 504", "[timeouts]") {
  auto o = test_options();
  o.handler_timeout = 150ms;
  fixture f(o);
  kt::running_app run(f.app);
  auto r = run.get("/sleep?ms=10000");
  CHECK(r.status == 504);
  CHECK(r.header("Content-Type") == "application/problem+json");
  CHECK(run.get("/sleep?ms=1").status == 200);
}

TEST_CASE("a route's own timeout overrides the server's handler_timeout", "[timeouts]") {
  auto o = test_options();
  o.handler_timeout = 10s;
  fixture f(o);
  kt::running_app run(f.app);
  auto t0 = std::chrono::steady_clock::now();
  CHECK(run.get("/sleep-short?ms=5000").status == 504);
  CHECK(std::chrono::steady_clock::now() - t0 < 3s);
  CHECK(run.get("/sleep?ms=300").status == 200);
}
