#pragma once
// Cross-Origin Resource Sharing (Fetch standard).
//
//   app.group("/api", {keel::mw::cors({.origins = {"https://app.example"}, .credentials = true}),
//                      keel::mw::authenticate(...)});
//
// Install it outside auth (SPEC §1): a preflight carries no credentials and is
// answered here, without reaching auth or the handler.
//
// - Preflight (OPTIONS with Origin and Access-Control-Request-Method): from an
//   allowed origin asking for an allowed method and headers, 204 with
//   Access-Control-Allow-Origin, -Methods, -Headers, -Max-Age (and
//   -Credentials); otherwise 403 problem without CORS headers. Either way the
//   handler does not run.
// - Other requests run as usual; from an allowed origin the response gets
//   Access-Control-Allow-Origin (and -Credentials, -Expose-Headers).
// - Every response gets `Vary: Origin` (preflight answers also
//   `Vary: Access-Control-Request-Method, Access-Control-Request-Headers`),
//   so caches never serve one origin's answer to another.
// - `*` in `origins` allows any origin; with `credentials` the origin is
//   echoed instead of `*`, as the standard requires.
#include <keel/middleware.hpp>

#include <chrono>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace keel::mw {

namespace name {
inline constexpr std::string_view cors = "cors";
}

struct cors_options {
  /// Exact origins (`https://app.example:8443`), or "*" for any.
  std::vector<std::string> origins;
  /// Allows an origin the list does not name (e.g. every subdomain). Called
  /// concurrently from I/O threads.
  std::function<bool(std::string_view origin)> allow_origin;
  std::vector<std::string> methods = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"};
  /// Request headers a preflight may ask for (case-insensitive); "*" allows any.
  std::vector<std::string> headers = {"Content-Type", "Authorization"};
  /// Response headers the page may read beyond the safelisted ones.
  std::vector<std::string> expose_headers = {"X-Request-Id"};
  bool credentials = false;
  std::chrono::seconds max_age{600};
};

middleware cors(cors_options opts);

}  // namespace keel::mw
