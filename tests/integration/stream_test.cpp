// Streamed responses over loopback: chunked bytes on HTTP/1.1 and keep-alive
// after them, close-delimited HTTP/1.0, Content-Length framing, HEAD, curl
// as a real client, backpressure from a client that does not read (memory
// bounded, the write timeout ends it) and a client that leaves.
#include <catch2/catch.hpp>

#include "sse_client.hpp"
#include "process_helpers.hpp"
#include "test_app.hpp"

#include <keel/stream.hpp>

#include <boost/asio/this_coro.hpp>

#include <sys/socket.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <string>

using namespace keel::test;
using keel::response_stream;
using keel::task;
namespace kt = keel::testing;

namespace {

std::atomic<int> runs{0};
task<void> hello_world(response_stream& out) {
  ++runs;
  co_await out.write("hello");
  co_await out.write("");  // writes nothing, never the last chunk
  co_await out.write(" world");
}

// Wants to write 256 MiB; records how far it got and how it ended.
std::atomic<std::uint64_t> flood_written{0};
std::atomic<int> flood_ended{0};
std::atomic<bool> flood_write_failed{false};
task<void> flood(response_stream& out) {
  std::string piece(64 * 1024, 'x');
  for (int i = 0; i < 4096; ++i) {
    if (!co_await out.write(piece)) {
      flood_write_failed = true;
      break;
    }
    flood_written = out.written();
  }
  ++flood_ended;
}

std::atomic<int> sleepers_cancelled{0};
task<void> sleeper(response_stream& out) {
  co_await out.write("started\n");
  keel::steady_timer t(co_await boost::asio::this_coro::executor);
  t.expires_after(std::chrono::minutes(5));
  try {
    co_await t.async_wait(keel::use_task);
  } catch (boost::system::system_error const&) {
    ++sleepers_cancelled;
    throw;
  }
}

// Two pieces with a pause between: the pipelined request behind it arrives
// while the stream runs.
task<void> two_pieces(response_stream& out) {
  co_await out.write("one\n");
  keel::steady_timer t(co_await boost::asio::this_coro::executor);
  t.expires_after(std::chrono::milliseconds(50));
  co_await t.async_wait(keel::use_task);
  co_await out.write("two\n");
}

task<void> short_of_length(response_stream& out) { co_await out.write("abc"); }

task<void> throws_first(response_stream&) {
  throw std::runtime_error("boom");
  co_return;
}

keel::handler streamed(keel::stream_handler h, keel::stream_options o = {}) {
  return [h, o](keel::context&) -> task<keel::response> {
    auto r = keel::stream_response(h, o);
    r.set_header("Content-Type", "text/plain");
    co_return r;
  };
}

struct fixture {
  keel::app app;
  explicit fixture(keel::options o = test_options()) : app(o) {
    app.get("/hello", streamed(hello_world));
    keel::stream_options sized;
    sized.content_length = 11;
    app.get("/sized", streamed(hello_world, sized));
    keel::stream_options too_long;
    too_long.content_length = 10;
    app.get("/short", streamed(short_of_length, too_long));
    app.get("/flood", streamed(flood));
    app.get("/sleep", streamed(sleeper));
    app.get("/sleep-short", streamed(two_pieces));
    app.get("/throws", streamed(throws_first));
    app.get("/plain", [](keel::context&) -> task<keel::response> { co_return keel::response::text("plain"); });
  }
};

}  // namespace

TEST_CASE("a streamed HTTP/1.1 body is chunked, one chunk per write, and the connection is reused", "[stream]") {
  fixture f;
  kt::running_app run_app(f.app);
  sse_client c(run_app.port(), "/hello");
  REQUIRE(c.read_contains("0\r\n\r\n"));
  auto head = c.head();
  CHECK(head.rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
  CHECK(head.find("Transfer-Encoding: chunked\r\n") != std::string::npos);
  CHECK(head.find("Content-Type: text/plain\r\n") != std::string::npos);
  CHECK(head.find("Content-Length") == std::string::npos);
  CHECK(head.find("Connection: close") == std::string::npos);
  CHECK(c.body() == "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n");
  // The same connection serves the next request.
  std::string next = "GET /plain HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
  boost::asio::write(c.s, boost::asio::buffer(next));
  REQUIRE(c.read_contains("\r\n\r\nplain"));
  CHECK_FALSE(c.eof);
}

TEST_CASE("a request pipelined behind a stream waits in the kernel and is answered after it", "[stream]") {
  fixture f;
  kt::running_app run_app(f.app);
  kt::client c(run_app.port());
  c.send_raw(
      "GET /sleep-short HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
      "GET /plain HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
  auto first = c.read_response();
  CHECK(first.status == 200);
  CHECK(first.body == "one\ntwo\n");
  auto second = c.read_response();
  CHECK(second.status == 200);
  CHECK(second.body == "plain");
}

TEST_CASE("curl decodes a chunked stream", "[stream][curl]") {
  fixture f;
  kt::running_app run_app(f.app);
  auto url = run_app.url();
  CHECK(run_command("curl -s " + url + "/hello") == "hello world");
  // Two streams on one curl connection: keep-alive after a stream that ended cleanly.
  // num_connects 0 on the second transfer: it reused the first one's connection.
  CHECK(run_command("curl -s -w ' %{num_connects}\\n' " + url + "/hello " + url + "/hello") ==
        "hello world 1\nhello world 0\n");
}

TEST_CASE("a streamed HTTP/1.0 body is close-delimited", "[stream]") {
  fixture f;
  kt::running_app run_app(f.app);
  keel::testing::client c(run_app.port());
  c.send_raw("GET /hello HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
  auto all = c.read_until_close();
  auto end = all.find("\r\n\r\n");
  REQUIRE(end != std::string::npos);
  auto head = all.substr(0, end + 4);
  CHECK(head.rfind("HTTP/1.0 200 OK\r\n", 0) == 0);
  CHECK(head.find("Connection: close\r\n") != std::string::npos);
  CHECK(head.find("Transfer-Encoding") == std::string::npos);
  CHECK(head.find("Content-Length") == std::string::npos);
  CHECK(all.substr(end + 4) == "hello world");
}

TEST_CASE("a stream with a known length is framed by Content-Length", "[stream]") {
  fixture f;
  kt::running_app run_app(f.app);
  kt::client c(run_app.port());
  auto r = c.get("/sized");
  CHECK(r.status == 200);
  CHECK(r.header("Content-Length") == "11");
  CHECK_FALSE(r.has_header("Transfer-Encoding"));
  CHECK(r.body == "hello world");
  CHECK(c.get("/plain").body == "plain");  // kept alive

  SECTION("a stream that ends short of its length is cut by closing the connection") {
    kt::client s(run_app.port());
    s.send_raw("GET /short HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    auto all = s.read_until_close();
    CHECK(all.find("Content-Length: 10\r\n") != std::string::npos);
    CHECK(all.substr(all.find("\r\n\r\n") + 4) == "abc");
  }
}

TEST_CASE("a HEAD request to a stream gets the head only and the handler does not run", "[stream]") {
  fixture f;
  kt::running_app run_app(f.app);
  auto before = runs.load();
  kt::client c(run_app.port());
  auto r = c.request("HEAD", "/sized");
  CHECK(r.status == 200);
  CHECK(r.header("Content-Length") == "11");
  CHECK(r.body.empty());
  CHECK(runs.load() == before);
  CHECK(c.get("/plain").body == "plain");
}

TEST_CASE("a handler that throws before writing gets a 500", "[stream]") {
  fixture f;
  kt::running_app run_app(f.app);
  auto r = run_app.get("/throws");
  CHECK(r.status == 500);
}

TEST_CASE("a client that does not read blocks the handler in write; memory stays flat; write_timeout ends it",
          "[stream][backpressure]") {
  auto o = test_options();
  o.write_timeout = 300ms;
  fixture f(o);
  kt::running_app run_app(f.app);
  flood_written = 0;
  flood_write_failed = false;
  auto ended = flood_ended.load();
  auto rss_before = vm_kib("VmRSS:");
  {
    std::ofstream("/proc/self/clear_refs") << "5";  // resets VmHWM to the current RSS
  }
  boost::asio::io_context io;
  boost::asio::ip::tcp::socket s(io);
  s.open(boost::asio::ip::tcp::v4());
  int small = 16 * 1024;
  ::setsockopt(s.native_handle(), SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  s.connect({boost::asio::ip::make_address("127.0.0.1"), run_app.port()});
  std::string req = "GET /flood HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
  boost::asio::write(s, boost::asio::buffer(req));
  // Never read: the handler's writes stop completing once the socket buffers
  // are full, and the write timeout ends the stream.
  auto t0 = std::chrono::steady_clock::now();
  REQUIRE(kt::eventually([&] { return flood_ended.load() == ended + 1; }, 20s));
  CHECK(std::chrono::steady_clock::now() - t0 >= 300ms);
  CHECK(flood_write_failed.load());
  // What got written is what the kernel buffers took, not the 256 MiB asked for.
  CHECK(flood_written.load() < 32u * 1024 * 1024);
  auto hwm = vm_kib("VmHWM:");
  INFO("VmRSS before " << rss_before << " KiB, VmHWM after " << hwm << " KiB, written " << flood_written.load());
  CHECK(hwm < rss_before + 16 * 1024);
  CHECK(kt::eventually([&] { return f.app.server().stats().connections_active == 0; }));
}

TEST_CASE("a client that leaves cancels the stream's handler", "[stream]") {
  fixture f;
  kt::running_app run_app(f.app);
  auto before = sleepers_cancelled.load();
  {
    sse_client c(run_app.port(), "/sleep");
    REQUIRE(c.read_contains("started\n"));
  }
  CHECK(kt::eventually([&] { return sleepers_cancelled.load() == before + 1; }));
  CHECK(kt::eventually([&] { return f.app.server().stats().connections_active == 0; }));
}

TEST_CASE("a stream over TLS is chunked the same way and keeps the connection", "[stream][tls]") {
  char tmpl[] = "/tmp/keel-stream-tls-XXXXXX";
  std::string dir = ::mkdtemp(tmpl);
  auto made = run_command("cd " + dir +
                  " && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout key.pem"
                  " -out cert.pem -days 2 -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 >/dev/null 2>&1"
                  " && echo ok");
  REQUIRE(made == "ok\n");
  auto o = test_options();
  o.tls_cert = dir + "/cert.pem";
  o.tls_key = dir + "/key.pem";
  {
    fixture f(o);
    kt::running_app run_app(f.app);
    auto url = "https://127.0.0.1:" + std::to_string(run_app.port());
    CHECK(run_command("curl -s --cacert " + dir + "/cert.pem " + url + "/hello") == "hello world");
    CHECK(run_command("curl -s -w ' %{num_connects}\\n' --cacert " + dir + "/cert.pem " + url + "/hello " + url + "/sized") ==
          "hello world 1\nhello world 0\n");
  }
  run_command("rm -rf " + dir);
}
