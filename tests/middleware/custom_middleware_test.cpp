// The custom middleware of docs/examples/custom_middleware.cpp, tested as
// docs/middleware.md shows them.
#include <catch2/catch.hpp>

#include "test_app.hpp"

#define KEEL_EXAMPLE_NO_MAIN
#include "../../docs/examples/custom_middleware.cpp"

#include <regex>

using namespace keel::test;
namespace kt = keel::testing;

TEST_CASE("the timing middleware adds Server-Timing to every response", "[custom_middleware]") {
  keel::app app(test_options());
  example::routes(app, "k-1");
  kt::running_app run(app);
  auto r = run.get("/hello");
  CHECK(r.status == 200);
  CHECK(std::regex_match(r.header("Server-Timing"), std::regex(R"(app;dur=\d+\.\d+)")));
  // Outermost, it times the 401 the inner check answers as well.
  CHECK(run.get("/admin/stats").has_header("Server-Timing"));
  CHECK(run.get("/nope").has_header("Server-Timing"));
}

TEST_CASE("the API-key middleware guards its group and short-circuits without the key", "[custom_middleware]") {
  keel::app app(test_options());
  example::routes(app, "k-1");
  kt::running_app run(app);
  auto missing = run.get("/admin/stats");
  CHECK(missing.status == 401);
  CHECK(missing.header("WWW-Authenticate") == "ApiKey header=\"X-API-Key\"");
  CHECK(missing.header("Content-Type") == "application/problem+json");
  CHECK(run.get("/admin/stats", {{"X-API-Key", "k-2"}}).status == 401);
  CHECK(run.get("/admin/stats", {{"X-API-Key", "k-1x"}}).status == 401);
  auto ok = run.get("/admin/stats", {{"X-API-Key", "k-1"}});
  CHECK(ok.status == 200);
  CHECK(ok.body == R"({"requests":42})");
  CHECK(run.get("/hello").status == 200);  // outside the group: no key needed
}
