// wsload: keel's WebSocket load generator (and a few HTTP helpers), on Beast.
//
// One thread, one io_context with the concrete executor, so it costs as little
// CPU per message as the servers it drives. Every mode prints one line of
// key=value pairs on stdout; bench/run parses it. With --pid PID the server's
// CPU (utime+stime of PID and its children, from /proc) or RSS is read around
// the measured window, so connection set-up and warm-up are left out.
//
//   wsload echo      --url ws://H:P/path -c 64 --size 32 -d 5 [--warmup 1] [--pid PID]
//       N connections, one M-byte text message in flight each, for D seconds:
//       msgs/s, p50/p99 round-trip, server CPU µs per message, wsload's own CPU %.
//   wsload echo      --url ws://H:P/path -c 1 --size 32 -n N [--warm W] [--sync] [--idle-pid PID]
//       exactly N round trips (one message in flight per connection) after W
//       (default 0) of warm-up on the same connections. With --sync it prints
//       "ready" after the warm-up and waits for a line on stdin, then prints its
//       result line and waits for another line before it closes the connections:
//       bench/instructions zeroes and dumps callgrind's counters in those pauses.
//       --idle-pid PID (here and in http): each request waits until the server PID
//       sleeps in epoll_wait, so each finds it idle: repeatable instruction counts.
//   wsload idle      --url ws://H:P/path -c 10000 [--settle 2] --pid PID
//       opens and holds N connections: the server's RSS growth per connection.
//   wsload fanout    --url ws://H:P/ws/sub?topic=T --publish http://H:P/publish?topic=T -c N -k K
//                    [--url2 ws://H:P2/ws/sub?topic=T]   every other subscriber on a second instance
//       N subscribers, K publishes one after another: time until the last
//       subscriber has each message, p50/p99/max over the K publishes; with --pid,
//       the server's CPU per delivered message (the publish phase, pauses included).
//   wsload slowloris --url http://H:P/ -c 1000 -d D [--interval 1]
//       N connections each sending a request head one header line a second.
//   wsload http      --url http://H:P/path -n N -c C [--expect BODY] [--idle-pid PID]
//       exactly N requests over C keep-alive connections; checks the body.
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;
using executor = asio::io_context::executor_type;
using socket_t = asio::basic_stream_socket<tcp, executor>;
using timer_t_ = asio::basic_waitable_timer<std::chrono::steady_clock, asio::wait_traits<std::chrono::steady_clock>, executor>;
using ws_t = websocket::stream<socket_t>;
template <class T>
using task = asio::awaitable<T, executor>;
constexpr auto tok = asio::as_tuple(asio::use_awaitable_t<executor>{});
using clk = std::chrono::steady_clock;

namespace {

[[noreturn]] void die(std::string const& why) {
  std::cerr << "wsload: " << why << "\n";
  std::exit(2);
}

struct url {
  std::string host, port, target;
  std::string host_header() const { return host + ":" + port; }
};

url parse_url(std::string u) {
  url r;
  auto scheme = u.find("://");
  if (scheme != std::string::npos) u = u.substr(scheme + 3);
  auto slash = u.find('/');
  std::string hp = u.substr(0, slash);
  r.target = slash == std::string::npos ? "/" : u.substr(slash);
  auto colon = hp.rfind(':');
  if (colon == std::string::npos) die("url needs HOST:PORT: " + u);
  r.host = hp.substr(0, colon);
  r.port = hp.substr(colon + 1);
  return r;
}

struct options {
  std::string mode;
  url target, publish;
  url target2;  ///< fanout: every other subscriber connects here (a second instance)
  int conns = 64;
  std::size_t size = 32;
  double duration = 5, warmup = 1, settle = 2, interval = 1;
  int pid = 0;
  int count = 100;
  long requests = 1000;
  bool has_requests = false;  ///< -n given: echo makes exactly that many round trips
  long warm = 0;              ///< echo -n: warm-up round trips before the counted ones
  bool sync = false;          ///< echo -n: pause for a line on stdin around the counted ones
  int idle_pid = 0;           ///< http, echo -n: before each request, wait until this server idles in epoll_wait
  std::string expect;
  bool has_expect = false;
  int concurrency = 200;
};

// ---- the server's CPU and memory, from /proc --------------------------------

std::vector<int> children_of(int pid) {
  std::vector<int> out;
  DIR* d = opendir("/proc");
  if (!d) return out;
  while (auto* e = readdir(d)) {
    int p = std::atoi(e->d_name);
    if (p <= 0) continue;
    std::ifstream f("/proc/" + std::to_string(p) + "/stat");
    std::string s;
    std::getline(f, s);
    auto close = s.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream in(s.substr(close + 2));
    std::string state;
    int ppid = 0;
    in >> state >> ppid;
    if (ppid == pid) out.push_back(p);
  }
  closedir(d);
  return out;
}

// utime + stime in clock ticks of pid and (recursively) its live children.
long long cpu_ticks(int pid) {
  if (pid <= 0) return 0;
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string s;
  std::getline(f, s);
  auto close = s.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream in(s.substr(close + 2));
  std::string field;
  long long utime = 0, stime = 0;
  // Fields after the command: state(3) ... utime(14) stime(15).
  for (int i = 3; i <= 15; ++i) {
    in >> field;
    if (i == 14) utime = std::atoll(field.c_str());
    if (i == 15) stime = std::atoll(field.c_str());
  }
  long long total = utime + stime;
  for (int c : children_of(pid)) total += cpu_ticks(c);
  return total;
}

long long rss_kib(int pid) {
  if (pid <= 0) return 0;
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  long long kib = 0;
  while (std::getline(f, line))
    if (line.rfind("VmRSS:", 0) == 0) kib = std::atoll(line.c_str() + 6);
  for (int c : children_of(pid)) kib += rss_kib(c);
  return kib;
}

// True when every thread of pid sleeps and one of them in epoll_wait: the server has
// finished everything the last request or message started. Before each request with
// --idle-pid, so every request finds the server idle and takes the same path (without
// it, whether the next request is already there when the server looks decides how
// many wake-ups it takes, and a count under callgrind moves by a few %).
bool server_idle(int pid) {
  std::string base = "/proc/" + std::to_string(pid) + "/task";
  DIR* d = opendir(base.c_str());
  if (!d) return true;  // gone: nothing to wait for
  bool all_sleep = true, in_epoll = false;
  while (auto* e = readdir(d)) {
    if (e->d_name[0] == '.') continue;
    std::string t = base + "/" + e->d_name;
    std::ifstream st(t + "/stat");
    std::string s;
    std::getline(st, s);
    auto close = s.rfind(')');
    if (close == std::string::npos || close + 2 >= s.size()) continue;  // exited meanwhile
    if (s[close + 2] != 'S') all_sleep = false;
    std::ifstream sc(t + "/syscall");
    long nr = -1;
    sc >> nr;
    if (nr == 232 || nr == 281 || nr == 441) in_epoll = true;  // epoll_wait, epoll_pwait, epoll_pwait2 (x86-64)
  }
  closedir(d);
  return all_sleep && in_epoll;
}

void wait_idle(int pid) {
  if (pid <= 0) return;
  for (int i = 0; i < 200'000 && !server_idle(pid); ++i) usleep(50);  // 10 s at most
}

double self_cpu_seconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

double ticks_to_us(long long ticks) { return double(ticks) * 1e6 / double(sysconf(_SC_CLK_TCK)); }

// p in [0,1] of latencies in ns -> ms
double pct_ms(std::vector<std::uint32_t>& v, double p) {
  if (v.empty()) return 0;
  std::size_t i = std::min(v.size() - 1, std::size_t(p * double(v.size())));
  std::nth_element(v.begin(), v.begin() + long(i), v.end());
  return v[i] / 1e6;
}

tcp::endpoint resolve(url const& u) {
  return tcp::endpoint(asio::ip::make_address(u.host), static_cast<unsigned short>(std::stoi(u.port)));
}

task<void> sleep_for(clk::duration d) {
  timer_t_ t(co_await asio::this_coro::executor, d);
  co_await t.async_wait(tok);
}

// Connect and upgrade; false on failure.
task<bool> ws_open(ws_t& ws, url const& u, tcp::endpoint ep) {
  auto [ec] = co_await beast::get_lowest_layer(ws).async_connect(ep, tok);
  if (ec) co_return false;
  beast::get_lowest_layer(ws).set_option(tcp::no_delay(true));
  ws.secure_prng(false);
  auto [hec] = co_await ws.async_handshake(u.host_header(), u.target, tok);
  co_return !hec;
}

// ---- echo ---------------------------------------------------------------------

struct echo_state {
  clk::time_point begin, end;
  bool stop = false;
  std::vector<std::uint32_t> lat;
  std::uint64_t msgs = 0, errors = 0, opened = 0, closed = 0;
};

task<void> echo_conn(echo_state& st, options const& o, tcp::endpoint ep, std::string const& payload) {
  ws_t ws(co_await asio::this_coro::executor);
  if (!co_await ws_open(ws, o.target, ep)) {
    ++st.errors;
    co_return;
  }
  ++st.opened;
  ws.text(true);
  beast::flat_buffer buf;
  while (!st.stop) {
    auto t0 = clk::now();
    auto [wec, wn] = co_await ws.async_write(asio::buffer(payload), tok);
    if (wec) break;
    auto [rec, rn] = co_await ws.async_read(buf, tok);
    if (rec) break;
    auto t1 = clk::now();
    if (buf.size() != payload.size()) ++st.errors;
    buf.consume(buf.size());
    if (t0 >= st.begin && t1 <= st.end) {
      ++st.msgs;
      st.lat.push_back(std::uint32_t(std::min<long long>(
          std::chrono::duration_cast<std::chrono::nanoseconds>(t1 - t0).count(), 4'000'000'000LL)));
    }
  }
  if (!st.stop) ++st.errors;  // the server closed on us
  ++st.closed;
  beast::error_code ignored;
  beast::get_lowest_layer(ws).close(ignored);
}

int run_echo(options const& o) {
  echo_state st;
  asio::io_context ctx(1);  // after the state: its coroutines die first
  st.lat.reserve(1 << 20);
  auto ep = resolve(o.target);
  std::string payload(o.size, 'x');
  auto now = clk::now();
  st.begin = now + std::chrono::duration_cast<clk::duration>(std::chrono::duration<double>(o.warmup));
  st.end = st.begin + std::chrono::duration_cast<clk::duration>(std::chrono::duration<double>(o.duration));
  for (int i = 0; i < o.conns; ++i) asio::co_spawn(ctx.get_executor(), echo_conn(st, o, ep, payload), asio::detached);

  long long t_begin = 0, t_end = 0;
  double c_begin = 0, c_end = 0;
  asio::co_spawn(ctx.get_executor(), [&]() -> task<void> {
    timer_t_ t(co_await asio::this_coro::executor, st.begin);
    co_await t.async_wait(tok);
    t_begin = cpu_ticks(o.pid);
    c_begin = self_cpu_seconds();
    t.expires_at(st.end);
    co_await t.async_wait(tok);
    t_end = cpu_ticks(o.pid);
    c_end = self_cpu_seconds();
    st.stop = true;
    // Connections finish their message in flight; a stuck server must not hang us.
    for (auto until = clk::now() + std::chrono::seconds(3); st.closed < st.opened && clk::now() < until;)
      co_await sleep_for(std::chrono::milliseconds(5));
    ctx.stop();
  }, asio::detached);
  ctx.run();

  double secs = o.duration;
  double server_us = ticks_to_us(t_end - t_begin);
  std::printf("mode=echo conns=%d opened=%llu size=%zu msgs=%llu msgs_per_s=%.0f p50_ms=%.3f p99_ms=%.3f "
              "server_cpu_us_per_msg=%.3f wsload_cpu_pct=%.0f errors=%llu\n",
              o.conns, (unsigned long long)st.opened, o.size, (unsigned long long)st.msgs, double(st.msgs) / secs,
              pct_ms(st.lat, 0.50), pct_ms(st.lat, 0.99), st.msgs ? server_us / double(st.msgs) : 0.0,
              100.0 * (c_end - c_begin) / secs, (unsigned long long)st.errors);
  return st.opened == std::uint64_t(o.conns) && st.msgs > 0 ? 0 : 1;
}

// ---- echo, a fixed count -------------------------------------------------------

struct echo_n_state {
  long remaining = 0, done = 0, errors = 0;
};

// Round trips on one open connection while the shared count lasts.
task<void> echo_n_conn(echo_n_state& st, ws_t& ws, std::string const& payload, int idle_pid) {
  beast::flat_buffer buf;
  while (st.remaining > 0) {
    --st.remaining;
    wait_idle(idle_pid);
    auto [wec, wn] = co_await ws.async_write(asio::buffer(payload), tok);
    if (wec) {
      ++st.errors;
      co_return;
    }
    auto [rec, rn] = co_await ws.async_read(buf, tok);
    if (rec) {
      ++st.errors;
      co_return;
    }
    if (buf.size() != payload.size() || beast::buffers_to_string(buf.data()) != payload) ++st.errors;
    buf.consume(buf.size());
    ++st.done;
  }
}

void wait_for_line() {
  std::string line;
  std::getline(std::cin, line);
}

int run_echo_n(options const& o) {
  asio::io_context ctx(1);
  std::vector<std::unique_ptr<ws_t>> conns;  // after the context: they close first
  auto ep = resolve(o.target);
  std::string payload(o.size, 'x');
  std::uint64_t opened = 0;
  for (int i = 0; i < o.conns; ++i) {
    conns.push_back(std::make_unique<ws_t>(ctx.get_executor()));
    asio::co_spawn(ctx.get_executor(), [&, &ws = *conns.back()]() -> task<void> {
      if (co_await ws_open(ws, o.target, ep)) {
        ws.text(true);
        ++opened;
      }
    }, asio::detached);
  }
  ctx.run();
  if (opened != std::uint64_t(o.conns)) {
    std::printf("mode=echo conns=%d opened=%llu size=%zu msgs=0 errors=1\n", o.conns, (unsigned long long)opened, o.size);
    return 1;
  }
  auto round = [&](long n) {
    echo_n_state st;
    st.remaining = n;
    for (auto& ws : conns) asio::co_spawn(ctx.get_executor(), echo_n_conn(st, *ws, payload, o.idle_pid), asio::detached);
    ctx.restart();
    ctx.run();
    return st;
  };
  auto warm = round(o.warm);
  if (o.sync) {
    std::printf("ready\n");
    std::fflush(stdout);
    wait_for_line();
  }
  auto t0 = clk::now();
  auto st = round(o.requests);
  double secs = std::chrono::duration<double>(clk::now() - t0).count();
  long errors = warm.errors + st.errors;
  std::printf("mode=echo conns=%d opened=%llu size=%zu msgs=%ld errors=%ld seconds=%.3f\n", o.conns,
              (unsigned long long)opened, o.size, st.done, errors, secs);
  std::fflush(stdout);
  if (o.sync) wait_for_line();
  for (auto& ws : conns) {
    beast::error_code ignored;
    beast::get_lowest_layer(*ws).close(ignored);
  }
  return errors == 0 && st.done == o.requests ? 0 : 1;
}

// ---- idle ---------------------------------------------------------------------

struct idle_state {
  int inflight = 0, open = 0, failed = 0, dropped = 0;
};

task<void> idle_conn(idle_state& st, options const& o, tcp::endpoint ep) {
  ws_t ws(co_await asio::this_coro::executor);
  bool ok = co_await ws_open(ws, o.target, ep);
  --st.inflight;
  if (!ok) {
    ++st.failed;
    co_return;
  }
  ++st.open;
  beast::flat_buffer buf;
  bool warmed = false;
  for (;;) {  // answers pings (Beast replies with pongs while reading)
    auto [ec, n] = co_await ws.async_read(buf, tok);
    if (ec) break;
    buf.consume(buf.size());
  }
  --st.open;
  ++st.dropped;
}

int run_idle(options const& o) {
  idle_state st;
  asio::io_context ctx(1);  // after the state: its coroutines die first
  auto ep = resolve(o.target);
  long long before = 0, after = 0;
  double took = 0;
  asio::co_spawn(ctx.get_executor(), [&]() -> task<void> {
    auto ex = co_await asio::this_coro::executor;
    co_await sleep_for(std::chrono::milliseconds(200));
    before = rss_kib(o.pid);
    auto t0 = clk::now();
    for (int i = 0; i < o.conns; ++i) {
      while (st.inflight >= o.concurrency) co_await sleep_for(std::chrono::microseconds(500));
      ++st.inflight;
      asio::co_spawn(ex, idle_conn(st, o, ep), asio::detached);
    }
    while (st.inflight > 0) co_await sleep_for(std::chrono::milliseconds(1));
    took = std::chrono::duration<double>(clk::now() - t0).count();
    co_await sleep_for(std::chrono::duration_cast<clk::duration>(std::chrono::duration<double>(o.settle)));
    after = rss_kib(o.pid);
    ctx.stop();
  }, asio::detached);
  ctx.run();
  double per = st.open ? double(after - before) / st.open : 0;
  std::printf("mode=idle conns=%d open=%d failed=%d dropped=%d rss_before_kib=%lld rss_after_kib=%lld "
              "kib_per_conn=%.2f connect_s=%.2f\n",
              o.conns, st.open, st.failed, st.dropped, before, after, per, took);
  return st.open == o.conns ? 0 : 1;
}

// ---- fan-out --------------------------------------------------------------------

struct fan_state {
  int open = 0, inflight = 0, failed = 0, dropped = 0;
  int warm = 0;  ///< subscribers that have received a warm-up message
  std::vector<clk::time_point> sent, first, last;
  std::vector<int> got;
  bool done = false;
};

task<void> subscriber(fan_state& st, url const& target, tcp::endpoint ep) {
  ws_t ws(co_await asio::this_coro::executor);
  bool ok = co_await ws_open(ws, target, ep);
  --st.inflight;
  if (!ok) {
    ++st.failed;
    co_return;
  }
  ++st.open;
  beast::flat_buffer buf;
  bool warmed = false;
  for (;;) {
    auto [ec, n] = co_await ws.async_read(buf, tok);
    if (ec) break;
    auto now = clk::now();
    auto d = buf.data();
    std::string_view body(static_cast<char const*>(d.data()), d.size());
    if (!warmed && body == "warm-up") {
      warmed = true;
      ++st.warm;
    }
    if (!body.empty() && body[0] >= '0' && body[0] <= '9') {
      std::size_t k = std::strtoul(std::string(body).c_str(), nullptr, 10);
      if (k < st.got.size()) {
        if (st.got[k]++ == 0) st.first[k] = now;
        st.last[k] = now;
      }
    }
    buf.consume(buf.size());
  }
  --st.open;
  if (!st.done) ++st.dropped;
}

// POST body to the publish URL on a kept-alive connection; the delivered count, -1 on error.
task<long> post(socket_t& s, beast::flat_buffer& buf, options const& o, std::string body) {
  http::request<http::string_body> req{http::verb::post, o.publish.target, 11};
  req.set(http::field::host, o.publish.host_header());
  req.set(http::field::content_type, "text/plain");
  req.body() = std::move(body);
  req.prepare_payload();
  auto [wec, wn] = co_await http::async_write(s, req, tok);
  if (wec) co_return -1;
  http::response<http::string_body> res;
  auto [rec, rn] = co_await http::async_read(s, buf, res, tok);
  if (rec || res.result() != http::status::ok) co_return -1;
  auto pos = res.body().find("\"delivered\":");
  if (pos == std::string::npos) co_return 0;
  co_return std::atol(res.body().c_str() + pos + 12);
}

int run_fanout(options const& o) {
  fan_state st;
  asio::io_context ctx(1);  // after the state: its coroutines die first
  st.sent.resize(o.count);
  st.first.resize(o.count);
  st.last.resize(o.count);
  st.got.assign(o.count, 0);
  auto ep = resolve(o.target);
  bool two = !o.target2.host.empty();
  auto ep2 = two ? resolve(o.target2) : ep;
  auto pub_ep = resolve(o.publish);
  int rc = 0, warm_posts = 0;
  std::string failure;
  double cpu0 = 0, cpu1 = 0;
  long long srv0 = 0, srv1 = 0;
  clk::time_point wall0, wall1;
  asio::co_spawn(ctx.get_executor(), [&]() -> task<void> {
    auto ex = co_await asio::this_coro::executor;
    for (int i = 0; i < o.conns; ++i) {
      while (st.inflight >= o.concurrency) co_await sleep_for(std::chrono::microseconds(500));
      ++st.inflight;
      bool second = two && i % 2 == 1;
      asio::co_spawn(ex, subscriber(st, second ? o.target2 : o.target, second ? ep2 : ep), asio::detached);
    }
    while (st.inflight > 0) co_await sleep_for(std::chrono::milliseconds(1));
    socket_t pub(ex);
    beast::flat_buffer buf;
    if (auto [ec] = co_await pub.async_connect(pub_ep, tok); ec) {
      failure = "publisher cannot connect";
      rc = 1;
      ctx.stop();
      co_return;
    }
    pub.set_option(tcp::no_delay(true));
    // Subscriptions are joined after the upgrade completes: publish warm-up
    // messages until the hub reaches every subscriber.
    for (auto until = clk::now() + std::chrono::seconds(20);;) {
      long n = co_await post(pub, buf, o, "warm-up");
      ++warm_posts;
      if (n < 0) {
        failure = "publish failed";
        rc = 1;
        ctx.stop();
        co_return;
      }
      // The publish answer counts the publishing instance's own subscribers
      // only: with two instances, wait for the warm-up to reach every one.
      if (st.open > 0 && (two ? st.warm >= st.open : n >= st.open)) break;
      if (clk::now() > until) {
        failure = "hub never reached every subscriber";
        rc = 1;
        ctx.stop();
        co_return;
      }
      co_await sleep_for(std::chrono::milliseconds(50));
    }
    co_await sleep_for(std::chrono::milliseconds(100));
    cpu0 = self_cpu_seconds();
    srv0 = cpu_ticks(o.pid);
    wall0 = clk::now();
    for (int k = 0; k < o.count; ++k) {
      st.sent[k] = clk::now();
      if (co_await post(pub, buf, o, std::to_string(k)) < 0) {
        failure = "publish failed";
        rc = 1;
        break;
      }
      auto until = clk::now() + std::chrono::seconds(5);
      while (st.got[k] < st.open && clk::now() < until) co_await sleep_for(std::chrono::microseconds(200));
      co_await sleep_for(std::chrono::milliseconds(10));
    }
    cpu1 = self_cpu_seconds();
    srv1 = cpu_ticks(o.pid);
    wall1 = clk::now();
    st.done = true;
    ctx.stop();
  }, asio::detached);
  ctx.run();

  std::vector<std::uint32_t> to_last, to_first;
  int complete = 0;
  for (int k = 0; k < o.count; ++k) {
    if (st.got[k] == 0) continue;
    if (st.got[k] >= st.open) ++complete;
    to_last.push_back(std::uint32_t(std::chrono::duration_cast<std::chrono::nanoseconds>(st.last[k] - st.sent[k]).count()));
    to_first.push_back(std::uint32_t(std::chrono::duration_cast<std::chrono::nanoseconds>(st.first[k] - st.sent[k]).count()));
  }
  auto max_last = to_last.empty() ? 0.0 : *std::max_element(to_last.begin(), to_last.end()) / 1e6;
  std::printf("mode=fanout subscribers=%d open=%d failed=%d dropped=%d publishes=%d complete=%d warmup_posts=%d "
              "first_p50_ms=%.3f last_p50_ms=%.3f last_p99_ms=%.3f last_max_ms=%.3f server_cpu_us_per_delivery=%.3f wsload_cpu_pct=%.0f%s%s\n",
              o.conns, st.open, st.failed, st.dropped, o.count, complete, warm_posts, pct_ms(to_first, 0.5),
              pct_ms(to_last, 0.5), pct_ms(to_last, 0.99), max_last,
              o.pid > 0 && st.open > 0 ? ticks_to_us(srv1 - srv0) / (double(o.count) * st.open) : 0.0,
              wall1 > wall0 ? 100.0 * (cpu1 - cpu0) / std::chrono::duration<double>(wall1 - wall0).count() : 0.0,
              failure.empty() ? "" : " error=",
              failure.empty() ? "" : failure.c_str());
  if (complete != o.count || st.open != o.conns) rc = 1;
  return rc;
}

// ---- slowloris ------------------------------------------------------------------

struct loris_state {
  clk::time_point end;
  long connects = 0, failures = 0, lines = 0;
  int open = 0;
};

task<void> loris_conn(loris_state& st, options const& o, tcp::endpoint ep, int i) {
  auto ex = co_await asio::this_coro::executor;
  // Spread the connections' line times over the interval.
  co_await sleep_for(std::chrono::duration_cast<clk::duration>(std::chrono::duration<double>(o.interval * i / o.conns)));
  while (clk::now() < st.end) {
    socket_t s(ex);
    if (auto [ec] = co_await s.async_connect(ep, tok); ec) {
      ++st.failures;
      co_await sleep_for(std::chrono::milliseconds(100));
      continue;
    }
    ++st.connects;
    ++st.open;
    std::string head = "GET " + o.target.target + " HTTP/1.1\r\nHost: " + o.target.host_header() + "\r\n";
    auto [ec, n] = co_await asio::async_write(s, asio::buffer(head), tok);
    while (!ec && clk::now() < st.end) {
      co_await sleep_for(std::chrono::duration_cast<clk::duration>(std::chrono::duration<double>(o.interval)));
      static char const line[] = "X-Slow: 1\r\n";
      std::tie(ec, n) = co_await asio::async_write(s, asio::buffer(line, sizeof line - 1), tok);
      ++st.lines;
    }
    --st.open;
  }
}

int run_slowloris(options const& o) {
  loris_state st;
  asio::io_context ctx(1);  // after the state: its coroutines die first
  st.end = clk::now() + std::chrono::duration_cast<clk::duration>(std::chrono::duration<double>(o.duration));
  auto ep = resolve(o.target);
  for (int i = 0; i < o.conns; ++i) asio::co_spawn(ctx.get_executor(), loris_conn(st, o, ep, i), asio::detached);
  ctx.run();
  std::printf("mode=slowloris conns=%d connects=%ld failures=%ld lines=%ld\n", o.conns, st.connects, st.failures,
              st.lines);
  return 0;
}

// ---- fixed-count HTTP ---------------------------------------------------------------

struct http_state {
  long remaining = 0, done = 0, errors = 0;
  std::string first_body;
};

task<void> http_conn(http_state& st, options const& o, tcp::endpoint ep) {
  socket_t s(co_await asio::this_coro::executor);
  if (auto [ec] = co_await s.async_connect(ep, tok); ec) {
    ++st.errors;
    co_return;
  }
  s.set_option(tcp::no_delay(true));
  std::string req = "GET " + o.target.target + " HTTP/1.1\r\nHost: " + o.target.host_header() + "\r\n\r\n";
  beast::flat_buffer buf;
  while (st.remaining > 0) {
    --st.remaining;
    wait_idle(o.idle_pid);
    auto [wec, wn] = co_await asio::async_write(s, asio::buffer(req), tok);
    if (wec) {
      ++st.errors;
      co_return;
    }
    http::response_parser<http::string_body> p;
    auto [rec, rn] = co_await http::async_read(s, buf, p, tok);
    if (rec) {
      ++st.errors;
      co_return;
    }
    auto& res = p.get();
    if (st.done == 0) st.first_body = res.body();
    if (res.result() != http::status::ok || (o.has_expect && res.body() != o.expect)) ++st.errors;
    ++st.done;
  }
}

int run_http(options const& o) {
  http_state st;
  asio::io_context ctx(1);  // after the state: its coroutines die first
  st.remaining = o.requests;
  auto ep = resolve(o.target);
  for (int i = 0; i < o.conns; ++i) asio::co_spawn(ctx.get_executor(), http_conn(st, o, ep), asio::detached);
  auto t0 = clk::now();
  ctx.run();
  double secs = std::chrono::duration<double>(clk::now() - t0).count();
  std::printf("mode=http requests=%ld errors=%ld seconds=%.3f\n", st.done, st.errors, secs);
  if (o.has_expect && st.done > 0 && st.first_body != o.expect)
    std::fprintf(stderr, "wsload: body %s, expected %s\n", st.first_body.c_str(), o.expect.c_str());
  return st.errors == 0 && st.done == o.requests ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) die("usage: wsload echo|idle|fanout|slowloris|http [options] (see the source's head)");
  options o;
  o.mode = argv[1];
  for (int i = 2; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) die("missing value after " + a);
      return argv[++i];
    };
    if (a == "--url") o.target = parse_url(next());
    else if (a == "--publish") o.publish = parse_url(next());
    else if (a == "--url2") o.target2 = parse_url(next());
    else if (a == "-c" || a == "--conns") o.conns = std::stoi(next());
    else if (a == "--size") o.size = std::stoul(next());
    else if (a == "-d" || a == "--duration") o.duration = std::stod(next());
    else if (a == "--warmup") o.warmup = std::stod(next());
    else if (a == "--settle") o.settle = std::stod(next());
    else if (a == "--interval") o.interval = std::stod(next());
    else if (a == "--pid") o.pid = std::stoi(next());
    else if (a == "-k" || a == "--count") o.count = std::stoi(next());
    else if (a == "-n" || a == "--requests") o.requests = std::stol(next()), o.has_requests = true;
    else if (a == "--warm") o.warm = std::stol(next());
    else if (a == "--sync") o.sync = true;
    else if (a == "--idle-pid") o.idle_pid = std::stoi(next());
    else if (a == "--expect") o.expect = next(), o.has_expect = true;
    else if (a == "--concurrency") o.concurrency = std::max(1, std::stoi(next()));
    else die("unknown option " + a);
  }
  if (o.target.host.empty()) die("--url is required");
  if (o.conns < 1) die("-c must be at least 1");

  // 10 000 connections need more descriptors than the default soft limit.
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  std::signal(SIGPIPE, SIG_IGN);

  if (o.mode == "echo") return o.has_requests ? run_echo_n(o) : run_echo(o);
  if (o.mode == "idle") return run_idle(o);
  if (o.mode == "fanout") {
    if (o.publish.host.empty()) die("fanout needs --publish");
    return run_fanout(o);
  }
  if (o.mode == "slowloris") return run_slowloris(o);
  if (o.mode == "http") return run_http(o);
  die("unknown mode " + o.mode);
}
