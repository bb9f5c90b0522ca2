#pragma once
// Everything a handler and its middleware know about one request.
//
//   keel::task<keel::response> show(keel::context& ctx) {
//     auto id = ctx.param("id");                 // path parameter, percent-decoded
//     auto page = ctx.query("page");             // std::optional<std::string>
//     auto const* user = ctx.get<principal>();   // set by an auth middleware
//     co_return keel::response::text("user " + id);
//   }
//
// The context lives as long as the request (for a WebSocket, as long as the
// session). Operations a handler awaits are cancelled when the request's
// deadline passes or its client disconnects: ctx.cancel_reason() says which.
// A context belongs to its connection's thread; do not share it across threads.
#include <keel/body_stream.hpp>
#include <keel/net.hpp>
#include <keel/options.hpp>
#include <keel/request.hpp>
#include <keel/response.hpp>

#include <boost/json/value.hpp>

#include <any>
#include <exception>
#include <array>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <typeinfo>
#include <utility>
#include <vector>

namespace keel {

namespace detail {
class exchange;
class path_params;

/// A framework rejection (400, 408, 413, 414, 431) waiting to be answered
/// through the app-wide chain; set on the context before that chain runs.
struct pending_rejection {
  unsigned status = 400;
  std::string detail;
};
}  // namespace detail

/// Why a request's operations were cancelled.
enum class cancel_reason { none, deadline, client_gone, shutdown };

/// W3C Trace Context of a request (SPEC §3).
struct trace_context {
  std::string trace_id;   ///< 32 lowercase hex
  std::string span_id;    ///< 16 lowercase hex: this request's span
  std::string parent_id;  ///< the caller's span, empty when none
  std::uint8_t flags = 0;
  std::string tracestate;
};

class context {
 public:
  context(request const& req, options const& opts, detail::exchange* exchange);
  context(context const&) = delete;
  context& operator=(context const&) = delete;

  request const& req() const { return req_; }
  verb method() const { return req_.method(); }
  std::string_view path() const { return req_.path(); }
  std::optional<std::string_view> header(std::string_view name) const { return req_.header(name); }
  /// The request body (as replace_body() left it, if a middleware did).
  std::string_view body() const { return body_ ? std::string_view(*body_) : req_.body(); }
  /// What body() returns from now on, for middleware that transforms the
  /// request body (decompression): the handler reads the result.
  void replace_body(std::string body) { body_ = std::move(body); }
  /// The body as a stream of pieces (keel/body_stream.hpp): how a route with
  /// stream_body reads its body, which then never is in body().
  keel::body_stream& body_stream() { return body_stream_; }
  /// True on a route with stream_body: the body is read through body_stream().
  bool body_streamed() const { return body_stream_.streamed(); }

  /// Path parameter `{name}` of the matched route, percent-decoded; empty if
  /// absent. Text: throws http_error 400 naming the parameter when the decoded
  /// bytes are not valid UTF-8 (keel/utf8.hpp), so they never reach a JSON
  /// body, a log or a WebSocket peer unchecked.
  std::string param(std::string_view name) const;
  /// Query parameter, percent-decoded ('+' as space); nullopt if absent.
  /// Throws http_error 400 naming it when it is not valid UTF-8, as param().
  std::optional<std::string> query(std::string_view name) const;
  /// The same values as bytes, decoded but unchecked, for an app that takes
  /// binary in its URLs; what it echoes of them is its own to make valid.
  std::string param_bytes(std::string_view name) const;
  std::optional<std::string> query_bytes(std::string_view name) const;
  /// The matched route's pattern ("/users/{id}"), or "unmatched".
  std::string_view route() const { return route_; }

  /// The request body parsed as JSON; throws http_error 400 when it is not JSON.
  boost::json::value json_body() const;
  /// The body converted to T (a Boost.Describe'd struct, see keel/json.hpp):
  /// 400 when it does not parse, 422 naming the field when it does not convert.
  template <class T>
  T json() const;

  /// True when the request arrived over TLS (https, wss): the listener has
  /// tls_cert/tls_key. A TLS-terminating proxy in front is not seen here.
  bool tls() const;
  /// The TCP peer.
  asio::ip::tcp::endpoint const& peer() const { return peer_; }
  /// The client address: the peer, or, when the peer is in trusted_proxies,
  /// the rightmost untrusted hop of its Forwarded / X-Forwarded-For
  /// (docs/configuration.md). Rate limits and the access log key on it.
  std::string const& client_address() const;
  void set_client_address(std::string a) { client_address_ = std::move(a); }

  /// The request's trace (a new random trace when no middleware set one).
  trace_context& trace();
  std::string_view trace_id() { return trace().trace_id; }
  /// X-Request-Id (the trace id unless the client sent a valid one; an empty
  /// set_request_id() goes back to the trace id).
  std::string const& request_id();
  void set_request_id(std::string id) { request_id_ = std::move(id); }

  /// When the handler will be cancelled (504).
  clock::time_point deadline() const { return deadline_; }
  /// Cancelled operations say why here; none while the request runs normally.
  cancel_reason cancellation() const;

  /// A problem-details response (RFC 9457) carrying this request's trace id.
  /// `title` defaults to the status's reason phrase. The body is always valid
  /// UTF-8: bytes that are not (in the detail, the title or `extra`) each
  /// become U+FFFD, so a detail may quote what a client sent.
  response problem(unsigned status, std::string_view detail, std::string_view title = {});
  /// The same with extra members (e.g. "errors" for a 422).
  response problem(unsigned status, std::string_view detail, boost::json::object extra,
                   std::string_view title = {});

  /// Typed per-request values: set by middleware, read by handlers.
  template <class T>
  void set(T value) {
    for (auto& v : values_) {
      if (v.type == &typeid(T)) {
        v.value = std::move(value);
        return;
      }
    }
    values_.push_back({&typeid(T), std::any(std::move(value))});
  }
  /// The value of type T, or nullptr.
  template <class T>
  T* get() {
    for (auto& v : values_) {
      if (v.type == &typeid(T)) return std::any_cast<T>(&v.value);
    }
    return nullptr;
  }
  template <class T>
  T const* get() const {
    return const_cast<context*>(this)->get<T>();
  }

  /// Non-zero while the app-wide chain runs for a request keel itself refused
  /// (400, 408, 413, 414, 431: the request is incomplete or malformed).
  /// Middleware that answers on a request's behalf (auth, rate limits) lets
  /// these through to keel's own answer.
  unsigned rejected_status() const {
    auto const* r = get<detail::pending_rejection>();
    return r ? r->status : 0;
  }

  /// The server's settings (read-only).
  options const& settings() const { return opts_; }
  /// The executor of this request's connection.
  executor get_executor() const;
  /// True once the server is draining (responses then carry Connection: close).
  bool draining() const;

  // Framework plumbing, not for handlers.
  void set_route(std::string_view pattern, detail::path_params const* params) {
    route_ = pattern;
    params_ = params;
  }
  void set_peer(asio::ip::tcp::endpoint p);
  void set_deadline(clock::time_point d) { deadline_ = d; }

 private:
  struct value_slot {
    std::type_info const* type;
    std::any value;
  };

  request const& req_;
  options const& opts_;
  detail::exchange* exchange_;
  detail::path_params const* params_ = nullptr;
  std::string_view route_ = "unmatched";
  asio::ip::tcp::endpoint peer_;
  mutable std::string client_address_;
  // The transport's, reused request after request so that its strings keep
  // their storage; a context without an exchange (tests) has its own.
  trace_context* trace_ = nullptr;
  std::optional<trace_context> own_trace_;
  std::string request_id_;
  std::optional<std::string> body_;
  keel::body_stream body_stream_{*this};
  clock::time_point deadline_ = clock::time_point::max();
  std::vector<value_slot> values_;
};

/// The response keel gives for an exception that escaped a handler: 504 when
/// the request's deadline cancelled it, an http_error's own status and headers,
/// 422 with "errors" for a json::validation_error, else 500 whose detail carries
/// the exception's text only in dev_mode.
response response_for_exception(context& ctx, std::exception_ptr e);

}  // namespace keel

#include <keel/json.hpp>

template <class T>
T keel::context::json() const {
  return keel::json::convert<T>(json_body());
}
