// keel::http_client against real servers: keel apps in-process, Debian's
// nginx (plain and HTTPS with a CA the test makes with openssl), and raw
// sockets that close idle connections or never answer.
#include <catch2/catch.hpp>

#include "io_thread.hpp"
#include "test_app.hpp"

#include <keel/context.hpp>
#include <keel/http_client.hpp>
#include <keel/metrics.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/json/serialize.hpp>

#include <atomic>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

using namespace keel::test;
using keel::context;
using keel::http_client;
using keel::http_client_errc;
using keel::http_client_error;
using keel::http_client_options;
using keel::http_client_response;
using keel::response;
using keel::task;
namespace asio = boost::asio;
namespace fs = std::filesystem;
namespace http = boost::beast::http;
namespace json = boost::json;
namespace kt = keel::testing;

extern char** environ;

namespace {

using ms = std::chrono::milliseconds;

task<http_client_response> fetch(http_client& c, std::string url, keel::request_options o = {}) {
  co_return co_await c.request(keel::verb::get, std::move(url), {}, {}, o);
}

task<http_client_response> post(http_client& c, std::string url, std::string body) {
  co_return co_await c.request(keel::verb::post, std::move(url), std::move(body));
}

// The reason of the http_client_error a call throws (fails the test if none).
template <class T>
http_client_errc failure_of(io_thread& io, task<T> t) {
  try {
    io.result(std::move(t));
  } catch (http_client_error const& e) {
    INFO("error: " << e.what());
    return e.reason();
  }
  FAIL("the call did not throw http_client_error");
  return http_client_errc::bad_url;
}

double counter_value(std::string const& name_and_labels) {
  auto text = keel::metrics::global().render();
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(name_and_labels + " ", 0) == 0) return std::stod(line.substr(name_and_labels.size() + 1));
  }
  return 0;
}

std::string temp_dir() {
  std::string pattern = (fs::temp_directory_path() / "keel-http-client-XXXXXX").string();
  REQUIRE(mkdtemp(pattern.data()) != nullptr);
  return pattern;
}

std::uint16_t free_port() {
  asio::io_context ioc;
  asio::ip::tcp::acceptor a(ioc, {asio::ip::make_address("127.0.0.1"), 0});
  return a.local_endpoint().port();
}

bool port_open(std::uint16_t port) {
  asio::io_context ioc;
  asio::ip::tcp::socket s(ioc);
  boost::system::error_code ec;
  s.connect({asio::ip::make_address("127.0.0.1"), port}, ec);
  return !ec;
}

// nginx from Debian on a free port, with its own prefix, answering
// "hello from nginx" and logging "$connection $connection_requests $uri".
class nginx_server {
 public:
  explicit nginx_server(bool tls, std::string const& cert_dir = {}) : dir_(temp_dir()), port_(free_port()) {
    std::ofstream conf(dir_ + "/nginx.conf");
    conf << (geteuid() == 0 ? "user root root;\n" : "") << "worker_processes 1;\n"
         << "daemon off;\npid " << dir_ << "/nginx.pid;\nerror_log " << dir_ << "/error.log warn;\n"
         << "events { worker_connections 64; }\n"
         << "http {\n  log_format reuse '$connection $connection_requests $uri';\n"
         << "  access_log " << dir_ << "/access.log reuse;\n";
    for (auto t : {"client_body", "proxy", "fastcgi", "uwsgi", "scgi"})
      conf << "  " << t << "_temp_path " << dir_ << "/" << t << ";\n";
    conf << "  keepalive_requests 1000;\n  keepalive_timeout 60s;\n"
         << "  server {\n    listen 127.0.0.1:" << port_ << (tls ? " ssl" : "") << ";\n";
    if (tls)
      conf << "    ssl_certificate " << cert_dir << "/server.pem;\n    ssl_certificate_key " << cert_dir
           << "/server.key;\n";
    conf << "    location / { return 200 \"hello from nginx\\n\"; }\n  }\n}\n";
    conf.close();
    std::string prefix = dir_ + "/", cfg = dir_ + "/nginx.conf", err = dir_ + "/error.log";
    char const* argv[] = {"nginx", "-p", prefix.c_str(), "-e", err.c_str(), "-c", cfg.c_str(), nullptr};
    REQUIRE(posix_spawn(&pid_, "/usr/sbin/nginx", nullptr, nullptr, const_cast<char**>(argv), environ) == 0);
    bool up = kt::eventually([&] { return port_open(port_); }, ms(10000));
    if (!up) {
      std::ifstream e(err);
      std::string text((std::istreambuf_iterator<char>(e)), {});
      INFO("nginx error log: " << text);
      REQUIRE(up);
    }
  }
  ~nginx_server() {
    kill(pid_, SIGTERM);
    int status = 0;
    bool gone = kt::eventually([&] { return waitpid(pid_, &status, WNOHANG) == pid_; }, ms(5000));
    if (!gone) {
      kill(pid_, SIGKILL);
      waitpid(pid_, &status, 0);
    }
    fs::remove_all(dir_);
  }
  std::uint16_t port() const { return port_; }
  std::vector<std::string> access_lines() const {
    std::ifstream in(dir_ + "/access.log");
    std::vector<std::string> out;
    for (std::string l; std::getline(in, l);) out.push_back(l);
    return out;
  }

 private:
  std::string dir_;
  std::uint16_t port_;
  pid_t pid_ = -1;
};

std::string text_of(json::value const& v) { return v.is_string() ? std::string(v.as_string()) : "<not a string>"; }

bool have(char const* path) { return fs::exists(path); }

// A CA and a server certificate for "localhost" only (no IP address), made
// with the openssl CLI.
struct test_pki {
  std::string dir = temp_dir();
  test_pki() {
    std::string d = dir;
    std::ofstream(d + "/ext.cnf") << "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\n";
    std::string cmd =
        "cd " + d + " && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
        " -keyout ca.key -out ca.pem -days 2 -subj /CN=keel-test-ca"
        " && openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
        " -keyout server.key -out server.csr -subj /CN=localhost"
        " && openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial"
        " -out server.pem -days 2 -extfile ext.cnf";
    REQUIRE(std::system(("(" + cmd + ") > " + d + "/openssl.log 2>&1").c_str()) == 0);
  }
  ~test_pki() { fs::remove_all(dir); }
};

// A server keel did not write, on raw sockets, one connection at a time:
// close_after_response answers one request (keep-alive) and then closes its
// idle connection; never_answer reads until the client goes away.
class raw_server {
 public:
  enum class mode { close_after_response, never_answer };
  explicit raw_server(mode m)
      : mode_(m), acceptor_(io_.executor(), {asio::ip::make_address("127.0.0.1"), 0}),
        port_(acceptor_.local_endpoint().port()) {
    done_ = io_.spawn(serve());
  }
  ~raw_server() {
    io_.run([this] {
      boost::system::error_code ec;
      acceptor_.close(ec);
      if (current_) current_->close(ec);
    });
    done_.wait_for(std::chrono::seconds(5));
  }
  std::string url(std::string_view path = "/") const {
    return "http://127.0.0.1:" + std::to_string(port_) + std::string(path);
  }
  std::string origin() const { return "http://127.0.0.1:" + std::to_string(port_); }
  std::atomic<int> accepted{0};
  std::atomic<int> closed{0};  // connections that ended, either side closing

 private:
  task<void> serve() {
    for (;;) {
      auto [ec, s] = co_await acceptor_.async_accept(asio::as_tuple(keel::use_task));
      if (ec) co_return;
      accepted++;
      current_ = &s;
      if (mode_ == mode::close_after_response) {
        boost::beast::flat_buffer b;
        http::request<http::string_body> req;
        auto [rec, n] = co_await http::async_read(s, b, req, asio::as_tuple(keel::use_task));
        static constexpr std::string_view ok = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
        if (!rec) co_await asio::async_write(s, asio::buffer(ok), asio::as_tuple(keel::use_task));
      } else {
        char buf[4096];
        for (;;) {
          auto [rec, n] = co_await s.async_read_some(asio::buffer(buf), asio::as_tuple(keel::use_task));
          if (rec) break;
        }
      }
      boost::system::error_code ignored;
      s.close(ignored);
      current_ = nullptr;
      closed++;
    }
  }

  io_thread io_;
  mode mode_;
  keel::tcp_acceptor acceptor_;
  std::uint16_t port_;
  keel::tcp_socket* current_ = nullptr;
  std::future<void> done_;
};

std::atomic<int> flaky_calls{0};

task<response> hello(context&) { co_return response::text("hello"); }
task<response> big(context&) { co_return response::text(std::string(4000, 'x')); }
task<response> to_r2(context&) { co_return response::redirect("/r2"); }
task<response> r2(context&) { co_return response::text("landed"); }
task<response> loop(context&) { co_return response::redirect("/loop"); }
task<response> echo_json(context& ctx) {
  auto v = ctx.json_body();
  co_return response::json(json::object{{"got", v}});
}
task<response> flaky(context&) {
  if (flaky_calls++ < 2) co_return response::text("not yet", 503);
  co_return response::text("ok");
}
task<response> trace_headers(context& ctx) {
  json::object o;
  for (auto name : {"traceparent", "tracestate", "x-request-id"}) {
    auto h = ctx.header(name);
    o[name] = h ? json::value(json::string(*h)) : json::value(nullptr);
  }
  co_return response::json(o);
}

void upstream_routes(keel::app& app) {
  app.get("/hello", hello);
  app.get("/big", big);
  app.get("/r1", to_r2);
  app.get("/r2", r2);
  app.get("/loop", loop);
  app.post("/echo", echo_json);
  app.get("/flaky", flaky);
  app.get("/trace", trace_headers);
}

}  // namespace

TEST_CASE("a GET and JSON calls to a keel app reuse one pooled connection", "[http_client]") {
  keel::app up(test_options());
  upstream_routes(up);
  kt::running_app running(up);
  http_client client;
  io_thread io;

  auto r = io.result(fetch(client, running.url() + "/hello"));
  CHECK(r.status == 200);
  CHECK(r.body == "hello");
  CHECK(r.header("content-type").value_or("").find("text/plain") == 0);

  auto answer = io.result(client.post_json(running.url() + "/echo", json::object{{"n", 7}}));
  CHECK(json::serialize(answer) == R"({"got":{"n":7}})");
  auto again = io.result(fetch(client, running.url() + "/hello"));
  CHECK(again.body == "hello");

  auto st = client.stats(running.url());
  REQUIRE(st);
  CHECK(st->created == 1);
  CHECK(st->acquired == 3);
  CHECK(st->idle == 1);
}

TEST_CASE("an error status is returned, and the JSON helpers refuse it", "[http_client]") {
  keel::app up(test_options());
  upstream_routes(up);
  kt::running_app running(up);
  http_client client;
  io_thread io;
  auto r = io.result(fetch(client, running.url() + "/nowhere"));
  CHECK(r.status == 404);
  CHECK(failure_of(io, client.get_json(running.url() + "/nowhere")) == http_client_errc::protocol);
  CHECK(failure_of(io, client.get_json(running.url() + "/hello")) == http_client_errc::protocol);  // not JSON
  CHECK(client.stats(running.url())->created == 1);  // error statuses keep the connection
}

TEST_CASE("redirects are followed for GET up to the limit", "[http_client]") {
  keel::app up(test_options());
  upstream_routes(up);
  kt::running_app running(up);
  http_client_options o;
  o.max_redirects = 3;
  http_client client(o);
  io_thread io;

  auto r = io.result(fetch(client, running.url() + "/r1"));
  CHECK(r.status == 200);
  CHECK(r.body == "landed");
  CHECK(failure_of(io, fetch(client, running.url() + "/loop")) == http_client_errc::too_many_redirects);
  keel::request_options no_follow;
  no_follow.max_redirects = 0;
  CHECK(io.result(fetch(client, running.url() + "/r1", no_follow)).status == 302);
}

TEST_CASE("a response larger than max_response_body is a too_large error", "[http_client]") {
  keel::app up(test_options());
  upstream_routes(up);
  kt::running_app running(up);
  http_client_options o;
  o.max_response_body = 1000;
  http_client client(o);
  io_thread io;
  CHECK(failure_of(io, fetch(client, running.url() + "/big")) == http_client_errc::too_large);
  CHECK(io.result(fetch(client, running.url() + "/hello")).body == "hello");
  CHECK(failure_of(io, fetch(client, "ftp://example.com/")) == http_client_errc::bad_url);
}

TEST_CASE("configured retries back off and end with the upstream's answer", "[http_client]") {
  keel::app up(test_options());
  upstream_routes(up);
  kt::running_app running(up);
  http_client_options o;
  o.retries = 3;
  o.retry_backoff_base = ms(5);
  o.retry_backoff_cap = ms(20);
  o.name = "retrying";
  http_client client(o);
  io_thread io;
  flaky_calls = 0;
  auto r = io.result(fetch(client, running.url() + "/flaky"));
  CHECK(r.status == 200);
  CHECK(flaky_calls == 3);
  auto host = "127.0.0.1:" + std::to_string(running.port());
  CHECK(counter_value("keel_http_client_retries_total{client=\"retrying\",host=\"" + host +
                      "\",reason=\"backoff\"}") == 2);
  CHECK(counter_value("keel_http_client_requests_total{client=\"retrying\",host=\"" + host +
                      "\",status=\"200\"}") == 1);
}

TEST_CASE("calls from many coroutines on two threads share the per-origin limit", "[http_client][concurrency]") {
  keel::app up(test_options());
  upstream_routes(up);
  kt::running_app running(up);
  http_client_options o;
  o.max_connections_per_origin = 3;
  http_client client(o);
  io_thread a, b;
  std::string url = running.url() + "/hello";
  auto many = [&](io_thread& io) {
    std::vector<std::future<http_client_response>> fs;
    for (int i = 0; i < 40; ++i) fs.push_back(io.spawn(fetch(client, url)));
    return fs;
  };
  auto fa = many(a);
  auto fb = many(b);
  int ok = 0;
  for (auto& f : fa) ok += a.get(f).status == 200;
  for (auto& f : fb) ok += b.get(f).status == 200;
  CHECK(ok == 80);
  auto st = client.stats(running.url());
  REQUIRE(st);
  CHECK(st->created <= 3);
  CHECK(st->in_use == 0);
  CHECK(st->waiters == 0);
}

TEST_CASE("a pooled connection the server closed while idle is retried transparently", "[http_client]") {
  raw_server server(raw_server::mode::close_after_response);
  http_client_options o;
  o.name = "stale";
  http_client client(o);
  io_thread io;

  CHECK(io.result(fetch(client, server.url())).body == "ok");
  REQUIRE(kt::eventually([&] { return server.closed == 1; }, ms(5000)));
  REQUIRE(client.stats(server.origin())->idle == 1);  // the client still holds it
  CHECK(io.result(fetch(client, server.url())).body == "ok");
  CHECK(server.accepted == 2);
  auto host = "127.0.0.1:" + server.origin().substr(server.origin().rfind(':') + 1);
  CHECK(counter_value("keel_http_client_retries_total{client=\"stale\",host=\"" + host +
                      "\",reason=\"stale\"}") == 1);

  // A POST is not idempotent: it is never sent twice.
  REQUIRE(kt::eventually([&] { return server.closed == 2; }, ms(5000)));
  CHECK(failure_of(io, post(client, server.url(), "once")) == http_client_errc::protocol);
}

TEST_CASE("a server that never answers: the deadline fires and the connection is not reused", "[http_client]") {
  raw_server server(raw_server::mode::never_answer);
  http_client client;
  io_thread io;
  keel::request_options o;
  o.timeout = ms(200);

  auto start = std::chrono::steady_clock::now();
  CHECK(failure_of(io, fetch(client, server.url(), o)) == http_client_errc::timeout);
  auto took = std::chrono::steady_clock::now() - start;
  CHECK(took >= ms(150));
  CHECK(took < ms(2000));
  auto st = client.stats(server.origin());
  REQUIRE(st);
  CHECK(st->idle == 0);
  CHECK(st->in_use == 0);
  CHECK(kt::eventually([&] { return server.closed == 1; }, ms(5000)));  // the client closed it

  CHECK(failure_of(io, fetch(client, server.url(), o)) == http_client_errc::timeout);
  CHECK(server.accepted == 2);  // a new connection, not the timed-out one
}

TEST_CASE("a handler whose client disconnects cancels its outbound call", "[http_client]") {
  raw_server slow(raw_server::mode::never_answer);
  http_client client;
  keel::app front(test_options());
  std::string upstream = slow.url("/slow");
  std::atomic<int> failed{0};
  std::atomic<int> cancelled{0};
  front.get("/proxy", [&](context& ctx) -> task<response> {
    try {
      auto r = co_await client.get(ctx, upstream);
      co_return response::text(r.body);
    } catch (http_client_error const& e) {
      if (e.reason() == http_client_errc::cancelled) cancelled++;
      failed++;
      throw;
    } catch (...) {
      failed++;
      throw;
    }
  });
  kt::running_app running(front);

  kt::client c(running.port());
  c.send_raw("GET /proxy HTTP/1.1\r\nHost: x\r\n\r\n");
  REQUIRE(kt::eventually([&] { return slow.accepted == 1; }, ms(5000)));
  c.close();
  CHECK(kt::eventually([&] { return slow.closed == 1; }, ms(5000)));
  CHECK(kt::eventually([&] { return failed == 1; }, ms(5000)));
  CHECK(cancelled == 1);
  CHECK(client.stats(slow.origin())->idle == 0);
}

TEST_CASE("a call inherits the request's remaining deadline", "[http_client]") {
  raw_server slow(raw_server::mode::never_answer);
  http_client client;
  auto opts = test_options();
  opts.handler_timeout = ms(300);
  keel::app front(opts);
  std::string upstream = slow.url("/slow");
  front.get("/proxy", [&](context& ctx) -> task<response> {
    auto r = co_await client.get(ctx, upstream);
    co_return response::text(r.body);
  });
  kt::running_app running(front);
  auto start = std::chrono::steady_clock::now();
  auto r = running.get("/proxy");
  CHECK(r.status == 504);
  CHECK(std::chrono::steady_clock::now() - start < ms(3000));
  CHECK(kt::eventually([&] { return slow.closed == 1; }, ms(5000)));
}

TEST_CASE("traceparent reaches the upstream with the trace id and a new span per call", "[http_client]") {
  keel::app up(test_options());
  upstream_routes(up);
  kt::running_app upstream(up);
  http_client client;
  keel::app front(test_options());
  std::string url = upstream.url() + "/trace";
  front.get("/front", [&](context& ctx) -> task<response> {
    ctx.trace().tracestate = "vendor=1";
    ctx.set_request_id("req-42");
    auto first = co_await client.get_json(ctx, url);
    auto second = co_await client.get_json(ctx, url);
    co_return response::json(json::object{{"trace_id", ctx.trace().trace_id},
                                          {"span_id", ctx.trace().span_id},
                                          {"first", first},
                                          {"second", second}});
  });
  kt::running_app running(front);
  auto r = running.get("/front");
  REQUIRE(r.status == 200);
  auto v = json::parse(r.body).as_object();
  std::string trace_id(v["trace_id"].as_string());
  std::string span_id(v["span_id"].as_string());
  std::vector<std::string> spans;
  for (auto key : {"first", "second"}) {
    auto& seen = v[key].as_object();
    INFO(json::serialize(seen));
    REQUIRE(seen["traceparent"].is_string());
    std::string tp(seen["traceparent"].as_string());
    REQUIRE(tp.size() == 55);
    CHECK(tp.substr(0, 3) == "00-");
    CHECK(tp.substr(3, 32) == trace_id);
    spans.push_back(tp.substr(36, 16));
    CHECK(spans.back() != span_id);
    CHECK(spans.back() != std::string(16, '0'));
    CHECK(text_of(seen["tracestate"]) == "vendor=1");
    CHECK(text_of(seen["x-request-id"]) == "req-42");
  }
  CHECK(spans[0] != spans[1]);
}

TEST_CASE("nginx sees keep-alive reuse: one connection, $connection_requests counting up", "[http_client][nginx]") {
  if (!have("/usr/sbin/nginx")) {
    WARN("nginx is not installed (Debian package nginx): skipping the tests against nginx");
    return;
  }
  nginx_server nginx(false);
  http_client client;
  io_thread io;
  std::string base = "http://127.0.0.1:" + std::to_string(nginx.port());
  for (int i = 1; i <= 5; ++i) {
    auto r = io.result(fetch(client, base + "/n" + std::to_string(i)));
    CHECK(r.status == 200);
    CHECK(r.body == "hello from nginx\n");
  }
  std::vector<std::string> lines;
  REQUIRE(kt::eventually([&] { return (lines = nginx.access_lines()).size() == 5; }, ms(5000)));
  std::string conn;
  for (int i = 0; i < 5; ++i) {
    std::istringstream in(lines[i]);
    std::string c, uri;
    int served = 0;
    in >> c >> served >> uri;
    INFO(lines[i]);
    if (i == 0) conn = c;
    CHECK(c == conn);
    CHECK(served == i + 1);
    CHECK(uri == "/n" + std::to_string(i + 1));
  }
}

TEST_CASE("HTTPS to nginx verifies the certificate and the host name", "[http_client][nginx][tls]") {
  if (!have("/usr/sbin/nginx") || !have("/usr/bin/openssl")) {
    WARN("nginx or openssl is not installed: skipping the HTTPS tests");
    return;
  }
  test_pki pki;
  nginx_server nginx(true, pki.dir);
  io_thread io;
  auto port = std::to_string(nginx.port());

  http_client_options with_ca;
  with_ca.ca_file = pki.dir + "/ca.pem";
  http_client trusting(with_ca);
  auto r = io.result(fetch(trusting, "https://localhost:" + port + "/"));
  CHECK(r.status == 200);
  CHECK(r.body == "hello from nginx\n");
  CHECK(io.result(fetch(trusting, "https://localhost:" + port + "/again")).status == 200);
  CHECK(trusting.stats("https://localhost:" + port)->created == 1);

  // The certificate names localhost only.
  CHECK(failure_of(io, fetch(trusting, "https://127.0.0.1:" + port + "/")) == http_client_errc::tls_failed);

  http_client system_store;
  CHECK(failure_of(io, fetch(system_store, "https://localhost:" + port + "/")) == http_client_errc::tls_failed);

  http_client_options insecure;
  insecure.insecure_skip_verify = true;
  http_client anything(insecure);
  CHECK(io.result(fetch(anything, "https://127.0.0.1:" + port + "/")).status == 200);

  http_client_options bad_ca;
  bad_ca.ca_file = pki.dir + "/missing.pem";
  CHECK_THROWS_AS(http_client(bad_ca), std::invalid_argument);
}
