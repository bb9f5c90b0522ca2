// hello: the benchmark app of SPEC §4.
//   GET /plaintext -> Hello, World!     GET /json -> {"message":"Hello, World!"}
//   WS /ws/echo echoes; WS /ws/sub?topic=T subscribes; POST /publish?topic=T fans the body out.
// Usage: hello [--listen HOST:PORT] [--threads N] [--middleware default|none] [--config app.json]
//              [--redis redis://HOST:PORT/DB]   topics across instances (the bench's two-instance fan-out)
#include <keel/app.hpp>
#include <keel/middleware/defaults.hpp>
#include <keel/middleware/metrics.hpp>
#include <keel/hub.hpp>
#include <keel/redis_hub.hpp>
#include <keel/response.hpp>
#include <keel/ws.hpp>

#include <boost/json/value.hpp>

#include <memory>

namespace {

keel::task<keel::response> plaintext(keel::context&) {
  co_return keel::response::text("Hello, World!");
}

keel::task<keel::response> json(keel::context&) {
  co_return keel::response::json_text(R"({"message":"Hello, World!"})");
}

keel::task<void> echo(keel::websocket& ws) {
  for (;;) {
    auto msg = co_await ws.read();
    if (!msg) co_return;
    ws.send(std::move(msg.data), msg.is_binary());
  }
}

// Before the upgrade: a missing topic is a 400, and query() answers 400 for
// one that is not UTF-8 itself, rather than a close after the 101.
keel::task<keel::response> require_topic(keel::context& ctx, keel::next next) {
  if (!ctx.query("topic")) co_return ctx.problem(400, "the topic query parameter is required");
  co_return co_await next();
}

keel::task<void> subscribe(keel::websocket& ws, keel::hub& topics) {
  auto topic = ws.ctx().query("topic");  // require_topic let only upgrades with one through
  // Named locals, not temporaries: g++ 12 miscompiles some temporaries in coroutines.
  auto handle = ws.handle();
  topics.join(*topic, handle);
  while (co_await ws.read()) {
  }
}

keel::task<keel::response> publish(keel::context& ctx, keel::hub& topics) {
  auto topic = ctx.query("topic");
  if (!topic) co_return ctx.problem(400, "the topic query parameter is required");
  auto n = topics.publish(*topic, std::string(ctx.body()));
  co_return keel::response::json_text("{\"delivered\":" + std::to_string(n) + "}");
}

}  // namespace

int main(int argc, char** argv) {
  keel::config cfg("hello");
  cfg.add("middleware", "default", "default|none: the built-in middleware stack");
  return keel::serve(cfg, argc, argv, [](keel::app& app, keel::config const& c) {
    auto const& stack = c.get("middleware");
    if (stack != "default" && stack != "none") {
      throw keel::config_error("--middleware: must be default or none, got \"" + stack + "\"");
    }
    // `none` is the bench's baseline: no middleware, but /metrics stays (SPEC §4).
    if (stack == "default") keel::mw::use_defaults(app);
    else keel::mw::expose_metrics(app);
    app.get("/plaintext", plaintext);
    app.get("/json", json);
    app.ws("/ws/echo", echo);
    // Topics for the fan-out bench: no presence, no history. In-process, or
    // with --redis shared with other instances; the routes share the holder.
    auto topics = std::make_shared<std::unique_ptr<keel::hub>>();
    if (auto const& url = c.server().redis; !url.empty()) {
      keel::redis_hub_options o;
      o.url = keel::redis_url::parse(url);
      *topics = std::make_unique<keel::redis_hub>(std::move(o));
      // Its thread ends after the drain, before the server's I/O contexts go.
      app.on_stopped([topics] { topics->reset(); });
    } else {
      *topics = std::make_unique<keel::local_hub>();
    }
    app.ws("/ws/sub", [topics](keel::websocket& ws) { return subscribe(ws, **topics); }).use(require_topic);
    app.post("/publish", [topics](keel::context& ctx) { return publish(ctx, **topics); });
  });
}
