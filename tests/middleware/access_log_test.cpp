// access_log: one JSON line per request in SPEC §3's shape, secrets redacted.
#include <catch2/catch.hpp>

#include "capture_stderr.hpp"
#include "test_app.hpp"

#include <keel/context.hpp>
#include <keel/error.hpp>
#include <keel/middleware/access_log.hpp>
#include <keel/middleware/request_id.hpp>

#include <boost/json.hpp>

#include <regex>

using namespace keel::test;
using keel::context;
using keel::response;
using keel::task;
namespace kt = keel::testing;
namespace json = boost::json;

namespace {

task<response> hello(context&) { co_return response::text("Hello, World!"); }

task<response> boom(context&) {
  throw std::runtime_error("boom");
  co_return response::text("unreachable");
}

task<response> gone(context&) {
  throw keel::http_error(410, "gone for good");
  co_return response::text("unreachable");
}

std::vector<std::string> keys_of(json::object const& o) {
  std::vector<std::string> k;
  for (auto const& kv : o) k.emplace_back(kv.key());
  return k;
}

std::string str(json::object const& o, char const* k) { return std::string(o.at(k).as_string()); }

}  // namespace

TEST_CASE("each request gets one access line with SPEC's fields in SPEC's order", "[access_log]") {
  capture_stderr err;
  keel::app app(test_options());
  app.use(keel::mw::request_id());
  app.use(keel::mw::access_log());
  app.get("/users/{id}", hello);
  kt::running_app run(app);
  auto r = run.get("/users/7?page=2", {{"traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}});
  REQUIRE(r.status == 200);
  auto lines = err.lines("access");
  REQUIRE(lines.size() == 1);
  auto const& l = lines[0];
  CHECK(keys_of(l) == std::vector<std::string>{"ts", "level", "msg", "trace_id", "request_id", "method", "route",
                                               "path", "status", "bytes", "duration_ms", "peer"});
  CHECK(std::regex_match(str(l, "ts"), std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)")));
  CHECK(str(l, "level") == "info");
  CHECK(str(l, "trace_id") == "4bf92f3577b34da6a3ce929d0e0e4736");
  CHECK(str(l, "request_id") == r.header("X-Request-Id"));
  CHECK(str(l, "method") == "GET");
  CHECK(str(l, "route") == "/users/{id}");
  CHECK(str(l, "path") == "/users/7?page=2");
  CHECK(l.at("status").to_number<int>() == 200);
  CHECK(l.at("bytes").to_number<int>() == 13);
  CHECK(l.at("duration_ms").to_number<double>() >= 0);
  CHECK(l.at("duration_ms").to_number<double>() < 10'000);
  CHECK(std::regex_match(str(l, "peer"), std::regex(R"(127\.0\.0\.1:\d+)")));
}

TEST_CASE("token and access_token values are redacted and Authorization and Cookie never logged", "[access_log]") {
  capture_stderr err;
  keel::app app(test_options());
  app.use(keel::mw::access_log());
  app.get("/x", hello);
  kt::running_app run(app);
  run.get("/x?access_token=SECRET1&token=SECRET2&page=3&access%5Ftoken=SECRET3&TOKEN=SECRET4&token",
          {{"Authorization", "Bearer SECRET5"}, {"Cookie", "session=SECRET6"}});
  auto lines = err.lines("access");
  REQUIRE(lines.size() == 1);
  CHECK(str(lines[0], "path") ==
        "/x?access_token=REDACTED&token=REDACTED&page=3&access%5Ftoken=REDACTED&TOKEN=REDACTED&token");
  auto all = err.text();
  CHECK(all.find("SECRET") == std::string::npos);
  CHECK(all.find("Authorization") == std::string::npos);
  CHECK(all.find("Cookie") == std::string::npos);
}

TEST_CASE("the redaction list is configurable and matches names, not values", "[access_log]") {
  std::string out;
  keel::mw::append_redacted_target(out, "/a?api_key=k&x=api_key&k=v", {"api_key"});
  CHECK(out == "/a?api_key=REDACTED&x=api_key&k=v");
  out.clear();
  keel::mw::append_redacted_target(out, "/a/token=x", {"token"});
  CHECK(out == "/a/token=x");
  out.clear();
  keel::mw::append_redacted_target(out, "/a?a+b=1&token=", {"a b", "token"});
  CHECK(out == "/a?a+b=REDACTED&token=REDACTED");
}

TEST_CASE("unmatched requests and keel's own rejections get an access line", "[access_log]") {
  capture_stderr err;
  auto o = test_options();
  o.max_head = 1024;
  keel::app app(o);
  app.use(keel::mw::access_log());
  app.get("/x", hello);
  kt::running_app run(app);
  CHECK(run.get("/nope?token=abc").status == 404);
  CHECK(run.request("DELETE", "/x").status == 405);
  CHECK(run.get("/x", {{"X-Big", std::string(2000, 'a')}}).status == 431);
  auto lines = err.lines("access");
  REQUIRE(lines.size() == 3);
  CHECK(str(lines[0], "route") == "unmatched");
  CHECK(str(lines[0], "path") == "/nope?token=REDACTED");
  CHECK(lines[0].at("status").to_number<int>() == 404);
  CHECK(str(lines[1], "route") == "/x");
  CHECK(lines[1].at("status").to_number<int>() == 405);
  CHECK(str(lines[2], "route") == "unmatched");
  CHECK(lines[2].at("status").to_number<int>() == 431);
}

TEST_CASE("an exception nothing caught is logged with the status keel answers", "[access_log][order]") {
  capture_stderr err;
  keel::app app(test_options());
  app.use(keel::mw::access_log());
  app.get("/boom", boom);
  app.get("/gone", gone);
  kt::running_app run(app);
  CHECK(run.get("/boom").status == 500);
  CHECK(run.get("/gone").status == 410);
  auto lines = err.lines("access");
  REQUIRE(lines.size() == 2);
  CHECK(lines[0].at("status").to_number<int>() == 500);
  CHECK(lines[1].at("status").to_number<int>() == 410);
}

TEST_CASE("the line shows what comes back from inside, short-circuits included", "[access_log][order]") {
  capture_stderr err;
  keel::app app(test_options());
  // Outside the access log: changes the status after the line is written.
  app.use([](context&, keel::next next) -> task<response> {
    auto res = co_await next();
    if (res.status == 201) res.status = 202;
    co_return res;
  });
  app.use(keel::mw::access_log());
  bool ran = false;
  app.get("/created", [](context&) -> task<response> { co_return response::text("made", 201); });
  app.get("/guarded", [&ran](context&) -> task<response> {
       ran = true;
       co_return response::text("secret");
     })
      .use([](context& ctx, keel::next) -> task<response> { co_return ctx.problem(403, "no"); });
  kt::running_app run(app);
  CHECK(run.get("/created").status == 202);
  CHECK(run.get("/guarded").status == 403);
  CHECK_FALSE(ran);
  auto lines = err.lines("access");
  REQUIRE(lines.size() == 2);
  CHECK(lines[0].at("status").to_number<int>() == 201);  // what the access log saw
  CHECK(lines[1].at("status").to_number<int>() == 403);
}

TEST_CASE("HEAD requests log zero bytes", "[access_log]") {
  capture_stderr err;
  keel::app app(test_options());
  app.use(keel::mw::access_log());
  app.get("/x", hello);
  kt::running_app run(app);
  kt::client c(run.port());
  c.send_raw("HEAD /x HTTP/1.1\r\nHost: a\r\n\r\n");
  CHECK(c.read_response(true).status == 200);
  auto lines = err.lines("access");
  REQUIRE(lines.size() == 1);
  CHECK(str(lines[0], "method") == "HEAD");
  CHECK(lines[0].at("bytes").to_number<int>() == 0);
}

TEST_CASE("access_log attached to a group or a route logs only those routes", "[access_log][attach]") {
  capture_stderr err;
  keel::app app(test_options());
  app.group("/g", {keel::mw::access_log()}).get("/x", hello);
  app.get("/r", hello).use(keel::mw::access_log());
  app.get("/quiet", hello);
  kt::running_app run(app);
  run.get("/g/x");
  run.get("/r");
  run.get("/quiet");
  auto lines = err.lines("access");
  REQUIRE(lines.size() == 2);
  CHECK(str(lines[0], "route") == "/g/x");
  CHECK(str(lines[1], "route") == "/r");
}

TEST_CASE("access lines follow the log level", "[access_log]") {
  capture_stderr err;
  keel::app app(test_options());
  app.use(keel::mw::access_log());
  app.use(keel::mw::access_log({.level = keel::log::level::debug}));
  app.get("/x", hello);
  kt::running_app run(app);
  run.get("/x");
  auto lines = err.lines("access");
  REQUIRE(lines.size() == 1);  // the debug one is below the default level
  CHECK(str(lines[0], "level") == "info");
}
