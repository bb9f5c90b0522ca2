// Two middleware written by hand: a timing header and an API-key check.
// Usage: docs_example_custom_middleware [--listen HOST:PORT] [--api-key KEY]
//   curl -i localhost:8080/hello                       -> 200, Server-Timing: app;dur=0.012
//   curl -i localhost:8080/admin/stats                 -> 401 (no key)
//   curl -i -H 'X-API-Key: KEY' localhost:8080/admin/stats -> 200
#include <keel/app.hpp>
#include <keel/context.hpp>
#include <keel/middleware.hpp>

#include <openssl/crypto.h>

#include <chrono>
#include <string>

namespace example {

// [timing-header]
// Acts after next(): times the rest of the chain and says so in a header.
keel::middleware timing_header() {
  return [](keel::context&, keel::next next) -> keel::task<keel::response> {
    auto started = keel::clock::now();
    auto res = co_await next();
    std::chrono::duration<double, std::milli> took = keel::clock::now() - started;
    res.set_header("Server-Timing", "app;dur=" + std::to_string(took.count()));
    co_return res;
  };
}
// [timing-header]

// [api-key]
// Acts before next(): answers 401 itself (the handler never runs) unless the
// request carries the key. The key lives in the closure, which the app keeps
// for its whole life, so the coroutine may read it by reference.
keel::middleware require_api_key(std::string key) {
  return [key = std::move(key)](keel::context& ctx, keel::next next) -> keel::task<keel::response> {
    auto presented = ctx.header("X-API-Key").value_or("");
    bool ok = presented.size() == key.size() && CRYPTO_memcmp(presented.data(), key.data(), key.size()) == 0;
    if (!ok) {
      auto res = ctx.problem(401, "this needs an X-API-Key header");
      res.set_header("WWW-Authenticate", "ApiKey header=\"X-API-Key\"");  // SPEC: a 401 always says how
      co_return res;
    }
    co_return co_await next();
  };
}
// [api-key]

// The routes, shared with the example's test (tests/middleware/custom_middleware_test.cpp).
void routes(keel::app& app, std::string const& api_key) {
  app.use(timing_header());
  app.get("/hello", [](keel::context&) -> keel::task<keel::response> {
    co_return keel::response::text("hello");
  });
  auto admin = app.group("/admin", {require_api_key(api_key)});
  admin.get("/stats", [](keel::context&) -> keel::task<keel::response> {
    co_return keel::response::json({{"requests", 42}});
  });
}

}  // namespace example

#ifndef KEEL_EXAMPLE_NO_MAIN
int main(int argc, char** argv) {
  keel::config cfg("custom_middleware");
  cfg.add("api_key", "change-me", "the key /admin/* requires in X-API-Key");
  return keel::serve(cfg, argc, argv,
                     [](keel::app& app, keel::config const& c) { example::routes(app, c.get("api_key")); });
}
#endif
