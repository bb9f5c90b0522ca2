// exception_capture: anything thrown inside becomes one problem response,
// counted and logged once; http_error answers are not failures.
#include <catch2/catch.hpp>

#include "capture_stderr.hpp"
#include "test_app.hpp"

#include <keel/context.hpp>
#include <keel/error.hpp>
#include <keel/json.hpp>
#include <keel/metrics.hpp>
#include <keel/middleware/exception_capture.hpp>
#include <keel/middleware/request_id.hpp>

#include <boost/json.hpp>

using namespace keel::test;
using keel::context;
using keel::response;
using keel::task;
namespace kt = keel::testing;
namespace json = boost::json;

namespace {

struct storage_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

task<response> boom(context&) {
  throw std::runtime_error("boom secret");
  co_return response::text("unreachable");
}

task<response> storage(context&) {
  throw storage_error("disk on fire");
  co_return response::text("unreachable");
}

task<response> forty_two(context&) {
  throw 42;
  co_return response::text("unreachable");
}

task<response> unauthorized(context&) {
  throw keel::unauthorized("who are you", "Bearer realm=\"t\"");
  co_return response::text("unreachable");
}

task<response> invalid(context&) {
  throw keel::json::validation_error("/title", "must be a string");
  co_return response::text("unreachable");
}

task<response> unavailable(context&) {
  throw keel::service_unavailable("overloaded");
  co_return response::text("unreachable");
}

task<response> slow(context& ctx) {
  keel::steady_timer t(ctx.get_executor());
  t.expires_after(std::chrono::seconds(5));
  co_await t.async_wait(keel::use_task);
  co_return response::text("late");
}

task<response> ok(context&) { co_return response::text("ok"); }

std::uint64_t exceptions_counted() {
  return keel::metrics::global().add_counter("keel_handler_exceptions_total", "").value();
}

std::string str(json::object const& o, char const* k) { return std::string(o.at(k).as_string()); }

}  // namespace

TEST_CASE("a throwing handler costs one 500 problem, one count and one error line", "[exception_capture]") {
  capture_stderr err;
  keel::app app(test_options());
  app.use(keel::mw::request_id());
  app.use(keel::mw::exception_capture());
  app.get("/boom", boom);
  kt::running_app run(app);
  auto before = exceptions_counted();
  auto r = run.get("/boom");
  CHECK(r.status == 500);
  CHECK(r.header("Content-Type") == "application/problem+json");
  auto body = json::parse(r.body).as_object();
  CHECK(str(body, "trace_id") == r.header("X-Request-Id"));
  CHECK(r.body.find("boom secret") == std::string::npos);  // not in dev_mode
  CHECK(exceptions_counted() == before + 1);
  auto lines = err.lines("handler exception");
  REQUIRE(lines.size() == 1);
  CHECK(str(lines[0], "level") == "error");
  CHECK(str(lines[0], "exception") == "std::runtime_error");
  CHECK(str(lines[0], "error") == "boom secret");
  CHECK(str(lines[0], "trace_id") == r.header("X-Request-Id"));
  CHECK(str(lines[0], "route") == "/boom");
}

TEST_CASE("the logged type is the dynamic, demangled one, for non-std exceptions too", "[exception_capture]") {
  capture_stderr err;
  keel::app app(test_options());
  app.use(keel::mw::exception_capture());
  app.get("/storage", storage);
  app.get("/int", forty_two);
  kt::running_app run(app);
  CHECK(run.get("/storage").status == 500);
  CHECK(run.get("/int").status == 500);
  auto lines = err.lines("handler exception");
  REQUIRE(lines.size() == 2);
  CHECK(str(lines[0], "exception") == "(anonymous namespace)::storage_error");
  CHECK(str(lines[0], "error") == "disk on fire");
  CHECK(str(lines[1], "exception") == "int");
}

TEST_CASE("dev_mode puts the exception's text in the problem", "[exception_capture]") {
  auto o = test_options();
  o.dev_mode = true;
  keel::app app(o);
  app.use(keel::mw::exception_capture());
  app.get("/boom", boom);
  kt::running_app run(app);
  CHECK(run.get("/boom").body.find("boom secret") != std::string::npos);
}

TEST_CASE("http_error answers keep their status and headers and are not counted as exceptions", "[exception_capture]") {
  capture_stderr err;
  keel::app app(test_options());
  app.use(keel::mw::exception_capture());
  app.get("/401", unauthorized);
  app.get("/422", invalid);
  app.get("/503", unavailable);
  kt::running_app run(app);
  auto before = exceptions_counted();
  auto r401 = run.get("/401");
  CHECK(r401.status == 401);
  CHECK(r401.header("WWW-Authenticate") == "Bearer realm=\"t\"");
  auto r422 = run.get("/422");
  CHECK(r422.status == 422);
  CHECK(r422.body.find(R"("field":"/title")") != std::string::npos);
  CHECK(run.get("/503").status == 503);
  CHECK(exceptions_counted() == before);
  CHECK(err.lines("handler exception").empty());
  // A 5xx the handler chose is worth a warning, once.
  auto warned = err.lines("handler answered with a server error");
  REQUIRE(warned.size() == 1);
  CHECK(warned[0].at("status").to_number<int>() == 503);
}

TEST_CASE("a handler cut by its route's deadline answers 504 and is not counted", "[exception_capture]") {
  capture_stderr err;
  keel::app app(test_options());
  app.use(keel::mw::exception_capture());
  app.get("/slow", slow).timeout(std::chrono::milliseconds(50));
  kt::running_app run(app);
  auto before = exceptions_counted();
  auto t0 = std::chrono::steady_clock::now();
  CHECK(run.get("/slow").status == 504);
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(3));
  CHECK(exceptions_counted() == before);
  auto lines = err.lines("handler cancelled");
  REQUIRE(lines.size() == 1);
  CHECK(str(lines[0], "reason") == "deadline");
}

TEST_CASE("outer layers see the capture's 500 as an ordinary response; inner middleware is covered", "[exception_capture][order]") {
  keel::app app(test_options());
  int outer_saw = 0;
  bool outer_caught = false;
  app.use([&](context&, keel::next next) -> task<response> {
    try {
      auto res = co_await next();
      outer_saw = static_cast<int>(res.status);
      co_return res;
    } catch (...) {
      outer_caught = true;
      throw;
    }
  });
  app.use(keel::mw::exception_capture());
  bool handler_ran = false;
  app.get("/mw-throws", [&](context&) -> task<response> {
       handler_ran = true;
       co_return response::text("no");
     })
      .use([](context&, keel::next) -> task<response> {
        throw std::logic_error("middleware bug");
        co_return response::text("unreachable");
      });
  kt::running_app run(app);
  auto before = exceptions_counted();
  CHECK(run.get("/mw-throws").status == 500);
  CHECK(outer_saw == 500);
  CHECK_FALSE(outer_caught);
  CHECK_FALSE(handler_ran);
  CHECK(exceptions_counted() == before + 1);
}

TEST_CASE("exception_capture attached to a group or a route covers only those routes", "[exception_capture][attach]") {
  capture_stderr err;
  keel::app app(test_options());
  app.group("/g", {keel::mw::exception_capture()}).get("/boom", boom);
  app.get("/r", boom).use(keel::mw::exception_capture());
  app.get("/bare", boom);
  app.get("/ok", ok).use(keel::mw::exception_capture());
  kt::running_app run(app);
  auto before = exceptions_counted();
  CHECK(run.get("/g/boom").status == 500);
  CHECK(run.get("/r").status == 500);
  CHECK(run.get("/ok").status == 200);
  CHECK(exceptions_counted() == before + 2);
  // Without it the framework still answers 500, but nothing is counted or logged.
  CHECK(run.get("/bare").status == 500);
  CHECK(exceptions_counted() == before + 2);
  CHECK(err.lines("handler exception").size() == 2);
}

TEST_CASE("exception_type_name names what an exception_ptr holds", "[exception_capture]") {
  CHECK(keel::mw::exception_type_name(std::make_exception_ptr(std::out_of_range("x"))) == "std::out_of_range");
  CHECK(keel::mw::exception_type_name(std::make_exception_ptr(3.5)) == "double");
  CHECK(keel::mw::exception_type_name({}).empty());
}
