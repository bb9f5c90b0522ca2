#include <keel/middleware/defaults.hpp>

#include <keel/middleware/access_log.hpp>
#include <keel/middleware/exception_capture.hpp>
#include <keel/middleware/metrics.hpp>
#include <keel/middleware/request_id.hpp>

#include "steps.hpp"

namespace keel::mw {

namespace {

// What the four layers do after the inner chain, innermost first.
void finish(context& ctx, response& res, clock::time_point started, steps::access_log_state const& log) {
  auto elapsed = clock::now() - started;
  steps::record_request(ctx, res.status, elapsed);
  steps::log_access(ctx, res, elapsed, log);
  steps::stamp_ids(res, ctx);
}

response finished(context& ctx, response res, clock::time_point started, steps::access_log_state const& log) {
  finish(ctx, res, started, log);
  return res;
}

// request_id, access_log, metrics and exception_capture in one frame: the
// same work in the same order as four layers, without three layers' cost.
task<response> run(context& ctx, next n, steps::access_log_state const& log) {
  // [default-stack]
  // Outermost: every layer and log line inside sees the trace id, and every
  // response, whoever made it, leaves with X-Request-Id and traceresponse.
  steps::begin_trace(ctx, {});
  auto started = clock::now();
  std::exception_ptr failure;
  try {
    auto res = co_await n();
    // Then, outermost last: the metrics count and the access line show the
    // same final status and bytes, and the ids go on last.
    finish(ctx, res, started, log);
    co_return res;
  } catch (...) {
    failure = std::current_exception();
  }
  // Innermost: what group/route middleware and handlers throw becomes one
  // counted, logged problem response before the rest looks at it.
  steps::report_exception(ctx, failure);
  co_return finished(ctx, response_for_exception(ctx, failure), started, log);
  // [default-stack]
}

}  // namespace

std::vector<middleware> default_stack() {
  steps::declare_http_metrics();  // so they show before the first request
  auto log = steps::make_access_log_state({});
  return {[log](context& ctx, next n) { return run(ctx, n, *log); }};
}

void use_defaults(keel::app& app) {
  for (auto& m : default_stack()) app.use(std::move(m));
  expose_metrics(app);
}

}  // namespace keel::mw
