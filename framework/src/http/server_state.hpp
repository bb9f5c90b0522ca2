#pragma once
// The server's private state, shared by the accept loop, the sessions and stop().
#include <keel/net.hpp>
#include <keel/options.hpp>
#include <keel/router.hpp>
#include <keel/task_scope.hpp>

#include "http/client_address.hpp"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/ip/address.hpp>

#include <atomic>
#include <list>
#include <memory>
#include <mutex>
#include <condition_variable>
#include <functional>
#include <optional>
#include <thread>
#include <unordered_map>
#include <vector>

namespace keel::detail {

class connection;
class tls_context;

/// One I/O thread: its io_context and the connections living on it. The list is
/// touched only from this thread.
struct io_thread {
  asio::io_context ioc{1};
  std::optional<asio::executor_work_guard<executor>> guard;
  std::thread thread;
  std::list<connection*> connections;
};

/// Open connections per client address, for max_connections_per_client.
/// Touched once at accept and once at close, from any thread.
class client_connections {
 public:
  /// Counts a connection from `a`; false (and nothing counted) at the cap.
  bool admit(asio::ip::address const& a, std::size_t cap);
  void release(asio::ip::address const& a);
  std::size_t clients() const;

 private:
  mutable std::mutex m_;
  std::unordered_map<asio::ip::address, std::size_t> open_;
};

struct server_state {
  server_state(options o, router& r);
  ~server_state();

  options opts;
  router& routes;
  std::chrono::milliseconds check_period{1000};  // the shortest HTTP timeout
  std::vector<std::unique_ptr<io_thread>> threads;
  std::vector<std::unique_ptr<tcp_acceptor>> acceptors;  // live on threads[0]
  std::vector<asio::ip::tcp::endpoint> endpoints;
  std::size_t next_thread = 0;  // accept loop only
  /// Set when tls_cert/tls_key are: every listener speaks TLS.
  std::unique_ptr<tls_context> tls;
  trusted_proxies proxies;  // opts.trusted_proxies, parsed
  client_connections per_client;

  std::atomic<bool> started{false};
  std::atomic<bool> draining{false};
  std::atomic<bool> stopping_accept{false};
  std::atomic<std::uint64_t> active{0};
  std::atomic<std::uint64_t> ws_active{0};
  std::atomic<std::uint64_t> accepted{0};
  std::atomic<std::uint64_t> rejected{0};
  std::atomic<std::uint64_t> rejected_per_client{0};
  std::atomic<std::uint64_t> forced{0};
  std::atomic<std::uint64_t> accept_errors{0};
  std::atomic<unsigned> accept_loops{0};

  std::vector<std::function<void()>> stop_hooks;
  /// Every session (on the I/O threads): drain joins it. Declared after
  /// `threads`, so it is gone before their io_contexts are.
  task_scope sessions;

  std::mutex done_mutex;
  std::condition_variable done_cv;
  bool finished = false;  // under done_mutex: every thread may stop

  void connection_closed();
};

}  // namespace keel::detail
