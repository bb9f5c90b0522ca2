// The reliability tests' target (tests/reliability/*.py): a keel service with
// the default middleware stack and routes that say what reached it.
//   GET  /plaintext      -> ok
//   POST /echo           -> {"len":N} (the body's size as keel framed it)
//   ANY  /smuggled       -> counted: a request that should never arrive as its own
//   GET  /stats          -> {"smuggled":N,"requests":M} (M: every request routed to a handler)
//   GET  /big?mib=N      -> N MiB of 'x' (default 16), for a client that never reads
//   GET  /limited        -> the client address, one request per client address
//                           (rate_limit keyed by it, burst 1, a token per 1000 s)
// Usage: keel_probe_app [--listen HOST:PORT] [every setting of SPEC §2]
#include <keel/app.hpp>
#include <keel/middleware/defaults.hpp>
#include <keel/middleware/rate_limit.hpp>

#include <atomic>
#include <string>

namespace {

std::atomic<unsigned long> smuggled{0};
std::atomic<unsigned long> requests{0};

keel::task<keel::response> counted_smuggled(keel::context&) {
  ++requests;
  ++smuggled;
  co_return keel::response::text("SMUGGLED");
}

}  // namespace

int main(int argc, char** argv) {
  keel::config cfg("keel_probe_app");
  return keel::serve(cfg, argc, argv, [](keel::app& app, keel::config const&) {
    keel::mw::use_defaults(app);
    app.get("/plaintext", [](keel::context&) -> keel::task<keel::response> {
      ++requests;
      co_return keel::response::text("ok");
    });
    app.post("/echo", [](keel::context& ctx) -> keel::task<keel::response> {
      ++requests;
      co_return keel::response::json_text("{\"len\":" + std::to_string(ctx.body().size()) + "}");
    });
    for (auto m : {keel::verb::get, keel::verb::post}) app.route(m, "/smuggled", counted_smuggled);
    app.get("/stats", [](keel::context&) -> keel::task<keel::response> {
      co_return keel::response::json_text("{\"smuggled\":" + std::to_string(smuggled.load()) +
                                          ",\"requests\":" + std::to_string(requests.load()) + "}");
    });
    app.get("/big", [](keel::context& ctx) -> keel::task<keel::response> {
      ++requests;
      auto mib = std::stoul(ctx.query("mib").value_or("16"));
      co_return keel::response::text(std::string(mib << 20, 'x'));
    });
    app.get("/limited", [](keel::context& ctx) -> keel::task<keel::response> {
         ++requests;
         co_return keel::response::text(ctx.client_address());
       })
        .use(keel::mw::rate_limit({.rate = 0.001, .burst = 1}));
  });
}
