// chat: rooms over WebSocket with presence and history, a web page, and the
// room's messages as Server-Sent Events (SPEC §4).
//   GET /                          the chat page (/?room=R&name=N joins at once), from --static-dir
//   WS  /ws?room=R&name=N          join; send {"type":"message","text":"…"}
//   GET /api/rooms                 [{"room":"r1","members":2}]
//   GET /api/rooms/{room}/events   the room's messages as SSE, resuming after Last-Event-ID
// Usage: chat [--listen HOST:PORT] [--threads N] [--token T] [--config app.json]
//             [--redis redis://HOST:PORT/DB [--redis-member-ttl 15s] [--redis-timeout 2s] [--redis-readiness]]
//             (Redis reconnects follow keel's reconnect_* settings)
//   With --token T, /ws and /api/* need `Authorization: Bearer T` or `?access_token=T`.
//   With --redis, several instances share rooms, presence and history (docs/scaling.md).
#include "chat_page.hpp"
#include "client_message.hpp"
#include "rooms.hpp"
#include "shared_rooms.hpp"

#include <keel/app.hpp>
#include <keel/hub.hpp>
#include <keel/log.hpp>
#include <keel/middleware/auth.hpp>
#include <keel/middleware/compression.hpp>
#include <keel/middleware/defaults.hpp>
#include <keel/middleware/security_headers.hpp>
#include <keel/redis_hub.hpp>
#include <keel/response.hpp>
#include <keel/sse.hpp>
#include <keel/static_files.hpp>
#include <keel/utf8.hpp>
#include <keel/ws.hpp>

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>

#include <charconv>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace {

namespace json = boost::json;

/// Room and name are limited so one member cannot make every `joined` huge.
constexpr std::size_t max_label = 128;

// One room implementation or the other: in-process (the default), or shared
// with other instances through Redis (--redis). Destroyed in reverse order:
// the rooms finish their queued work while the hub still exists.
struct chat_state {
  std::unique_ptr<keel::hub> hub;
  keel::redis_hub* redis = nullptr;
  std::unique_ptr<chat::rooms> local;
  std::unique_ptr<chat::shared_rooms> shared;

  /// False when the room would be one too many (the joiner was told).
  keel::task<bool> join(std::string room, std::string name, keel::ws_handle ws) {
    if (shared) co_return co_await shared->join(room, name, ws);
    co_return local->join(room, name, ws);
  }
  void leave(std::string const& room, keel::ws_handle const& ws) {
    shared ? shared->leave(room, ws) : local->leave(room, ws);
  }
  /// False when the message was not taken (Redis is behind): the sender is told.
  bool post(std::string const& room, std::string const& from, std::string const& text) {
    if (shared) return shared->post(room, from, text);
    local->post(room, from, text);
    return true;
  }
  /// False when the room would be one too many.
  bool listen(std::string const& room, std::string_view last_event_id, keel::sse_handle const& h) {
    if (shared) {
      shared->listen(room, last_event_id, h);  // refused there with an error event
      return true;
    }
    return local->listen(room, last_event_id, h);
  }
  void unlisten(std::string const& room, keel::sse_handle const& h) {
    shared ? shared->unlisten(room, h) : local->unlisten(room, h);
  }
  /// After the drain, while the server's I/O contexts still exist: finish the
  /// queued Redis work and let go of every session handle it holds.
  void stop() {
    if (shared) shared->stop();
    if (redis) redis->stop();
  }
  keel::task<std::vector<std::pair<std::string, std::size_t>>> list() {
    if (shared) co_return co_await shared->list();
    co_return local->list();
  }
};

// SPEC §2's channel_* settings, as the rooms apply them.
chat::limits read_limits(keel::config const& cfg) {
  chat::limits l;
  auto setting = [&](char const* name, auto parse) {
    try {
      return parse(cfg.get(name));
    } catch (std::invalid_argument const& e) {
      throw keel::config_error(std::string(name) + ": " + e.what());
    } catch (std::out_of_range const&) {
      throw keel::config_error(std::string(name) + ": out of range");
    }
  };
  l.max_rooms = setting("channel_max_rooms", [](std::string const& v) {
    // The whole value, digits only: stoul would take "-1" as 2^64-1 and "5x" as 5.
    std::size_t n = 0;
    auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
    if (v.empty() || ec != std::errc() || end != v.data() + v.size()) {
      throw std::invalid_argument("not a count: \"" + v + "\"");
    }
    return n;
  });
  l.history_bytes = setting("channel_history_bytes", keel::parse_size);
  l.history_memory = setting("channel_history_memory", keel::parse_size);
  l.history_ttl = setting("channel_history_ttl", keel::parse_duration);
  if (l.max_rooms == 0) throw keel::config_error("channel_max_rooms: must be above 0");
  if (l.history_ttl.count() <= 0) throw keel::config_error("channel_history_ttl: must be above 0");
  // A `joined` (history, names, the rest) must fit an empty send queue with
  // room to spare for the events that follow it: half for the history, a
  // quarter for the names.
  auto queue = cfg.server().ws_send_queue;
  if (l.history_bytes > queue / 2) {
    keel::log::warn("chat: channel_history_bytes is above half of ws_send_queue, using half",
                    {{"channel_history_bytes", static_cast<std::uint64_t>(l.history_bytes)},
                     {"ws_send_queue", static_cast<std::uint64_t>(queue)}});
    l.history_bytes = queue / 2;
  }
  if (l.history_bytes > l.history_memory) {
    keel::log::warn("chat: channel_history_bytes is above channel_history_memory, using the latter",
                    {{"channel_history_memory", static_cast<std::uint64_t>(l.history_memory)}});
    l.history_bytes = l.history_memory;
  }
  l.listed_bytes = queue / 4;
  return l;
}

std::shared_ptr<chat_state> make_state(keel::config const& cfg) {
  auto st = std::make_shared<chat_state>();
  auto limits = read_limits(cfg);
  auto const& url = cfg.server().redis;  // keel's own `redis` setting (SPEC §6)
  if (url.empty()) {
    st->hub = std::make_unique<keel::local_hub>();
    st->local = std::make_unique<chat::rooms>(*st->hub, limits);
    return st;
  }
  keel::redis_hub_options ho;
  chat::shared_options so;
  try {
    ho.url = keel::redis_url::parse(url);
    so.member_ttl = keel::parse_duration(cfg.get("redis_member_ttl"));
    ho.connect_timeout = ho.command_timeout = keel::parse_duration(cfg.get("redis_timeout"));
  } catch (std::invalid_argument const& e) {
    throw keel::config_error(std::string("redis: ") + e.what());
  }
  if (so.member_ttl.count() <= 0) throw keel::config_error("redis_member_ttl: must be above 0");
  if (ho.command_timeout.count() <= 0) throw keel::config_error("redis_timeout: must be above 0");
  so.connect_timeout = so.command_timeout = ho.command_timeout;
  // keel's reconnect_* settings (SPEC §2), as for its WebSocket client.
  auto const& rp = cfg.server().reconnect;
  ho.reconnect = {.base = rp.base, .multiplier = rp.multiplier, .cap = rp.cap};
  ho.reset_after = rp.reset_after;
  auto hub = std::make_unique<keel::redis_hub>(ho);
  st->redis = hub.get();
  so.url = ho.url;
  so.instance_id = hub->instance_id();
  so.reconnect = ho.reconnect;
  so.limits = limits;
  st->hub = std::move(hub);
  st->shared = std::make_unique<chat::shared_rooms>(*st->hub, so);
  return st;
}

keel::task<keel::response> page(keel::context&) {
  auto r = keel::response::html(std::string(chat::page));
  r.set_header("Cache-Control", "no-cache");
  r.set_header("X-Content-Type-Options", "nosniff");
  co_return r;
}

// A room or a name goes into every `joined` and WebSocket text frame: it must
// be UTF-8 (RFC 6455 §8.1: a client fails the connection on anything else)
// and short, so one member cannot poison or bloat what the others receive.
std::optional<std::string> bad_label(std::optional<std::string> const& v, std::string_view what) {
  if (!v || v->empty()) return "the " + std::string(what) + " is required";
  if (v->size() > max_label) return "the " + std::string(what) + " is at most 128 bytes";
  if (!keel::is_valid_utf8(*v)) return "the " + std::string(what) + " is not valid UTF-8";
  return std::nullopt;
}

// Route middleware of /ws: the 400 comes before the upgrade, as plain HTTP.
keel::task<keel::response> require_room_and_name(keel::context& ctx, keel::next next) {
  if (auto bad = bad_label(ctx.query("room"), "room")) co_return ctx.problem(400, *bad);
  if (auto bad = bad_label(ctx.query("name"), "name")) co_return ctx.problem(400, *bad);
  co_return co_await next();
}

// Route middleware of the SSE route: the room as for /ws, before the stream starts.
keel::task<keel::response> require_room(keel::context& ctx, keel::next next) {
  if (auto bad = bad_label(std::string(ctx.param("room")), "room")) co_return ctx.problem(400, *bad);
  co_return co_await next();
}

// One client message: a chat message, or an error for the sender alone.
void on_client_message(chat_state& st, keel::websocket& ws, std::string const& room, std::string const& name,
                       keel::ws_message const& msg) {
  auto m = chat::read_client_message(msg.is_text(), msg.data);
  if (!m.text) {
    ws.send(std::move(m.error));
    return;
  }
  if (!st.post(room, name, *m.text)) {
    ws.send(chat::error_message("unavailable", "the server is busy: message not sent, try again"));
  }
}

// Leaves the room however the session ends (close, error, cancellation).
struct membership {
  chat_state& st;
  std::string room;
  keel::ws_handle ws;
  ~membership() { st.leave(room, ws); }
};

keel::task<void> session(keel::websocket& ws, std::shared_ptr<chat_state> st) {
  // require_room_and_name let only upgrades with both through.
  auto room = ws.ctx().query("room").value_or("");
  auto name = ws.ctx().query("name").value_or("");
  // Before the join: a leave is queued after it however this session ends.
  auto handle = ws.handle();
  membership m{*st, room, handle};
  auto joined = st->join(room, name, handle);  // (no temporaries inside co_await: g++ 12)
  if (!co_await std::move(joined)) {
    co_await ws.close(1013, "too many rooms");  // try again later; the error went first
    co_return;
  }
  for (;;) {
    auto msg = co_await ws.read();
    if (!msg) co_return;
    on_client_message(*st, ws, room, name, msg);
  }
}

keel::task<keel::response> list_rooms(keel::context&, std::shared_ptr<chat_state> st) {
  json::array out;
  auto rooms = co_await st->list();
  for (auto const& [room, members] : rooms) {
    json::object o;
    o["room"] = room;
    o["members"] = members;
    out.emplace_back(std::move(o));
  }
  co_return keel::response::json(out);
}

// The page's directory: --static-dir when given (it must hold index.html),
// else the source tree's apps/chat/static (compiled in), else
// <prefix>/share/keel/chat/static beside an installed binary; empty when none
// is found, and the copy compiled into the binary is served instead, so
// `GET /` works from any working directory.
std::string page_dir(keel::config const& cfg) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (auto const& d = cfg.get("static_dir"); !d.empty()) {
    if (!fs::is_regular_file(fs::path(d) / "index.html", ec)) {
      throw keel::config_error("static_dir: \"" + d + "\" has no index.html");
    }
    return d;
  }
  std::vector<fs::path> candidates{CHAT_STATIC_DIR};
  if (auto exe = fs::read_symlink("/proc/self/exe", ec); !ec) {
    candidates.push_back(exe.parent_path().parent_path() / "share/keel/chat/static");
  }
  for (auto const& c : candidates) {
    if (fs::is_regular_file(c / "index.html", ec)) return c.string();
  }
  return {};
}

struct listening {
  chat_state& st;
  std::string room;
  keel::sse_handle h;
  ~listening() { st.unlisten(room, h); }
};

keel::task<void> room_events(keel::sse_stream& events, std::shared_ptr<chat_state> st) {
  auto room = events.ctx().param("room");
  if (!st->listen(room, events.last_event_id(), events.handle())) {
    auto refused = chat::too_many_rooms();
    co_await events.send("error", refused);
    co_return;
  }
  listening l{*st, room, events.handle()};
  co_await events.wait_closed();
}

void setup(keel::app& app, keel::config const& cfg) {
  keel::mw::use_defaults(app);
  auto dir = page_dir(cfg);
  // Browser hardening: the CSP allows the served page's own inline script and
  // style by hash, taken from the file itself (a page edited on disk stays allowed).
  std::string served(chat::page);
  if (!dir.empty()) {
    std::ifstream in(dir + "/index.html", std::ios::binary);
    served.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  app.use(keel::mw::security_headers(
      {.content_security_policy = "default-src 'none'; script-src 'self' " + keel::mw::csp_hashes(served, "script") +
                                  "; style-src 'self' " + keel::mw::csp_hashes(served, "style") +
                                  "; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'self'"}));
  auto st = make_state(cfg);
  app.on_stopped([st] { st->stop(); });
  if (st->redis && cfg.get_bool("redis_readiness")) {
    app.add_readiness_check([st] {
      return st->redis->connected() && st->shared->connected() ? std::string() : std::string("redis unavailable");
    });
  }

  std::vector<keel::middleware> guard;
  if (auto const& token = cfg.get("token"); !token.empty()) {
    keel::mw::bearer_options bo;
    bo.realm = "chat";
    bo.allow_query_token = true;  // browsers cannot set headers on a WebSocket
    guard.push_back(keel::mw::authenticate(keel::mw::bearer_tokens({{token, {.subject = "chat"}}}, bo)));
  }

  // The page (a few KiB of HTML) is compressed for clients that accept it.
  auto compress = keel::mw::compression();
  if (!dir.empty()) {
    keel::static_options po;
    po.precompressed = false;
    app.get("/", keel::static_file(dir + "/index.html", po)).use(compress);
  } else {
    app.get("/", page).use(compress);
  }

  auto ws_handler = [st](keel::websocket& ws) { return session(ws, st); };
  auto ws_route = app.ws("/ws", ws_handler);
  for (auto const& g : guard) ws_route.use(g);
  ws_route.use(require_room_and_name);

  auto api = app.group("/api", guard);
  api.get("/rooms", [st](keel::context& ctx) { return list_rooms(ctx, st); });
  keel::sse_options events_options;
  // The history (at most half of ws_send_queue) is queued at once, and the
  // stream's events after it, as for a WebSocket member.
  events_options.queue_limit = cfg.server().ws_send_queue;
  keel::add_sse_route(
      api, "/rooms/{room}/events", [st](keel::sse_stream& ev) { return room_events(ev, st); }, events_options)
      .use(require_room);
}

}  // namespace

int main(int argc, char** argv) {
  keel::config cfg("chat");
  cfg.add("static_dir", "", "the page's directory (default: the source tree's, then share/keel/chat/static)");
  cfg.add("token", "", "when set, /ws and /api/* need `Authorization: Bearer T` or `?access_token=T`");
  cfg.add("redis_member_ttl", "15s", "with redis: a crashed instance's members vanish within this (+1/3)");
  cfg.add("redis_timeout", "2s", "with redis: bound on a connect and on each batch of commands");
  cfg.add_flag("redis_readiness", "with redis: /readyz answers 503 while Redis is unreachable");
  cfg.add("channel_max_rooms", "10000",
          "rooms with members, listeners or history (with redis: in Redis too); a join beyond gets too_many_rooms");
  cfg.add("channel_history_bytes", "256KiB",
          "a room's history in serialized bytes, oldest out first; at most half of ws_send_queue");
  cfg.add("channel_history_memory", "64MiB",
          "all rooms' history on this instance; beyond, the room idle longest without members loses its history");
  cfg.add("channel_history_ttl", "10m", "a message leaves the history this long after it was posted");
  return keel::serve(cfg, argc, argv, setup);
}
