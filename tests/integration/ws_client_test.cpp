// keel::ws_client against real servers: keel's own (in process) and
// python3-websockets' (a child process). Servers die and come back on the
// same port, stop answering pings, or accept and drop; the client reconnects
// with jittered backoff, runs on_connect every time and stops at once.
#include <catch2/catch.hpp>

#include "io_thread.hpp"
#include "test_app.hpp"

#include <keel/metrics.hpp>
#include <keel/ws.hpp>
#include <keel/ws_client.hpp>

#include <boost/asio/ip/tcp.hpp>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <future>
#include <mutex>
#include <set>
#include <thread>

using namespace keel::test;
using keel::task;
using keel::ws_client_state;
namespace kt = keel::testing;
using ms = std::chrono::milliseconds;

extern char** environ;

namespace {

std::uint16_t free_port() {
  boost::asio::io_context ioc;
  boost::asio::ip::tcp::acceptor a(ioc, {boost::asio::ip::make_address("127.0.0.1"), 0});
  return a.local_endpoint().port();
}

bool python_websockets_available() {
  if (::access("/usr/bin/python3", X_OK) != 0) return false;
  return std::system("/usr/bin/python3 -c 'import websockets' >/dev/null 2>&1") == 0;
}

std::string echo_script() {
  char const* src = std::getenv("KEEL_SOURCE_DIR");
  return std::string(src ? src : ".") + "/tests/support/ws_echo_server.py";
}

// tests/support/ws_echo_server.py as a child process on a fixed port.
class python_server {
 public:
  explicit python_server(std::uint16_t port) {
    int fds[2];
    REQUIRE(::pipe(fds) == 0);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
    posix_spawn_file_actions_addclose(&fa, fds[0]);
    auto script = echo_script();
    auto port_s = std::to_string(port);
    char* argv[] = {const_cast<char*>("/usr/bin/python3"), script.data(), port_s.data(), nullptr};
    int rc = posix_spawn(&pid_, "/usr/bin/python3", &fa, nullptr, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    ::close(fds[1]);
    REQUIRE(rc == 0);
    // Wait (bounded) for its "listening" line.
    std::string out;
    auto end = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (out.find('\n') == std::string::npos && std::chrono::steady_clock::now() < end) {
      pollfd p{fds[0], POLLIN, 0};
      if (::poll(&p, 1, 100) <= 0) continue;
      char buf[256];
      auto n = ::read(fds[0], buf, sizeof buf);
      if (n <= 0) break;
      out.append(buf, static_cast<std::size_t>(n));
    }
    ::close(fds[0]);
    REQUIRE(out.rfind("listening", 0) == 0);
  }
  ~python_server() { kill(); }
  void kill() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGCONT);
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }
  void pause() { ::kill(pid_, SIGSTOP); }
  void resume() { ::kill(pid_, SIGCONT); }

 private:
  pid_t pid_ = -1;
};

double metric(std::string const& series) {
  auto text = keel::metrics::global().render();
  auto pos = text.find("\n" + series + " ");
  if (pos == std::string::npos) return 0;
  return std::stod(text.substr(pos + series.size() + 2));
}

std::atomic<int> server_close_code{0};

task<void> echo(keel::websocket& ws) {
  for (;;) {
    auto msg = co_await ws.read();
    if (!msg) {
      server_close_code = msg.close_code;
      co_return;
    }
    ws.send(msg.data, msg.is_binary());
  }
}

// keel's echo server on a fixed port, so it can be stopped and started again.
struct keel_server {
  std::unique_ptr<keel::app> app;
  std::unique_ptr<kt::running_app> running;
  explicit keel_server(std::uint16_t port) {
    app = std::make_unique<keel::app>(test_options());
    app->ws("/echo", echo);
    app->listen("127.0.0.1:" + std::to_string(port));  // running_app would pick port 0
    running = std::make_unique<kt::running_app>(*app);
  }
  void stop() {
    running.reset();
    app.reset();
  }
};

keel::ws_client_options fast_options() {
  keel::ws_client_options o;
  o.reconnect = {ms(20), 2.0, ms(200)};
  o.connect_timeout = ms(500);
  o.close_timeout = ms(500);
  return o;
}

ms ceiling(keel::backoff_options const& b, unsigned attempt) {
  keel::backoff probe(b);
  for (unsigned i = 1; i < attempt; ++i) probe.next();
  return probe.ceiling();
}

// A client running on its own I/O thread, with everything it did recorded.
struct harness {
  io_thread io;
  keel::ws_client_options opts;
  std::unique_ptr<keel::ws_client> client;
  std::future<void> running, reading;
  std::mutex mu;
  std::vector<std::string> received;
  std::vector<bool> binary;
  std::vector<std::pair<unsigned, ms>> retries;
  std::atomic<int> connects{0};
  std::string const hello;  // sent by on_connect through the new link, when set

  int const failing_hooks;  // the first this many on_connect calls throw

  harness(std::string const& url, keel::ws_client_options o, std::string hello_text = {}, int failing = 0)
      : opts(std::move(o)), hello(std::move(hello_text)), failing_hooks(failing) {
    opts.on_retry = [this](unsigned attempt, ms delay) {
      std::lock_guard lock(mu);
      retries.emplace_back(attempt, delay);
    };
    client = std::make_unique<keel::ws_client>(io.executor(), url, opts);
    client->on_connect([this](keel::ws_handle link) -> task<void> {
      if (++connects <= failing_hooks) throw std::runtime_error("auth refused");
      if (!hello.empty()) link.send(hello);
      co_return;
    });
    running = io.spawn(client->run());
    reading = io.spawn(read_all());
  }
  ~harness() {
    client->stop();
    bool ended = running.wait_for(std::chrono::seconds(10)) == std::future_status::ready &&
                 reading.wait_for(std::chrono::seconds(10)) == std::future_status::ready;
    CHECK(ended);
    if (ended) {
      io.get(running);
      io.get(reading);
    }
  }
  task<void> read_all() {
    for (;;) {
      auto m = co_await client->read();
      if (!m) co_return;
      std::lock_guard lock(mu);
      received.push_back(m.data);
      binary.push_back(m.is_binary());
    }
  }
  bool has(std::string const& s) {
    std::lock_guard lock(mu);
    return std::find(received.begin(), received.end(), s) != received.end();
  }
  std::size_t count() {
    std::lock_guard lock(mu);
    return received.size();
  }
  std::size_t retry_count() {
    std::lock_guard lock(mu);
    return retries.size();
  }
  bool is(ws_client_state s) const { return client->state() == s; }
};

}  // namespace

TEST_CASE("ws_client echoes with keel's server and reconnects, running on_connect, after it restarts") {
  auto port = free_port();
  auto server = std::make_unique<keel_server>(port);
  harness h("ws://127.0.0.1:" + std::to_string(port) + "/echo", fast_options(), "hello from on_connect");
  REQUIRE(kt::eventually([&] { return h.is(ws_client_state::open); }));
  CHECK(h.connects == 1);
  REQUIRE(h.client->send("one"));
  REQUIRE(h.client->send(std::string("\x01\x02", 2), true));
  REQUIRE(kt::eventually([&] { return h.count() == 3; }));
  {
    std::lock_guard lock(h.mu);
    CHECK(h.received[0] == "hello from on_connect");  // the hook's link went first
    CHECK(h.received[1] == "one");
    CHECK_FALSE(h.binary[1]);
    CHECK(h.received[2] == std::string("\x01\x02", 2));
    CHECK(h.binary[2]);
  }

  server->stop();  // drain: close 1001 to the client
  REQUIRE(kt::eventually([&] { return h.is(ws_client_state::reconnecting); }));
  CHECK_FALSE(h.client->send("while down"));  // documented: no buffering, false at once
  REQUIRE(kt::eventually([&] { return h.retry_count() >= 2; }));

  server = std::make_unique<keel_server>(port);
  REQUIRE(kt::eventually([&] { return h.is(ws_client_state::open); }));
  CHECK(h.connects == 2);
  REQUIRE(h.client->send("two"));
  REQUIRE(kt::eventually([&] { return h.has("two"); }));
  CHECK_FALSE(h.has("while down"));
}

TEST_CASE("ws_client reconnects to python3-websockets after it is killed and restarted on the same port") {
  if (!python_websockets_available()) {
    WARN("skipped: /usr/bin/python3 with the websockets module is not installed");
    return;
  }
  auto port = free_port();
  auto server = std::make_unique<python_server>(port);
  auto in_before = metric(R"(keel_ws_messages_total{direction="in"})");
  auto out_before = metric(R"(keel_ws_messages_total{direction="out"})");
  harness h("ws://127.0.0.1:" + std::to_string(port) + "/", fast_options());
  REQUIRE(kt::eventually([&] { return h.is(ws_client_state::open); }));
  REQUIRE(h.client->send("before"));
  REQUIRE(kt::eventually([&] { return h.has("before"); }));

  for (int round = 2; round <= 3; ++round) {
    server->kill();
    REQUIRE(kt::eventually([&] { return !h.is(ws_client_state::open); }));
    auto seen = h.retry_count();
    REQUIRE(kt::eventually([&] { return h.retry_count() >= seen + 3; }));  // refused, backing off
    server = std::make_unique<python_server>(port);
    REQUIRE(kt::eventually([&] { return h.is(ws_client_state::open); }));
    CHECK(h.connects == round);
    auto text = "after restart " + std::to_string(round);
    REQUIRE(h.client->send(text));
    REQUIRE(kt::eventually([&] { return h.has(text); }));
  }

  CHECK(metric(R"(keel_ws_messages_total{direction="in"})") == in_before);  // no keel server ran
  CHECK(metric(R"(keel_ws_messages_total{direction="out"})") == out_before);

  // Every reported delay lies within its full-jitter bounds, and they vary.
  std::lock_guard lock(h.mu);
  std::set<ms::rep> distinct;
  for (auto [attempt, delay] : h.retries) {
    CHECK(delay >= ms(0));
    CHECK(delay <= ceiling(h.opts.reconnect, attempt));
    distinct.insert(delay.count());
  }
  CHECK(distinct.size() > 1);
}

TEST_CASE("delays between attempts measured at a server that accepts and drops stay within the backoff bounds") {
  // The listener completes TCP and closes at once, so each handshake fails and
  // the server side sees every attempt; with no success the ceiling only grows.
  boost::asio::io_context ioc;
  boost::asio::ip::tcp::acceptor acceptor(ioc, {boost::asio::ip::make_address("127.0.0.1"), 0});
  acceptor.non_blocking(true);
  std::vector<keel::clock::time_point> accepted;
  std::mutex mu;
  std::atomic<bool> done{false};
  std::thread listener([&] {
    while (!done) {
      pollfd p{acceptor.native_handle(), POLLIN, 0};
      if (::poll(&p, 1, 20) <= 0) continue;
      boost::system::error_code ec;
      auto s = acceptor.accept(ec);
      if (ec) continue;
      std::lock_guard lock(mu);
      accepted.push_back(keel::clock::now());
    }
  });
  struct joiner {
    std::atomic<bool>& done;
    std::thread& t;
    ~joiner() {
      done = true;
      t.join();
    }
  } join{done, listener};

  auto o = fast_options();
  harness h("ws://127.0.0.1:" + std::to_string(acceptor.local_endpoint().port()) + "/", o);
  constexpr std::size_t n = 8;
  REQUIRE(kt::eventually([&] {
    std::lock_guard lock(mu);
    return accepted.size() >= n;
  }));
  h.client->stop();
  REQUIRE(kt::eventually([&] { return h.is(ws_client_state::closed); }));
  CHECK(h.connects == 0);

  std::lock_guard lock(mu), lock2(h.mu);
  REQUIRE(h.retries.size() >= n - 1);
  std::set<ms::rep> distinct;
  for (std::size_t i = 0; i + 1 < n; ++i) {
    auto [attempt, delay] = h.retries[i];
    CHECK(attempt == i + 1);  // no success, no reset: the ceiling keeps growing
    auto gap = std::chrono::duration_cast<ms>(accepted[i + 1] - accepted[i]);
    INFO("attempt " << attempt << ": drew " << delay.count() << " ms, measured " << gap.count() << " ms");
    CHECK(delay <= ceiling(o.reconnect, attempt));
    CHECK(gap >= delay - ms(1));                             // timers never fire early
    CHECK(gap <= ceiling(o.reconnect, attempt) + ms(150));  // plus a failed handshake's time
    distinct.insert(gap.count());
  }
  CHECK(distinct.size() > 1);
}

TEST_CASE("stop() ends a reconnect loop at once, in the middle of a long backoff sleep") {
  auto o = fast_options();
  o.reconnect = {ms(60000), 1.0, ms(60000)};
  harness h("ws://127.0.0.1:" + std::to_string(free_port()) + "/", o);  // nothing listens
  REQUIRE(kt::eventually([&] { return h.retry_count() >= 1; }));
  CHECK(h.is(ws_client_state::reconnecting));
  auto t0 = keel::clock::now();
  h.client->stop();
  REQUIRE(h.running.wait_for(std::chrono::seconds(5)) == std::future_status::ready);
  REQUIRE(h.reading.wait_for(std::chrono::seconds(5)) == std::future_status::ready);  // read() yields closed
  CHECK(keel::clock::now() - t0 < ms(1000));
  CHECK(h.is(ws_client_state::closed));
  CHECK_FALSE(h.client->send("after stop"));
}

TEST_CASE("max_attempts gives up after that many failed attempts in a row") {
  auto o = fast_options();
  o.reconnect = {ms(5), 2.0, ms(20)};
  o.max_attempts = 3;
  harness h("ws://127.0.0.1:" + std::to_string(free_port()) + "/", o);
  REQUIRE(h.running.wait_for(std::chrono::seconds(5)) == std::future_status::ready);
  CHECK(h.is(ws_client_state::closed));
  CHECK(h.client->attempts() == 3);
  CHECK(h.retry_count() == 2);
}

TEST_CASE("heartbeat: a server that stops answering pings is dropped within ping interval plus pong timeout") {
  if (!python_websockets_available()) {
    WARN("skipped: /usr/bin/python3 with the websockets module is not installed");
    return;
  }
  auto port = free_port();
  python_server server(port);
  auto o = fast_options();
  o.ping_interval = ms(100);
  o.pong_timeout = ms(100);
  o.connect_timeout = ms(300);
  auto no_pong_before = metric(R"(keel_ws_dropped_total{reason="no_pong"})");
  harness h("ws://127.0.0.1:" + std::to_string(port) + "/", o);
  REQUIRE(kt::eventually([&] { return h.is(ws_client_state::open); }));

  // Alive and answering: several heartbeat periods pass without a drop.
  auto t_open = keel::clock::now();
  CHECK_FALSE(kt::eventually([&] { return !h.is(ws_client_state::open); }, ms(700)));
  CHECK(keel::clock::now() - t_open >= ms(700));
  CHECK(h.connects == 1);

  server.pause();  // the kernel still ACKs; nothing answers
  auto t0 = keel::clock::now();
  REQUIRE(kt::eventually([&] { return !h.is(ws_client_state::open); }, ms(3000)));
  auto detected = keel::clock::now() - t0;
  INFO("detected after " << std::chrono::duration_cast<ms>(detected).count() << " ms");
  CHECK(detected <= o.ping_interval + o.pong_timeout + ms(250));
  // keel_ws_* metrics are the server's: a client's dead peer is not counted there.
  CHECK(metric(R"(keel_ws_dropped_total{reason="no_pong"})") == no_pong_before);

  server.resume();  // answers again: the client comes back (handshakes timed out meanwhile)
  REQUIRE(kt::eventually([&] { return h.is(ws_client_state::open); }));
  CHECK(h.connects == 2);
}

TEST_CASE("sends from several threads interleave safely and keep each thread's order") {
  auto port = free_port();
  keel_server server(port);
  // A host name, so the resolver path runs too.
  harness h("ws://localhost:" + std::to_string(port) + "/echo", fast_options());
  REQUIRE(kt::eventually([&] { return h.is(ws_client_state::open); }));
  constexpr int threads = 4, each = 250;
  std::atomic<int> refused{0};
  std::vector<std::thread> senders;
  for (int t = 0; t < threads; ++t) {
    senders.emplace_back([&, t] {
      for (int i = 0; i < each; ++i) {
        if (!h.client->send(std::to_string(t) + ":" + std::to_string(i))) refused++;
      }
    });
  }
  for (auto& s : senders) s.join();
  CHECK(refused == 0);
  REQUIRE(kt::eventually([&] { return h.count() == threads * each; }));
  std::lock_guard lock(h.mu);
  std::vector<int> next(threads, 0);
  for (auto const& m : h.received) {
    auto colon = m.find(':');
    auto t = std::stoi(m.substr(0, colon));
    CHECK(std::stoi(m.substr(colon + 1)) == next[t]);
    next[t]++;
  }
}

TEST_CASE("close() sends its code to the server, ends run() and does not reconnect") {
  auto port = free_port();
  keel_server server(port);
  server_close_code = 0;
  harness h("ws://127.0.0.1:" + std::to_string(port) + "/echo", fast_options());
  REQUIRE(kt::eventually([&] { return h.is(ws_client_state::open); }));
  REQUIRE(h.client->send("last words"));
  auto closing = h.io.spawn(h.client->close(4000, "bye"));
  REQUIRE(closing.wait_for(std::chrono::seconds(5)) == std::future_status::ready);
  h.io.get(closing);
  CHECK(h.is(ws_client_state::closed));
  REQUIRE(h.running.wait_for(std::chrono::seconds(5)) == std::future_status::ready);
  REQUIRE(kt::eventually([&] { return server_close_code == 4000; }));
  CHECK(h.connects == 1);
  CHECK(h.client->attempts() == 1);
}

TEST_CASE("an on_connect hook that throws fails that attempt, which is retried with backoff") {
  auto port = free_port();
  keel_server server(port);
  server_close_code = 0;
  harness h("ws://127.0.0.1:" + std::to_string(port) + "/echo", fast_options(), "", 2);
  REQUIRE(kt::eventually([&] { return h.is(ws_client_state::open); }));
  CHECK(h.connects == 3);
  CHECK(h.retry_count() == 2);
  {
    std::lock_guard lock(h.mu);
    CHECK(h.retries[1].first == 2);  // failures in a row: the ceiling grew
  }
  CHECK(kt::eventually([&] { return server_close_code == 1011; }));  // failed attempts close as internal errors
  REQUIRE(h.client->send("in"));
  REQUIRE(kt::eventually([&] { return h.has("in"); }));
}

TEST_CASE("a connection that stayed up for reset_after resets the backoff; a shorter one does not") {
  for (auto reset_after : {ms(50), ms(60000)}) {
    INFO("reset_after " << reset_after.count() << " ms");
    auto port = free_port();
    auto o = fast_options();
    o.reset_after = reset_after;
    harness h("ws://127.0.0.1:" + std::to_string(port) + "/echo", o);
    REQUIRE(kt::eventually([&] { return h.retry_count() >= 3; }));  // nothing listens yet
    auto server = std::make_unique<keel_server>(port);
    REQUIRE(kt::eventually([&] { return h.is(ws_client_state::open); }));
    auto opened = keel::clock::now();
    unsigned before = 0;
    {
      std::lock_guard lock(h.mu);
      before = h.retries.back().first;
    }
    // Polls the clock, not a sleep: the connection must outlive the short reset_after.
    REQUIRE(kt::eventually([&] { return keel::clock::now() - opened > ms(100); }));
    REQUIRE(h.is(ws_client_state::open));
    auto seen = h.retry_count();
    server->stop();
    REQUIRE(kt::eventually([&] { return h.retry_count() > seen; }));
    std::lock_guard lock(h.mu);
    CHECK(h.retries[seen].first == (reset_after == ms(50) ? 1u : before + 1));
  }
}

TEST_CASE("ws_client refuses URLs it cannot serve") {
  io_thread io;
  CHECK_THROWS_AS(keel::ws_client(io.executor(), "http://127.0.0.1/"), std::invalid_argument);
  CHECK_THROWS_AS(keel::ws_client(io.executor(), "https://127.0.0.1/"), std::invalid_argument);
  CHECK_THROWS_AS(keel::ws_client(io.executor(), "not a url"), std::invalid_argument);
  CHECK_THROWS_AS(keel::ws_client(io.executor(), "ws://127.0.0.1:99999/"), std::invalid_argument);
  CHECK_NOTHROW(keel::ws_client(io.executor(), "ws://[::1]:9/path?q=1"));
  CHECK_NOTHROW(keel::ws_client(io.executor(), "ws://localhost/"));
  // wss:// is served (tls_test.cpp); a CA file that does not load is not.
  CHECK_NOTHROW(keel::ws_client(io.executor(), "wss://127.0.0.1/"));
  keel::ws_client_options bad_ca;
  bad_ca.ca_file = "/nonexistent/ca.pem";
  CHECK_THROWS_AS(keel::ws_client(io.executor(), "wss://127.0.0.1/", bad_ca), std::invalid_argument);
}
