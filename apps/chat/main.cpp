// chat: rooms over WebSocket with presence and history, a web page, and the
// room's messages as Server-Sent Events (SPEC §4).
//   GET /                          the chat page (/?room=R&name=N joins at once)
//   WS  /ws?room=R&name=N          join; send {"type":"message","text":"…"}
//   GET /api/rooms                 [{"room":"r1","members":2}]
//   GET /api/rooms/{room}/events   the room's messages as SSE, resuming after Last-Event-ID
// Usage: chat [--listen HOST:PORT] [--threads N] [--token T] [--config app.json]
//   With --token T, /ws and /api/* need `Authorization: Bearer T` or `?access_token=T`.
#include "chat_page.hpp"
#include "rooms.hpp"

#include <keel/app.hpp>
#include <keel/hub.hpp>
#include <keel/middleware/auth.hpp>
#include <keel/middleware/defaults.hpp>
#include <keel/response.hpp>
#include <keel/sse.hpp>
#include <keel/ws.hpp>

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <memory>
#include <string>

namespace {

namespace json = boost::json;

/// Room and name are limited so one member cannot make every `joined` huge.
constexpr std::size_t max_label = 128;

struct chat_state {
  keel::local_hub hub;
  chat::rooms rooms{hub};
};

std::string error_message(std::string_view code, std::string_view message) {
  json::object o;
  o["type"] = "error";
  o["code"] = code;
  o["message"] = message;
  return json::serialize(o);
}

keel::task<keel::response> page(keel::context&) {
  auto r = keel::response::html(std::string(chat::page));
  r.set_header("Cache-Control", "no-cache");
  r.set_header("X-Content-Type-Options", "nosniff");
  co_return r;
}

// Route middleware of /ws: the 400 comes before the upgrade, as plain HTTP.
keel::task<keel::response> require_room_and_name(keel::context& ctx, keel::next next) {
  auto room = ctx.query("room");
  auto name = ctx.query("name");
  if (!room || room->empty() || !name || name->empty()) {
    co_return ctx.problem(400, "the room and name query parameters are required");
  }
  if (room->size() > max_label || name->size() > max_label) {
    co_return ctx.problem(400, "room and name are at most 128 bytes");
  }
  co_return co_await next();
}

// One client message: a chat message, or an error for the sender alone.
void on_client_message(chat_state& st, keel::websocket& ws, std::string const& room, std::string const& name,
                       keel::ws_message const& msg) {
  if (!msg.is_text()) {
    ws.send(error_message("bad_message", "messages are JSON text"));
    return;
  }
  boost::system::error_code ec;
  auto v = json::parse(msg.data, ec);
  auto const* o = ec ? nullptr : v.if_object();
  auto const* type = o ? o->if_contains("type") : nullptr;
  if (!type || !type->is_string()) {
    ws.send(error_message("bad_message", "expected a JSON object with a \"type\""));
    return;
  }
  if (type->get_string() != "message") {
    ws.send(error_message("bad_message", "unknown message type"));
    return;
  }
  auto const* text = o->if_contains("text");
  if (!text || !text->is_string()) {
    ws.send(error_message("bad_message", "a message needs a \"text\" string"));
    return;
  }
  auto const& s = text->get_string();
  if (s.size() > chat::max_text) {
    ws.send(error_message("too_long", "text is at most 4096 bytes"));
    return;
  }
  st.rooms.post(room, name, std::string(s));
}

// Leaves the room however the session ends (close, error, cancellation).
struct membership {
  chat_state& st;
  std::string room;
  keel::ws_handle ws;
  ~membership() { st.rooms.leave(room, ws); }
};

keel::task<void> session(keel::websocket& ws, std::shared_ptr<chat_state> st) {
  // require_room_and_name let only upgrades with both through.
  auto room = ws.ctx().query("room").value_or("");
  auto name = ws.ctx().query("name").value_or("");
  st->rooms.join(room, name, ws.handle());
  membership m{*st, room, ws.handle()};
  for (;;) {
    auto msg = co_await ws.read();
    if (!msg) co_return;
    on_client_message(*st, ws, room, name, msg);
  }
}

keel::task<keel::response> list_rooms(keel::context&, std::shared_ptr<chat_state> st) {
  json::array out;
  for (auto const& [room, members] : st->rooms.list()) {
    json::object o;
    o["room"] = room;
    o["members"] = members;
    out.emplace_back(std::move(o));
  }
  co_return keel::response::json(out);
}

struct listening {
  chat_state& st;
  std::string room;
  keel::sse_handle h;
  ~listening() { st.rooms.unlisten(room, h); }
};

keel::task<void> room_events(keel::sse_stream& events, std::shared_ptr<chat_state> st) {
  auto room = events.ctx().param("room");
  st->rooms.listen(room, events.last_event_id(), events.handle());
  listening l{*st, room, events.handle()};
  co_await events.wait_closed();
}

void setup(keel::app& app, keel::config const& cfg) {
  keel::mw::use_defaults(app);
  auto st = std::make_shared<chat_state>();

  std::vector<keel::middleware> guard;
  if (auto const& token = cfg.get("token"); !token.empty()) {
    keel::mw::bearer_options bo;
    bo.realm = "chat";
    bo.allow_query_token = true;  // browsers cannot set headers on a WebSocket
    guard.push_back(keel::mw::authenticate(keel::mw::bearer_tokens({{token, {.subject = "chat"}}}, bo)));
  }

  app.get("/", page);

  auto ws_handler = [st](keel::websocket& ws) { return session(ws, st); };
  auto ws_route = app.ws("/ws", ws_handler);
  for (auto const& g : guard) ws_route.use(g);
  ws_route.use(require_room_and_name);

  auto api = app.group("/api", guard);
  api.get("/rooms", [st](keel::context& ctx) { return list_rooms(ctx, st); });
  keel::sse_options events_options;
  // A full history of long messages must fit the stream's queue at once.
  events_options.queue_limit = 4 * 1024 * 1024;
  keel::add_sse_route(
      api, "/rooms/{room}/events", [st](keel::sse_stream& ev) { return room_events(ev, st); }, events_options);
}

}  // namespace

int main(int argc, char** argv) {
  keel::config cfg("chat");
  cfg.add("token", "", "when set, /ws and /api/* need `Authorization: Bearer T` or `?access_token=T`");
  return keel::serve(cfg, argc, argv, setup);
}
