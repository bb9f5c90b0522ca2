// keel::app's hooks around the built-in endpoints and the end of serving:
// readiness checks (a backing store in /readyz) and on_stopped (background
// work stopped after the drain, while the server still exists).
#include <catch2/catch.hpp>

#include <keel/middleware/metrics.hpp>

#include "test_app.hpp"

#include <boost/asio/this_coro.hpp>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>

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

namespace {
// Holds its request until `release` is set: the main server stays draining.
keel::task<keel::response> held(std::atomic<bool>* entered, std::atomic<bool>* release) {
  *entered = true;
  keel::steady_timer t(co_await boost::asio::this_coro::executor);
  while (!*release) {
    t.expires_after(std::chrono::milliseconds(5));
    co_await t.async_wait(keel::use_task);
  }
  co_return keel::response::text("done\n");
}
}  // namespace

TEST_CASE("admin_listen moves /healthz, /readyz and /metrics to a listener of their own, which answers "
          "through the main server's drain",
          "[app][admin]") {
  auto o = keel::test::test_options();
  o.admin_listen = "127.0.0.1:0";
  keel::app app(o);
  std::atomic<bool> entered{false}, release{false};
  app.get("/hello", [](keel::context&) -> keel::task<keel::response> { co_return keel::response::text("hi\n"); });
  app.get("/held", [&](keel::context&) { return held(&entered, &release); });
  keel::mw::expose_metrics(app);
  kt::running_app running(app);
  auto admin = app.admin_port();
  REQUIRE(admin != 0);
  CHECK(admin != running.port());

  CHECK(running.get("/hello").status == 200);
  for (auto path : {"/healthz", "/readyz", "/metrics"}) {
    CAPTURE(path);
    CHECK(running.get(path).status == 404);  // moved, not copied
  }
  auto h = kt::request(admin, "GET", "/healthz");
  CHECK(h.status == 200);
  CHECK(h.body == "ok\n");
  CHECK(kt::request(admin, "GET", "/readyz").status == 200);
  auto m = kt::request(admin, "GET", "/metrics");
  CHECK(m.status == 200);
  CHECK(m.body.find("keel_http_connections_active") != std::string::npos);
  CHECK(kt::request(admin, "GET", "/hello").status == 404);  // the app's routes stay on the main listener

  // A request in flight keeps the main server draining; the probes see it.
  keel::testing::http_response slow;
  std::thread client([&] { slow = running.get("/held"); });
  REQUIRE(kt::eventually([&] { return entered.load(); }));
  app.stop();
  CHECK(kt::eventually([&] { return kt::request(admin, "GET", "/readyz").status == 503; }));
  CHECK(kt::request(admin, "GET", "/healthz").status == 200);
  release = true;
  client.join();
  CHECK(slow.status == 200);
  running.stop();
  CHECK(app.admin_port() != 0);
}
