#pragma once
// One JSON line per request on stderr (SPEC §3), in this field order:
//
//   {"ts":"2026-11-25T03:15:47.123Z","level":"info","msg":"access",
//    "trace_id":"4bf9…","request_id":"4bf9…","method":"GET","route":"/users/{id}",
//    "path":"/users/7?page=2","status":200,"bytes":13,"duration_ms":0.21,
//    "peer":"127.0.0.1:53122"}
//
//   app.use(keel::mw::access_log());
//
// - `path` is the request target as sent, with the values of the query
//   parameters named in `redact_query` replaced by `REDACTED` (names compared
//   case-insensitively after percent-decoding, so `access%5Ftoken` is caught
//   too). Headers are never logged: Authorization and Cookie cannot leak.
// - `status` and `bytes` are those of the response this layer gets back; an
//   exception that escapes the inner chain is turned into the response keel
//   would send for it (keel::response_for_exception), so the line shows the
//   real status. `bytes` is the body size (0 for HEAD).
// - `duration_ms` runs from this layer's entry to the inner chain's return:
//   middleware inside it, the handler, not the body upload or the write.
// - `peer` is the TCP peer `address:port`; when the client address differs
//   (a trusted proxy named another), a `client` field follows it.
// - A request that keel itself rejects (400, 408, 413, 414, 431) gets its line
//   too, with route `unmatched`, when this is app-wide middleware.
// Cost: the line is formatted into a per-thread buffer and queued with
// log::write_line: no allocation per request once warm, and the I/O thread
// never waits for stderr (lines stderr cannot take are dropped and counted).
#include <keel/log.hpp>
#include <keel/middleware.hpp>

#include <string>
#include <string_view>
#include <vector>

namespace keel::mw {

namespace name {
inline constexpr std::string_view access_log = "access_log";
}

/// What replaces a redacted query value.
inline constexpr std::string_view redacted = "REDACTED";

struct access_log_options {
  /// Query parameters whose values are never logged.
  std::vector<std::string> redact_query = {"access_token", "token"};
  /// The level of access lines (skipped when the log level is above it).
  log::level level = log::level::info;
};

middleware access_log(access_log_options opts = {});

/// `target` with the values of the `names` query parameters replaced by
/// REDACTED, appended to `out` (not JSON-escaped). Exposed for tests and for
/// handlers that log a URL themselves.
void append_redacted_target(std::string& out, std::string_view target,
                            std::vector<std::string> const& names);

}  // namespace keel::mw
