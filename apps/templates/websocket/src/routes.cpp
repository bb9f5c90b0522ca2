#include "routes.hpp"

#include <pages.hpp>

#include <keel/context.hpp>
#include <keel/hub.hpp>
#include <keel/redis_hub.hpp>
#include <keel/middleware/defaults.hpp>
#include <keel/response.hpp>
#include <keel/ws.hpp>

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>

#include <memory>

namespace {{ident}} {

namespace {

std::string message(std::string_view type, boost::json::object o) {
  o["type"] = type;
  return boost::json::serialize(o);
}

// Runs before the upgrade: a request without a room gets a normal 400.
keel::task<keel::response> require_room(keel::context& ctx, keel::next next) {
  auto room = ctx.query("room");
  if (!room || room->empty() || room->size() > 64) co_return ctx.problem(400, "?room= (1 to 64 characters) is required");
  co_return co_await next();
}

}  // namespace

void declare_settings(keel::config&) {}

void setup(keel::app& app, keel::config const& cfg) {
  keel::mw::use_defaults(app);
  // One hub per app; sessions on every I/O thread publish through it. With
  // --redis (KEEL_REDIS) rooms span every instance that names the same Redis.
  std::shared_ptr<keel::hub> hub;
  if (auto const& url = cfg.server().redis; url.empty()) {
    hub = std::make_shared<keel::local_hub>();
  } else {
    keel::redis_hub_options o;
    o.url = keel::redis_url::parse(url);
    hub = std::make_shared<keel::redis_hub>(std::move(o));
  }

  app.get("/", [](keel::context&) -> keel::task<keel::response> { co_return keel::response::html(pages::index); });

  app.ws("/ws", [hub](keel::websocket& ws) -> keel::task<void> {
    auto room = *ws.ctx().query("room");
    auto handle = ws.handle();
    hub->join(room, handle);  // left automatically when the session ends
    ws.send(message("joined", {{"room", room}}));
    for (;;) {
      auto msg = co_await ws.read();
      if (!msg) co_return;  // closed: heartbeat, limits and the close handshake are keel's
      if (!msg.is_text()) continue;
      hub->publish(room, message("message", {{"text", msg.data}}));
    }
  }).use(require_room);

  app.get("/api/rooms", [hub](keel::context&) -> keel::task<keel::response> {
    boost::json::array out;
    for (auto const& [room, members] : hub->rooms()) out.push_back({{"room", room}, {"members", members}});
    co_return keel::response::json(out);
  });
}

}  // namespace {{ident}}
