#include <keel/http_client.hpp>

#include <keel/context.hpp>
#include <keel/metrics.hpp>

#include "client/http_connection.hpp"
#include "base/trace_ids.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <boost/system/system_error.hpp>
#include <boost/url/parse.hpp>
#include <boost/url/url.hpp>
#include <boost/url/url_view.hpp>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <map>
#include <mutex>
#include <random>
#include <stdexcept>
#include <thread>
#include <variant>

namespace keel {

namespace {

namespace http = boost::beast::http;
namespace urls = boost::urls;
using boost::system::error_code;
using namespace asio::experimental::awaitable_operators;
using detail::http_connection;
using detail::http_slot;
using resolver = asio::ip::basic_resolver<asio::ip::tcp, executor>;

// Where one request goes.
struct target {
  bool tls = false;
  std::string host;         // for connecting, SNI and certificate checks (no brackets)
  std::uint16_t port = 0;
  std::string host_header;  // as in the URL: host[:port]
  std::string origin;       // scheme://host:port, the pool key
  std::string path;         // origin-form request target
};

template <class S>
std::string str(S const& s) {
  return std::string(s.data(), s.size());
}

std::optional<target> parse_target(std::string_view url) {
  auto parsed = urls::parse_uri(url);
  if (!parsed) return std::nullopt;
  auto const& u = *parsed;
  target t;
  if (u.scheme_id() == urls::scheme::https) t.tls = true;
  else if (u.scheme_id() != urls::scheme::http) return std::nullopt;
  if (!u.has_authority() || u.encoded_host().empty() || u.has_userinfo()) return std::nullopt;
  t.host = u.host_address();
  t.port = t.tls ? 443 : 80;
  if (u.has_port()) {
    auto p = u.port();
    unsigned v = 0;
    auto [end, ec] = std::from_chars(p.data(), p.data() + p.size(), v);
    if (ec != std::errc{} || end != p.data() + p.size() || v == 0 || v > 65535) return std::nullopt;
    t.port = static_cast<std::uint16_t>(v);
  }
  t.host_header = str(u.encoded_host_and_port());
  std::string host_lower = str(u.encoded_host());
  std::transform(host_lower.begin(), host_lower.end(), host_lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  t.origin = std::string(t.tls ? "https://" : "http://") + host_lower + ":" + std::to_string(t.port);
  t.path = u.encoded_path().empty() ? "/" : str(u.encoded_path());
  if (u.has_query()) t.path += "?" + str(u.encoded_query());
  return t;
}

bool idempotent(verb m) {
  switch (m) {
    case verb::get: case verb::head: case verb::put: case verb::delete_:
    case verb::options: case verb::trace: return true;
    default: return false;
  }
}

// An I/O error that is really the caller's cancellation propagates as one.
void throw_if_aborted(error_code const& ec) {
  if (ec == asio::error::operation_aborted) throw boost::system::system_error(ec);
}

struct failure {
  http_client_errc why;
  std::string detail;
};

// What the calling request passes on (copied at the start of the call: the
// context belongs to its connection's thread).
struct call_trace {
  bool present = false;
  std::string trace_id;
  std::uint8_t flags = 0;
  std::string tracestate;
  std::string request_id;
};

struct call_plan {
  unsigned max_redirects = 0;
  unsigned retries = 0;
  call_trace trace;
};

struct client_metrics {
  metrics::counter_family requests;
  metrics::histogram_family duration;
  metrics::counter_family retries;
};

client_metrics& met() {
  static client_metrics m = [] {
    auto& reg = metrics::global();
    return client_metrics{
        reg.add_counter_family("keel_http_client_requests_total",
                               "Outbound HTTP calls, by client, host and status (error: no response).",
                               {"client", "host", "status"}),
        reg.add_histogram_family("keel_http_client_request_duration_seconds",
                                 "Outbound HTTP call time, redirects and retries included.",
                                 {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
                                  2.5, 5, 10},
                                 {"client", "host"}),
        reg.add_counter_family("keel_http_client_retries_total",
                               "Outbound attempts repeated, by reason (stale: a pooled connection "
                               "the server had closed; backoff: a configured retry).",
                               {"client", "host", "reason"}),
    };
  }();
  return m;
}

// The metric series of an origin (its host label, its pool's name) are
// shared by every client of the same name in the process: they go when the
// last origin entry holding them is forgotten, and not before.
class series_holds {
 public:
  void hold(std::string const& client, std::string const& host, std::string const& pool_name) {
    std::lock_guard lock(m_);
    ++hosts_[{client, host}];
    ++pools_[pool_name];
  }
  void release(std::string const& client, std::string const& host, std::string const& pool_name) {
    std::lock_guard lock(m_);
    auto& reg = metrics::global();
    if (auto it = hosts_.find({client, host}); it != hosts_.end() && --it->second == 0) {
      hosts_.erase(it);
      met();  // declared before anything is removed from it
      for (auto name : {"keel_http_client_requests_total", "keel_http_client_request_duration_seconds",
                        "keel_http_client_retries_total"})
        reg.remove_series(name, {client, host});
    }
    if (auto it = pools_.find(pool_name); it != pools_.end() && --it->second == 0) {
      pools_.erase(it);
      for (auto name : {"keel_pool_resources", "keel_pool_waiters", "keel_pool_timeouts_total",
                        "keel_pool_created_total", "keel_pool_destroyed_total", "keel_pool_acquire_wait_seconds"})
        reg.remove_series(name, {pool_name});
    }
  }

 private:
  std::mutex m_;
  std::map<std::pair<std::string, std::string>, std::size_t> hosts_;
  std::map<std::string, std::size_t> pools_;
};

series_holds& holds() {
  static series_holds* h = new series_holds;  // never destroyed: clients may outlive statics
  return *h;
}

task<void> sleep_for(std::chrono::milliseconds d) {
  steady_timer t(co_await asio::this_coro::executor);
  t.expires_after(d);
  co_await t.async_wait(use_task);
}

task<void> sleep_until(clock::time_point at) {
  steady_timer t(co_await asio::this_coro::executor);
  t.expires_at(at);
  co_await t.async_wait(use_task);
}

std::chrono::milliseconds full_jitter(std::chrono::milliseconds base, std::chrono::milliseconds cap,
                                      unsigned attempt) {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  auto ceiling = base.count();
  for (unsigned i = 0; i < attempt && ceiling < cap.count(); ++i) ceiling *= 2;
  ceiling = std::min<std::int64_t>(ceiling, cap.count());
  std::uniform_int_distribution<std::int64_t> pick(0, std::max<std::int64_t>(ceiling, 0));
  return std::chrono::milliseconds(pick(rng));
}

// A struct, not a variant: `||` would flatten a variant into its own.
struct call_result {
  std::optional<http_client_response> res;
  std::exception_ptr error;
};

struct exchange_result {
  error_code ec;
  bool got_some = false;  // any byte of a response arrived
  bool keep_alive = false;
  http_client_response res;
};

template <class Stream>
task<exchange_result> exchange_on(Stream& s, boost::beast::flat_buffer& buf,
                                  http::request<http::string_body>& req, http_client_options const& o) {
  exchange_result r;
  auto [wec, wn] = co_await http::async_write(s, req, asio::as_tuple(use_task));
  if (wec) {
    r.ec = wec;
    co_return r;
  }
  http::response_parser<http::string_body> p;
  p.header_limit(static_cast<std::uint32_t>(o.max_response_head));
  p.body_limit(o.max_response_body);
  if (req.method() == verb::head) p.skip(true);
  auto [rec, rn] = co_await http::async_read(s, buf, p, asio::as_tuple(use_task));
  r.got_some = p.got_some() || buf.size() > 0;
  if (rec) {
    r.ec = rec;
    co_return r;
  }
  auto& m = p.get();
  r.res.status = m.result_int();
  for (auto const& f : m) r.res.headers.emplace_back(std::string(f.name_string()), std::string(f.value()));
  r.res.body = std::move(m.body());
  r.keep_alive = m.keep_alive() && p.is_done();
  co_return r;
}

}  // namespace

std::string_view to_string(http_client_errc e) noexcept {
  switch (e) {
    case http_client_errc::bad_url: return "bad_url";
    case http_client_errc::resolve_failed: return "resolve_failed";
    case http_client_errc::connect_failed: return "connect_failed";
    case http_client_errc::tls_failed: return "tls_failed";
    case http_client_errc::timeout: return "timeout";
    case http_client_errc::cancelled: return "cancelled";
    case http_client_errc::too_large: return "too_large";
    case http_client_errc::protocol: return "protocol";
    case http_client_errc::too_many_redirects: return "too_many_redirects";
  }
  return "unknown";
}

std::optional<std::string_view> http_client_response::header(std::string_view name) const {
  for (auto const& [n, v] : headers) {
    if (boost::beast::iequals(n, name)) return std::string_view(v);
  }
  return std::nullopt;
}

boost::json::value http_client_response::json() const {
  error_code ec;
  auto v = boost::json::parse(body, ec);
  if (ec) throw http_client_error(http_client_errc::protocol, "the response body is not JSON: " + ec.message());
  return v;
}

struct http_client::impl {
  explicit impl(http_client_options o) : opts(std::move(o)) {
    if (opts.max_connections_per_origin == 0)
      throw std::invalid_argument("http_client: max_connections_per_origin must be at least 1");
    tls.set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                    asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                    asio::ssl::context::no_tlsv1_1);
    error_code ec;
    if (!opts.ca_file.empty()) {
      tls.load_verify_file(opts.ca_file, ec);
      if (ec) throw std::invalid_argument("http_client: ca_file " + opts.ca_file + " does not load: " + ec.message());
    } else {
      tls.set_default_verify_paths(ec);
      if (ec) throw std::runtime_error("http_client: the system CA store does not load: " + ec.message());
    }
    if (opts.origin_idle_timeout.count() > 0) schedule_forgetting();
    thread = std::thread([this] { ioc.run(); });
  }

  ~impl() {
    {
      std::lock_guard lock(m);
      // Idle connections close while their io_context still runs.
      while (!origins.empty()) forget(origins.begin());
    }
    guard.reset();
    ioc.stop();
    thread.join();
  }

  // One origin: its pool, and what keeps it from being forgotten.
  struct origin_entry {
    std::unique_ptr<keel::pool<http_slot>> slots;  // made at its first connection
    std::string host_label;                  // its metric series' `host`
    std::string pool_name;
    std::size_t calls = 0;  // calls (and redirected attempts) using it now
    clock::time_point last_used;
  };
  using origin_map = std::map<std::string, origin_entry, std::less<>>;

  // Holds t's origin while a call or an attempt uses it: it is not forgotten
  // meanwhile, so neither are its series nor its pool.
  struct origin_use {
    impl& im;
    std::string origin;
    origin_use(impl& i, target const& t) : im(i), origin(t.origin) {
      std::lock_guard lock(im.m);
      auto it = im.origins.find(origin);
      if (it == im.origins.end()) {
        origin_entry e;
        e.host_label = t.host_header;
        e.pool_name = "http_client:" + im.opts.name + ":" + t.origin;
        holds().hold(im.opts.name, e.host_label, e.pool_name);
        it = im.origins.emplace(origin, std::move(e)).first;
      }
      ++it->second.calls;
    }
    ~origin_use() {
      std::lock_guard lock(im.m);
      auto it = im.origins.find(origin);
      if (it == im.origins.end()) return;
      --it->second.calls;
      it->second.last_used = clock::now();
    }
    origin_use(origin_use const&) = delete;
    origin_use& operator=(origin_use const&) = delete;
  };

  // Under m: the pool closes (its idle connections with it), then its series go.
  void forget(origin_map::iterator it) {
    auto& e = it->second;
    e.slots.reset();
    holds().release(opts.name, e.host_label, e.pool_name);
    origins.erase(it);
  }

  // An app calling user-supplied URLs must not keep every origin forever.
  void forget_idle() {
    std::lock_guard lock(m);
    auto now = clock::now();
    for (auto it = origins.begin(); it != origins.end();) {
      auto& e = it->second;
      bool idle = e.calls == 0 && now - e.last_used >= opts.origin_idle_timeout;
      if (idle && e.slots) {
        auto st = e.slots->stats();
        idle = st.in_use == 0 && st.waiters == 0 && st.creating == 0;
      }
      auto next = std::next(it);
      if (idle) forget(it);
      it = next;
    }
  }

  void schedule_forgetting() {
    auto every = std::clamp(opts.origin_idle_timeout / 4, std::chrono::milliseconds(5), std::chrono::milliseconds(1000));
    forget_timer.expires_after(every);
    forget_timer.async_wait([this](error_code ec) {
      if (ec) return;
      forget_idle();
      schedule_forgetting();
    });
  }

  // With t's origin held by an origin_use.
  pool<http_slot>& pool_for(target const& t) {
    std::lock_guard lock(m);
    auto& e = origins.at(t.origin);
    if (e.slots) return *e.slots;
    pool_options<http_slot> po;
    po.max_size = opts.max_connections_per_origin;
    po.max_idle_time = opts.idle_timeout;
    po.max_lifetime = std::chrono::milliseconds(0);
    po.acquire_timeout = std::chrono::milliseconds(0);  // the call's deadline bounds the wait
    po.health_check_interval = std::chrono::milliseconds(0);
    po.metrics_name = e.pool_name;
    po.factory = []() -> task<http_slot> { co_return http_slot{}; };
    e.slots = std::make_unique<pool<http_slot>>(std::move(po));
    return *e.slots;
  }

  task<std::optional<failure>> connect(http_connection& c, target const& t) {
    error_code ec;
    auto addr = asio::ip::make_address(t.host, ec);
    if (!ec) {
      auto [cec] = co_await c.sock.async_connect({addr, t.port}, asio::as_tuple(use_task));
      throw_if_aborted(cec);
      if (cec) co_return failure{http_client_errc::connect_failed, "connect to " + t.host_header + ": " + cec.message()};
    } else {
      resolver r(ioc.get_executor());
      auto [rec, results] = co_await r.async_resolve(t.host, std::to_string(t.port), asio::as_tuple(use_task));
      throw_if_aborted(rec);
      if (rec) co_return failure{http_client_errc::resolve_failed, "resolve " + t.host + ": " + rec.message()};
      auto [cec, ep] = co_await asio::async_connect(c.sock, results, asio::as_tuple(use_task));
      throw_if_aborted(cec);
      if (cec) co_return failure{http_client_errc::connect_failed, "connect to " + t.host_header + ": " + cec.message()};
    }
    c.sock.set_option(asio::ip::tcp::no_delay(true), ec);
    if (!t.tls) co_return std::nullopt;

    c.tls = std::make_unique<asio::ssl::stream<tcp_socket&>>(c.sock, tls);
    asio::ip::make_address(t.host, ec);
    if (ec) {  // SNI carries names only, never addresses (RFC 6066)
      SSL_ctrl(c.tls->native_handle(), SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
               const_cast<char*>(t.host.c_str()));
    }
    if (opts.insecure_skip_verify) {
      c.tls->set_verify_mode(asio::ssl::verify_none);
    } else {
      c.tls->set_verify_mode(asio::ssl::verify_peer);
      c.tls->set_verify_callback(asio::ssl::host_name_verification(t.host));
    }
    auto [hec] = co_await c.tls->async_handshake(asio::ssl::stream_base::client, asio::as_tuple(use_task));
    throw_if_aborted(hec);
    if (hec) co_return failure{http_client_errc::tls_failed, "TLS with " + t.host_header + ": " + hec.message()};
    co_return std::nullopt;
  }

  task<std::variant<std::optional<failure>, std::monostate>> connect_bounded(http_connection& c, target const& t) {
    co_return co_await (connect(c, t) || sleep_for(opts.connect_timeout));
  }

  http::request<http::string_body> build(verb method, target const& t, std::string const& body,
                                          http_headers const& headers, call_trace const& tr) {
    http::request<http::string_body> req{method, t.path, 11};
    req.set(http::field::host, t.host_header);
    req.set(http::field::user_agent, opts.user_agent);
    for (auto const& [n, v] : headers) req.insert(n, v);
    if (tr.present) {
      // A new span per outbound request (SPEC §3); headers the caller set win.
      if (req.find("traceparent") == req.end()) {
        char flags[3];
        std::snprintf(flags, sizeof flags, "%02x", unsigned(tr.flags));
        req.set("traceparent", "00-" + tr.trace_id + "-" + detail::new_span_id() + "-" + flags);
      }
      if (!tr.tracestate.empty() && req.find("tracestate") == req.end()) req.set("tracestate", tr.tracestate);
      if (!tr.request_id.empty() && req.find("X-Request-Id") == req.end()) req.set("X-Request-Id", tr.request_id);
    }
    if (!body.empty() || method == verb::post || method == verb::put || method == verb::patch) {
      req.body() = body;
      req.prepare_payload();
    }
    return req;
  }

  // One request on a pooled connection: a response, or why there is none and
  // whether trying again could help.
  struct attempt {
    std::optional<http_client_response> res;
    failure fail{http_client_errc::protocol, {}};
    bool retryable = false;
  };

  task<attempt> send_once(verb method, target const& t, std::string const& body, http_headers const& headers,
                          call_trace const& tr) {
    auto slot = co_await pool_for(t).acquire();
    // Whatever ends this call early (an error, the deadline, cancellation)
    // leaves the connection in an unknown state: it is closed, not reused.
    struct discard_unless_kept {
      lease<http_slot>& l;
      bool keep = false;
      ~discard_unless_kept() {
        if (!keep) l.invalidate();
      }
    } guard{slot};

    for (bool first = true;; first = false) {
      bool reused = slot->conn != nullptr;
      if (!reused) {
        slot->conn = std::make_unique<http_connection>(ioc);
        auto c = co_await connect_bounded(*slot->conn, t);
        if (c.index() == 1)
          co_return attempt{{}, {http_client_errc::timeout, "connect to " + t.host_header + " timed out"}, true};
        if (auto& f = std::get<0>(c)) co_return attempt{{}, std::move(*f), true};
      }
      auto req = build(method, t, body, headers, tr);
      auto& c = *slot->conn;
      exchange_result x;
      if (c.tls) x = co_await exchange_on(*c.tls, c.buffer, req, opts);
      else x = co_await exchange_on(c.sock, c.buffer, req, opts);
      throw_if_aborted(x.ec);
      if (!x.ec) {
        guard.keep = x.keep_alive;
        co_return attempt{std::move(x.res), {}, false};
      }
      if (x.ec == http::error::body_limit)
        co_return attempt{{}, {http_client_errc::too_large, "the response body from " + t.host_header +
                                   " exceeds max_response_body (" + std::to_string(opts.max_response_body) + " bytes)"}, false};
      if (x.ec == http::error::header_limit)
        co_return attempt{{}, {http_client_errc::too_large, "the response head from " + t.host_header +
                                   " exceeds max_response_head (" + std::to_string(opts.max_response_head) + " bytes)"}, false};
      // A pooled connection the server closed while it sat idle fails before
      // any byte of an answer: the request was not processed, so an
      // idempotent one goes again, once, on a fresh connection.
      if (reused && first && !x.got_some && idempotent(method)) {
        met().retries.labels({opts.name, t.host_header, "stale"}).inc();
        slot->conn.reset();
        continue;
      }
      co_return attempt{{}, {http_client_errc::protocol, t.host_header + ": " + x.ec.message()}, true};
    }
  }

  task<http_client_response> with_retries(verb method, target const& t, std::string const& body,
                                           http_headers const& headers, call_plan const& plan) {
    origin_use in_use(*this, t);  // outlives the leases of the attempts below
    for (unsigned n = 0;; ++n) {
      auto a = co_await send_once(method, t, body, headers, plan.trace);
      bool may_retry = n < plan.retries && idempotent(method);
      if (a.res) {
        auto s = a.res->status;
        if (!(may_retry && (s == 502 || s == 503 || s == 504))) co_return std::move(*a.res);
      } else if (!(may_retry && a.retryable)) {
        throw http_client_error(a.fail.why, a.fail.detail);
      }
      met().retries.labels({opts.name, t.host_header, "backoff"}).inc();
      co_await sleep_for(full_jitter(opts.retry_backoff_base, opts.retry_backoff_cap, n));
    }
  }

  task<http_client_response> call(verb method, std::string url, std::string body, http_headers headers,
                                  call_plan plan) {
    for (unsigned redirects = 0;; ++redirects) {
      auto t = parse_target(url);
      if (!t) throw http_client_error(http_client_errc::bad_url, "not an absolute http(s) URL: " + url);
      auto res = co_await with_retries(method, *t, body, headers, plan);
      bool redirect = res.status == 301 || res.status == 302 || res.status == 303 ||
                      res.status == 307 || res.status == 308;
      auto location = res.header("Location");
      if (!redirect || !location || plan.max_redirects == 0 ||
          (method != verb::get && method != verb::head))
        co_return res;
      if (redirects == plan.max_redirects)
        throw http_client_error(http_client_errc::too_many_redirects,
                                "more than " + std::to_string(plan.max_redirects) + " redirects from " + url);
      auto ref = urls::parse_uri_reference(*location);
      auto base = urls::parse_uri(url);
      urls::url next;
      if (!ref || !base || urls::resolve(*base, *ref, next).has_error())
        throw http_client_error(http_client_errc::protocol, "a redirect to an invalid Location: " + std::string(*location));
      auto next_url = str(next.buffer());
      auto next_target = parse_target(next_url);
      if (next_target && next_target->origin != t->origin) {
        // Credentials are for the origin they were given to (as curl and Go do).
        std::erase_if(headers, [](auto const& h) {
          return boost::beast::iequals(h.first, "Authorization") || boost::beast::iequals(h.first, "Cookie");
        });
      }
      url = std::move(next_url);
    }
  }

  task<call_result> call_caught(verb method, std::string url, std::string body, http_headers headers,
                                call_plan plan) {
    call_result out;
    try {
      // Named, not inside an initializer: g++ 12 mishandles co_await there.
      auto res = co_await call(method, std::move(url), std::move(body), std::move(headers), std::move(plan));
      out.res.emplace(std::move(res));
    } catch (...) {
      out.error = std::current_exception();
    }
    co_return out;
  }

  http_client_options opts;
  asio::io_context ioc{1};
  asio::executor_work_guard<executor> guard{ioc.get_executor()};
  asio::ssl::context tls{asio::ssl::context::tls_client};
  std::thread thread;
  mutable std::mutex m;
  origin_map origins;
  steady_timer forget_timer{ioc.get_executor()};  // on the thread above; gone before ioc
};

http_client::http_client(http_client_options opts) : impl_(std::make_unique<impl>(std::move(opts))) {}
http_client::~http_client() = default;

task<http_client_response> http_client::request(verb method, std::string url, std::string body,
                                                http_headers headers, request_options opts) {
  auto& im = *impl_;
  auto start = clock::now();
  auto deadline = start + (opts.timeout ? *opts.timeout : im.opts.request_timeout);
  call_plan plan;
  plan.max_redirects = opts.max_redirects.value_or(im.opts.max_redirects);
  plan.retries = opts.retries.value_or(im.opts.retries);
  if (opts.ctx) {
    auto& ctx = *opts.ctx;
    if (ctx.deadline() != clock::time_point::max()) {
      deadline = opts.timeout ? std::min(deadline, ctx.deadline()) : ctx.deadline();
    }
    auto& tc = ctx.trace();
    plan.trace = {true, tc.trace_id, tc.flags, tc.tracestate, ctx.request_id()};
  }
  auto host = parse_target(url);
  std::string host_label = host ? host->host_header : "invalid";
  // The series counted below stay while the call holds its origin.
  std::optional<impl::origin_use> in_use;
  if (host) in_use.emplace(im, *host);
  auto count = [&](std::string_view status) {
    met().requests.labels({im.opts.name, host_label, status}).inc();
    met().duration.labels({im.opts.name, host_label})
        .observe(std::chrono::duration<double>(clock::now() - start).count());
  };

  std::variant<call_result, std::monostate> r;
  try {
    std::string shown = url;
    // `||` completes with the first side that succeeds, so the call reports
    // its failure as a value: an exception would make it wait for the timer.
    r = co_await (im.call_caught(method, std::move(url), std::move(body), std::move(headers), std::move(plan)) ||
                  sleep_until(deadline));
    if (r.index() == 1) throw http_client_error(http_client_errc::timeout, "no response from " + shown + " before the deadline");
    if (auto e = std::get<0>(r).error) std::rethrow_exception(e);
  } catch (http_client_error const&) {
    count("error");
    throw;
  } catch (boost::system::system_error const& e) {
    count("error");
    if (e.code() == asio::error::operation_aborted)
      throw http_client_error(http_client_errc::cancelled, "the call was cancelled");
    throw http_client_error(http_client_errc::protocol, e.what());
  }
  auto& res = *std::get<0>(r).res;
  count(std::to_string(res.status));
  co_return std::move(res);
}

namespace {
boost::json::value json_answer(http_client_response const& r) {
  if (r.status < 200 || r.status > 299)
    throw http_client_error(http_client_errc::protocol, "the upstream answered " + std::to_string(r.status));
  if (r.body.empty()) return nullptr;
  return r.json();
}
}  // namespace

task<boost::json::value> http_client::get_json(std::string url, request_options opts) {
  http_headers h{{"Accept", "application/json"}};
  auto r = co_await request(verb::get, std::move(url), {}, std::move(h), opts);
  co_return json_answer(r);
}

task<boost::json::value> http_client::get_json(context& ctx, std::string url) {
  request_options o;
  o.ctx = &ctx;
  return get_json(std::move(url), o);
}

task<boost::json::value> http_client::post_json(std::string url, boost::json::value body,
                                                request_options opts) {
  http_headers h{{"Accept", "application/json"}, {"Content-Type", "application/json"}};
  auto r = co_await request(verb::post, std::move(url), boost::json::serialize(body), std::move(h), opts);
  co_return json_answer(r);
}

task<boost::json::value> http_client::post_json(context& ctx, std::string url, boost::json::value body) {
  request_options o;
  o.ctx = &ctx;
  return post_json(std::move(url), std::move(body), o);
}

std::optional<pool_stats> http_client::stats(std::string_view origin) const {
  std::lock_guard lock(impl_->m);
  auto it = impl_->origins.find(origin);
  if (it == impl_->origins.end() || !it->second.slots) return std::nullopt;
  return it->second.slots->stats();
}

std::size_t http_client::origins() const {
  std::lock_guard lock(impl_->m);
  return impl_->origins.size();
}

}  // namespace keel
