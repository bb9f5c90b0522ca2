// Text that leaves keel is UTF-8 (issue 21 #4): percent-decoded path and query
// values are checked where they are decoded, and problem bodies are made
// valid. The peers are keel::testing's raw HTTP client and Boost.JSON's parser
// (which rejects invalid UTF-8).
#include <catch2/catch.hpp>

#include "test_app.hpp"

#include <keel/context.hpp>
#include <keel/error.hpp>
#include <keel/utf8.hpp>

#include <boost/json/parse.hpp>

using namespace keel::test;
using keel::context;
using keel::response;
using keel::task;
namespace kt = keel::testing;
namespace json = boost::json;

namespace {

std::string const replacement = "\xEF\xBF\xBD";

std::string hex(std::string_view bytes) {
  static char const digits[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : bytes) {
    out.push_back(digits[c >> 4]);
    out.push_back(digits[c & 15]);
  }
  return out;
}

task<response> echo_param(context& ctx) { co_return response::text(ctx.param("v")); }

task<response> echo_query(context& ctx) { co_return response::text(ctx.query("v").value_or("<absent>")); }

task<response> echo_bytes(context& ctx) {
  co_return response::text(hex(ctx.param_bytes("v")) + "," + hex(ctx.query_bytes("v").value_or("")));
}

// What todo did for an unknown id: the detail echoes the bytes it was given.
task<response> not_found_echo(context& ctx) {
  throw keel::not_found("no todo " + ctx.param_bytes("v"));
  co_return response::text("unreachable");
}

task<response> problem_from_bytes(context& ctx) {
  co_return ctx.problem(422, "bad byte \xFF here", {{"echo", "x\xFE\xFFy"}, {"list", json::array{"\xC0\xAF"}}},
                        "title \xE2\x82");
}

// A body that checks as a problem and parses as JSON; its object.
json::object problem_of(kt::http_response const& r, unsigned status) {
  CHECK(r.status == status);
  CHECK(r.header("Content-Type").rfind("application/problem+json", 0) == 0);
  CHECK(keel::is_valid_utf8(r.body));
  boost::system::error_code ec;
  auto v = json::parse(r.body, ec);  // Boost.JSON refuses invalid UTF-8 in strings
  CHECK_FALSE(ec);
  if (ec || !v.is_object()) return {};
  return v.as_object();
}

std::string str(json::object const& o, char const* key) {
  auto const* v = o.if_contains(key);
  return v && v->is_string() ? std::string(v->as_string()) : std::string("<missing>");
}

struct http_fixture {
  keel::app app{test_options()};
  std::unique_ptr<kt::running_app> running;
  http_fixture() {
    app.get("/p/{v}", echo_param);
    app.get("/q", echo_query);
    app.get("/bytes/{v}", echo_bytes);
    app.get("/todos/{v}", not_found_echo);
    app.get("/problem", problem_from_bytes);
    running = std::make_unique<kt::running_app>(app);
  }
};

}  // namespace

TEST_CASE("a path parameter that decodes to invalid UTF-8 is a 400 problem naming it", "[utf8]") {
  http_fixture f;
  for (char const* target : {"/p/%FF", "/p/ab%C3", "/p/%ED%A0%80", "/p/%C0%AF", "/p/%F4%90%80%80"}) {
    INFO(target);
    auto o = problem_of(f.running->get(target), 400);
    CHECK(str(o, "detail").find("'v'") != std::string::npos);
    CHECK(str(o, "detail").find("path parameter") != std::string::npos);
  }
}

TEST_CASE("a query value that decodes to invalid UTF-8 is a 400 problem naming it", "[utf8]") {
  http_fixture f;
  for (char const* target : {"/q?v=%FF", "/q?a=1&v=x%FE+y", "/q?%76=%80"}) {
    INFO(target);
    auto o = problem_of(f.running->get(target), 400);
    CHECK(str(o, "detail").find("'v'") != std::string::npos);
    CHECK(str(o, "detail").find("query parameter") != std::string::npos);
  }
  // Another parameter's bytes do not matter to a query for this one.
  auto r = f.running->get("/q?w=%FF&v=ok");
  CHECK(r.status == 200);
  CHECK(r.body == "ok");
}

TEST_CASE("valid multi-byte UTF-8 passes through the checked accessors", "[utf8]") {
  http_fixture f;
  auto r = f.running->get("/p/caf%C3%A9%20%E2%82%AC%F0%9F%98%80");
  CHECK(r.status == 200);
  CHECK(r.body == "caf\xC3\xA9 \xE2\x82\xAC\xF0\x9F\x98\x80");
  r = f.running->get("/q?v=%C3%A9+%E2%82%AC");
  CHECK(r.status == 200);
  CHECK(r.body == "\xC3\xA9 \xE2\x82\xAC");
  r = f.running->get("/q");
  CHECK(r.body == "<absent>");
}

TEST_CASE("the bytes accessors return decoded bytes unchecked", "[utf8]") {
  http_fixture f;
  auto r = f.running->get("/bytes/a%FF%00b?v=%FE%C3%A9");
  CHECK(r.status == 200);
  CHECK(r.body == "61ff0062,fec3a9");
}

TEST_CASE("a problem built from invalid bytes is valid UTF-8 JSON on the wire", "[utf8]") {
  http_fixture f;
  auto o = problem_of(f.running->get("/problem"), 422);
  CHECK(str(o, "detail") == "bad byte " + replacement + " here");
  CHECK(str(o, "title") == "title " + replacement);
  CHECK(str(o, "echo") == "x" + replacement + replacement + "y");
  // todo's GET /api/todos/%FF%FE: an http_error whose detail echoes the bytes.
  o = problem_of(f.running->get("/todos/%FF%FE"), 404);
  CHECK(str(o, "detail") == "no todo " + replacement + replacement);
}

