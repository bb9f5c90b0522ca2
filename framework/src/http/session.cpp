// The HTTP/1.1 session: read a head, match the route, read the body, run the
// chain, write the response, loop while keep-alive holds. Every wait is guarded
// by the connection's watchdog; errors inside are error codes, and nothing
// escapes the coroutine.
#include "http/body_source.hpp"
#include "http/connection.hpp"
#include "http/http1_exchange.hpp"
#include "http/request_parser.hpp"
#include "http/response_writer.hpp"
#include "http/route_tree.hpp"
#include "http/router_state.hpp"
#include "http/server_state.hpp"
#include "http/tls_stream.hpp"

#include <keel/context.hpp>
#include <keel/log.hpp>
#include <keel/middleware.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/http/error.hpp>

#include <poll.h>

#include <algorithm>
#include <array>
#include <optional>

namespace keel::detail {

namespace http = boost::beast::http;
using boost::system::error_code;

#ifndef KEEL_SESSION_TLS_UNIT  // session_tls.cpp: the TLS instantiation only
connection::connection(tcp_socket s, server_state& srv, io_thread& t)
    : socket(std::move(s)), server(srv), thread(t), accepted_at(clock::now()) {
  wd = watchdog::create(socket.get_executor(), srv.check_period);
  error_code ec;
  peer = socket.remote_endpoint(ec);
  socket.set_option(asio::ip::tcp::no_delay(true), ec);
}

connection::~connection() { delist(); }

void connection::enlist() {
  if (!listed_) registry_pos_ = thread.connections.insert(thread.connections.end(), this);
  listed_ = true;
}

void connection::delist() {
  if (listed_) thread.connections.erase(registry_pos_);
  listed_ = false;
}

void connection::watch_peer() {
  if (watching_) return;
  watching_ = true;
  socket.async_wait(tcp_socket::wait_read,
                    [self = shared_from_this()](error_code ec) { self->on_peer_event(ec); });
}

void connection::unwatch_peer() {
  if (!watching_) return;
  error_code ec;
  socket.cancel(ec);
}

void connection::on_peer_event(error_code ec) {
  watching_ = false;
  if (ec || (state != phase::handling && state != phase::streaming)) return;
  // Readable while a handler runs: either the next pipelined request (keep
  // it) or the peer leaving (cancel the handler). POLLRDHUP tells them apart
  // without consuming a byte.
  pollfd p{socket.native_handle(), POLLIN | POLLRDHUP, 0};
  if (::poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR))) {
    reason = cancel_reason::client_gone;
    wd->cancel_now();
    return;
  }
  // A streamed response may run for long: re-arming on bytes that stay in the
  // kernel would spin. A peer that leaves later fails the stream's next write.
  if (state == phase::streaming) return;
  watch_peer();
}

void connection::drain() {
  if (on_drain) {
    on_drain();
    return;
  }
  if (state == phase::idle || state == phase::reading_first) {
    reason = cancel_reason::shutdown;
    wd->cancel_now();
  }
}

void connection::force_close() {
  if (on_force_close) on_force_close();
  reason = cancel_reason::shutdown;
  wd->cancel_now();
  error_code ec;
  socket.close(ec);
}
#endif

namespace {

enum class outcome { ok, closed, reject };

struct head_result {
  outcome what = outcome::ok;
  unsigned status = 0;
  std::string detail;
};

head_result parse_failure(request_parser const& p, error_code ec) {
  if (p.reject_status() != 0) return {outcome::reject, p.reject_status(), std::string(p.reject_detail())};
  if (ec == http::error::header_limit) {
    if (!p.request_line_done()) {
      return {outcome::reject, 414, "the request line is longer than max_head"};
    }
    return {outcome::reject, 431, "the request head is larger than max_head"};
  }
  if (ec == http::error::body_limit) return {outcome::reject, 413, "the body is larger than this route accepts"};
  return {outcome::reject, 400, "malformed request: " + ec.message()};
}

template <class Stream>
task<head_result> read_head(connection& c, Stream& s, request_parser& p, bool fresh) {
  auto const& o = c.server.opts;
  bool started = fresh || c.buffer.size() > 0;
  auto head_deadline = (fresh ? c.accepted_at : clock::now()) + o.header_timeout;
  for (;;) {
    if (c.buffer.size() > 0) {
      error_code ec;
      auto n = p.put(c.buffer.data(), ec);
      c.buffer.consume(n);
      if (!ec && p.is_header_done()) co_return head_result{};
      if (ec && ec != http::error::need_more) co_return parse_failure(p, ec);
      if (c.buffer.size() > o.max_head) co_return parse_failure(p, http::error::header_limit);
    }
    if (!started && c.server.draining.load(std::memory_order_relaxed)) co_return head_result{outcome::closed};
    c.state = started ? phase::reading_head : phase::idle;
    c.wd->arm(started ? head_deadline : clock::now() + o.idle_timeout);
    auto [ec, n] = co_await s.async_read_some(c.buffer.prepare(4096), tuple_task);
    c.wd->disarm();
    if (ec) {
      // A connection that sent nothing of this request is closed quietly.
      if (c.wd->fired() && c.buffer.size() > 0) {
        co_return head_result{outcome::reject, 408, "the request head did not arrive in time"};
      }
      co_return head_result{outcome::closed};
    }
    c.buffer.commit(n);
    if (!started) {
      started = true;
      head_deadline = clock::now() + o.header_timeout;
    }
  }
}

std::optional<head_result> oversized_chunk_framing(connection const& c) {
  auto pending = c.buffer.data();
  auto answer = request_parser::oversized_chunk_framing({static_cast<char const*>(pending.data()), pending.size()},
                                                        c.server.opts.max_head);
  if (!answer) return std::nullopt;
  return head_result{outcome::reject, answer->first, std::string(answer->second)};
}

template <class Stream>
task<head_result> read_body(connection& c, Stream& s, request_parser& p) {
  auto const& o = c.server.opts;
  auto started = clock::now();
  std::size_t received = 0;
  while (!p.is_done()) {
    // Beast 1.81 asserts (and aborts a build with assertions) when a chunked
    // body's final chunk arrives a byte or two at a time (boostorg/beast#2861,
    // fixed in a later Boost). Every unfinished chunked body still has at
    // least "0\r\n\r\n" to come, so waiting for five bytes loses nothing.
    bool short_chunk_input = p.chunked_body() && c.buffer.size() < 5;
    if (c.buffer.size() > 0 && !short_chunk_input) {
      error_code ec;
      auto n = p.put(c.buffer.data(), ec);
      c.buffer.consume(n);
      received += n;
      if (ec && ec != http::error::need_more) co_return parse_failure(p, ec);
      if (p.is_done()) break;
      if (n > 0) continue;
      // Nothing consumed: a chunk header longer than any sane one, or a
      // trailer section past its bound (what Beast holds for it unparsed).
      if (auto refused = oversized_chunk_framing(c)) co_return std::move(*refused);
    }
    c.state = phase::reading_body;
    c.wd->arm(body_read_deadline(o, started, received));
    auto [ec, n] = co_await s.async_read_some(c.buffer.prepare(16384), tuple_task);
    c.wd->disarm();
    if (ec) {
      if (c.wd->fired()) co_return head_result{outcome::reject, 408, "the request body did not arrive in time"};
      co_return head_result{outcome::closed};
    }
    c.buffer.commit(n);
  }
  co_return head_result{};
}

template <class Stream>
task<bool> write_all(connection& c, Stream& s, std::array<asio::const_buffer, 2> buffers) {
  c.state = phase::writing;
  // write_timeout bounds each write's progress (SPEC §2: between writes), not
  // the whole response: a steady reader of a large body slower than one
  // write_timeout is served; one that stops reading is cut. Small responses
  // still go out in one write.
  while (buffers[0].size() + buffers[1].size() > 0) {
    c.wd->arm_after(c.server.opts.write_timeout);
    auto [ec, n] = co_await s.async_write_some(buffers, tuple_task);
    c.wd->disarm();
    if (ec) co_return false;
    for (auto& b : buffers) {
      auto k = std::min(n, b.size());
      b += k;
      n -= k;
    }
  }
  co_return true;
}

template <class Stream>
task<bool> write_response(connection& c, Stream& s, response const& res, framing f) {
  c.out.clear();
  bool with_body = render_head(c.out, res, f);
  std::array<asio::const_buffer, 2> buffers{asio::buffer(c.out), asio::const_buffer()};
  if (with_body && !res.body.empty()) {
    // Small bodies travel in the head's buffer: one contiguous send.
    if (res.body.size() <= 4096) c.out.append(res.body), buffers[0] = asio::buffer(c.out);
    else buffers[1] = asio::buffer(res.body);
  }
  co_return co_await write_all(c, s, buffers);
}

// Closing at once with unread bytes of the client's body in the kernel sends
// it a reset, which can destroy our response before it reads it (RFC 9112
// §9.6). So: FIN first, then drop what still arrives, briefly and boundedly.
task<void> linger_close(connection& c) {
  constexpr auto linger_time = std::chrono::milliseconds(500);
  constexpr std::size_t linger_bytes = 4 * 1024 * 1024;
  co_await asio::this_coro::reset_cancellation_state();
  error_code ec;
  c.socket.shutdown(tcp_socket::shutdown_send, ec);
  if (ec) co_return;
  std::array<char, 16384> sink;
  std::size_t dropped = 0;
  c.wd->arm_after(linger_time);
  while (dropped < linger_bytes) {
    auto [rec, n] = co_await c.socket.async_read_some(asio::buffer(sink), tuple_task);
    if (rec) break;
    dropped += n;
  }
  c.wd->disarm();
}

// Runs a chain; an exception that no middleware caught still gets its answer.
task<response> run_guarded(detail::chain const& chain, context& ctx) {
  std::exception_ptr failure;
  try {
    co_return co_await run_chain(chain, ctx);
  } catch (...) {
    failure = std::current_exception();
  }
  co_return response_for_exception(ctx, failure);
}

// A rejection (400, 408, 413, 414, 431) answered through the app-wide chain,
// so it still gets an X-Request-Id, an access line and a count.
task<response> answer_rejection(connection& c, context& ctx, head_result const& r) {
  ctx.set(pending_rejection{r.status, r.detail});
  auto res = co_await run_guarded(c.server.routes.rejection_chain(), ctx);
  res.close = true;
  co_return res;
}

}  // namespace

template <class Stream>
task<void> run_session(std::shared_ptr<connection> self, Stream& s) {
  auto& c = *self;
  auto const& o = c.server.opts;
  c.enlist();
  co_await asio::this_coro::throw_if_cancelled(false);
  path_params params;
  bool fresh = true;
  bool linger = false;  // the client may still be sending a body we refused
  for (;;) {
    request_parser parser(c.req, o.max_head, o.max_header_count, o.max_body);
    // Unlimited until the route is known: its own limit applies (SPEC §1).
    parser.body_limit(boost::none);
    http1_exchange exchange(c);
    context ctx(c.req, o, &exchange);
    ctx.set_peer(c.peer);

    auto head = co_await read_head(c, s, parser, fresh);
    fresh = false;
    if (c.wd->fired()) co_await asio::this_coro::reset_cancellation_state();
    if (head.what == outcome::closed) break;
    if (head.what == outcome::reject) {
      auto res = co_await answer_rejection(c, ctx, head);
      co_await write_response(c, s, res, {c.req.version() == 10 ? 10u : 11u, false, false});
      break;
    }

    auto match = c.server.routes.match(c.req.method(), c.req.method_string(), c.req.path(), params);
    ctx.set_route(match.pattern, &params);
    auto max_body = match.options && match.options->max_body ? *match.options->max_body : o.max_body;
    auto handler_timeout = match.options && match.options->handler_timeout
                               ? *match.options->handler_timeout : o.handler_timeout;

    // A route with stream_body hands its body to the handler as it arrives
    // (keel/body_stream.hpp); every other body is read here, whole, first.
    bool streamed = match.options && match.options->stream_body;
    std::optional<body_source> streamed_body;
    if (streamed) {
      streamed_body.emplace(c, parser, ctx);
      streamed_body->done = parser.is_done();
      exchange.attach_body(&*streamed_body);
      ctx.body_stream().attach(&exchange);
    }
    if (!parser.is_done() && parser.websocket_upgrade() && c.req.method() == verb::get) {
      // A WebSocket handshake carries no body (RFC 6455 §4.1): one would
      // otherwise be read, then kept for the life of the WebSocket.
      head_result with_body{outcome::reject, 400, "a WebSocket upgrade request must not carry a body"};
      auto res = co_await answer_rejection(c, ctx, with_body);
      co_await write_response(c, s, res, {c.req.version(), false, false});
      linger = true;
      break;
    }
    if (!parser.is_done()) {
      std::uint64_t limit = streamed ? *match.options->stream_body : max_body;
      auto length = parser.content_length();
      if (length && *length > limit) {
        head_result too_big{outcome::reject, 413, "the body is larger than this route accepts"};
        auto res = co_await answer_rejection(c, ctx, too_big);
        co_await write_response(c, s, res, {c.req.version(), false, false});
        linger = true;
        break;
      }
      parser.body_limit(limit);
      bool wants_continue = parser.expects_continue() && c.req.version() >= 11;
      if (streamed) {
        parser.stream_body();
        streamed_body->continue_pending = wants_continue;
      } else {
        if (wants_continue && c.buffer.size() == 0) {
          static constexpr std::string_view cont = "HTTP/1.1 100 Continue\r\n\r\n";
          if (!co_await write_all(c, s, {asio::buffer(cont), asio::const_buffer()})) break;
        }
        auto body = co_await read_body(c, s, parser);
        if (c.wd->fired()) co_await asio::this_coro::reset_cancellation_state();
        if (body.what == outcome::closed) break;
        if (body.what == outcome::reject) {
          auto res = co_await answer_rejection(c, ctx, body);
          co_await write_response(c, s, res, {c.req.version(), false, false});
          linger = true;
          break;
        }
      }
    }

    c.state = phase::handling;
    auto deadline = clock::now() + handler_timeout;
    ctx.set_deadline(deadline);
    c.wd->arm(deadline);
    // The peer watch is armed only if the handler suspends: the posted check
    // runs after this turn, when a synchronous handler is already done.
    auto seq = ++c.handler_seq;
    if (streamed_body && !streamed_body->done) {
      // The socket is the body's until it is in: read_some() arms the watch then.
      streamed_body->watch_peer_when_done = true;
    } else {
      asio::post(c.socket.get_executor(), [self, seq] {
        if (self->state == phase::handling && self->handler_seq == seq) self->watch_peer();
      });
    }
    // Inside the handler a cancelled request stays cancelled: every further
    // co_await throws, so a handler cannot wander on past its deadline.
    co_await asio::this_coro::throw_if_cancelled(true);
    auto res = co_await run_guarded(*match.chain, ctx);
    co_await asio::this_coro::throw_if_cancelled(false);
    c.unwatch_peer();
    c.wd->disarm();
    bool handler_cut = c.wd->fired();
    if (handler_cut || c.reason != cancel_reason::none) {
      co_await asio::this_coro::reset_cancellation_state();
    }
    if (c.reason == cancel_reason::client_gone) break;  // nobody to answer
    if (streamed_body && streamed_body->timed_out) {
      // The body's deadline, not the handler's, cut it.
      if (res.status != 408) res = ctx.problem(408, "the request body did not arrive in time");
    } else if (handler_cut && res.status != 504) {
      // The handler swallowed its cancellation; the deadline still decides.
      res = ctx.problem(504, "the handler did not finish before its deadline");
    }
    // What the handler left of a streamed body goes before the next request
    // can be read; past a bound the connection ends instead.
    bool body_left = false;
    if (streamed_body && !res.upgrade) {
      streamed_body->watch_peer_when_done = false;
      if (!streamed_body->done && !handler_cut) {
        constexpr std::uint64_t discard_limit = 256 * 1024;
        body_left = !co_await discard_body(*streamed_body, discard_limit);
        if (c.wd->fired() || c.reason != cancel_reason::none) {
          co_await asio::this_coro::reset_cancellation_state();
        }
        if (c.reason == cancel_reason::client_gone) break;
      } else {
        body_left = !streamed_body->done;
      }
      linger = body_left;
    }

    // Upgrades (101) and streamed responses (SSE, keel/stream.hpp) take the
    // connection over; a stream that ended cleanly may hand it back.
    if (res.upgrade) {
      // What the handler left of a streamed body must never be read as the
      // next request: the stream says Connection: close, the connection ends
      // after it. Draining it first would hold the stream's head back.
      bool unread_body = streamed_body && !streamed_body->done;
      if (unread_body) res.close = true;
      linger = linger || unread_body;
      // The takeover may last hours: the body's storage goes now, not at the
      // next request (a stream handler that needs the body copies it).
      parser.release_body();
      ctx.replace_body({});
      c.state = phase::upgraded;
      c.reuse_after_upgrade = false;
      co_await res.upgrade(ctx, res, exchange);
      // Only a cleanly ended stream sets reuse_after_upgrade.
      if (!c.reuse_after_upgrade || unread_body) break;
      c.reason = cancel_reason::none;
      continue;
    }
    bool keep_alive = c.req.keep_alive() && !res.close && !body_left &&
                      !c.server.draining.load(std::memory_order_relaxed) && !handler_cut;
    framing f{c.req.version(), keep_alive, c.req.method() == verb::head};
    if (!co_await write_response(c, s, res, f)) break;
    if (!keep_alive) break;
    c.reason = cancel_reason::none;
  }
  if constexpr (std::is_same_v<Stream, tls_socket_stream>) {
    if (!c.tls->taken) co_await tls_goodbye(c, s);
  }
  if (linger) co_await linger_close(c);
  c.wd->stop();
  error_code ec;
  c.socket.shutdown(tcp_socket::shutdown_send, ec);
  c.socket.close(ec);
  c.delist();
}

#ifndef KEEL_SESSION_TLS_UNIT
template task<void> run_session<tcp_socket>(std::shared_ptr<connection>, tcp_socket&);
#else
template task<void> run_session<tls_socket_stream>(std::shared_ptr<connection>, tls_socket_stream&);
#endif

}  // namespace keel::detail
