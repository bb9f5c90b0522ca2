#include <keel/server.hpp>

#include <keel/log.hpp>

#include "http/connection.hpp"
#include "http/server_state.hpp"
#include "server/tls_context.hpp"
#include "http/tls_stream.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>

#include <csignal>

#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <optional>
#include <stdexcept>
#include <system_error>

namespace keel {

using detail::connection;
using detail::server_state;
using boost::system::error_code;

namespace detail {

server_state::server_state(options o, router& r) : opts(std::move(o)), routes(r), proxies(opts.trusted_proxies) {
  // Loaded here, before any listener binds: a bad certificate fails startup.
  if (!opts.tls_cert.empty() || !opts.tls_key.empty()) tls = std::make_unique<tls_context>(opts.tls_cert, opts.tls_key);
}

server_state::~server_state() = default;

void server_state::connection_closed() {
  active.fetch_sub(1, std::memory_order_acq_rel);
}

bool client_connections::admit(asio::ip::address const& a, std::size_t cap) {
  std::lock_guard lock(m_);
  auto& n = open_[a];
  if (n >= cap) {
    if (n == 0) open_.erase(a);
    return false;
  }
  ++n;
  return true;
}

void client_connections::release(asio::ip::address const& a) {
  std::lock_guard lock(m_);
  auto it = open_.find(a);
  if (it != open_.end() && --it->second == 0) open_.erase(it);
}

std::size_t client_connections::clients() const {
  std::lock_guard lock(m_);
  return open_.size();
}

}  // namespace detail

namespace {

asio::ip::tcp::endpoint parse_listen(std::string_view host_port) {
  auto colon = host_port.rfind(':');
  if (colon == std::string_view::npos || colon == 0) {
    throw std::invalid_argument("listen address must be HOST:PORT, got \"" + std::string(host_port) + "\"");
  }
  auto host = host_port.substr(0, colon);
  auto port_text = host_port.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  unsigned port = 0;
  auto [p, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (ec != std::errc() || p != port_text.data() + port_text.size() || port > 65535) {
    throw std::invalid_argument("listen address has a bad port: \"" + std::string(host_port) + "\"");
  }
  if (host == "localhost") host = "127.0.0.1";
  error_code aec;
  auto addr = asio::ip::make_address(std::string(host), aec);
  if (aec) {
    throw std::invalid_argument("listen address has a bad host: \"" + std::string(host_port) +
                                "\" (use an IP address)");
  }
  return {addr, static_cast<unsigned short>(port)};
}

std::chrono::milliseconds shortest_timeout(options const& o) {
  auto shortest = std::min({o.header_timeout, o.body_timeout, o.idle_timeout, o.write_timeout,
                            o.handler_timeout});
  if (!o.tls_cert.empty()) shortest = std::min(shortest, o.tls_handshake_timeout);
  return shortest;
}

void raise_descriptor_limit(options const& o) {
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) != 0) return;
  if (lim.rlim_cur < lim.rlim_max) {
    lim.rlim_cur = lim.rlim_max;
    setrlimit(RLIMIT_NOFILE, &lim);
    getrlimit(RLIMIT_NOFILE, &lim);
  }
  // Each connection needs one descriptor; keep some for listeners, logs, files.
  constexpr rlim_t reserve = 64;
  if (lim.rlim_cur != RLIM_INFINITY && o.max_connections + reserve > lim.rlim_cur) {
    throw std::invalid_argument(
        "max_connections " + std::to_string(o.max_connections) + " cannot be held: the descriptor limit is " +
        std::to_string(lim.rlim_cur) + " (raise `ulimit -n` or lower --max-connections)");
  }
}

// A session, then its connection's bookkeeping however it ended (an
// exception still reaches the scope, which logs it).
task<void> own_session(server_state& s, std::shared_ptr<connection> c, std::optional<asio::ip::address> counted) {
  std::exception_ptr failed;
  try {
    if (c->tls) {
      co_await detail::run_tls_session(c);
    } else {
      co_await detail::run_session(c, c->socket);
    }
  } catch (...) {
    failed = std::current_exception();
  }
  c->delist();
  c->wd->stop();
  if (counted) s.per_client.release(*counted);
  s.connection_closed();
  if (failed) std::rethrow_exception(failed);
}

task<void> accept_loop(server_state& s, tcp_acceptor& acceptor) {
  steady_timer backoff(acceptor.get_executor());
  for (;;) {
    auto& target = *s.threads[s.next_thread];
    s.next_thread = (s.next_thread + 1) % s.threads.size();
    asio::ip::tcp::endpoint peer;
    auto [ec, socket] = co_await acceptor.async_accept(target.ioc, peer, asio::as_tuple(use_task));
    if (s.stopping_accept.load()) break;
    if (ec) {
      if (ec == asio::error::operation_aborted || ec == asio::error::bad_descriptor) break;
      s.accept_errors.fetch_add(1, std::memory_order_relaxed);
      if (ec == asio::error::no_descriptors || ec.value() == ENFILE || ec == asio::error::no_buffer_space ||
          ec == asio::error::no_memory) {
        // Out of descriptors: back off instead of spinning on a full queue.
        s.rejected.fetch_add(1, std::memory_order_relaxed);
        backoff.expires_after(std::chrono::milliseconds(50));
        co_await backoff.async_wait(asio::as_tuple(use_task));
      }
      continue;
    }
    if (s.active.load(std::memory_order_relaxed) >= s.opts.max_connections) {
      s.rejected.fetch_add(1, std::memory_order_relaxed);
      error_code ignored;
      socket.close(ignored);
      continue;
    }
    // A trusted proxy carries many clients on its connections, and which one
    // sent a connection is known only from its requests: proxies are not
    // capped per client (docs/configuration.md).
    std::optional<asio::ip::address> counted;
    if (auto client = detail::unmapped(peer.address()); !s.proxies.contains(client)) {
      if (!s.per_client.admit(client, s.opts.max_connections_per_client)) {
        s.rejected.fetch_add(1, std::memory_order_relaxed);
        s.rejected_per_client.fetch_add(1, std::memory_order_relaxed);
        error_code ignored;
        socket.close(ignored);
        continue;
      }
      counted = client;
    }
    s.active.fetch_add(1, std::memory_order_relaxed);
    s.accepted.fetch_add(1, std::memory_order_relaxed);
    auto c = std::make_shared<connection>(std::move(socket), s, target);
    if (s.tls) c->tls = std::make_unique<detail::tls_stream>(c->socket, s.tls->current());
    // The connection's watchdog cancels the session (deadlines, drain, force
    // close); the scope owns it, logs what escapes it and lets drain join it.
    auto slot = c->wd->slot();
    s.sessions.spawn(target.ioc.get_executor(), own_session(s, c, counted), "session", {}, slot);
  }
  s.accept_loops.fetch_sub(1);
}

// Runs each closure on every I/O thread (on its own executor) and waits.
template <class F>
void on_each_thread(server_state& s, F f) {
  for (auto& t : s.threads) {
    asio::post(t->ioc, [&t, f] { f(*t); });
  }
}

task<void> drain(server_state& s) {
  steady_timer timer(s.threads[0]->ioc.get_executor());
  if (s.opts.drain_delay.count() > 0) {
    timer.expires_after(s.opts.drain_delay);
    co_await timer.async_wait(asio::as_tuple(use_task));
  }
  s.stopping_accept.store(true);
  for (auto& a : s.acceptors) {
    error_code ec;
    a->close(ec);
  }
  on_each_thread(s, [](detail::io_thread& t) {
    // Copy: draining may end sessions, which leave the list.
    std::vector<connection*> now(t.connections.begin(), t.connections.end());
    for (auto* c : now) c->drain();
  });
  // The sessions' scope completes when the last one ends; the timer bounds the wait.
  using namespace asio::experimental::awaitable_operators;
  timer.expires_after(s.opts.drain_timeout);
  co_await (s.sessions.join() || timer.async_wait(asio::as_tuple(use_task)));
  if (auto left = s.active.load(); left > 0) {
    s.forced.fetch_add(left);
    log::warn("drain timeout: closing connections", {{"connections", left}});
    on_each_thread(s, [](detail::io_thread& t) {
      std::vector<connection*> now(t.connections.begin(), t.connections.end());
      for (auto* c : now) c->force_close();
    });
    timer.expires_after(std::chrono::seconds(5));
    co_await (s.sessions.join() || timer.async_wait(asio::as_tuple(use_task)));
  }
  {
    std::lock_guard lock(s.done_mutex);
    s.finished = true;
  }
  s.done_cv.notify_all();
  for (auto& t : s.threads) t->guard.reset();
}

}  // namespace

server::server(options opts, router& routes)
    : state_(std::make_unique<server_state>(std::move(opts), routes)) {
  auto& s = *state_;
  s.check_period = shortest_timeout(s.opts);
  auto n = std::max(1u, s.opts.effective_threads());
  for (unsigned i = 0; i < n; ++i) s.threads.push_back(std::make_unique<detail::io_thread>());
}

server::~server() {
  if (state_->started.load()) {
    stop();
    wait();
  }
  // Hooks may own what reads this server (metrics sources): gone before it is.
  state_->stop_hooks.clear();
}

void server::listen(std::string_view host_port) {
  auto& s = *state_;
  if (s.started.load()) throw std::logic_error("keel::server::listen after start()");
  auto ep = parse_listen(host_port);
  auto a = std::make_unique<tcp_acceptor>(s.threads[0]->ioc.get_executor());
  error_code ec;
  a->open(ep.protocol(), ec);
  if (!ec) a->set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec && ep.address().is_v6()) a->set_option(asio::ip::v6_only(true), ec);
  if (!ec) a->bind(ep, ec);
  if (!ec) a->listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    throw std::system_error(ec, "cannot listen on " + std::string(host_port));
  }
  s.endpoints.push_back(a->local_endpoint());
  s.acceptors.push_back(std::move(a));
}

std::uint16_t server::port(std::size_t i) const {
  auto const& eps = state_->endpoints;
  return i < eps.size() ? eps[i].port() : 0;
}

std::string server::url(std::size_t i) const {
  if (i >= state_->endpoints.size()) return {};
  auto const& ep = state_->endpoints[i];
  auto host = ep.address().to_string();
  if (ep.address().is_v6()) host = "[" + host + "]";
  return (state_->tls ? "https://" : "http://") + host + ":" + std::to_string(ep.port());
}

void server::start() {
  auto& s = *state_;
  if (s.started.exchange(true)) throw std::logic_error("keel::server::start called twice");
  if (s.acceptors.empty()) listen(s.opts.listen);
  raise_descriptor_limit(s.opts);
  s.routes.freeze();
  for (auto& t : s.threads) t->guard.emplace(t->ioc.get_executor());
  for (auto& a : s.acceptors) {
    s.accept_loops.fetch_add(1);
    asio::co_spawn(s.threads[0]->ioc.get_executor(), accept_loop(s, *a), [](std::exception_ptr const& e) {
      if (e) log::error("accept loop failed");
    });
  }
  for (auto& t : s.threads) {
    auto* ioc = &t->ioc;
    t->thread = std::thread([ioc] {
      for (;;) {
        try {
          ioc->run();
          return;
        } catch (std::exception const& x) {
          // Sessions catch their own; reaching here is a bug, not a reason to die.
          log::error("exception escaped an I/O thread", {{"error", x.what()}});
        }
      }
    });
  }
}

void server::on_stop(std::function<void()> f) { state_->stop_hooks.push_back(std::move(f)); }

void server::stop() {
  auto& s = *state_;
  if (!s.started.load() || s.draining.exchange(true)) return;
  for (auto& f : s.stop_hooks) {
    try {
      f();
    } catch (std::exception const& x) {
      log::error("stop hook failed", {{"error", x.what()}});
    }
  }
  asio::co_spawn(s.threads[0]->ioc.get_executor(), drain(s), [](std::exception_ptr const& e) {
    if (e) log::error("drain failed");
  });
}

void server::wait() {
  auto& s = *state_;
  for (auto& t : s.threads) {
    if (t->thread.joinable()) t->thread.join();
  }
}

void server::run_until_signal(std::function<void()> const& on_ready) {
  auto& s = *state_;
  start();
  std::atomic<bool> by_signal{false};
  {
    asio::signal_set signals(s.threads[0]->ioc, SIGINT, SIGTERM);
    signals.async_wait([this, &by_signal](error_code ec, int) {
      if (ec) return;
      by_signal = true;
      stop();
    });
    // SIGHUP reloads the certificate and key (TLS only), and keeps listening.
    asio::signal_set hangup(s.threads[0]->ioc);
    std::function<void()> wait_hangup;
    if (s.tls) {
      hangup.add(SIGHUP);
      wait_hangup = [this, &hangup, &wait_hangup] {
        hangup.async_wait([this, &wait_hangup](error_code ec, int) {
          if (ec) return;
          reload_tls();
          wait_hangup();
        });
      };
      wait_hangup();
    }
    if (on_ready) on_ready();
    {
      std::unique_lock lock(s.done_mutex);
      s.done_cv.wait(lock, [&] { return s.finished; });
    }
    // The signal wait is the last work keeping thread 0 alive.
    asio::post(s.threads[0]->ioc, [&signals, &hangup] {
      signals.cancel();
      hangup.cancel();
    });
    wait();
  }
  // Asked to terminate, the process is on its way out: a repeated SIGTERM
  // (a supervisor's second notice) must not turn its clean exit into a kill
  // once the signal sets have given the default action back.
  if (by_signal) {
    std::signal(SIGINT, SIG_IGN);
    std::signal(SIGTERM, SIG_IGN);
  }
}

bool server::draining() const { return state_->draining.load(); }

bool server::tls() const { return state_->tls != nullptr; }

bool server::reload_tls() { return state_->tls && state_->tls->reload(); }

server_stats server::stats() const {
  auto const& s = *state_;
  server_stats st;
  st.connections_active = s.active.load() - std::min(s.active.load(), s.ws_active.load());
  st.ws_connections_active = s.ws_active.load();
  st.connections_accepted = s.accepted.load();
  st.connections_rejected = s.rejected.load();
  st.connections_rejected_per_client = s.rejected_per_client.load();
  st.drain_forced_closes = s.forced.load();
  st.accept_errors = s.accept_errors.load();
  return st;
}

options const& server::settings() const { return state_->opts; }

executor server::get_executor(std::size_t thread) const {
  return state_->threads.at(thread)->ioc.get_executor();
}

std::size_t server::thread_count() const { return state_->threads.size(); }

}  // namespace keel
