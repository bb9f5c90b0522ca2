// request_id: X-Request-Id and W3C Trace Context (SPEC §3) over real sockets.
#include <catch2/catch.hpp>

#include "test_app.hpp"

#include <keel/context.hpp>
#include <keel/error.hpp>
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

// Echoes what the handler sees of the trace.
task<response> show_trace(context& ctx) {
  auto const& t = ctx.trace();
  co_return response::json({{"trace_id", t.trace_id},
                            {"span_id", t.span_id},
                            {"parent_id", t.parent_id},
                            {"flags", t.flags},
                            {"tracestate", t.tracestate},
                            {"request_id", ctx.request_id()}});
}

task<response> boom(context&) {
  throw std::runtime_error("boom");
  co_return response::text("unreachable");
}

json::object body_of(kt::http_response const& r) { return json::parse(r.body).as_object(); }

bool is_hex(std::string const& s, std::size_t n) { return std::regex_match(s, std::regex("[0-9a-f]{" + std::to_string(n) + "}")); }

std::string str(json::object const& o, char const* k) { return std::string(o.at(k).as_string()); }

constexpr char const* parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

}  // namespace

TEST_CASE("a request without ids starts a trace whose id is the X-Request-Id and the traceresponse's", "[request_id]") {
  keel::app app(test_options());
  app.use(keel::mw::request_id());
  app.get("/t", show_trace);
  kt::running_app run(app);
  auto r = run.get("/t");
  REQUIRE(r.status == 200);
  auto b = body_of(r);
  auto trace = str(b, "trace_id");
  CHECK(is_hex(trace, 32));
  CHECK(is_hex(str(b, "span_id"), 16));
  CHECK(str(b, "parent_id").empty());
  CHECK(r.header("X-Request-Id") == trace);
  CHECK(r.header("traceresponse") == "00-" + trace + "-" + str(b, "span_id") + "-00");
  // Each request is its own trace.
  CHECK(run.get("/t").header("X-Request-Id") != trace);
}

TEST_CASE("a valid traceparent keeps its trace id, flags and tracestate, with a new span", "[request_id]") {
  keel::app app(test_options());
  app.use(keel::mw::request_id());
  app.get("/t", show_trace);
  kt::running_app run(app);
  auto r = run.get("/t", {{"traceparent", parent}, {"tracestate", "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"}});
  auto b = body_of(r);
  CHECK(str(b, "trace_id") == "4bf92f3577b34da6a3ce929d0e0e4736");
  CHECK(str(b, "parent_id") == "00f067aa0ba902b7");
  CHECK(str(b, "span_id") != "00f067aa0ba902b7");
  CHECK(is_hex(str(b, "span_id"), 16));
  CHECK(b.at("flags").to_number<int>() == 1);
  CHECK(str(b, "tracestate") == "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7");
  CHECK(r.header("X-Request-Id") == "4bf92f3577b34da6a3ce929d0e0e4736");
  CHECK(r.header("traceresponse") == "00-4bf92f3577b34da6a3ce929d0e0e4736-" + str(b, "span_id") + "-01");
}

TEST_CASE("a later traceparent version is read as version 00", "[request_id]") {
  keel::app app(test_options());
  app.use(keel::mw::request_id());
  app.get("/t", show_trace);
  kt::running_app run(app);
  auto b = body_of(run.get("/t", {{"traceparent", "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-what-the-future-holds"}}));
  CHECK(str(b, "trace_id") == "4bf92f3577b34da6a3ce929d0e0e4736");
  CHECK(str(b, "parent_id") == "00f067aa0ba902b7");
}

TEST_CASE("an invalid traceparent starts a new trace and drops tracestate", "[request_id]") {
  keel::app app(test_options());
  app.use(keel::mw::request_id());
  app.get("/t", show_trace);
  kt::running_app run(app);
  auto invalid = GENERATE(as<std::string>{},
                          "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",  // uppercase
                          "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  // zero trace id
                          "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  // zero parent
                          "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  // version ff
                          "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",  // 00 with extra
                          "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",  // short
                          "00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01",  // delimiters
                          "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",  // not hex
                          "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",  // no '-' after
                          "garbage");
  INFO("traceparent: " << invalid);
  auto r = run.get("/t", {{"traceparent", invalid}, {"tracestate", "congo=t61rcWkgMzE"}});
  auto b = body_of(r);
  CHECK(str(b, "trace_id") != "4bf92f3577b34da6a3ce929d0e0e4736");
  CHECK(is_hex(str(b, "trace_id"), 32));
  CHECK(str(b, "parent_id").empty());
  CHECK(str(b, "tracestate").empty());
  CHECK(r.header("X-Request-Id") == str(b, "trace_id"));
}

TEST_CASE("a valid X-Request-Id is kept and an invalid one is replaced by the trace id", "[request_id]") {
  keel::app app(test_options());
  app.use(keel::mw::request_id());
  app.get("/t", show_trace);
  kt::running_app run(app);
  for (std::string ok : {std::string("abc"), std::string("A-b_c.9"), std::string(128, 'x')}) {
    auto r = run.get("/t", {{"X-Request-Id", ok}});
    CHECK(r.header("X-Request-Id") == ok);
    CHECK(str(body_of(r), "request_id") == ok);
  }
  for (std::string bad : {std::string(129, 'x'), std::string("a b"), std::string("a/b"), std::string("é"),
                          std::string("<script>")}) {
    INFO("X-Request-Id: " << bad);
    auto r = run.get("/t", {{"X-Request-Id", bad}, {"traceparent", parent}});
    CHECK(r.header("X-Request-Id") == "4bf92f3577b34da6a3ce929d0e0e4736");
  }
  CHECK(keel::mw::valid_request_id("x"));
  CHECK_FALSE(keel::mw::valid_request_id(""));
}

TEST_CASE("with continue_trace off an incoming traceparent is ignored", "[request_id]") {
  keel::app app(test_options());
  app.use(keel::mw::request_id({.keep_incoming_id = false, .continue_trace = false}));
  app.get("/t", show_trace);
  kt::running_app run(app);
  auto r = run.get("/t", {{"traceparent", parent}, {"X-Request-Id", "mine"}});
  auto b = body_of(r);
  CHECK(str(b, "trace_id") != "4bf92f3577b34da6a3ce929d0e0e4736");
  CHECK(r.header("X-Request-Id") == str(b, "trace_id"));
}

TEST_CASE("404, 405, exceptions and keel's own rejections carry the ids too", "[request_id]") {
  auto o = test_options();
  o.max_head = 1024;
  keel::app app(o);
  app.use(keel::mw::request_id());
  app.get("/t", show_trace);
  app.get("/boom", boom);
  kt::running_app run(app);
  auto check_ids = [](kt::http_response const& r, unsigned status) {
    INFO("status " << r.status);
    CHECK(r.status == status);
    CHECK(is_hex(r.header("X-Request-Id"), 32));
    CHECK(r.header("traceresponse").size() == 55);
    // The problem body names the same trace.
    CHECK(r.body.find(r.header("X-Request-Id")) != std::string::npos);
  };
  check_ids(run.get("/nope"), 404);
  check_ids(run.request("POST", "/t"), 405);
  check_ids(run.get("/boom"), 500);
  check_ids(run.get("/t", {{"X-Big", std::string(2000, 'a')}}), 431);
  kt::client c(run.port());
  c.send_raw("GET /t HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n");
  check_ids(c.read_response(), 400);
}

TEST_CASE("an outer middleware sees the ids stamped and a short-circuit inside still gets them", "[request_id][order]") {
  keel::app app(test_options());
  std::string seen;
  app.use([&seen](context&, keel::next next) -> task<response> {
    auto res = co_await next();
    seen = std::string(res.header("X-Request-Id").value_or(""));
    co_return res;
  });
  app.use(keel::mw::request_id());
  bool handler_ran = false;
  app.get("/t", [&](context&) -> task<response> {
       handler_ran = true;
       co_return response::text("ran");
     })
      .use([](context& ctx, keel::next) -> task<response> { co_return ctx.problem(403, "stop here"); });
  kt::running_app run(app);
  auto r = run.get("/t", {{"X-Request-Id", "abc"}});
  CHECK(r.status == 403);
  CHECK_FALSE(handler_ran);
  CHECK(r.header("X-Request-Id") == "abc");
  CHECK(seen == "abc");
}

TEST_CASE("request_id attached to a group or a route stamps only those routes", "[request_id][attach]") {
  keel::app app(test_options());
  auto g = app.group("/g", {keel::mw::request_id()});
  g.get("/t", show_trace);
  app.get("/r", show_trace).use(keel::mw::request_id());
  app.get("/plain", show_trace);
  kt::running_app run(app);
  CHECK(run.get("/g/t", {{"X-Request-Id", "group"}}).header("X-Request-Id") == "group");
  CHECK(run.get("/r", {{"X-Request-Id", "route"}}).header("X-Request-Id") == "route");
  auto plain = run.get("/plain", {{"X-Request-Id", "none"}});
  CHECK_FALSE(plain.has_header("X-Request-Id"));
  CHECK_FALSE(plain.has_header("traceresponse"));
}
