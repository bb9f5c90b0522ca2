// keel's TLS listener in process, against keel's own clients (http_client,
// ws_client over wss://) and a raw Asio SSL client: certificates the test
// makes with the openssl CLI, startup refusals naming the file, reload
// without dropping open connections, the handshake deadline, SSE over TLS,
// and drain. Timeouts are set to milliseconds through options.
#include <catch2/catch.hpp>

#include "io_thread.hpp"
#include "test_app.hpp"

#include <keel/config.hpp>
#include <keel/http_client.hpp>
#include <keel/metrics.hpp>
#include <keel/sse.hpp>
#include <keel/ws.hpp>
#include <keel/ws_client.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/write.hpp>

#include <array>
#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <thread>

using namespace keel::test;
using keel::task;
namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;
namespace fs = std::filesystem;
namespace kt = keel::testing;
using ms = std::chrono::milliseconds;

namespace {

std::string temp_dir() {
  std::string pattern = (fs::temp_directory_path() / "keel-tls-XXXXXX").string();
  REQUIRE(mkdtemp(pattern.data()) != nullptr);
  return pattern;
}

// Two CAs and server certificates for localhost and 127.0.0.1: `good` and
// `expired` from ca, `good2` from ca2; `other.key` matches neither.
struct test_pki {
  std::string dir = temp_dir();
  test_pki() {
    std::string ec = " -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    std::string cmd = "cd " + dir + " && openssl req -x509" + ec + " -keyout ca.key -out ca.pem -days 2 -subj /CN=t-ca" +
                      " && openssl req -x509" + ec + " -keyout ca2.key -out ca2.pem -days 2 -subj /CN=t-ca2" +
                      " && printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\nbasicConstraints=CA:FALSE\\n' > ext.cnf" +
                      cert("good", "ca", 2) + cert("good2", "ca2", 2) + cert("expired", "ca", -1) +
                      " && openssl genpkey -algorithm ec -pkeyopt ec_paramgen_curve:prime256v1 -out other.key";
    REQUIRE(std::system(("(" + cmd + ") > " + dir + "/openssl.log 2>&1").c_str()) == 0);
  }
  static std::string cert(std::string const& name, std::string const& ca, int days) {
    return " && openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout " + name + ".key -out " +
           name + ".csr -subj /CN=" + name + " && openssl x509 -req -in " + name + ".csr -CA " + ca + ".pem -CAkey " +
           ca + ".key -CAcreateserial -out " + name + ".pem -days " + std::to_string(days) + " -extfile ext.cnf";
  }
  std::string path(std::string const& f) const { return dir + "/" + f; }
  ~test_pki() { fs::remove_all(dir); }
};

test_pki const& pki() {
  static test_pki p;
  return p;
}

keel::options tls_options(std::string const& cert, std::string const& key) {
  auto o = test_options();
  o.tls_cert = cert;
  o.tls_key = key;
  return o;
}

task<void> echo(keel::websocket& ws) {
  for (;;) {
    auto m = co_await ws.read();
    if (!m) co_return;
    ws.send(std::move(m.data), m.is_binary());
  }
}

task<keel::response> hello(keel::context&) { co_return keel::response::text("hello over tls"); }

task<void> ticks(keel::sse_stream& events) {
  for (int i = 0; i < 3; ++i) {
    if (!co_await events.send("tick", std::to_string(i))) co_return;
  }
  co_await events.wait_closed();
}

// Runs one operation on `ioc` for at most 10 s; a stuck one is cancelled
// (through `cancel`) and reports timed_out, so a broken server fails the test.
template <class Start, class Cancel>
boost::system::error_code bounded(asio::io_context& ioc, Start start, Cancel cancel) {
  boost::system::error_code result = asio::error::timed_out;
  bool done = false;
  start([&](boost::system::error_code ec, auto&&...) {
    result = ec;
    done = true;
  });
  ioc.restart();
  ioc.run_for(std::chrono::seconds(10));
  if (!done) {
    cancel();
    ioc.restart();
    ioc.run();
    return asio::error::timed_out;
  }
  return result;
}

// One verified TLS connection from the test, on its own io_context, kept
// alive between requests.
class tls_client {
 public:
  tls_client(std::uint16_t port, std::string const& ca_file) : ctx_(ssl::context::tls_client), stream_(ioc_, ctx_) {
    ctx_.load_verify_file(ca_file);
    stream_.set_verify_mode(ssl::verify_peer);
    stream_.set_verify_callback(ssl::host_name_verification("localhost"));
    SSL_set_tlsext_host_name(stream_.native_handle(), "localhost");
    stream_.next_layer().connect({asio::ip::make_address("127.0.0.1"), port});
    handshake_error = bounded(
        ioc_, [&](auto h) { stream_.async_handshake(ssl::stream_base::client, h); }, [&] { cancel(); });
  }
  void send(std::string const& bytes) {
    boost::system::error_code ec;
    asio::write(stream_, asio::buffer(bytes), ec);
  }
  /// One keep-alive GET; returns the body, or empty when the connection failed.
  std::string get(std::string const& target) {
    send("GET " + target + " HTTP/1.1\r\nHost: localhost\r\n\r\n");
    for (;;) {
      auto end = buf_.find("\r\n\r\n");
      if (end != std::string::npos) {
        auto cl = buf_.find("Content-Length: ");
        if (cl != std::string::npos && cl < end) {
          auto n = std::stoul(buf_.substr(cl + 16));
          if (buf_.size() >= end + 4 + n) {
            auto body = buf_.substr(end + 4, n);
            buf_.erase(0, end + 4 + n);
            return body;
          }
        }
      }
      if (read_more()) return {};
    }
  }
  /// Reads until `text` arrived or the connection ended; returns all read.
  std::string read_until(std::string const& text) {
    while (buf_.find(text) == std::string::npos && !read_more()) {
    }
    return buf_;
  }
  /// True when the server ends the connection (close_notify or EOF) within 10 s.
  bool closed_by_server() {
    boost::system::error_code ec;
    while (!(ec = read_more())) {
    }
    return ec != asio::error::timed_out;
  }
  boost::system::error_code handshake_error;

 private:
  boost::system::error_code read_more() {
    std::size_t got = 0;
    auto ec = bounded(
        ioc_,
        [&](auto h) {
          stream_.async_read_some(asio::buffer(tmp_), [&got, h](boost::system::error_code e, std::size_t n) mutable {
            got = n;
            h(e);
          });
        },
        [&] { cancel(); });
    buf_.append(tmp_.data(), got);
    return ec;
  }
  void cancel() {
    boost::system::error_code ignored;
    stream_.next_layer().cancel(ignored);
  }
  asio::io_context ioc_;
  ssl::context ctx_;
  ssl::stream<asio::ip::tcp::socket> stream_;
  std::array<char, 4096> tmp_{};
  std::string buf_;
};

double metric(std::string const& series) {
  auto text = keel::metrics::global().render();
  auto pos = text.find("\n" + series + " ");
  if (pos == std::string::npos) return 0;
  return std::stod(text.substr(pos + series.size() + 2));
}

std::string config_error_of(keel::options o) {
  keel::router r;
  try {
    keel::server s(std::move(o), r);
  } catch (keel::config_error const& e) {
    return e.what();
  }
  return "(no config_error)";
}

void copy_over(std::string const& from, std::string const& to) {
  fs::copy_file(from, to, fs::copy_options::overwrite_existing);
}

}  // namespace

TEST_CASE("A TLS listener says https and serves keel::http_client, which verifies it with the CA") {
  auto const& p = pki();
  keel::app app(tls_options(p.path("good.pem"), p.path("good.key")));
  app.get("/hello", hello);
  kt::running_app running(app);
  CHECK(running.url().rfind("https://127.0.0.1:", 0) == 0);

  io_thread io;
  keel::http_client_options trusting;
  trusting.ca_file = p.path("ca.pem");
  keel::http_client client(trusting);
  auto url = "https://localhost:" + std::to_string(running.port()) + "/hello";
  auto r = io.result(client.get(url));
  CHECK(r.status == 200);
  CHECK(r.body == "hello over tls");
  // The pooled connection is kept alive over TLS.
  CHECK(io.result(client.get(url)).body == "hello over tls");
  CHECK(client.stats("https://localhost:" + std::to_string(running.port()))->created == 1);

  keel::http_client_options other;
  other.ca_file = p.path("ca2.pem");
  keel::http_client distrusting(other);
  CHECK_THROWS_AS(io.result(distrusting.get(url)), keel::http_client_error);
}

TEST_CASE("A certificate or key that does not load, match or is valid fails construction naming the file") {
  auto const& p = pki();
  auto expired = config_error_of(tls_options(p.path("expired.pem"), p.path("expired.key")));
  CHECK_THAT(expired, Catch::Contains(p.path("expired.pem")) && Catch::Contains("expired"));
  auto mismatch = config_error_of(tls_options(p.path("good.pem"), p.path("other.key")));
  CHECK_THAT(mismatch, Catch::Contains(p.path("other.key")) && Catch::Contains("does not match"));
  auto missing = config_error_of(tls_options(p.path("absent.pem"), p.path("good.key")));
  CHECK_THAT(missing, Catch::Contains(p.path("absent.pem")));
  auto key_is_cert = config_error_of(tls_options(p.path("good.pem"), p.path("good.pem")));
  CHECK_THAT(key_is_cert, Catch::Contains(p.path("good.pem")) && Catch::Contains("tls_key"));
  auto half = config_error_of(tls_options(p.path("good.pem"), ""));
  CHECK_THAT(half, Catch::Contains("--tls-key"));
}

TEST_CASE("keel::ws_client speaks wss:// to keel's TLS server and verifies its certificate and host") {
  auto const& p = pki();
  keel::app app(tls_options(p.path("good.pem"), p.path("good.key")));
  app.ws("/echo", echo);
  kt::running_app running(app);
  auto port = std::to_string(running.port());

  io_thread io;
  keel::ws_client_options o;
  o.ca_file = p.path("ca.pem");
  o.connect_timeout = ms(5000);
  o.close_timeout = ms(500);
  for (auto host : {"localhost", "127.0.0.1"}) {
    keel::ws_client client(io.executor(), std::string("wss://") + host + ":" + port + "/echo", o);
    auto run = io.spawn(client.run());
    auto talk = [&client]() -> task<std::string> {
      while (client.state() != keel::ws_client_state::open) {
        if (client.state() == keel::ws_client_state::closed) co_return "closed";
        co_await client.wait_state(client.state());
      }
      client.send(std::string(20000, 'z'));
      client.send("over wss");
      auto big = co_await client.read();
      auto m = co_await client.read();
      co_await client.close();
      co_return big.data.size() == 20000 ? m.data : "bad big message";
    };
    auto reply = io.spawn(talk());
    REQUIRE(reply.wait_for(std::chrono::seconds(20)) == std::future_status::ready);
    CHECK(io.get(reply) == "over wss");
    REQUIRE(run.wait_for(std::chrono::seconds(10)) == std::future_status::ready);
    io.get(run);
  }

  SECTION("a certificate from a CA the client does not trust fails the attempt") {
    auto untrusting = o;
    untrusting.ca_file = p.path("ca2.pem");
    untrusting.max_attempts = 1;
    keel::ws_client client(io.executor(), "wss://localhost:" + port + "/echo", untrusting);
    auto run = io.spawn(client.run());
    REQUIRE(run.wait_for(std::chrono::seconds(10)) == std::future_status::ready);
    io.get(run);
    CHECK(client.state() == keel::ws_client_state::closed);
    CHECK(client.attempts() == 1);
  }
  SECTION("the system CA store does not know the test CA") {
    auto system = o;
    system.ca_file.clear();
    system.max_attempts = 1;
    keel::ws_client client(io.executor(), "wss://localhost:" + port + "/echo", system);
    auto run = io.spawn(client.run());
    REQUIRE(run.wait_for(std::chrono::seconds(10)) == std::future_status::ready);
    io.get(run);
    CHECK(client.state() == keel::ws_client_state::closed);
  }
  SECTION("a ca_file that does not load is refused at construction") {
    auto bad = o;
    bad.ca_file = p.path("absent.pem");
    CHECK_THROWS_AS(keel::ws_client(io.executor(), "wss://localhost:" + port + "/echo", bad), std::invalid_argument);
  }
}

TEST_CASE("reload_tls gives new connections the new certificate while an open one keeps working") {
  auto const& p = pki();
  auto dir = temp_dir();
  auto cert = dir + "/live.pem", key = dir + "/live.key";
  copy_over(p.path("good.pem"), cert);
  copy_over(p.path("good.key"), key);
  keel::app app(tls_options(cert, key));
  app.get("/hello", hello);
  kt::running_app running(app);

  tls_client old(running.port(), p.path("ca.pem"));
  REQUIRE(!old.handshake_error);
  CHECK(old.get("/hello") == "hello over tls");

  copy_over(p.path("good2.pem"), cert);
  copy_over(p.path("good2.key"), key);
  REQUIRE(app.server().reload_tls());
  tls_client fresh(running.port(), p.path("ca2.pem"));
  CHECK(!fresh.handshake_error);
  CHECK(fresh.get("/hello") == "hello over tls");
  tls_client stale(running.port(), p.path("ca.pem"));
  CHECK(stale.handshake_error);  // the old certificate is no longer served
  CHECK(old.get("/hello") == "hello over tls");

  // A pair that does not load is refused and the working one kept.
  std::ofstream(key) << "garbage\n";
  CHECK_FALSE(app.server().reload_tls());
  tls_client still(running.port(), p.path("ca2.pem"));
  CHECK(!still.handshake_error);
  CHECK(still.get("/hello") == "hello over tls");
  fs::remove_all(dir);
}

TEST_CASE("tls_handshake_timeout closes a connection that never sends a ClientHello") {
  auto const& p = pki();
  auto o = tls_options(p.path("good.pem"), p.path("good.key"));
  o.tls_handshake_timeout = ms(150);
  keel::app app(o);
  app.get("/hello", hello);
  kt::running_app running(app);

  asio::io_context ioc;
  asio::ip::tcp::socket sock(ioc);
  sock.connect({asio::ip::make_address("127.0.0.1"), running.port()});
  auto start = std::chrono::steady_clock::now();
  char byte;
  auto failures_before = metric("keel_tls_handshake_failures_total");
  auto ec = bounded(
      ioc, [&](auto h) { sock.async_read_some(asio::buffer(&byte, 1), h); }, [&] { sock.cancel(); });
  auto took = std::chrono::steady_clock::now() - start;
  CHECK(metric("keel_tls_handshake_failures_total") == failures_before + 1);
  CHECK((ec == asio::error::eof || ec == asio::error::connection_reset));
  CHECK(took >= ms(100));
  CHECK(took < std::chrono::seconds(5));
  // The deadline cut that connection only.
  tls_client ok(running.port(), p.path("ca.pem"));
  CHECK(ok.get("/hello") == "hello over tls");
}

TEST_CASE("Server-Sent Events stream over TLS, and drain ends them and idle TLS connections") {
  auto const& p = pki();
  keel::app app(tls_options(p.path("good.pem"), p.path("good.key")));
  app.get("/hello", hello);
  keel::add_sse_route(app, "/ticks", ticks);
  auto running = std::make_unique<kt::running_app>(app);

  tls_client events(running->port(), p.path("ca.pem"));
  REQUIRE(!events.handshake_error);
  events.send("GET /ticks HTTP/1.1\r\nHost: localhost\r\n\r\n");
  auto got = events.read_until("data: 2\n\n");
  CHECK_THAT(got, Catch::StartsWith("HTTP/1.1 200") && Catch::Contains("text/event-stream"));
  CHECK_THAT(got, Catch::Contains("event: tick\ndata: 0\n\n") && Catch::Contains("event: tick\ndata: 2\n\n"));

  tls_client idle(running->port(), p.path("ca.pem"));
  CHECK(idle.get("/hello") == "hello over tls");

  auto start = std::chrono::steady_clock::now();
  running.reset();  // stop() and wait(): the drain
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(4));
  CHECK(events.closed_by_server());
  CHECK(idle.closed_by_server());
}

TEST_CASE("https_redirect answers plain HTTP with a 308 to the same target on the https listener") {
  auto const& p = pki();
  auto o = tls_options(p.path("good.pem"), p.path("good.key"));
  o.https_redirect = "127.0.0.1:0";
  keel::app app(o);
  app.get("/hello", hello);
  kt::running_app running(app);
  auto from = app.redirect_port();
  REQUIRE(from != 0);
  auto https_port = std::to_string(running.port());

  auto r = kt::request(from, "GET", "/hello?x=1&y=%20", {}, {{"Host", "localhost:" + std::to_string(from)}});
  CHECK(r.status == 308);
  CHECK(r.header("Location") == "https://localhost:" + https_port + "/hello?x=1&y=%20");
  // Any method and any path, routes or not: 308 keeps the method and body.
  auto post = kt::request(from, "POST", "/nowhere", "body", {{"Host", "[::1]:8080"}});
  CHECK(post.status == 308);
  CHECK(post.header("Location") == "https://[::1]:" + https_port + "/nowhere");
  CHECK(kt::request(from, "GET", "/healthz", {}, {{"Host", "example.test"}}).header("Location") ==
        "https://example.test:" + https_port + "/healthz");

  // The Location is served, verified with the CA.
  io_thread io;
  keel::http_client_options trusting;
  trusting.ca_file = p.path("ca.pem");
  keel::http_client client(trusting);
  CHECK(io.result(client.get(r.header("Location"))).body == "hello over tls");
  running.stop();
}

TEST_CASE("https_redirect without a certificate is refused at configuration, naming both settings") {
  keel::config cfg("t");
  char const* argv[] = {"t", "--https-redirect", "127.0.0.1:8080"};
  try {
    cfg.load(3, const_cast<char**>(argv));
    FAIL("loaded");
  } catch (keel::config_error const& e) {
    CHECK(std::string(e.what()).find("--https-redirect needs --tls-cert") != std::string::npos);
  }
}
