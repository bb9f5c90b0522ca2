#pragma once
// keel::testing: run an app in-process on a free port and talk to it over real
// loopback sockets, for keel's own tests and for users' tests of their apps.
//
//   keel::app app(opts);
//   app.get("/hi", hi);
//   keel::testing::running_app running(app);       // listens on 127.0.0.1:0
//   auto r = running.get("/hi");
//   REQUIRE(r.status == 200);
//
// Requests are blocking (the app serves on its own threads) and time out
// after 10 s so a broken server fails a test instead of hanging it.
#include <keel/app.hpp>

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace keel::testing {

struct http_response {
  unsigned status = 0;
  unsigned version = 11;
  std::vector<std::pair<std::string, std::string>> headers;  // in order, names as sent
  std::string body;

  /// The first header of that name (case-insensitive), or empty.
  std::string header(std::string_view name) const;
  bool has_header(std::string_view name) const;
};

using header_list = std::vector<std::pair<std::string, std::string>>;

/// A blocking HTTP/1.1 client on one connection (kept alive between requests).
class client {
 public:
  explicit client(std::uint16_t port, std::string host = "127.0.0.1");
  ~client();
  client(client&&) noexcept;

  http_response request(std::string_view method, std::string_view target, std::string body = {},
                        header_list headers = {});
  http_response get(std::string_view target, header_list headers = {}) {
    return request("GET", target, {}, std::move(headers));
  }
  /// Sends raw bytes (malformed requests, pipelining).
  void send_raw(std::string_view bytes);
  /// Reads one response (after send_raw); HEAD responses need `head_request`.
  http_response read_response(bool head_request = false);
  /// Reads until the server closes or `timeout` passes; returns what arrived.
  std::string read_until_close(std::chrono::milliseconds timeout = std::chrono::seconds(10));
  /// True when the server has closed the connection (waits up to `timeout`).
  bool closed_by_server(std::chrono::milliseconds timeout = std::chrono::seconds(10));
  /// Closes the client side abruptly.
  void close();

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

/// One request on a fresh connection.
http_response request(std::uint16_t port, std::string_view method, std::string_view target,
                      std::string body = {}, header_list headers = {});

/// Starts an app on 127.0.0.1:0 (unless it already listens) and stops it,
/// draining, when destroyed.
class running_app {
 public:
  explicit running_app(app& a);
  ~running_app();
  std::uint16_t port() const { return app_.port(); }
  std::string url() const { return app_.url(); }
  http_response get(std::string_view target, header_list headers = {}) {
    return testing::request(port(), "GET", target, {}, std::move(headers));
  }
  http_response request(std::string_view method, std::string_view target, std::string body = {},
                        header_list headers = {}) {
    return testing::request(port(), method, target, std::move(body), std::move(headers));
  }
  /// Drains now and waits (the destructor then does nothing).
  void stop();

 private:
  app& app_;
  bool stopped_ = false;
};

/// The pause between polls of eventually() (a few milliseconds).
void poll_pause();

/// Polls `pred` every few milliseconds until it holds or `timeout` passes.
template <class Pred>
bool eventually(Pred pred, std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
  auto end = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (pred()) return true;
    if (std::chrono::steady_clock::now() >= end) return false;
    poll_pause();
  }
}

}  // namespace keel::testing
