#pragma once
// keel::http_client: an HTTP/1.1 and HTTPS client for calling other services
// from handlers (or any keel::task), with keep-alive connections pooled per
// origin.
//
//   keel::http_client upstream;                       // share one per process
//
//   keel::task<keel::response> show(keel::context& ctx) {
//     auto r = co_await upstream.get(ctx, "http://users:8080/users/" + ctx.param("id"));
//     if (r.status != 200) co_return ctx.problem(502, "users answered " + std::to_string(r.status));
//     co_return keel::response::json(r.json());
//   }
//
// Passing the request's context makes the call part of that request: its
// deadline bounds the call (unless request_options::timeout is shorter), it
// sends `traceparent` with the request's trace id and a new span id, and
// passes `tracestate` and `X-Request-Id` on (SPEC §3). A call is cancelled
// when its awaiting coroutine is (the handler's deadline, its client gone);
// a cancelled or timed-out call's connection is closed, never reused.
//
// Failures throw keel::http_client_error (an http_error: 504 for a timeout,
// 502 otherwise), so a handler that lets one escape answers a problem response.
// Any response from the server, 4xx and 5xx included, is returned, not thrown.
//
// Thread safety: one client may be shared by coroutines on any threads; each
// pooled connection is used by one call at a time. The client must outlive the
// calls made on it. docs/clients.md has the defaults and the details.
#include <keel/error.hpp>
#include <keel/net.hpp>
#include <keel/pool.hpp>
#include <keel/request.hpp>

#include <boost/json/value.hpp>

#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace keel {

class context;

/// Why a call failed.
enum class http_client_errc {
  bad_url,             ///< not an absolute http:// or https:// URL
  resolve_failed,      ///< the host name did not resolve
  connect_failed,      ///< TCP connect refused or failed
  tls_failed,          ///< TLS handshake failed (certificate, host name, protocol)
  timeout,             ///< the call's deadline (or the connect timeout) passed
  cancelled,           ///< the awaiting coroutine was cancelled
  too_large,           ///< the response head or body exceeded its limit
  protocol,            ///< the server broke HTTP framing or closed mid-response
  too_many_redirects,  ///< more than max_redirects redirects
};

/// The reason's name: "timeout", "too_large", ...
std::string_view to_string(http_client_errc e) noexcept;

/// A call that produced no response: 504 for a timeout, else 502.
class http_client_error : public http_error {
 public:
  http_client_error(http_client_errc reason, std::string const& detail)
      : http_error(reason == http_client_errc::timeout ? 504 : 502, detail),
        reason_(reason) {}
  http_client_errc reason() const noexcept { return reason_; }

 private:
  http_client_errc reason_;
};

using http_headers = std::vector<std::pair<std::string, std::string>>;

struct http_client_response {
  unsigned status = 0;
  http_headers headers;  ///< in order, names as sent
  std::string body;

  /// The first header of that name (case-insensitive).
  std::optional<std::string_view> header(std::string_view name) const;
  /// The body parsed as JSON; throws http_client_error(protocol) when it is not.
  boost::json::value json() const;
};

/// Settings of one client; every limit applies per client.
struct http_client_options {
  std::size_t max_connections_per_origin = 32;  ///< callers beyond wait for one
  std::size_t max_response_body = 8u << 20;     ///< bytes; more is too_large
  std::size_t max_response_head = 64u << 10;
  std::chrono::milliseconds connect_timeout{std::chrono::seconds(5)};  ///< TCP + TLS handshake
  /// A call's deadline when neither the request options nor a context set one.
  std::chrono::milliseconds request_timeout{std::chrono::seconds(30)};
  /// A pooled connection idle this long is closed.
  std::chrono::milliseconds idle_timeout{std::chrono::seconds(30)};
  /// An origin without a call, a connection in use or a waiter for this long
  /// is forgotten: its pool (idle connections included) and its metric series
  /// go. The origins held are those called within this time. 0: never.
  std::chrono::milliseconds origin_idle_timeout{std::chrono::seconds(60)};
  unsigned max_redirects = 5;  ///< followed for GET and HEAD only; 0 returns the 3xx
  /// Extra attempts for idempotent methods after a connection failure or a
  /// 502/503/504, each after a full-jitter backoff: random in
  /// [0, min(cap, base * 2^n)]. The transparent retry of a stale pooled
  /// connection is separate and always on.
  unsigned retries = 0;
  std::chrono::milliseconds retry_backoff_base{100};
  std::chrono::milliseconds retry_backoff_cap{std::chrono::seconds(2)};
  /// PEM file of trusted CAs; when set it replaces the system CA store.
  std::string ca_file;
  /// Accepts any certificate and host name. Only for tests against throwaway
  /// servers: it makes HTTPS as safe as plain HTTP.
  bool insecure_skip_verify = false;
  std::string user_agent = "keel";
  /// The `client` label of this client's metrics (and its pools' names).
  std::string name = "default";
};

/// Per-call settings.
struct request_options {
  /// The call's own time budget; the earlier of this and the context's
  /// deadline wins. Without either: http_client_options::request_timeout.
  std::optional<std::chrono::milliseconds> timeout;
  std::optional<unsigned> max_redirects;
  std::optional<unsigned> retries;
  /// The request this call is part of (deadline, trace, X-Request-Id).
  context* ctx = nullptr;
};

class http_client {
 public:
  explicit http_client(http_client_options opts = {});
  ~http_client();
  http_client(http_client const&) = delete;
  http_client& operator=(http_client const&) = delete;

  /// Sends one request (following redirects and retrying as configured).
  /// Throws http_client_error when there is no response to return.
  task<http_client_response> request(verb method, std::string url, std::string body = {},
                                     http_headers headers = {}, request_options opts = {});

  task<http_client_response> get(std::string url, http_headers headers = {}) {
    return request(verb::get, std::move(url), {}, std::move(headers));
  }
  task<http_client_response> get(context& ctx, std::string url, http_headers headers = {}) {
    request_options o;
    o.ctx = &ctx;
    return request(verb::get, std::move(url), {}, std::move(headers), o);
  }

  /// GET with `Accept: application/json`; throws http_client_error(protocol)
  /// on a status other than 2xx or a body that is not JSON.
  task<boost::json::value> get_json(std::string url, request_options opts = {});
  task<boost::json::value> get_json(context& ctx, std::string url);
  /// POST `body` as JSON; the same checks on the answer (an empty 2xx body is null).
  task<boost::json::value> post_json(std::string url, boost::json::value body, request_options opts = {});
  task<boost::json::value> post_json(context& ctx, std::string url, boost::json::value body);

  /// The pool of one origin ("http://host:port"), or nullopt before its first
  /// call and once it is forgotten (origin_idle_timeout).
  std::optional<pool_stats> stats(std::string_view origin) const;
  /// The origins held now: in use, or used within origin_idle_timeout.
  std::size_t origins() const;

  struct impl;

 private:
  std::unique_ptr<impl> impl_;
};

}  // namespace keel
