// Every route of the API, its success and its error cases, over a real
// loopback socket through keel::testing.
#include "routes.hpp"

#include <keel/testing.hpp>

#include <boost/json/parse.hpp>
#include <catch2/catch.hpp>

namespace json = boost::json;

namespace {

constexpr char const* token = "test-token";

struct service {
  service() : cfg("{{name}}") {
    {{ident}}::declare_settings(cfg);
    cfg.load({"--api-token", token}, [](char const*) -> char const* { return nullptr; });
    app = std::make_unique<keel::app>(cfg.server());
    {{ident}}::setup(*app, cfg);
    running = std::make_unique<keel::testing::running_app>(*app);
  }
  keel::testing::http_response call(std::string_view method, std::string_view target, std::string body = {},
                                    keel::testing::header_list extra = {}) {
    extra.emplace_back("Authorization", std::string("Bearer ") + token);
    if (!body.empty()) extra.emplace_back("Content-Type", "application/json");
    return running->request(method, target, std::move(body), std::move(extra));
  }
  keel::config cfg;
  std::unique_ptr<keel::app> app;
  std::unique_ptr<keel::testing::running_app> running;
};

std::string first_error_field(keel::testing::http_response const& r) {
  auto problem = json::parse(r.body);
  auto const& errors = problem.at("errors").as_array();
  return errors.empty() ? "" : std::string(errors[0].at("field").as_string());
}

}  // namespace

TEST_CASE("items are created, read, listed, updated and deleted") {
  service s;
  auto created = s.call("POST", "/api/items", R"({"name":"apple","quantity":3})");
  REQUIRE(created.status == 201);
  auto item = json::parse(created.body);
  auto id = item.at("id").as_int64();
  CHECK(created.header("Location") == "/api/items/" + std::to_string(id));
  CHECK(item.at("name") == "apple");
  CHECK(created.header("API-Version") == "1");

  auto got = s.call("GET", "/api/items/" + std::to_string(id));
  REQUIRE(got.status == 200);
  CHECK(json::parse(got.body).at("quantity") == 3);

  auto list = s.call("GET", "/api/items");
  REQUIRE(list.status == 200);
  CHECK(json::parse(list.body).at("items").as_array().size() == 1);

  auto patched = s.call("PATCH", "/api/items/" + std::to_string(id), R"({"quantity":5})");
  REQUIRE(patched.status == 200);
  CHECK(json::parse(patched.body).at("quantity") == 5);
  CHECK(json::parse(patched.body).at("name") == "apple");

  CHECK(s.call("DELETE", "/api/items/" + std::to_string(id)).status == 204);
  CHECK(s.call("GET", "/api/items/" + std::to_string(id)).status == 404);
  CHECK(s.call("DELETE", "/api/items/" + std::to_string(id)).status == 404);
}

TEST_CASE("/api without the token is a 401 with WWW-Authenticate") {
  service s;
  auto r = s.running->get("/api/items");
  CHECK(r.status == 401);
  CHECK_FALSE(r.header("WWW-Authenticate").empty());
  auto wrong = s.running->get("/api/items", {{"Authorization", "Bearer nope"}});
  CHECK(wrong.status == 401);
}

TEST_CASE("invalid items are 422 problems naming the field") {
  service s;
  auto missing = s.call("POST", "/api/items", R"({"quantity":1})");
  CHECK(missing.status == 422);
  CHECK(first_error_field(missing) == "/name");
  auto empty = s.call("POST", "/api/items", R"({"name":""})");
  CHECK(empty.status == 422);
  CHECK(first_error_field(empty) == "/name");
  auto wrong_type = s.call("POST", "/api/items", R"({"name":"pear","quantity":"many"})");
  CHECK(wrong_type.status == 422);
  CHECK(first_error_field(wrong_type) == "/quantity");
  auto negative = s.call("POST", "/api/items", R"({"name":"pear","quantity":-1})");
  CHECK(negative.status == 422);
  auto not_json = s.call("POST", "/api/items", "{nope");
  CHECK(not_json.status == 400);
}

TEST_CASE("updating or reading an unknown item is a 404 problem") {
  service s;
  CHECK(s.call("GET", "/api/items/999").status == 404);
  CHECK(s.call("GET", "/api/items/abc").status == 404);
  CHECK(s.call("PATCH", "/api/items/999", R"({"name":"x"})").status == 404);
  auto r = s.call("GET", "/api/items/999");
  CHECK(r.header("Content-Type").rfind("application/problem+json", 0) == 0);
}

TEST_CASE("the api_version middleware refuses another version before the handler") {
  service s;
  auto r = s.call("GET", "/api/items", {}, {{"Accept-Version", "2"}});
  CHECK(r.status == 406);
  CHECK(r.header("API-Version") == "1");
  CHECK(s.call("GET", "/api/items", {}, {{"Accept-Version", "1"}}).status == 200);
}

TEST_CASE("the service refuses to start without an api_token") {
  keel::config cfg("{{name}}");
  {{ident}}::declare_settings(cfg);
  cfg.load({}, [](char const*) -> char const* { return nullptr; });
  keel::app app(cfg.server());
  CHECK_THROWS_WITH({{ident}}::setup(app, cfg), Catch::Contains("api-token"));
}
