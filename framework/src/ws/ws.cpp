// WebSocket: the upgrade route, the session around a user's handler, and the
// writer that alone writes to the socket (queue, pings, close).
#include <keel/context.hpp>
#include <keel/log.hpp>
#include <keel/metrics.hpp>
#include <keel/utf8.hpp>
#include <keel/ws.hpp>

#include "http/connection.hpp"
#include "http/server_state.hpp"
#include "http/tls_stream.hpp"
#include "ws/ws_state.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/websocket/error.hpp>
#include <boost/beast/websocket/rfc6455.hpp>
#include <boost/beast/websocket/ssl.hpp>

#include <atomic>
#include <tuple>

namespace keel {

namespace beast = boost::beast;
namespace websocket_ns = boost::beast::websocket;
using boost::system::error_code;

namespace detail {

namespace {
std::atomic<std::uint64_t> next_ws_id{1};
constexpr auto tuple_task = asio::as_tuple(use_task);

// A close reason is UTF-8 too, in at most 123 bytes (RFC 6455 §5.5.1): longer
// is cut at a character boundary, as Beast would throw on it.
std::string valid_close_reason(std::string reason) {
  if (!is_valid_utf8(reason)) reason = to_valid_utf8(reason);
  constexpr std::size_t max_reason = 123;
  if (reason.size() > max_reason) {
    auto n = max_reason;
    while (n > 0 && (static_cast<unsigned char>(reason[n]) & 0xC0) == 0x80) --n;
    reason.resize(n);
  }
  return reason;
}

std::shared_ptr<std::string const> valid_text(std::shared_ptr<std::string const> const& data) {
  // A hub hands one buffer to every member in turn from one thread: the last
  // buffer checked here is remembered, so a broadcast is checked once, not
  // once per recipient. weak_ptrs: a freed buffer's address reused is a miss.
  thread_local std::weak_ptr<std::string const> last_in, last_out;
  if (auto in = last_in.lock(); in && in == data) {
    if (auto out = last_out.lock()) return out;
  }
  auto out = is_valid_utf8(*data) ? data : std::make_shared<std::string const>(to_valid_utf8(*data));
  last_in = data;
  last_out = out;
  return out;
}
}  // namespace

ws_state::ws_state(executor e, ws_settings s)
    : ex(std::move(e)),
      settings(s),
      id(next_ws_id.fetch_add(1)),
      last_rx(clock::now()),
      wake_timer_(ex),
      write_wd_(watchdog::create(ex, s.write_timeout)),
      inbox_timer_(ex),
      reader_timer_(ex),
      join_timer_(ex),
      close_timer_(ex) {}

bool ws_state::send(std::shared_ptr<std::string const> data, bool binary) {
  if (!open.load(std::memory_order_relaxed)) return false;
  // A peer fails the connection (1007) on a text message that is not UTF-8.
  if (!binary) data = valid_text(data);
  auto size = data->size();
  auto before = queued_bytes_.fetch_add(size, std::memory_order_relaxed);
  // One message always fits an empty queue; beyond the limit the peer is too slow.
  if (before > 0 && before + size > settings.send_queue) {
    queued_bytes_.fetch_sub(size, std::memory_order_relaxed);
    asio::post(ex, [self = shared_from_this()] { self->overflow(); });
    return false;
  }
  outbound m{std::move(data), binary};
  if (ex.running_in_this_thread()) {
    enqueue(std::move(m));
  } else {
    asio::post(ex, [self = shared_from_this(), m = std::move(m)]() mutable { self->enqueue(std::move(m)); });
  }
  return true;
}

void ws_state::enqueue(outbound m) {
  if (!open.load(std::memory_order_relaxed) || slow_) {
    queued_bytes_.fetch_sub(m.data->size(), std::memory_order_relaxed);
    if (settings.counted) metrics::ws_message_dropped();
    return;
  }
  queue_.push_back(std::move(m));
  wake();
}

void ws_state::wake() { wake_timer_.cancel(); }

void ws_state::overflow() {
  if (slow_ || !open.load()) return;
  slow_ = true;
  if (settings.counted) metrics::ws_dropped(metrics::ws_drop_reason::slow_consumer);
  // A message being written to a peer that stopped reading would hold the
  // connection (and the message) until write_timeout, 30 s by default: it
  // gets the one second the 1008 close frame gets (SPEC §2), then the
  // writer sees the write fail and closes.
  auto limit = clock::now() + std::chrono::seconds(1);
  if (write_wd_->deadline() != clock::time_point::max() && write_wd_->deadline() > limit) write_wd_->arm(limit);
  wake();
}

void ws_state::request_close(std::uint16_t code, std::string reason) {
  if (!ex.running_in_this_thread()) {
    asio::post(ex, [self = shared_from_this(), code, r = std::move(reason)]() mutable {
      self->request_close(code, std::move(r));
    });
    return;
  }
  if (close_requested_) return;
  close_requested_ = true;
  close_code_ = code;
  close_reason_ = valid_close_reason(std::move(reason));
  wake();
}

void ws_state::drain() { request_close(websocket_ns::close_code::going_away, "server shutting down"); }

template <class NextLayer>
ws_session<NextLayer>::ws_session(NextLayer&& next, ws_settings s, std::shared_ptr<void> o)
    : ws_state(next.get_executor(), s), owner(std::move(o)), stream(std::move(next)) {}

template <class NextLayer>
void ws_session<NextLayer>::abort() {
  open.store(false);
  error_code ec;
  beast::get_lowest_layer(stream).close(ec);
  wake();
}

// Beast 1.81's async_close, when cancelled while it waits for the read
// block, shuts the stream down without releasing its write block: a read
// suspended on that block (it got the peer's close frame and wants to write)
// is never resumed, and the reader never ends. So the handshake is bounded by
// closing the socket, which fails whatever Beast waits on through its normal
// paths, never by cancelling the operation.
template <class NextLayer>
task<bool> ws_session<NextLayer>::close_within(websocket_ns::close_reason why, std::chrono::milliseconds limit) {
  close_expired_ = false;
  close_timer_.expires_after(limit);
  close_timer_.async_wait([this, self = shared_from_this()](error_code ec) {
    if (ec) return;
    close_expired_ = true;
    abort();
  });
  auto [ec] = co_await stream.async_close(why, tuple_task);
  close_timer_.cancel();
  co_return !ec && !close_expired_;
}

template <class NextLayer>
task<void> ws_session<NextLayer>::writer() {
  auto self = shared_from_this();
  auto guarded = [this] { return asio::bind_cancellation_slot(write_wd_->slot(), tuple_task); };
  for (;;) {
    if (ws_fault_for_tests) ws_fault_for_tests("writer");
    if (slow_) {
      // A slow consumer: what it has not taken is dropped (and counted), a
      // 1008 is tried for a second, then the connection goes.
      if (settings.counted) metrics::ws_message_dropped(queue_.size());
      queue_.clear();
      queued_bytes_.store(0);
      websocket_ns::close_reason why(websocket_ns::close_code::policy_error, "send queue overflow");
      co_await close_within(why, std::chrono::seconds(1));
      abort();
      break;
    }
    if (!queue_.empty() && open.load()) {
      auto m = std::move(queue_.front());
      queue_.pop_front();
      stream.text(!m.binary);
      write_wd_->arm_after(settings.write_timeout);
      auto [ec, n] = co_await stream.async_write(asio::buffer(*m.data), guarded());
      write_wd_->disarm();
      queued_bytes_.fetch_sub(m.data->size(), std::memory_order_relaxed);
      if (ec) {
        if (settings.counted) metrics::ws_message_dropped(1 + queue_.size());
        abort();
        break;
      }
      if (settings.counted) metrics::ws_message_out();
      continue;
    }
    if (!open.load()) {
      if (!queue_.empty() && settings.counted) metrics::ws_message_dropped(queue_.size());
      queue_.clear();
      break;
    }
    if (close_requested_) {
      websocket_ns::close_reason why(static_cast<websocket_ns::close_code>(close_code_),
                                     boost::beast::string_view(close_reason_));
      if (!co_await close_within(why, std::min(settings.write_timeout, settings.drain_timeout))) abort();
      // async_close read up to the peer's close frame; the reader reports it.
      break;
    }
    if (writer_stop_) break;
    auto now = clock::now();
    auto due = ping_outstanding_ ? ping_sent_ + settings.pong_timeout : last_rx + settings.ping_interval;
    if (now >= due) {
      if (ping_outstanding_) {
        if (settings.counted) metrics::ws_dropped(metrics::ws_drop_reason::no_pong);
        abort();
        break;
      }
      ping_outstanding_ = true;
      ping_sent_ = now;
      write_wd_->arm_after(settings.write_timeout);
      auto [ec] = co_await stream.async_ping({}, guarded());
      write_wd_->disarm();
      if (ec) {
        abort();
        break;
      }
      continue;
    }
    wake_timer_.expires_at(due);
    co_await wake_timer_.async_wait(tuple_task);
  }
}

void ws_state::writer_ended() {
  write_wd_->stop();
  writer_done_ = true;
  reader_timer_.cancel();  // a reader that left the close to us reports it now
  join_timer_.cancel();
}

void ws_state::reader_ended() {
  reader_done_ = true;
  inbox_timer_.cancel();
  wake();  // the writer has nothing left to wait for
  join_timer_.cancel();
}

namespace {

// The writer or the reader, then what its end means to the session, however
// it ended: an exception (logged by the scope, with the trace id) closes the
// socket, so the other side ends too, and ends it like a return.
task<void> run_side(std::shared_ptr<ws_state> s, task<void> (ws_state::*side)(), void (ws_state::*ended)()) {
  std::exception_ptr failed;
  try {
    co_await ((*s).*side)();
  } catch (...) {
    failed = std::current_exception();
  }
  if (failed) s->abort();
  ((*s).*ended)();
  if (failed) std::rethrow_exception(failed);
}

}  // namespace

void ws_state::start(std::string_view trace_id) {
  tasks.spawn(ex, run_side(shared_from_this(), &ws_state::writer, &ws_state::writer_ended), "websocket writer",
              trace_id);
  tasks.spawn(ex, run_side(shared_from_this(), &ws_state::reader, &ws_state::reader_ended), "websocket reader",
              trace_id);
}

task<void> ws_state::join_writer() {
  writer_stop_ = true;
  wake();
  while (!writer_done_) {
    join_timer_.expires_at(clock::time_point::max());
    co_await join_timer_.async_wait(tuple_task);
  }
}

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

template <class NextLayer>
task<void> run_ws_over(context& ctx, std::shared_ptr<ws_route> route, std::string subprotocol, response const& chain,
                       std::shared_ptr<ws_session<NextLayer>> state) {
  auto& c = *ctx.connection();
  auto const& o = c.server.opts;
  auto const& ro = route->options;
  auto const& s = state->settings;

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
    c.wd->arm_after(ro.handshake_timeout.value_or(o.ws_handshake_timeout));
    std::tie(ec) = co_await stream.async_accept(req, tuple_task);
    c.wd->disarm();
  }
  if (ec) {
    if (c.wd->fired()) co_await asio::this_coro::reset_cancellation_state();
    co_return;
  }
  // An idle WebSocket holds only what it needs: the HTTP read buffer (no
  // bytes may follow the upgrade request before the 101) and the 101's
  // decorator are not used again. Measured: 4.7 KiB per connection.
  c.buffer.clear();
  c.buffer.shrink_to_fit();
  stream.set_option(websocket_ns::stream_base::decorator([](websocket_ns::response_type&) {}));
  c.server.ws_active.fetch_add(1);
  std::weak_ptr<ws_state> weak = state;
  c.on_drain = [weak] {
    if (auto st = weak.lock()) st->drain();
  };
  c.on_force_close = [weak] {
    if (auto st = weak.lock()) st->abort();
  };
  if (c.server.draining.load()) state->drain();
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
  c.on_drain = nullptr;
  c.on_force_close = nullptr;
  c.server.ws_active.fetch_sub(1);
}

task<void> run_ws(context& ctx, std::shared_ptr<ws_route> route, std::string subprotocol, response const& chain) {
  auto& c = *ctx.connection();
  auto const& o = c.server.opts;
  auto const& ro = route->options;
  ws_settings s{ro.max_message.value_or(o.ws_max_message), ro.ping_interval.value_or(o.ws_ping_interval),
                ro.pong_timeout.value_or(o.ws_pong_timeout), ro.send_queue.value_or(o.ws_send_queue),
                o.write_timeout, o.drain_timeout};
  if (c.tls) {
    // The TLS stream moves into the session; the socket it runs on stays in
    // the connection, which the session keeps alive for as long as it lives.
    c.tls->taken = true;
    auto state = std::make_shared<ws_session<tls_next_layer>>(std::move(c.tls->stream), s, c.shared_from_this());
    co_await run_ws_over(ctx, std::move(route), std::move(subprotocol), chain, std::move(state));
  } else {
    auto state = std::make_shared<ws_session<tcp_socket>>(std::move(c.socket), s);
    co_await run_ws_over(ctx, std::move(route), std::move(subprotocol), chain, std::move(state));
  }
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
  r.upgrade = [route, proto](context& c, response const& chain) { return run_ws(c, route, proto, chain); };
  co_return r;
}

}  // namespace

void ws_state::ping_pong_seen() { ping_outstanding_ = false; }

template <class NextLayer>
void ws_session<NextLayer>::watch_control_frames() {
  stream.control_callback([this](websocket_ns::frame_type kind, beast::string_view) {
    last_rx = clock::now();
    if (kind == websocket_ns::frame_type::pong) ping_pong_seen();
  });
}

template <class NextLayer>
task<void> ws_session<NextLayer>::reader() {
  auto self = shared_from_this();
  namespace err = websocket_ns;
  for (;;) {
    if (ws_fault_for_tests) ws_fault_for_tests("reader");
    // A handler that does not keep up pauses reading; the peer stays alive
    // in the heartbeat's eyes because it has been sending.
    if (inbox_.size() >= 64 || inbox_bytes_ >= std::max<std::size_t>(settings.max_message, 64 * 1024)) {
      last_rx = clock::now();
      reader_timer_.expires_at(clock::time_point::max());
      co_await reader_timer_.async_wait(tuple_task);
      if (!open.load()) break;
      continue;
    }
    if (close_requested_ || slow_) {
      // The writer's async_close reads until the peer's close frame itself.
      // A read started now can find that frame already buffered behind the
      // last message and then never complete (boostorg/beast#2647), so the
      // reader leaves the rest to the close and reports its outcome.
      while (!writer_done_) {
        reader_timer_.expires_at(clock::time_point::max());
        co_await reader_timer_.async_wait(tuple_task);
      }
      open.store(false);
      peer_close_code = stream.reason().code;
      auto const& why = stream.reason().reason;
      peer_close_reason.assign(why.data(), why.size());
      if (!peer_close_code) peer_close_code = err::close_code::abnormal;
      break;
    }
    read_buffer.clear();
    auto [ec, n] = co_await stream.async_read(read_buffer, tuple_task);
    if (ec) {
      open.store(false);
      if (ec == err::error::closed) {
        peer_close_code = stream.reason().code;
        auto const& why = stream.reason().reason;
        peer_close_reason.assign(why.data(), why.size());
      } else if (ec == err::error::message_too_big) {
        if (settings.counted) metrics::ws_dropped(metrics::ws_drop_reason::too_big);
        peer_close_code = err::close_code::too_big;
      } else if (ec == err::error::bad_frame_payload) {
        if (settings.counted) metrics::ws_dropped(metrics::ws_drop_reason::bad_utf8);
        peer_close_code = err::close_code::bad_payload;
      } else if (ec == err::condition::protocol_violation) {
        if (settings.counted) metrics::ws_dropped(metrics::ws_drop_reason::protocol);
        peer_close_code = err::close_code::protocol_error;
      } else {
        peer_close_code = err::close_code::abnormal;
      }
      break;
    }
    last_rx = clock::now();
    ping_pong_seen();
    if (settings.counted) metrics::ws_message_in();
    ws_message m;
    m.type = stream.got_text() ? ws_message::kind::text : ws_message::kind::binary;
    m.data = beast::buffers_to_string(read_buffer.data());
    // One large message must not pin its size on a connection that goes idle.
    if (read_buffer.capacity() > 64 * 1024) {
      read_buffer.clear();
      read_buffer.shrink_to_fit();
    }
    inbox_bytes_ += m.data.size();
    inbox_.push_back(std::move(m));
    inbox_timer_.cancel();
  }
}

task<ws_message> ws_state::next_message() {
  for (;;) {
    if (!inbox_.empty()) {
      auto m = std::move(inbox_.front());
      inbox_.pop_front();
      inbox_bytes_ -= m.data.size();
      reader_timer_.cancel();
      co_return m;
    }
    if (reader_done_) {
      ws_message closed;
      closed.close_code = peer_close_code ? peer_close_code : 1006;
      closed.close_reason = peer_close_reason;
      co_return closed;
    }
    inbox_timer_.expires_at(clock::time_point::max());
    // Woken by the reader; a drain-timeout abort ends the reader too.
    co_await inbox_timer_.async_wait(tuple_task);
  }
}

task<void> ws_state::wait_ended() {
  while (!reader_done_ && !writer_done_) {
    join_timer_.expires_at(clock::time_point::max());
    co_await join_timer_.async_wait(tuple_task);
  }
}

task<void> ws_state::join_reader() {
  abort();
  reader_timer_.cancel();
  while (!reader_done_) {
    join_timer_.expires_at(clock::time_point::max());
    co_await join_timer_.async_wait(tuple_task);
  }
}

template class ws_session<tcp_socket>;
template class ws_session<tls_next_layer>;

}  // namespace detail

bool ws_handle::send(std::string text, bool binary) const {
  if (!state_) return false;
  return state_->send(std::make_shared<std::string const>(std::move(text)), binary);
}

bool ws_handle::send_shared(std::shared_ptr<std::string const> data, bool binary) const {
  return state_ && state_->send(std::move(data), binary);
}

bool ws_handle::is_open() const { return state_ && state_->open.load(); }
std::uint64_t ws_handle::id() const { return state_ ? state_->id : 0; }

void ws_handle::on_end(std::function<void()> f) const {
  if (!state_) return;
  auto run_or_keep = [state = state_, f = std::move(f)]() mutable {
    // The session sets open to false before it runs the callbacks, on this thread.
    if (state->open.load()) state->on_end.push_back(std::move(f));
    else f();
  };
  if (state_->ex.running_in_this_thread()) run_or_keep();
  else asio::post(state_->ex, std::move(run_or_keep));
}

websocket::websocket(std::shared_ptr<detail::ws_state> s, context& ctx) : state_(std::move(s)), ctx_(ctx) {}

std::string const& websocket::subprotocol() const { return state_->subprotocol; }

task<ws_message> websocket::read() { return state_->next_message(); }

task<bool> websocket::send_wait(std::string data, bool binary) {
  auto shared = std::make_shared<std::string const>(std::move(data));
  // Made valid before it is measured against the room left in the queue.
  if (!binary) shared = detail::valid_text(shared);
  steady_timer t(co_await asio::this_coro::executor);
  for (;;) {
    if (!state_->open.load()) co_return false;
    if (state_->has_room(shared->size())) co_return state_->send(shared, binary);
    // The writer drains in its own time; look again shortly.
    t.expires_after(std::chrono::milliseconds(1));
    co_await t.async_wait(use_task);
  }
}

task<void> websocket::close(std::uint16_t code, std::string reason) {
  state_->request_close(code, std::move(reason));
  co_await state_->join_writer();
}

route_ref add_ws_route(route_group group, std::string_view pattern, ws_handler h, ws_options o) {
  auto route = std::make_shared<detail::ws_route>(detail::ws_route{std::move(h), std::move(o)});
  return group.get(pattern, [route](context& ctx) { return detail::upgrade_or_refuse(ctx, route); });
}

route_ref add_ws_route(router& r, std::string_view pattern, ws_handler h, ws_options o) {
  auto route = std::make_shared<detail::ws_route>(detail::ws_route{std::move(h), std::move(o)});
  return r.get(pattern, [route](context& ctx) { return detail::upgrade_or_refuse(ctx, route); });
}

}  // namespace keel
