#include <keel/middleware/request_id.hpp>

#include <keel/context.hpp>

#include "steps.hpp"

#include <algorithm>
#include <cstring>
#include <exception>
#include <optional>

namespace keel::mw {

namespace {

bool lower_hex(std::string_view s) noexcept {
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

bool all_zero(std::string_view s) noexcept { return s.find_first_not_of('0') == std::string_view::npos; }

int hex_value(char c) noexcept { return c <= '9' ? c - '0' : c - 'a' + 10; }

struct traceparent {
  std::string_view trace_id;
  std::string_view parent_id;
  std::uint8_t flags;
};

// Trace Context §3.2: `version-traceid-parentid-flags`, lowercase hex only.
// Version ff is invalid; a later version than 00 is read as 00 when its first
// 55 characters fit that format and what follows starts with '-' (§4.3).
std::optional<traceparent> parse_traceparent(std::string_view v) noexcept {
  if (v.size() < 55) return std::nullopt;
  auto version = v.substr(0, 2);
  if (!lower_hex(version) || version == "ff") return std::nullopt;
  if (version == "00" ? v.size() != 55 : (v.size() > 55 && v[55] != '-')) return std::nullopt;
  if (v[2] != '-' || v[35] != '-' || v[52] != '-') return std::nullopt;
  auto trace_id = v.substr(3, 32);
  auto parent_id = v.substr(36, 16);
  auto flags = v.substr(53, 2);
  if (!lower_hex(trace_id) || all_zero(trace_id)) return std::nullopt;
  if (!lower_hex(parent_id) || all_zero(parent_id)) return std::nullopt;
  if (!lower_hex(flags)) return std::nullopt;
  return traceparent{trace_id, parent_id, static_cast<std::uint8_t>(hex_value(flags[0]) * 16 + hex_value(flags[1]))};
}

// A tracestate longer than this is dropped rather than carried: the spec
// asks vendors to propagate at least 512 characters, and a huge one is abuse.
constexpr std::size_t max_tracestate = 4096;

}  // namespace

namespace steps {

void stamp_ids(response& res, context& ctx) {
  static constexpr char hex[] = "0123456789abcdef";
  auto const& t = ctx.trace();
  // `00-` trace id `-` span id `-` flags: 55 bytes, built on the stack.
  char tr[64];
  std::size_t n = 0;
  auto put = [&](std::string_view s) {
    auto k = std::min(s.size(), sizeof tr - 2 - n);
    std::memcpy(tr + n, s.data(), k);
    n += k;
  };
  put("00-");
  put(t.trace_id);
  put("-");
  put(t.span_id);
  put("-");
  tr[n++] = hex[t.flags >> 4];
  tr[n++] = hex[t.flags & 0xf];
  res.set_header("X-Request-Id", ctx.request_id());
  res.set_header("traceresponse", std::string_view(tr, n));
}

// Everything before the inner chain runs, outside the coroutine: its locals
// then stay out of the coroutine frame.
void begin_trace(context& ctx, request_id_options const& o) {
  std::optional<traceparent> incoming;
  if (o.continue_trace) {
    if (auto h = ctx.header("traceparent")) incoming = parse_traceparent(*h);
  }
  // ctx.trace() starts a fresh trace with a new span id: a continued trace
  // keeps that span and takes the caller's trace id and flags.
  auto& t = ctx.trace();
  if (incoming) {
    t.trace_id.assign(incoming->trace_id);
    t.parent_id.assign(incoming->parent_id);
    t.flags = incoming->flags;
    auto state = ctx.header("tracestate");
    if (state && state->size() <= max_tracestate) t.tracestate.assign(*state);
  } else {
    t.parent_id.clear();
    t.tracestate.clear();
  }
  auto id = o.keep_incoming_id ? ctx.header("X-Request-Id") : std::nullopt;
  // Empty means "the trace id" (context::request_id()): no copy of it.
  if (id && valid_request_id(*id)) ctx.set_request_id(std::string(*id));
  else ctx.set_request_id({});
}

}  // namespace steps

namespace {

response stamped(response res, context& ctx) {
  steps::stamp_ids(res, ctx);
  return res;
}

task<response> run(context& ctx, next n, request_id_options const& o) {
  steps::begin_trace(ctx, o);
  // Every response carries the ids, even one made from an exception nothing
  // inside caught: it gets here what keel would have answered anyway.
  std::exception_ptr failure;
  try {
    auto res = co_await n();
    steps::stamp_ids(res, ctx);
    co_return res;
  } catch (...) {
    failure = std::current_exception();
  }
  co_return stamped(response_for_exception(ctx, failure), ctx);
}

}  // namespace

bool valid_request_id(std::string_view id) noexcept {
  if (id.empty() || id.size() > 128) return false;
  for (char c : id) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
              c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

middleware request_id(request_id_options opts) {
  return [opts](context& ctx, next n) { return run(ctx, n, opts); };
}

}  // namespace keel::mw
