// The default stack (request id, access log, metrics, exception capture)
// working together, and per-group router options (timeout, body limit) under it.
#include <catch2/catch.hpp>

#include "capture_stderr.hpp"
#include "test_app.hpp"

#include <keel/context.hpp>
#include <keel/metrics.hpp>
#include <keel/middleware/defaults.hpp>

#include <boost/json.hpp>

using namespace keel::test;
using keel::context;
using keel::response;
using keel::task;
namespace kt = keel::testing;
namespace json = boost::json;

namespace {

task<response> boom(context&) {
  throw std::runtime_error("kaput");
  co_return response::text("unreachable");
}

task<response> echo(context& ctx) { co_return response::text(std::string(ctx.body())); }

task<response> slow(context& ctx) {
  keel::steady_timer t(ctx.get_executor());
  t.expires_after(std::chrono::seconds(5));
  co_await t.async_wait(keel::use_task);
  co_return response::text("late");
}

double sample(std::string const& text, std::string const& series) {
  auto key = "\n" + series + " ";
  auto at = ("\n" + text).find(key);
  return at == std::string::npos ? -1 : std::strtod(text.c_str() + at + key.size() - 1, nullptr);
}

std::string str(json::object const& o, char const* k) { return std::string(o.at(k).as_string()); }

}  // namespace

TEST_CASE("the default stack is one layer doing the four built-ins' work", "[defaults]") {
  CHECK(keel::mw::default_stack().size() == 1);
}

TEST_CASE("the default stack stamps ids, logs, counts and continues a trace like the four layers", "[defaults][order]") {
  capture_stderr err;
  keel::app app(test_options());
  keel::mw::use_defaults(app);
  app.get("/d/echo", echo);
  kt::running_app run(app);
  kt::client c(run.port());  // one connection: its trace storage is reused request after request
  auto r = c.get("/d/echo", {{"traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
                              {"X-Request-Id", "client-id.1"}});
  CHECK(r.status == 200);
  CHECK(r.header("X-Request-Id") == "client-id.1");
  auto tr = r.header("traceresponse");
  REQUIRE(tr.size() == 55);
  CHECK(tr.rfind("00-0af7651916cd43dd8448eb211c80319c-", 0) == 0);
  CHECK(tr.substr(36, 16) != "b7ad6b7169203331");  // keel's own span, not the caller's
  CHECK(tr.substr(52) == "-01");
  auto fresh = c.get("/d/echo");
  CHECK(fresh.header("X-Request-Id").size() == 32);
  CHECK(fresh.header("traceresponse").substr(3, 32) == fresh.header("X-Request-Id"));
  auto again = c.get("/d/echo");
  CHECK(again.header("X-Request-Id") != fresh.header("X-Request-Id"));
  auto access = err.lines("access");
  REQUIRE(access.size() == 3);
  CHECK(str(access[0], "trace_id") == "0af7651916cd43dd8448eb211c80319c");
  CHECK(str(access[0], "request_id") == "client-id.1");
  CHECK(str(access[1], "request_id") == fresh.header("X-Request-Id"));
  CHECK(str(access[1], "trace_id") == fresh.header("X-Request-Id"));
  CHECK(sample(run.get("/metrics").body, R"(keel_http_requests_total{method="GET",route="/d/echo",status="200"})") == 3);
}

TEST_CASE("with the default stack an exception is one 500, one access line, one count, one error line, one trace id", "[defaults][order]") {
  capture_stderr err;
  keel::app app(test_options());
  keel::mw::use_defaults(app);
  app.get("/d/boom", boom);
  kt::running_app run(app);
  auto exceptions = keel::metrics::global().add_counter("keel_handler_exceptions_total", "").value();
  auto r = run.get("/d/boom", {{"traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}});
  CHECK(r.status == 500);
  CHECK(r.header("X-Request-Id") == "0af7651916cd43dd8448eb211c80319c");
  CHECK(r.header("traceresponse").rfind("00-0af7651916cd43dd8448eb211c80319c-", 0) == 0);
  CHECK(str(json::parse(r.body).as_object(), "trace_id") == "0af7651916cd43dd8448eb211c80319c");
  auto access = err.lines("access");
  REQUIRE(access.size() == 1);
  CHECK(access[0].at("status").to_number<int>() == 500);
  CHECK(str(access[0], "trace_id") == "0af7651916cd43dd8448eb211c80319c");
  auto errors = err.lines("handler exception");
  REQUIRE(errors.size() == 1);
  CHECK(str(errors[0], "trace_id") == "0af7651916cd43dd8448eb211c80319c");
  CHECK(keel::metrics::global().add_counter("keel_handler_exceptions_total", "").value() == exceptions + 1);
  auto text = run.get("/metrics").body;
  CHECK(sample(text, R"(keel_http_requests_total{method="GET",route="/d/boom",status="500"})") == 1);
}

TEST_CASE("a request keel refuses still gets an X-Request-Id, an access line and a count", "[defaults]") {
  capture_stderr err;
  keel::app app(test_options());
  keel::mw::use_defaults(app);
  app.get("/d/x", echo);
  kt::running_app run(app);
  auto before = sample(run.get("/metrics").body, R"(keel_http_requests_total{method="GET",route="unmatched",status="400"})");
  kt::client c(run.port());
  c.send_raw("GET /d/x HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n");
  auto r = c.read_response();
  CHECK(r.status == 400);
  CHECK(r.header("X-Request-Id").size() == 32);
  auto lines = err.lines("access");
  REQUIRE_FALSE(lines.empty());
  CHECK(std::any_of(lines.begin(), lines.end(), [&](json::object const& l) {
    return l.at("status").to_number<int>() == 400 && str(l, "request_id") == r.header("X-Request-Id");
  }));
  auto after = sample(run.get("/metrics").body, R"(keel_http_requests_total{method="GET",route="unmatched",status="400"})");
  CHECK(after == std::max(0.0, before) + 1);
}

TEST_CASE("per-group deadline and body limit are router options that apply under the default stack", "[defaults][attach]") {
  capture_stderr err;
  keel::app app(test_options());
  keel::mw::use_defaults(app);
  auto g = app.group("/limited");
  g.timeout(std::chrono::milliseconds(50)).max_body(10);
  g.get("/slow", slow);
  g.post("/upload", echo);
  g.post("/big-upload", echo).max_body(100);  // the route's own override wins
  app.post("/d/upload", echo);
  kt::running_app run(app);
  auto t0 = std::chrono::steady_clock::now();
  CHECK(run.get("/limited/slow").status == 504);
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(3));
  CHECK(run.request("POST", "/limited/upload", std::string(20, 'x')).status == 413);
  CHECK(run.request("POST", "/limited/upload", std::string(10, 'x')).status == 200);
  CHECK(run.request("POST", "/limited/big-upload", std::string(60, 'x')).status == 200);
  CHECK(run.request("POST", "/d/upload", std::string(60, 'x')).status == 200);
  auto lines = err.lines("access");
  REQUIRE(lines.size() == 5);
  CHECK(lines[0].at("status").to_number<int>() == 504);
  CHECK(str(lines[0], "route") == "/limited/slow");
  CHECK(lines[1].at("status").to_number<int>() == 413);
  CHECK(str(lines[1], "route") == "/limited/upload");  // matched before the body was refused
}
