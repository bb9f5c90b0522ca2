// Streamed request bodies over HTTP/1.1 (the transport's side of
// body_stream): the handler's read_some() drives the parser over the
// connection's own buffer and socket, inside the session coroutine, so the
// connection's watchdog reaches these reads like any other wait. Each piece is
// a view into that buffer: no copy, and memory stays at one read's worth.
#include <keel/context.hpp>
#include <keel/error.hpp>

#include "http/body_source.hpp"
#include "http/server_state.hpp"
#include "http/tls_stream.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/http/error.hpp>

#include <algorithm>

namespace keel {

namespace detail {

namespace http = boost::beast::http;
using boost::system::error_code;

namespace {

constexpr std::size_t read_size = 64 * 1024;

}  // namespace

clock::time_point body_read_deadline(options const& o, clock::time_point started, std::uint64_t received) {
  auto now = clock::now();
  auto deadline = now + o.body_timeout;
  if (o.body_min_rate > 0) {
    auto allowed = std::chrono::milliseconds(received * 1000 / o.body_min_rate);
    auto rate_deadline = started + std::max<std::chrono::milliseconds>(o.body_min_rate_grace, allowed);
    deadline = std::min(deadline, std::max(rate_deadline, now + std::chrono::milliseconds(1)));
  }
  return deadline;
}

namespace {

[[noreturn]] void fail(body_source& b, unsigned status, std::string_view detail) {
  b.failed = status;
  b.failed_detail = detail;
  throw http_error(status, std::string(detail));
}

// The handler's deadline stands still while it waits for the client's bytes:
// handler_timeout measures the handler, as on a route whose body keel reads
// before the handler runs.
struct paused_deadline {
  explicit paused_deadline(body_source& b) : b(b), deadline(b.ctx.deadline()), since(clock::now()) {}
  void resume() {
    if (deadline != clock::time_point::max()) deadline += clock::now() - since;
    b.ctx.set_deadline(deadline);
    b.c.wd->arm(deadline);
    b.c.state = phase::handling;
  }
  body_source& b;
  clock::time_point deadline;
  clock::time_point since;
};

template <class Stream>
task<void> send_continue(body_source& b, Stream& s) {
  static constexpr std::string_view cont = "HTTP/1.1 100 Continue\r\n\r\n";
  paused_deadline pause(b);
  b.c.wd->arm_after(b.c.server.opts.write_timeout);
  auto [ec, n] = co_await asio::async_write(s, asio::buffer(cont), asio::as_tuple(use_task));
  (void)n;
  if (ec) {
    // A write that timed out or failed: the client cannot be answered either.
    b.c.reason = cancel_reason::client_gone;
    b.failed = 400;
    throw boost::system::system_error(ec);
  }
  pause.resume();
}

template <class Stream>
task<std::optional<std::string_view>> next_piece(body_source& b, Stream& s) {
  auto& c = b.c;
  auto& p = b.parser;
  auto const& o = c.server.opts;
  if (b.done) co_return std::nullopt;
  if (b.failed) fail(b, b.failed, b.failed_detail);
  if (b.continue_pending) {
    b.continue_pending = false;
    if (c.buffer.size() == 0) co_await send_continue(b, s);
  }
  for (;;) {
    // Beast 1.81 asserts when a chunked body's last chunk arrives a byte at a
    // time (boostorg/beast#2861): every unfinished chunked body still has at
    // least "0\r\n\r\n" to come, so waiting for five bytes loses nothing.
    bool short_chunk_input = p.chunked_body() && c.buffer.size() < 5;
    if (c.buffer.size() > 0 && !short_chunk_input) {
      error_code ec;
      auto n = p.put(c.buffer.data(), ec);
      // The piece stays readable: consume() moves no bytes, the next read's prepare() may.
      c.buffer.consume(n);
      b.consumed += n;
      if (ec && ec != http::error::need_more) {
        if (p.reject_status() != 0) fail(b, p.reject_status(), p.reject_detail());
        if (ec == http::error::body_limit) fail(b, 413, "the body is larger than this route accepts");
        fail(b, 400, "malformed request body");
      }
      b.done = p.is_done();
      // Now a readable socket means the client left (or pipelines): watch it.
      if (b.done && b.watch_peer_when_done) c.watch_peer();
      auto piece = p.take_piece();
      if (!piece.empty()) co_return piece;
      if (b.done) co_return std::nullopt;
      if (n > 0) continue;
      // Nothing consumed: a chunk header longer than any sane one, or a
      // trailer section past its bound (what Beast holds for it unparsed).
      auto pending = c.buffer.data();
      if (auto refused = request_parser::oversized_chunk_framing(
              {static_cast<char const*>(pending.data()), pending.size()}, o.max_head)) {
        fail(b, refused->first, refused->second);
      }
    }
    paused_deadline pause(b);
    c.state = phase::reading_body;
    c.wd->arm(body_read_deadline(o, b.started, b.consumed));
    auto [ec, n] = co_await s.async_read_some(c.buffer.prepare(read_size), asio::as_tuple(use_task));
    if (ec) {
      if (c.wd->fired()) {
        b.timed_out = true;  // the watchdog stays fired: the session answers 408 and closes
        fail(b, 408, "the request body did not arrive in time");
      }
      // The client left mid-body (or a shutdown cut the read): nobody to answer.
      if (c.reason == cancel_reason::none) c.reason = cancel_reason::client_gone;
      b.failed = 400;
      throw boost::system::system_error(ec);
    }
    c.buffer.commit(n);
    pause.resume();
  }
}

}  // namespace

task<std::optional<std::string_view>> next_body_piece(body_source& b) {
  if (b.c.tls) co_return co_await next_piece(b, b.c.tls->stream);
  co_return co_await next_piece(b, b.c.socket);
}

task<bool> discard_body(body_source& b, std::uint64_t limit) {
  if (b.done) co_return true;
  if (b.failed || b.continue_pending) co_return false;  // no 100 Continue: the client may never send it
  auto remaining = b.parser.content_length_remaining();
  if (remaining && *remaining > limit) co_return false;
  b.ctx.set_deadline(clock::time_point::max());  // the handler is done: only the body's deadlines
  b.watch_peer_when_done = false;
  std::uint64_t dropped = 0;
  try {
    while (dropped <= limit) {
      auto piece = co_await next_body_piece(b);
      if (!piece) co_return true;
      dropped += piece->size();
    }
  } catch (std::exception const&) {
  }
  co_return false;
}

}  // namespace detail

}  // namespace keel
