// rate_limit: token buckets per key, 429 with Retry-After, bounded memory,
// safe under many threads.
#include <catch2/catch.hpp>

#include "test_app.hpp"

#include <keel/context.hpp>
#include <keel/middleware/auth.hpp>
#include <keel/middleware/rate_limit.hpp>

#include <atomic>
#include <thread>

using namespace keel::test;
using keel::context;
using keel::response;
using keel::task;
namespace kt = keel::testing;
namespace mw = keel::mw;

namespace {

std::atomic<int> handled{0};

task<response> counted(context&) {
  ++handled;
  co_return response::text("ok");
}

mw::rate_key by_header() {
  return [](context& ctx) { return std::string(ctx.header("X-Key").value_or("")); };
}

}  // namespace

TEST_CASE("a burst passes, the next request gets 429 with Retry-After and skips the handler", "[rate_limit]") {
  keel::app app(test_options());
  app.use(mw::rate_limit({.rate = 0.5, .burst = 3}));
  app.get("/x", counted);
  kt::running_app run(app);
  handled = 0;
  for (int i = 0; i < 3; ++i) CHECK(run.get("/x").status == 200);
  auto r = run.get("/x");
  CHECK(r.status == 429);
  CHECK(r.header("Content-Type") == "application/problem+json");
  CHECK(r.header("Retry-After") == "2");  // one token at 0.5/s
  CHECK(handled == 3);
}

TEST_CASE("tokens come back at the configured rate", "[rate_limit]") {
  keel::app app(test_options());
  app.use(mw::rate_limit({.rate = 2, .burst = 1}));
  app.get("/x", counted);
  kt::running_app run(app);
  CHECK(run.get("/x").status == 200);
  auto r = run.get("/x");
  CHECK(r.status == 429);
  CHECK(r.header("Retry-After") == "1");  // half a second, rounded up to whole seconds
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));  // 2.2 tokens' worth, capped at 1
  CHECK(run.get("/x").status == 200);
  CHECK(run.get("/x").status == 429);
}

TEST_CASE("keys have their own buckets, and an empty key is not limited", "[rate_limit]") {
  keel::app app(test_options());
  app.use(mw::rate_limit({.rate = 0.1, .burst = 1, .key = by_header()}));
  app.get("/x", counted);
  kt::running_app run(app);
  CHECK(run.get("/x", {{"X-Key", "a"}}).status == 200);
  CHECK(run.get("/x", {{"X-Key", "a"}}).status == 429);
  CHECK(run.get("/x", {{"X-Key", "b"}}).status == 200);
  for (int i = 0; i < 5; ++i) CHECK(run.get("/x").status == 200);
}

TEST_CASE("by_principal limits each authenticated user separately", "[rate_limit]") {
  keel::app app(test_options());
  auto api = app.group("/api", {mw::authenticate({.authenticators = {mw::bearer_tokens(
                                                      {{"ta", {.subject = "alice"}}, {"tb", {.subject = "bob"}}})},
                                                  .optional = true}),
                                mw::rate_limit({.rate = 0.1, .burst = 2, .key = mw::by_principal()})});
  api.get("/x", counted);
  kt::running_app run(app);
  kt::header_list alice{{"Authorization", "Bearer ta"}}, bob{{"Authorization", "Bearer tb"}};
  CHECK(run.get("/api/x", alice).status == 200);
  CHECK(run.get("/api/x", alice).status == 200);
  CHECK(run.get("/api/x", alice).status == 429);
  CHECK(run.get("/api/x", bob).status == 200);
  // Anonymous callers share their address's bucket.
  CHECK(run.get("/api/x").status == 200);
  CHECK(run.get("/api/x").status == 200);
  CHECK(run.get("/api/x").status == 429);
}

TEST_CASE("memory is bounded: the least recently used key is forgotten first", "[rate_limit]") {
  keel::app app(test_options());
  app.use(mw::rate_limit({.rate = 0.01, .burst = 1, .key = by_header(), .max_keys = 2, .shards = 1}));
  app.get("/x", counted);
  kt::running_app run(app);
  CHECK(run.get("/x", {{"X-Key", "a"}}).status == 200);
  CHECK(run.get("/x", {{"X-Key", "b"}}).status == 200);
  CHECK(run.get("/x", {{"X-Key", "a"}}).status == 429);  // a is now the most recent
  CHECK(run.get("/x", {{"X-Key", "c"}}).status == 200);  // evicts b
  CHECK(run.get("/x", {{"X-Key", "a"}}).status == 429);  // a was kept
  CHECK(run.get("/x", {{"X-Key", "b"}}).status == 200);  // b was forgotten: a full bucket again
}

TEST_CASE("concurrent clients on several I/O threads never get more than the burst", "[rate_limit][concurrency]") {
  auto o = test_options();
  o.threads = 4;
  keel::app app(o);
  app.use(mw::rate_limit({.rate = 0.001, .burst = 50, .key = by_header(), .shards = 4}));
  app.get("/x", counted);
  kt::running_app run(app);
  std::atomic<int> ok{0}, limited{0};
  std::vector<std::thread> clients;
  for (int t = 0; t < 8; ++t) {
    clients.emplace_back([&, t] {
      kt::client c(run.port());
      for (int i = 0; i < 25; ++i) {
        auto key = std::string(i % 2 ? "shared" : "own-") + (i % 2 ? "" : std::to_string(t));
        auto s = c.get("/x", {{"X-Key", key}}).status;
        (s == 200 ? ok : limited)++;
      }
    });
  }
  for (auto& c : clients) c.join();
  // "shared": 8 x 12 requests, 50 allowed; own-t: 13 each, all allowed.
  CHECK(ok == 50 + 8 * 13);
  CHECK(limited == 8 * 12 - 50);
}

TEST_CASE("rate_limit attached to a route leaves other routes alone", "[rate_limit][attach]") {
  keel::app app(test_options());
  app.get("/limited", counted).use(mw::rate_limit({.rate = 0.1, .burst = 1}));
  app.get("/free", counted);
  kt::running_app run(app);
  CHECK(run.get("/limited").status == 200);
  CHECK(run.get("/limited").status == 429);
  for (int i = 0; i < 3; ++i) CHECK(run.get("/free").status == 200);
}

TEST_CASE("a rate limit needs a positive rate and a burst of at least one", "[rate_limit]") {
  CHECK_THROWS_AS(mw::rate_limit({.rate = 0}), std::invalid_argument);
  CHECK_THROWS_AS(mw::rate_limit({.rate = 1, .burst = 0.5}), std::invalid_argument);
}

TEST_CASE("keel's own rejections keep their status and cost no token", "[rate_limit]") {
  auto o = test_options();
  o.max_head = 1024;
  keel::app app(o);
  app.use(mw::rate_limit({.rate = 0.01, .burst = 1}));
  app.get("/x", counted);
  kt::running_app run(app);
  for (int i = 0; i < 3; ++i) CHECK(run.get("/x", {{"X-Big", std::string(2000, 'a')}}).status == 431);
  CHECK(run.get("/x").status == 200);
  CHECK(run.get("/x").status == 429);
}
