#pragma once
// keel::app: a router with a server and the endpoints every keel service has.
//
//   int main(int argc, char** argv) {
//     keel::config cfg("hello");
//     return keel::serve(cfg, argc, argv, [](keel::app& app, keel::config const&) {
//       app.get("/plaintext", [](keel::context&) -> keel::task<keel::response> {
//         co_return keel::response::text("Hello, World!");
//       });
//     });
//   }
//
// serve() reads the configuration (file < environment < flags, SPEC §4),
// answers --help, fails with a message naming a bad setting, registers
// /healthz and /readyz, prints `listening on http://HOST:PORT` once ready and
// drains on SIGINT/SIGTERM, returning 0.
#include <keel/config.hpp>
#include <keel/options.hpp>
#include <keel/router.hpp>
#include <keel/server.hpp>
#include <keel/static_files.hpp>
#include <keel/ws.hpp>

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace keel {

class app : public router {
 public:
  explicit app(options opts = {});
  ~app();

  options const& settings() const { return opts_; }
  /// The server, created on first use (listen/start); settings are fixed then.
  keel::server& server();

  /// A WebSocket route (see keel/ws.hpp).
  route_ref ws(std::string_view pattern, ws_handler h, ws_options o = {}) {
    return add_ws_route(*this, pattern, std::move(h), std::move(o));
  }

  /// Serves the files under `root` at `prefix` (see keel/static_files.hpp).
  route_ref static_files(std::string_view prefix, std::string const& root, static_options o = {}) {
    return add_static_files(*this, prefix, root, std::move(o));
  }

  /// Adds a listener; without one, start() listens on settings().listen.
  void listen(std::string_view host_port);
  /// Starts accepting on the I/O threads and returns.
  void start();
  /// Graceful drain (SPEC §2); returns at once, wait() joins.
  void stop();
  void wait();
  /// start(), print the listening line, serve until SIGINT/SIGTERM, drain. Returns 0.
  int run();

  std::uint16_t port() const;
  std::string url() const;

  /// Where the operational endpoints go (/healthz, /readyz, /metrics from
  /// keel::mw::expose_metrics): this app's own routes, or, with the
  /// `admin_listen` setting, a router of their own served on that address
  /// (plain HTTP, no middleware, one I/O thread) and not on the main listener.
  router& admin_routes();
  /// The admin listener's port once started; 0 without admin_listen.
  std::uint16_t admin_port() const;
  /// The https_redirect listener's port once started; 0 without it.
  std::uint16_t redirect_port() const;

  /// Registers a callback run once when the server starts draining (stop(),
  /// SIGINT or SIGTERM), e.g. to stop background work.
  void on_stop(std::function<void()> f) { server().on_stop(std::move(f)); }

  /// Registers a callback run once after the server has stopped (the drain
  /// finished, every connection closed, the I/O threads joined) and before it
  /// is destroyed: where background work that holds sessions' handles (a
  /// queue of jobs, a Redis-backed hub) is stopped, so that no handle outlives
  /// the I/O contexts its session belongs to. Run by run(), wait() or ~app().
  void on_stopped(std::function<void()> f) { stopped_.push_back(std::move(f)); }

  /// Adds a condition to /readyz: `check` returns empty while ready, else the
  /// reason /readyz's 503 gives (e.g. a backing store that is down). It runs
  /// on an I/O thread per probe: keep it a cheap read of state. Call before start().
  void add_readiness_check(std::function<std::string()> check) { readiness_.push_back(std::move(check)); }

 private:
  void add_builtin_routes();
  void start_side_listeners();
  void stop_side_listeners();
  options opts_;
  std::unique_ptr<keel::server> server_;
  std::unique_ptr<router> admin_routes_;    // before admin_server_: outlives it
  std::unique_ptr<keel::server> admin_server_;
  std::unique_ptr<router> redirect_routes_;  // https_redirect: one middleware, no routes
  std::unique_ptr<keel::server> redirect_server_;
  bool builtins_ = false;
  std::vector<std::function<std::string()>> readiness_;
  std::vector<std::function<void()>> stopped_;
  void run_stopped();
};

/// The standard main(): config, --help, setup, run. Returns the process exit code:
/// 0 after a drain, 2 for bad configuration, 1 when startup fails.
int serve(config& cfg, int argc, char** argv,
          std::function<void(app&, config const&)> const& setup);

}  // namespace keel
