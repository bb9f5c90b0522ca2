#pragma once
// keel::server: listeners, I/O threads and the connections on them.
//
//   keel::router routes; routes.get("/hello", hello);
//   keel::server srv(opts, routes);
//   srv.listen("127.0.0.1:0");
//   srv.start();                 // threads running, accepting
//   auto port = srv.port();
//   ...
//   srv.stop();                  // graceful drain (SPEC §2), returns at once
//   srv.wait();                  // joins when the drain is over
//
// Threading: one io_context per thread, each run by exactly one thread; the
// acceptor hands each new connection to the next context in turn, and the
// connection lives on that executor for its whole life (docs/architecture.md).
#include <keel/options.hpp>
#include <keel/router.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <string_view>
#include <vector>

namespace keel {

namespace detail {
struct server_state;
}

/// Counters the server keeps whatever middleware is installed.
struct server_stats {
  std::uint64_t connections_active = 0;     ///< HTTP connections open now
  std::uint64_t ws_connections_active = 0;  ///< upgraded connections open now
  std::uint64_t connections_accepted = 0;
  std::uint64_t connections_rejected = 0;   ///< refused at max_connections, max_connections_per_client or for lack of descriptors
  std::uint64_t connections_rejected_per_client = 0;  ///< of those, refused at max_connections_per_client
  std::uint64_t drain_forced_closes = 0;    ///< closed at drain_timeout
  std::uint64_t accept_errors = 0;
};

class server {
 public:
  /// The router must outlive the server; it is frozen by start(). With
  /// tls_cert/tls_key set, loads them and throws keel::config_error naming
  /// the file that does not load, does not match or has expired.
  server(options opts, router& routes);
  ~server();
  server(server const&) = delete;
  server& operator=(server const&) = delete;

  /// Adds a listener ("127.0.0.1:8080", "[::1]:0"). Throws std::system_error
  /// naming the address when it cannot bind. Before start().
  void listen(std::string_view host_port);
  /// The bound port of the i-th listener (useful with port 0); 0 before listen().
  std::uint16_t port(std::size_t i = 0) const;
  /// "http://127.0.0.1:8080" (https:// with TLS) of the i-th listener; empty before listen().
  std::string url(std::size_t i = 0) const;

  /// Whether the listeners speak TLS (options::tls_cert and tls_key set; the
  /// constructor loaded them or threw keel::config_error naming the file).
  bool tls() const;
  /// Loads tls_cert and tls_key again (SIGHUP does this under
  /// run_until_signal()): new connections get the new certificate, open ones
  /// keep theirs. A pair that fails to load is logged and the old one kept;
  /// returns whether the new one took (false without TLS). Thread-safe.
  bool reload_tls();

  /// Raises RLIMIT_NOFILE, starts the threads and begins accepting.
  void start();
  /// Begins the graceful drain: /readyz turns 503 now, accepting stops after
  /// drain_delay, idle connections close, in-flight requests finish with
  /// Connection: close, and at drain_timeout the rest is closed. Thread-safe,
  /// async-signal-unsafe (install signal handling with run_until_signal()).
  void stop();
  /// Blocks until the drain is over and every thread has joined.
  void wait();
  /// start(), then wait for SIGINT/SIGTERM (which call stop()), then wait();
  /// with TLS, SIGHUP meanwhile calls reload_tls().
  /// `on_ready` runs once listening (the apps print their line there).
  void run_until_signal(std::function<void()> const& on_ready = {});

  /// Runs `f` once when the drain begins (stop(), SIGINT, SIGTERM), on the
  /// thread that started it. Register before start().
  void on_stop(std::function<void()> f);

  bool draining() const;
  server_stats stats() const;
  options const& settings() const;
  /// The executor of I/O thread i (for tests and background work).
  executor get_executor(std::size_t thread = 0) const;
  std::size_t thread_count() const;

 private:
  std::unique_ptr<detail::server_state> state_;
};

}  // namespace keel
