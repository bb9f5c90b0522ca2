// The service's routes over a real loopback socket, through keel::testing.
#include "routes.hpp"

#include <keel/testing.hpp>

#include <boost/json/parse.hpp>
#include <catch2/catch.hpp>

namespace {

// The service as main() builds it, with `flags` as if given on the command line.
struct service {
  explicit service(std::vector<std::string> const& flags = {}) : cfg("{{name}}") {
    {{ident}}::declare_settings(cfg);
    cfg.load(flags, [](char const*) -> char const* { return nullptr; });
    app = std::make_unique<keel::app>(cfg.server());
    {{ident}}::setup(*app, cfg);
    running = std::make_unique<keel::testing::running_app>(*app);
  }
  keel::config cfg;
  std::unique_ptr<keel::app> app;
  std::unique_ptr<keel::testing::running_app> running;
};

}  // namespace

TEST_CASE("GET /hello/{name} greets by name") {
  service s;
  auto r = s.running->get("/hello/world");
  REQUIRE(r.status == 200);
  CHECK(r.header("Content-Type").rfind("application/json", 0) == 0);
  CHECK(boost::json::parse(r.body).at("message") == "Hello, world!");
  CHECK_FALSE(r.header("X-Request-Id").empty());
}

TEST_CASE("the greeting is a setting") {
  service s({"--greeting", "Hi"});
  CHECK(boost::json::parse(s.running->get("/hello/you").body).at("message") == "Hi, you!");
}

TEST_CASE("health, readiness and metrics are served") {
  service s;
  CHECK(s.running->get("/healthz").status == 200);
  CHECK(s.running->get("/readyz").status == 200);
  s.running->get("/hello/metrics");
  auto m = s.running->get("/metrics");
  REQUIRE(m.status == 200);
  CHECK(m.body.find("keel_http_requests_total{method=\"GET\",route=\"/hello/{name}\",status=\"200\"}") !=
        std::string::npos);
}

TEST_CASE("an unknown path is a 404 problem") {
  service s;
  auto r = s.running->get("/nope");
  CHECK(r.status == 404);
  CHECK(r.header("Content-Type").rfind("application/problem+json", 0) == 0);
}
