// The reliability tests' target (tests/reliability/*.py): a keel service with
// the default middleware stack and routes that say what reached it.
//   GET  /plaintext      -> ok
//   POST /echo           -> {"len":N} (the body's size as keel framed it)
//   ANY  /smuggled       -> counted: a request that should never arrive as its own
//   GET  /stats          -> {"smuggled":N,"requests":M} (M: every request routed to a handler)
//   GET  /big?mib=N      -> N MiB of 'x' (default 16), for a client that never reads
//   GET  /limited        -> the client address, one request per client address
//                           (rate_limit keyed by it, burst 1, a token per 1000 s)
//   ANY  /users/{id}     -> the parameter (a whole body read first)
//   POST /upload/{id}    -> {"len":N}, the body read as a stream (stream_body)
//   POST /pipe/{id}      -> a streamed response (keel/stream.hpp) after reading
//                           ?read=N bytes of a streamed body (all: all; default none)
// The last three are the routes of the fuzz corpus (tests/fuzz/live_app.hpp)
// whose body modes the differential check (smuggling_test.py) compares.
// Usage: keel_probe_app [--listen HOST:PORT] [every setting of SPEC §2]
#include <keel/app.hpp>
#include <keel/middleware/defaults.hpp>
#include <keel/middleware/rate_limit.hpp>
#include <keel/stream.hpp>

#include <atomic>
#include <cstdlib>
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
    for (auto m : {keel::verb::get, keel::verb::post, keel::verb::put, keel::verb::patch, keel::verb::delete_}) {
      app.route(m, "/users/{id}", [](keel::context& ctx) -> keel::task<keel::response> {
        ++requests;
        co_return keel::response::text(ctx.param("id"));
      });
    }
    for (auto m : {keel::verb::post, keel::verb::put}) {
      app.route(m, "/upload/{id}", [](keel::context& ctx) -> keel::task<keel::response> {
        ++requests;
        auto& body = ctx.body_stream();
        while (co_await body.read_some()) {
        }
        co_return keel::response::json_text("{\"len\":" + std::to_string(body.received()) + "}");
      }).stream_body(1 << 20);
      app.route(m, "/pipe/{id}", [](keel::context& ctx) -> keel::task<keel::response> {
        ++requests;
        auto read = ctx.query("read").value_or("0");
        auto want = read == "all" ? ~0ull : std::strtoull(read.c_str(), nullptr, 10);
        auto& body = ctx.body_stream();
        while (body.received() < want) {
          if (!co_await body.read_some()) break;
        }
        co_return keel::stream_response([](keel::response_stream& out) -> keel::task<void> {
          co_await out.write("piped");
        });
      }).stream_body(1 << 20);
    }
  });
}
