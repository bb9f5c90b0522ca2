// keel::ws_client: the connection loop (connect, serve, back off, again) around
// the session machinery the server uses (ws_state: one reader, one writer,
// heartbeat). Everything here runs on the client's executor except send(),
// stop() and state(), which only touch atomics, the mutex and post().
#include <keel/log.hpp>
#include <keel/timeout.hpp>
#include <keel/ws_client.hpp>

#include "core/event.hpp"
#include "ws/engine.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/basic_resolver.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/websocket/rfc6455.hpp>
#include <boost/url/parse.hpp>

#include <charconv>
#include <mutex>
#include <stdexcept>

namespace keel {

namespace beast = boost::beast;
namespace bws = boost::beast::websocket;
using boost::system::error_code;

char const* to_string(ws_client_state s) {
  switch (s) {
    case ws_client_state::connecting: return "connecting";
    case ws_client_state::open: return "open";
    case ws_client_state::reconnecting: return "reconnecting";
    case ws_client_state::closed: return "closed";
  }
  return "unknown";
}

namespace detail {

namespace {
using resolver = asio::ip::basic_resolver<asio::ip::tcp, executor>;

// What a wss:// session's stream runs on: the socket, and the TLS context
// the stream was made from, both kept for as long as the session lives.
struct tls_owner {
  tls_owner(executor const& ex, std::shared_ptr<asio::ssl::context> c) : ctx(std::move(c)), socket(ex) {}
  std::shared_ptr<asio::ssl::context> ctx;
  tcp_socket socket;
};

std::shared_ptr<asio::ssl::context> client_tls_context(std::string const& ca_file) {
  auto ctx = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_client);
  SSL_CTX_set_min_proto_version(ctx->native_handle(), TLS1_2_VERSION);
  error_code ec;
  if (!ca_file.empty()) {
    ctx->load_verify_file(ca_file, ec);
    if (ec) throw std::invalid_argument("keel::ws_client: ca_file " + ca_file + " does not load: " + ec.message());
  } else {
    ctx->set_default_verify_paths(ec);
    if (ec) throw std::runtime_error("keel::ws_client: the system CA store does not load: " + ec.message());
  }
  return ctx;
}
}  // namespace

class ws_client_impl : public std::enable_shared_from_this<ws_client_impl> {
 public:
  ws_client_impl(executor const& e, std::string_view url, ws_client_options o)
      : ex(e),
        opts(std::move(o)),
        resolver_(e),
        sleep_timer_(e),
        changed_(e),
        close_timer_(e),
        wd_(watchdog::create(e, opts.connect_timeout)) {
    parse(url);
    if (tls_) tls_ctx_ = client_tls_context(opts.ca_file);
  }

  task<void> run();
  task<ws_message> read();
  bool send(std::string data, bool binary);
  task<void> close(std::uint16_t code, std::string reason);
  void stop();
  task<ws_client_state> wait_state(ws_client_state seen);

  executor ex;
  ws_client_options opts;
  std::function<task<void>(ws_handle)> hook;
  std::atomic<ws_client_state> state{ws_client_state::connecting};
  std::atomic<unsigned> attempts{0};

 private:
  void parse(std::string_view url);
  void set_state(ws_client_state s) {
    state.store(s);
    changed_.notify_all();
  }
  std::shared_ptr<ws_state> current() {
    std::lock_guard lock(mu_);
    return session_;
  }
  void stop_now();
  task<std::shared_ptr<ws_state>> connect_once();
  template <class NextLayer>
  task<std::shared_ptr<ws_state>> connect(std::shared_ptr<ws_session<NextLayer>> s);
  task<bool> serve(std::shared_ptr<ws_state> s);

  std::string host_, host_header_, port_, target_;
  bool tls_ = false;
  std::shared_ptr<asio::ssl::context> tls_ctx_;  // wss:// only
  resolver resolver_;
  steady_timer sleep_timer_;   // the backoff sleep, cut short by stop()
  event changed_;              // wakes wait_state() and read() on changes
  steady_timer close_timer_;   // bounds close(): past close_timeout the connection is cut
  std::shared_ptr<watchdog> wd_;  // the connect_timeout deadline
  std::atomic<bool> stopping_{false};
  bool running_ = false;
  std::uint16_t close_code_ = bws::close_code::normal;
  std::string close_reason_;
  std::shared_ptr<ws_state> connecting_;  // the attempt in progress, for stop()
  std::shared_ptr<ws_state> read_from_;   // the connection read() drains
  std::mutex mu_;                         // session_ is read by send() on any thread
  std::shared_ptr<ws_state> session_;     // the newest connection (kept after it ends)
};

void ws_client_impl::parse(std::string_view url) {
  auto u = boost::urls::parse_uri(url);
  if (!u) throw std::invalid_argument("keel::ws_client: not a URL: " + std::string(url));
  tls_ = u->scheme() == "wss";
  if ((u->scheme() != "ws" && !tls_) || u->host().empty()) {
    throw std::invalid_argument("keel::ws_client: need ws:// or wss://host[:port]/path, got " + std::string(url));
  }
  host_ = u->host_address();
  host_header_ = std::string(u->encoded_host_and_port());  // keeps [] around IPv6
  port_ = tls_ ? "443" : "80";
  if (u->has_port() && !u->port().empty()) {
    auto p = u->port();
    unsigned long n = 0;
    auto [end, err] = std::from_chars(p.data(), p.data() + p.size(), n);
    if (err != std::errc() || end != p.data() + p.size() || n == 0 || n > 65535) {
      throw std::invalid_argument("keel::ws_client: bad port in " + std::string(url));
    }
    port_ = std::string(p);
  }
  target_ = u->encoded_path().empty() ? "/" : std::string(u->encoded_path());
  if (u->has_query()) target_ += "?" + std::string(u->encoded_query());
}

task<void> ws_client_impl::run() {
  auto self = shared_from_this();
  running_ = true;
  backoff retry(opts.reconnect);
  unsigned failed = 0;  // attempts in a row that did not reach open
  while (!stopping_.load()) {
    attempts.fetch_add(1);
    bool opened = false;
    if (auto s = co_await connect_once()) {
      auto since = clock::now();
      opened = co_await serve(s);
      // Only a connection that lasted earns a fresh start: a server that
      // accepts and drops at once still sees growing delays.
      if (opened && clock::now() - since >= opts.reset_after) retry.reset();
    }
    failed = opened ? 0 : failed + 1;
    if (stopping_.load()) break;
    set_state(ws_client_state::reconnecting);
    if (opts.max_attempts && failed >= *opts.max_attempts) break;
    auto delay = retry.next();
    if (opts.on_retry) opts.on_retry(retry.attempts(), delay);
    // No suspension between this check and the wait: stop_now() runs on this
    // executor, so it either ran before (stopping_ is set) or cancels the wait.
    if (stopping_.load()) break;
    sleep_timer_.expires_after(delay);
    co_await sleep_timer_.async_wait(tuple_task);
  }
  wd_->stop();
  running_ = false;
  set_state(ws_client_state::closed);
}

task<std::shared_ptr<ws_state>> ws_client_impl::connect_once() {
  ws_settings settings{opts.max_message, opts.ping_interval, opts.pong_timeout,
                       opts.send_queue,  opts.write_timeout, opts.close_timeout,
                       /*counted=*/false};
  if (tls_) {
    auto owner = std::make_shared<tls_owner>(ex, tls_ctx_);
    auto s = std::make_shared<ws_session<tls_next_layer>>(tls_next_layer(owner->socket, *owner->ctx), settings,
                                                         owner);
    co_return co_await connect(std::move(s));
  }
  auto s = std::make_shared<ws_session<tcp_socket>>(tcp_socket(ex), settings);
  co_return co_await connect(std::move(s));
}

template <class NextLayer>
task<std::shared_ptr<ws_state>> ws_client_impl::connect(std::shared_ptr<ws_session<NextLayer>> s) {
  connecting_ = s;
  if (stopping_.load()) {
    connecting_.reset();
    co_return nullptr;
  }
  auto guarded = asio::bind_cancellation_slot(wd_->slot(), tuple_task);
  wd_->arm_after(opts.connect_timeout);
  std::vector<asio::ip::tcp::endpoint> endpoints;
  error_code ec;
  auto literal = asio::ip::make_address(host_, ec);
  if (!ec) {
    endpoints.emplace_back(literal, static_cast<std::uint16_t>(std::stoul(port_)));
  } else {
    auto [rec, results] = co_await resolver_.async_resolve(host_, port_, guarded);
    ec = rec;
    for (auto const& r : results) endpoints.push_back(r.endpoint());
  }
  if (!ec) {
    auto [cec, ep] = co_await asio::async_connect(beast::get_lowest_layer(s->stream), endpoints, guarded);
    ec = cec;
  }
  if constexpr (std::is_same_v<NextLayer, tls_next_layer>) {
    if (!ec) {
      // The certificate must chain to a trusted CA and name host_ (a DNS name
      // or an IP address SAN); SNI carries names only, never addresses.
      auto& tls = s->stream.next_layer();
      error_code aec;
      asio::ip::make_address(host_, aec);
      if (aec) SSL_set_tlsext_host_name(tls.native_handle(), host_.c_str());
      tls.set_verify_mode(asio::ssl::verify_peer);
      tls.set_verify_callback(asio::ssl::host_name_verification(host_));
      auto [tec] = co_await tls.async_handshake(asio::ssl::stream_base::client, guarded);
      ec = tec;
      if (ec && !stopping_.load()) log::debug("ws_client TLS handshake failed", {{"host", host_}, {"error", ec.message()}});
    }
  }
  if (!ec) {
    auto& stream = s->stream;
    stream.read_message_max(opts.max_message);
    auto headers = opts.headers;
    std::string protocols;
    for (auto const& p : opts.subprotocols) protocols += (protocols.empty() ? "" : ", ") + p;
    stream.set_option(bws::stream_base::decorator([headers, protocols](bws::request_type& req) {
      req.set(beast::http::field::user_agent, "keel");
      if (!protocols.empty()) req.set(beast::http::field::sec_websocket_protocol, protocols);
      for (auto const& [name, value] : headers) req.set(name, value);
    }));
    s->watch_control_frames();
    bws::response_type res;
    auto [hec] = co_await stream.async_handshake(res, host_header_, target_, guarded);
    ec = hec;
    if (!ec) s->subprotocol = std::string(res[beast::http::field::sec_websocket_protocol]);
  }
  wd_->disarm();
  connecting_.reset();
  if (ec || stopping_.load()) {
    s->abort();
    co_return nullptr;
  }
  co_return s;
}

task<bool> ws_client_impl::serve(std::shared_ptr<ws_state> s) {
  // Both are joined below, before this connection is let go.
  s->start({});
  {
    std::lock_guard lock(mu_);
    session_ = s;
  }
  changed_.notify_all();  // read() moves on to this connection
  bool ok = true;
  if (hook) {
    try {
      co_await hook(ws_handle(s));
    } catch (std::exception const& x) {
      ok = false;
      log::warn("ws_client on_connect failed", {{"error", x.what()}});
    } catch (...) {
      ok = false;
    }
  }
  if (!ok) {
    s->request_close(bws::close_code::internal_error, "on_connect failed");
  } else if (stopping_.load()) {
    s->request_close(close_code_, close_reason_);
  } else if (s->open.load()) {
    set_state(ws_client_state::open);
  }
  co_await s->wait_ended();
  co_await s->join_writer();
  co_await s->join_reader();
  co_await s->tasks.join();
  s->open.store(false);
  co_return ok;
}

task<ws_message> ws_client_impl::read() {
  for (;;) {
    if (read_from_) {
      auto m = co_await read_from_->next_message();
      if (m) co_return m;
      // That connection is over and drained: move on, or report the end.
      auto cur = current();
      if (cur != read_from_) {
        read_from_ = cur;
        continue;
      }
      if (state.load() == ws_client_state::closed) co_return m;
    } else if ((read_from_ = current())) {
      continue;
    } else if (state.load() == ws_client_state::closed) {
      ws_message none;
      none.close_code = bws::close_code::abnormal;
      co_return none;
    }
    co_await changed_.async_wait(tuple_task);
  }
}

bool ws_client_impl::send(std::string data, bool binary) {
  if (state.load() != ws_client_state::open) return false;
  auto s = current();
  return s && s->send(std::make_shared<std::string const>(std::move(data)), binary);
}

void ws_client_impl::stop() {
  stopping_.store(true);
  asio::post(ex, [self = shared_from_this()] { self->stop_now(); });
}

void ws_client_impl::stop_now() {
  sleep_timer_.cancel();
  resolver_.cancel();
  if (connecting_) {
    wd_->cancel_now();
    connecting_->abort();
  }
  if (auto s = current(); s && s->open.load()) {
    // A second stop (or a stop after close()) waits for the peer no longer.
    if (s->close_requested()) s->abort();
    else s->request_close(close_code_, close_reason_);
  }
}

task<void> ws_client_impl::close(std::uint16_t code, std::string reason) {
  if (!stopping_.load()) {
    close_code_ = code;
    close_reason_ = std::move(reason);
  }
  stop();
  if (!running_) {
    set_state(ws_client_state::closed);
    co_return;
  }
  // A peer that never answers the close frame must not hold close() forever:
  // past close_timeout (and a margin for the handshake's own bound) the
  // connection is cut. The handler holds no owner, so it cannot outlive us.
  close_timer_.expires_after(opts.close_timeout + std::chrono::milliseconds(500));
  close_timer_.async_wait([weak = weak_from_this()](error_code ec) {
    if (auto self = weak.lock(); self && !ec) self->stop_now();
  });
  while (state.load() != ws_client_state::closed) co_await wait_state(state.load());
  close_timer_.cancel();
}

task<ws_client_state> ws_client_impl::wait_state(ws_client_state seen) {
  while (state.load() == seen) co_await changed_.async_wait(tuple_task);
  co_return state.load();
}

}  // namespace detail

ws_client::ws_client(executor const& ex, std::string_view url, ws_client_options o)
    : impl_(std::make_shared<detail::ws_client_impl>(ex, url, std::move(o))) {}

ws_client::~ws_client() { impl_->stop(); }

void ws_client::on_connect(std::function<task<void>(ws_handle)> hook) { impl_->hook = std::move(hook); }
task<void> ws_client::run() { return impl_->run(); }
task<ws_message> ws_client::read() { return impl_->read(); }
bool ws_client::send(std::string data, bool binary) { return impl_->send(std::move(data), binary); }
task<void> ws_client::close(std::uint16_t code, std::string reason) { return impl_->close(code, std::move(reason)); }
void ws_client::stop() { impl_->stop(); }
ws_client_state ws_client::state() const { return impl_->state.load(); }
task<ws_client_state> ws_client::wait_state(ws_client_state seen) { return impl_->wait_state(seen); }
unsigned ws_client::attempts() const { return impl_->attempts.load(); }

}  // namespace keel
