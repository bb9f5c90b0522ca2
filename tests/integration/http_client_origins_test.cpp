// keel::http_client forgets origins it no longer uses (issue 21 #11): an app
// that calls user-supplied URLs must not keep a pool and metric series for
// every origin it ever saw.
#include <catch2/catch.hpp>

#include "io_thread.hpp"
#include "test_app.hpp"

#include <keel/context.hpp>
#include <keel/http_client.hpp>
#include <keel/metrics.hpp>
#include <keel/server.hpp>

#include <string>
#include <vector>

using namespace keel::test;
using keel::context;
using keel::http_client;
using keel::http_client_options;
using keel::http_client_response;
using keel::response;
using keel::task;
namespace kt = keel::testing;

namespace {

using ms = std::chrono::milliseconds;

task<http_client_response> fetch(http_client& c, std::string url) {
  co_return co_await c.request(keel::verb::get, std::move(url));
}

// Lines of /metrics that mention `needle`.
std::size_t series_with(std::string const& needle) {
  auto text = keel::metrics::global().render();
  std::size_t n = 0;
  for (std::size_t at = 0; (at = text.find(needle, at)) != std::string::npos; at += needle.size()) ++n;
  return n;
}

task<response> slow(context& ctx) {
  keel::steady_timer t(ctx.get_executor());
  t.expires_after(ms(600));
  co_await t.async_wait(keel::use_task);
  co_return response::text("slow");
}

}  // namespace

TEST_CASE("remove_series drops the matching series and a later labels() starts again at 0", "[metrics]") {
  auto& reg = keel::metrics::global();
  auto fam = reg.add_counter_family("keel_test_removable_total", "Test series.", {"a", "b"});
  fam.labels({"x", "1"}).inc(5);
  fam.labels({"x", "2"}).inc(1);
  fam.labels({"y", "1"}).inc(7);
  CHECK(reg.remove_series("keel_test_removable_total", {"x"}) == 2);
  CHECK(series_with("keel_test_removable_total{a=\"x\"") == 0);
  CHECK(series_with("keel_test_removable_total{a=\"y\",b=\"1\"} 7") == 1);
  // This thread's label cache must not hand out the freed series.
  CHECK(fam.labels({"x", "1"}).value() == 0);
  CHECK(reg.remove_series("keel_test_removable_total", {"nobody"}) == 0);
  CHECK(reg.remove_series("keel_no_such_family", {"x"}) == 0);
}

TEST_CASE("origins unused for origin_idle_timeout are forgotten, with their pools and metric series",
          "[http_client]") {
  keel::router routes;
  routes.get("/hello", [](context&) -> task<response> { co_return response::text("hello"); });
  routes.get("/slow", slow);
  keel::server srv(test_options(), routes);
  constexpr std::size_t n = 6;
  for (std::size_t i = 0; i < n; ++i) srv.listen("127.0.0.1:0");
  srv.start();
  std::vector<std::string> urls;
  for (std::size_t i = 0; i < n; ++i) urls.push_back("http://127.0.0.1:" + std::to_string(srv.port(i)));

  http_client_options o;
  o.name = "origins_test";
  o.origin_idle_timeout = ms(150);
  http_client client(o);
  io_thread io;

  for (auto const& u : urls) CHECK(io.result(fetch(client, u + "/hello")).body == "hello");
  CHECK(client.origins() >= 1);
  CHECK(client.origins() <= n);
  CHECK(series_with("client=\"origins_test\"") >= 1);

  REQUIRE(kt::eventually([&] { return client.origins() == 0; }));
  CHECK_FALSE(client.stats(urls[0]));
  CHECK(series_with("client=\"origins_test\"") == 0);
  CHECK(series_with("pool=\"http_client:origins_test:") == 0);

  // A forgotten origin works again, from a new pool and new series.
  CHECK(io.result(fetch(client, urls[0] + "/hello")).body == "hello");
  CHECK(client.stats(urls[0]));
  CHECK(series_with("keel_http_client_requests_total{client=\"origins_test\",host=\"127.0.0.1:" +
                    std::to_string(srv.port(0)) + "\",status=\"200\"} 1") == 1);

  // An origin in use is kept however long its call takes.
  auto pending = io.spawn(fetch(client, urls[1] + "/slow"));
  REQUIRE(kt::eventually([&] { return client.stats(urls[1]).has_value(); }));
  CHECK_FALSE(kt::eventually([&] { return !client.stats(urls[1]); }, ms(450)));
  CHECK(io.get(pending).body == "slow");

  REQUIRE(kt::eventually([&] { return client.origins() == 0; }));
  srv.stop();
  srv.wait();
}
