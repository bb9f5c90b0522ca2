// Streamed responses: the handler runs inside the session coroutine, after the
// chain, and writes through the connection's socket (or TLS stream) itself.
//
// Why inline rather than a writer coroutine with a queue (as SSE has): a
// stream has exactly one producer, the handler, and each write waits for the
// socket, so the handler *is* the one writer and backpressure needs no queue
// and no buffer beyond the piece being written. Running in the session
// coroutine also means the connection's watchdog slot reaches whatever the
// handler awaits: a write past write_timeout, a peer that leaves (the peer
// watch) and drain_timeout's forced close all cancel it with no extra signal.
#include <keel/log.hpp>
#include <keel/metrics.hpp>
#include <keel/stream.hpp>

#include "http/connection.hpp"
#include "http/response_writer.hpp"
#include "http/server_state.hpp"
#include "http/tls_stream.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/write.hpp>

#include <array>
#include <charconv>
#include <exception>
#include <memory>
#include <string>

namespace keel {

using boost::system::error_code;

namespace detail {

struct stream_job {
  stream_handler handler;
  stream_options options;
};

struct stream_state {
  stream_state(connection& conn, context& request_ctx, response const& r) : c(conn), ctx(request_ctx), res(r) {}

  connection& c;
  context& ctx;
  response const& res;
  body_framing mode = body_framing::chunked;
  std::uint64_t length = 0;  // body_framing::length only
  bool keep_alive = false;
  bool head_only = false;
  bool head_sent = false;
  bool failed = false;
  std::uint64_t written = 0;
  std::string head;

  void render(framing f) {
    head.clear();
    render_streamed_head(head, res, f, mode, length);
  }

  // One gathered write: [head][chunk size line][piece][CRLF, last chunk],
  // each part optional (empty buffers are skipped). write_timeout guards it.
  template <class Stream>
  task<bool> send(Stream& s, std::string_view piece, bool last_chunk) {
    std::array<asio::const_buffer, 4> buffers{};
    if (!head_sent) buffers[0] = asio::buffer(head);
    char size_line[24];
    bool chunked = mode == body_framing::chunked && !head_only;
    static constexpr std::string_view crlf = "\r\n";
    static constexpr std::string_view crlf_last = "\r\n0\r\n\r\n";
    static constexpr std::string_view last = "0\r\n\r\n";
    if (chunked && !piece.empty()) {
      auto end = std::to_chars(size_line, size_line + 20, piece.size(), 16).ptr;
      *end++ = '\r';
      *end++ = '\n';
      buffers[1] = asio::buffer(size_line, static_cast<std::size_t>(end - size_line));
      buffers[3] = asio::buffer(last_chunk ? crlf_last : crlf);
    } else if (chunked && last_chunk) {
      buffers[3] = asio::buffer(last);
    }
    if (!piece.empty()) buffers[2] = asio::buffer(piece.data(), piece.size());
    if (asio::buffer_size(buffers) == 0) co_return true;
    c.wd->arm_after(c.server.opts.write_timeout);
    auto [ec, n] = co_await asio::async_write(s, buffers, asio::as_tuple(use_task));
    c.wd->disarm();
    if (ec) {
      failed = true;
      co_return false;
    }
    head_sent = true;
    co_return true;
  }

  task<bool> write(std::string_view piece, bool last_chunk = false) {
    if (failed) co_return false;
    if (mode == body_framing::length && length - written < piece.size()) {
      // More than promised: the framing would lie. End the stream.
      failed = true;
      co_return false;
    }
    bool ok = false;
    if (c.tls) {
      ok = co_await send(c.tls->stream, piece, last_chunk);
    } else {
      ok = co_await send(c.socket, piece, last_chunk);
    }
    if (ok) written += piece.size();
    co_return ok;
  }
};

namespace {

void log_failure(context& ctx, std::exception_ptr e) {
  try {
    std::rethrow_exception(std::move(e));
  } catch (boost::system::system_error const& x) {
    // The stream was cancelled (client gone, write timeout, forced close).
    if (x.code() == asio::error::operation_aborted) return;
    metrics::handler_exception();
    log::error("stream handler failed", {{"trace_id", ctx.trace_id()}, {"error", x.what()}});
  } catch (std::exception const& x) {
    metrics::handler_exception();
    log::error("stream handler failed", {{"trace_id", ctx.trace_id()}, {"error", x.what()}});
  } catch (...) {
    metrics::handler_exception();
    log::error("stream handler failed", {{"trace_id", ctx.trace_id()}});
  }
}

// Runs the handler with throw_if_cancelled on; true when it returned normally.
task<bool> run_handler(stream_job const& job, response_stream& out, std::exception_ptr& failure) {
  co_await asio::this_coro::throw_if_cancelled(true);
  bool returned = false;
  try {
    co_await job.handler(out);
    returned = true;
  } catch (...) {
    failure = std::current_exception();
  }
  co_await asio::this_coro::throw_if_cancelled(false);
  co_return returned;
}

task<void> run_stream(context& ctx, response const& res, std::shared_ptr<stream_job> job) {
  auto* conn = ctx.connection();
  if (!conn) co_return;
  auto& c = *conn;
  auto self = c.shared_from_this();
  stream_state st(c, ctx, res);
  auto const& req = ctx.req();
  if (job->options.content_length) {
    st.mode = body_framing::length;
    st.length = *job->options.content_length;
  } else if (req.version() < 11) {
    st.mode = body_framing::close;
  }
  st.head_only = req.method() == verb::head || res.status < 200 || res.status == 204 || res.status == 304;
  st.keep_alive = req.keep_alive() && !res.close && st.mode != body_framing::close &&
                  !c.server.draining.load(std::memory_order_relaxed);
  st.render({req.version(), st.keep_alive, req.method() == verb::head});

  if (st.head_only) {
    bool ok = co_await st.write({}, false);
    c.reuse_after_upgrade = ok && st.keep_alive;
    co_return;
  }

  c.state = phase::streaming;
  c.watch_peer();
  response_stream out(st);
  std::exception_ptr failure;
  bool returned = co_await run_handler(*job, out, failure);
  c.unwatch_peer();
  bool cancelled = c.wd->fired() || c.reason != cancel_reason::none;
  co_await asio::this_coro::reset_cancellation_state();
  if (failure) log_failure(ctx, failure);

  if (!returned) {
    if (!st.head_sent && !st.failed && !cancelled) {
      // Nothing reached the client yet: it can still get a proper answer.
      auto problem = ctx.problem(500, "the stream failed before its first byte");
      c.out.clear();
      render_head(c.out, problem, {req.version(), false, false});
      c.out.append(problem.body);
      st.head = c.out;
      st.mode = body_framing::close;
      co_await st.write({}, false);
    }
    co_return;  // the connection closes: a body cut short shows as a truncation
  }
  // A handler that swallowed its cancellation (client gone, forced close)
  // still ends a stream nobody reads.
  if (st.failed || cancelled) co_return;
  if (st.mode == body_framing::length && st.written != st.length) co_return;
  if (!co_await st.write({}, true)) co_return;  // the head, the last chunk
  c.reuse_after_upgrade = st.keep_alive && !c.server.draining.load(std::memory_order_relaxed);
}

}  // namespace
}  // namespace detail

task<bool> response_stream::write(std::string_view piece) {
  if (piece.empty()) co_return !state_->failed;
  bool ok = co_await state_->write(piece, false);
  co_return ok;
}

std::uint64_t response_stream::written() const { return state_->written; }
bool response_stream::is_open() const { return !state_->failed; }
context& response_stream::ctx() { return state_->ctx; }

response stream_response(stream_handler h, stream_options o) {
  response r(200);
  auto job = std::make_shared<detail::stream_job>(detail::stream_job{std::move(h), o});
  r.upgrade = [job](context& ctx, response const& res) { return detail::run_stream(ctx, res, job); };
  return r;
}

}  // namespace keel
