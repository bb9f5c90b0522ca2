#pragma once
// What a handler returns: status, headers and a body that keel frames itself
// (Content-Length, Date, Server and Connection are the framework's job).
//
//   co_return keel::response::text("Hello, World!");
//   co_return keel::response::json({{"message", "Hello, World!"}});
//   co_return keel::response::redirect("/login");
//   keel::response r(201); r.set_header("Location", "/api/todos/7");
//
// Problem details (RFC 9457) need the request's trace id: see
// keel::context::problem().
#include <keel/net.hpp>

#include <boost/container/small_vector.hpp>
#include <boost/json/fwd.hpp>

#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace keel {

class context;

class response {
 public:
  struct field {
    std::string name;
    std::string value;
  };

  response() = default;
  explicit response(unsigned status) : status(status) {}

  /// text/plain; charset=utf-8
  static response text(std::string body, unsigned status = 200);
  /// text/html; charset=utf-8
  static response html(std::string body, unsigned status = 200);
  /// application/json, serialized with Boost.JSON.
  static response json(boost::json::value const& value, unsigned status = 200);
  /// application/json from text the caller already serialized.
  static response json_text(std::string body, unsigned status = 200);
  /// A redirect (301, 302, 303, 307 or 308) to `location`.
  static response redirect(std::string location, unsigned status = 302);

  /// Replaces every header of that name (case-insensitive).
  void set_header(std::string_view name, std::string value);
  /// Adds a header even if one of that name exists (Set-Cookie, Vary, ...).
  void add_header(std::string name, std::string value);
  std::optional<std::string_view> header(std::string_view name) const;
  void remove_header(std::string_view name);
  auto const& headers() const { return headers_; }

  unsigned status = 200;
  std::string body;
  /// Ask keel to close the connection after this response.
  bool close = false;

  /// Protocol upgrades (WebSocket) and streamed responses (Server-Sent Events)
  /// set this: once the response has come back through the middleware chain,
  /// the session hands its connection to this coroutine instead of writing the
  /// response; the connection ends when it returns. It gets the response as
  /// the chain left it, so headers that middleware set reach the client.
  std::function<task<void>(context&, response const&)> upgrade;

 private:
  boost::container::small_vector<field, 4> headers_;
};

/// The reason phrase of a status code ("Not Found"); "Unknown" for others.
std::string_view reason_phrase(unsigned status);

}  // namespace keel
