#pragma once
// The built-in middleware's work before and after the inner chain, as plain
// functions: each middleware's coroutine calls its own, and default_stack()
// runs all four in one coroutine frame, because a layer costs about 400
// instructions per request just for being a layer (docs/performance.md).
// Private to the middleware library.
#include <keel/context.hpp>
#include <keel/middleware/access_log.hpp>
#include <keel/middleware/request_id.hpp>
#include <keel/response.hpp>

#include <exception>
#include <memory>

namespace keel::mw::steps {

// request_id: continue or start the trace and pick the request id (before);
// X-Request-Id and traceresponse on the response (after).
void begin_trace(context& ctx, request_id_options const& o);
void stamp_ids(response& res, context& ctx);

// access_log: one line for the response the layer got back.
struct access_log_state {
  std::vector<std::string> redact;
  std::size_t longest = 0;  // of the redacted names
  log::level level;
};
std::shared_ptr<access_log_state const> make_access_log_state(access_log_options opts);
void log_access(context& ctx, response const& res, clock::duration elapsed, access_log_state const& s);

// metrics: one count and one duration sample per response.
void declare_http_metrics();
void record_request(context& ctx, unsigned status, clock::duration elapsed);

// exception_capture: count and log one exception the inner chain threw.
void report_exception(context& ctx, std::exception_ptr const& e);

}  // namespace keel::mw::steps
