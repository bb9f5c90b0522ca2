// {{item}} on its own, mounted on a small app.
#include "{{item}}.hpp"

#include <keel/testing.hpp>

#include <boost/json/parse.hpp>
#include <catch2/catch.hpp>

TEST_CASE("{{item}} answers with JSON") {
  keel::app app;
  app.get("/{{item}}", {{ident}}::{{item}});
  keel::testing::running_app running(app);
  auto r = running.get("/{{item}}");
  REQUIRE(r.status == 200);
  CHECK(boost::json::parse(r.body).at("handler") == "{{item}}");
}
