// {{item}} on its own: a small app with one route behind it.
#include "{{item}}.hpp"

#include <keel/testing.hpp>

#include <catch2/catch.hpp>

TEST_CASE("{{item}} stamps the responses it sees") {
  keel::app app;
  app.use({{ident}}::{{item}}());
  app.get("/ping", [](keel::context&) -> keel::task<keel::response> { co_return keel::response::text("pong"); });
  keel::testing::running_app running(app);
  auto r = running.get("/ping");
  CHECK(r.status == 200);
  CHECK(r.body == "pong");
  CHECK(r.header("X-{{item}}") == "seen");
}
