// keel::app's hooks around the built-in endpoints and the end of serving:
// readiness checks (a backing store in /readyz) and on_stopped (background
// work stopped after the drain, while the server still exists).
#include <catch2/catch.hpp>

#include "test_app.hpp"

#include <atomic>
#include <memory>
#include <string>

namespace kt = keel::testing;

TEST_CASE("a readiness check turns /readyz into a 503 naming its reason, and back", "[app]") {
  keel::app app(keel::test::test_options());
  std::atomic<bool> store_up{true};
  app.add_readiness_check([&] { return store_up ? std::string() : std::string("store unavailable"); });
  kt::running_app running(app);
  CHECK(running.get("/readyz").status == 200);
  store_up = false;
  auto r = running.get("/readyz");
  CHECK(r.status == 503);
  CHECK(r.body.find("store unavailable") != std::string::npos);
  CHECK(running.get("/healthz").status == 200);  // liveness does not depend on it
  store_up = true;
  CHECK(running.get("/readyz").status == 200);
}

TEST_CASE("on_stopped runs once, after the drain, while the server still exists", "[app]") {
  auto app = std::make_unique<keel::app>(keel::test::test_options());
  int runs = 0;
  bool drained_then = false;
  app->on_stopped([&] {
    ++runs;
    drained_then = app->server().draining();
  });
  {
    kt::running_app running(*app);
    CHECK(running.get("/healthz").status == 200);
    CHECK(runs == 0);
    running.stop();
    CHECK(runs == 1);
    CHECK(drained_then);
  }
  app.reset();  // the destructor does not run it again
  CHECK(runs == 1);
}
