#pragma once
// Request ids and W3C Trace Context (SPEC §3).
//
//   app.use(keel::mw::request_id());
//
// For every request:
//  - a valid incoming `traceparent` (version 00, or a later version read as
//    00) keeps its trace id and flags; the request gets a new span id and the
//    caller's span becomes its parent; `tracestate` is kept as sent.
//  - an absent or invalid one starts a new trace (random trace and span ids,
//    flags 00: keel does not sample), and `tracestate` is dropped.
//  - `X-Request-Id` is kept when it matches `[A-Za-z0-9._-]{1,128}`, else it
//    is the trace id.
//  - every response, including one made from an exception that escaped the
//    inner chain, carries `X-Request-Id` and `traceresponse`
//    (`00-<trace id>-<span id>-<flags>`, Trace Context Level 2).
// The trace is on the context (ctx.trace(), ctx.request_id()) for every layer
// inside this one, so install it outermost (keel::mw::default_stack does).
#include <keel/middleware.hpp>

#include <string_view>

namespace keel::mw {

namespace name {
inline constexpr std::string_view request_id = "request_id";
}

struct request_id_options {
  /// Keep a valid incoming X-Request-Id. false: it is always the trace id.
  bool keep_incoming_id = true;
  /// Continue a valid incoming traceparent. false: every request starts a new
  /// trace (a server facing clients whose trace ids must not be trusted).
  bool continue_trace = true;
};

middleware request_id(request_id_options opts = {});

/// True when `id` may be kept as an X-Request-Id: `[A-Za-z0-9._-]{1,128}`.
bool valid_request_id(std::string_view id) noexcept;

}  // namespace keel::mw
