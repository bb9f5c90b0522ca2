// Streamed responses: the handler runs inside the exchange's coroutine, after
// the chain, and writes through the exchange (http/exchange.hpp), which frames
// the body for its transport.
//
// Why inline rather than a writer coroutine with a queue (as SSE has): a
// stream has exactly one producer, the handler, and each write waits for the
// transport, so the handler *is* the one writer and backpressure needs no
// queue and no buffer beyond the piece being written. Running in the
// exchange's coroutine also means its deadline reaches whatever the handler
// awaits: a write past write_timeout, a peer that leaves (the peer watch) and
// drain_timeout's forced close all cancel it with no extra signal.
#include <keel/log.hpp>
#include <keel/metrics.hpp>
#include <keel/stream.hpp>

#include "http/exchange.hpp"

#include <boost/asio/this_coro.hpp>

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
  stream_state(exchange& x, context& request_ctx) : ex(x), ctx(request_ctx) {}

  exchange& ex;
  context& ctx;
  std::uint64_t written = 0;
  bool failed = false;

  task<bool> write(std::string_view piece) {
    if (failed) co_return false;
    asio::const_buffer b(piece.data(), piece.size());
    std::span<asio::const_buffer const> pieces(&b, 1);
    bool ok = co_await ex.write_body(pieces);
    if (!ok) {
      failed = true;
      co_return false;
    }
    written += piece.size();
    co_return true;
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

task<void> run_stream(context& ctx, response const& res, exchange& x, std::shared_ptr<stream_job> job) {
  x.begin_body(res, job->options.content_length, false);
  if (!x.body_allowed()) {
    co_await x.end_body();  // the head alone
    co_return;
  }
  stream_state st(x, ctx);
  x.watch_peer(true);
  response_stream out(st);
  std::exception_ptr failure;
  bool returned = co_await run_handler(*job, out, failure);
  x.watch_peer(false);
  bool cancelled = x.cancellation() != cancel_reason::none;
  co_await asio::this_coro::reset_cancellation_state();
  if (failure) log_failure(ctx, failure);

  if (!returned) {
    if (!x.head_written() && !st.failed && !cancelled) {
      // Nothing reached the client yet: it can still get a proper answer.
      auto problem = ctx.problem(500, "the stream failed before its first byte");
      problem.close = true;
      x.begin_body(problem, problem.body.size(), true);
      asio::const_buffer b(problem.body.data(), problem.body.size());
      std::span<asio::const_buffer const> pieces(&b, 1);
      co_await x.write_body(pieces);
    }
    co_return;  // the exchange ends: a body cut short shows as a truncation
  }
  // A handler that swallowed its cancellation (client gone, forced close)
  // still ends a stream nobody reads.
  if (st.failed || cancelled) co_return;
  co_await x.end_body();  // the head if unsent, the last chunk; hands a clean end back
}

}  // namespace
}  // namespace detail

task<bool> response_stream::write(std::string_view piece) {
  if (piece.empty()) co_return !state_->failed;
  bool ok = co_await state_->write(piece);
  co_return ok;
}

std::uint64_t response_stream::written() const { return state_->written; }
bool response_stream::is_open() const { return !state_->failed; }
context& response_stream::ctx() { return state_->ctx; }

response stream_response(stream_handler h, stream_options o) {
  response r(200);
  auto job = std::make_shared<detail::stream_job>(detail::stream_job{std::move(h), o});
  r.upgrade = [job](context& ctx, response const& res, detail::exchange& x) {
    return detail::run_stream(ctx, res, x, job);
  };
  return r;
}

}  // namespace keel
