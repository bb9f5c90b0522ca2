// Handlers: routing through a real server, JSON bodies, exceptions, client
// disconnects cancelling handlers, graceful drain and the connection limit.
#include <catch2/catch.hpp>

#include "test_app.hpp"

#include <keel/context.hpp>
#include <keel/error.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/describe/class.hpp>

#include <atomic>
#include <thread>

using namespace keel::test;
using keel::context;
using keel::response;
using keel::task;
namespace kt = keel::testing;

namespace {

struct todo_in {
  std::string title;
  std::optional<bool> done;
};
BOOST_DESCRIBE_STRUCT(todo_in, (), (title, done))

task<response> create(context& ctx) {
  auto t = ctx.json<todo_in>();
  co_return response::text(t.title + (t.done.value_or(false) ? ":done" : ":open"), 201);
}

task<response> thrower(context&) {
  throw std::runtime_error("secret internals");
  co_return response::text("unreachable");
}

task<response> teapot(context&) {
  throw keel::http_error(418, "short and stout");
  co_return response::text("unreachable");
}

std::atomic<int> cancelled{0};
std::atomic<int> started{0};

task<response> long_wait(context& ctx) {
  started++;
  keel::steady_timer t(ctx.get_executor());
  t.expires_after(std::chrono::seconds(30));
  auto [ec] = co_await t.async_wait(boost::asio::as_tuple(keel::use_task));
  if (ec == boost::asio::error::operation_aborted) cancelled++;
  co_return response::text("done waiting");
}

task<response> slow_ok(context& ctx) {
  keel::steady_timer t(ctx.get_executor());
  t.expires_after(std::chrono::milliseconds(400));
  co_await t.async_wait(keel::use_task);
  co_return response::text("finished");
}

task<response> params(context& ctx) {
  co_return response::text(ctx.param("id") + "|" + ctx.param("rest") + "|" + ctx.query("q").value_or("-"));
}

}  // namespace

TEST_CASE("routes match params, wildcards and queries through a real server", "[router]") {
  keel::app app(test_options());
  app.get("/users/{id}", params);
  app.get("/files/{*rest}", params);
  kt::running_app run(app);
  CHECK(run.get("/users/42").body == "42||-");
  CHECK(run.get("/users/a%20b?q=x+y%21").body == "a b||x y!");
  CHECK(run.get("/files/a/b/c.txt").body == "|a/b/c.txt|-");
  CHECK(run.get("/users/42/extra").status == 404);
}

TEST_CASE("a wrong method gets 405 with Allow, OPTIONS answers Allow", "[router]") {
  keel::app app(test_options());
  app.get("/users/{id}", params);
  app.del("/users/{id}", params);
  kt::running_app run(app);
  auto r = run.request("POST", "/users/1");
  CHECK(r.status == 405);
  CHECK(r.header("Allow") == "GET, DELETE, HEAD, OPTIONS");
  auto o = run.request("OPTIONS", "/users/1");
  CHECK(o.status == 204);
  CHECK(o.header("Allow") == "GET, DELETE, HEAD, OPTIONS");
  auto nf = run.get("/nothing");
  CHECK(nf.status == 404);
  CHECK(nf.header("Content-Type") == "application/problem+json");
}

TEST_CASE("duplicate and conflicting routes are rejected at registration", "[router]") {
  keel::app app(test_options());
  app.get("/users/{id}", params);
  CHECK_THROWS_WITH(app.get("/users/{id}", params), Catch::Contains("duplicate route GET /users/{id}"));
  CHECK_THROWS_WITH(app.post("/users/{name}", params), Catch::Contains("/users/{id}"));
  auto g = app.group("/api");
  g.get("/x", params);
  CHECK_THROWS_WITH(app.get("/api/x", params), Catch::Contains("duplicate"));
}

TEST_CASE("a JSON body that does not parse is 400, one that does not convert is 422", "[json]") {
  keel::app app(test_options());
  app.post("/todos", create);
  kt::running_app run(app);
  CHECK(run.request("POST", "/todos", R"({"title":"milk"})").status == 201);
  auto bad = run.request("POST", "/todos", "{not json");
  CHECK(bad.status == 400);
  CHECK(bad.header("Content-Type") == "application/problem+json");
  auto wrong = run.request("POST", "/todos", R"({"title":7})");
  CHECK(wrong.status == 422);
  CHECK(wrong.body.find(R"("field":"/title")") != std::string::npos);
}

TEST_CASE("a handler that throws costs one 500 and the server keeps serving", "[handlers]") {
  keel::app app(test_options());
  app.get("/throw", thrower);
  app.get("/teapot", teapot);
  app.get("/ok", slow_ok);
  kt::running_app run(app);
  for (int i = 0; i < 3; ++i) {
    auto r = run.get("/throw");
    CHECK(r.status == 500);
    CHECK(r.body.find("secret internals") == std::string::npos);
    CHECK(r.body.find("trace_id") != std::string::npos);
  }
  CHECK(run.get("/teapot").status == 418);
  CHECK(run.get("/ok").status == 200);
}

TEST_CASE("dev_mode puts the exception's text in the problem", "[handlers]") {
  auto o = test_options();
  o.dev_mode = true;
  keel::app app(o);
  app.get("/throw", thrower);
  kt::running_app run(app);
  CHECK(run.get("/throw").body.find("secret internals") != std::string::npos);
}

TEST_CASE("a client that disconnects cancels the handler it was waiting for", "[handlers][cancel]") {
  keel::app app(test_options());
  app.get("/wait", long_wait);
  kt::running_app run(app);
  int before = cancelled.load();
  int started_before = started.load();
  {
    kt::client c(run.port());
    c.send_raw("GET /wait HTTP/1.1\r\nHost: x\r\n\r\n");
    REQUIRE(kt::eventually([&] { return started.load() > started_before; }));
    c.close();
  }
  CHECK(kt::eventually([&] { return cancelled.load() > before; }));
  CHECK(kt::eventually([&] { return app.server().stats().connections_active == 0; }));
}

TEST_CASE("a pipelined request behind a slow handler is not taken for a disconnect", "[handlers][cancel]") {
  keel::app app(test_options());
  app.get("/ok", slow_ok);
  kt::running_app run(app);
  kt::client c(run.port());
  c.send_raw("GET /ok HTTP/1.1\r\nHost: x\r\n\r\n");
  std::this_thread::sleep_for(100ms);
  c.send_raw("GET /ok HTTP/1.1\r\nHost: x\r\n\r\n");
  CHECK(c.read_response().body == "finished");
  CHECK(c.read_response().body == "finished");
}

TEST_CASE("drain finishes an in-flight request and refuses new connections", "[drain]") {
  keel::app app(test_options());
  app.get("/ok", slow_ok);
  app.get("/wait", long_wait);
  kt::running_app run(app);
  auto port = run.port();
  kt::client idle(port);
  CHECK(idle.get("/healthz").status == 200);
  kt::client busy(port);
  busy.send_raw("GET /ok HTTP/1.1\r\nHost: x\r\n\r\n");
  std::this_thread::sleep_for(100ms);
  app.stop();
  auto r = busy.read_response();
  CHECK(r.status == 200);
  CHECK(r.body == "finished");
  CHECK(r.header("Connection") == "close");
  CHECK(idle.closed_by_server(3s));
  CHECK(kt::eventually([&] {
    try {
      kt::client fresh(port);
      return false;
    } catch (std::exception const&) {
      return true;
    }
  }));
  run.stop();
  CHECK(app.server().stats().connections_active == 0);
}

TEST_CASE("drain closes what is left at drain_timeout", "[drain]") {
  auto o = test_options();
  o.drain_timeout = 300ms;
  keel::app app(o);
  app.get("/wait", long_wait);
  kt::running_app run(app);
  int started_before = started.load();
  kt::client c(run.port());
  c.send_raw("GET /wait HTTP/1.1\r\nHost: x\r\n\r\n");
  REQUIRE(kt::eventually([&] { return started.load() > started_before; }));
  auto t0 = std::chrono::steady_clock::now();
  run.stop();
  CHECK(std::chrono::steady_clock::now() - t0 < 4s);
  CHECK(app.server().stats().drain_forced_closes == 1);
}

TEST_CASE("connections beyond max_connections are closed at once and counted", "[limits]") {
  auto o = test_options();
  o.max_connections = 2;
  keel::app app(o);
  app.get("/ok", slow_ok);
  kt::running_app run(app);
  kt::client a(run.port()), b(run.port());
  CHECK(a.get("/healthz").status == 200);
  CHECK(b.get("/healthz").status == 200);
  kt::client extra(run.port());
  CHECK(extra.closed_by_server(3s));
  CHECK(app.server().stats().connections_rejected == 1);
  a.close();
  CHECK(kt::eventually([&] {
    try {
      return kt::request(run.port(), "GET", "/healthz").status == 200;
    } catch (std::exception const&) {
      return false;
    }
  }));
}

TEST_CASE("a header value cannot smuggle in another header or a body", "[handlers][headers]") {
  keel::app app(test_options());
  app.get("/go", [](context& ctx) -> task<response> {
    // A redirect to user input, the classic response-splitting hole.
    co_return response::redirect(ctx.query("to").value_or("/"));
  });
  app.get("/framed", [](context&) -> task<response> {
    auto r = response::text("abc");
    r.set_header("Content-Length", "999");  // keel frames responses itself
    r.set_header("X-Kept", "yes");
    co_return r;
  });
  kt::running_app run(app);
  auto r = run.get("/go?to=%2Fhome%0D%0AX-Evil:%201%0D%0A%0D%0A<html>");
  CHECK(r.status == 302);
  CHECK_FALSE(r.has_header("X-Evil"));
  CHECK(r.header("Location") == "/home  X-Evil: 1    <html>");
  CHECK(r.body.empty());
  auto f = run.get("/framed");
  CHECK(f.body == "abc");
  CHECK(f.header("Content-Length") == "3");
  CHECK(f.header("X-Kept") == "yes");
}
