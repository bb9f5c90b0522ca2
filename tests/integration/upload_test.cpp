// Streamed request bodies (stream_body routes) over loopback: curl uploads
// with Content-Length and chunked framing checked byte for byte with memory
// flat, Expect: 100-continue, the route's limit, the body's deadline (and the
// handler's deadline standing still while it waits for the body), a client
// that leaves mid-body, unread bodies discarded or the connection closed, and
// read_some() on a route keel buffers itself.
#include <catch2/catch.hpp>

#include "process_helpers.hpp"
#include "test_app.hpp"

#include <keel/body_stream.hpp>
#include <keel/error.hpp>

#include <boost/asio/this_coro.hpp>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>

using namespace keel::test;
using keel::task;
namespace kt = keel::testing;

namespace {

std::atomic<int> cancelled_reads{0};
std::atomic<int> handler_runs{0};

// Reads the whole body, answers with its size and hash.
task<keel::response> digest(keel::context& ctx) {
  ++handler_runs;
  auto& body = ctx.body_stream();
  std::uint64_t h = fnv_offset;
  std::size_t largest = 0;
  bool empty_piece = false;
  try {
    while (auto piece = co_await body.read_some()) {
      empty_piece = empty_piece || piece->empty();
      largest = std::max(largest, piece->size());
      h = fnv1a(h, *piece);
    }
  } catch (boost::system::system_error const&) {
    ++cancelled_reads;
    throw;
  }
  co_return keel::response::text("bytes=" + std::to_string(body.received()) + " hash=" + std::to_string(h) +
                                 " streamed=" + (ctx.body_streamed() ? "yes" : "no") +
                                 " body=" + std::to_string(ctx.body().size()) +
                                 (largest > 1024 * 1024 ? " piece-too-large" : "") +
                                 (empty_piece ? " empty-piece" : ""));
}

// Reads one piece (or none) and answers.
task<keel::response> peek(keel::context& ctx) {
  if (ctx.query("read")) co_await ctx.body_stream().read_some();
  co_return keel::response::text("peeked");
}

// Waits a little between pieces: the handler deadline (100 ms) must not count that.
task<keel::response> slow_consumer(keel::context& ctx) {
  auto& body = ctx.body_stream();
  while (co_await body.read_some()) {
  }
  co_return keel::response::text("got " + std::to_string(body.received()));
}

struct fixture {
  keel::app app;
  explicit fixture(keel::options o = test_options()) : app(o) {
    app.post("/upload", digest).stream_body(512ull << 20);
    app.post("/small", digest).stream_body(1000);
    app.post("/buffered", digest);  // keel reads the body first: read_some() yields it once
    app.post("/peek", peek).stream_body(64ull << 20);
    app.post("/paced", slow_consumer).stream_body(1 << 20).timeout(std::chrono::milliseconds(300));
    app.post("/refuse", [](keel::context&) -> task<keel::response> {
      throw keel::http_error(403, "not you");
      co_return keel::response::text("unreachable");
    }).stream_body(64ull << 20);
    app.get("/plain", [](keel::context&) -> task<keel::response> { co_return keel::response::text("plain"); });
  }
};

// A file of `size` pseudo-random bytes (every byte value, CR/LF included); its hash.
std::uint64_t make_file(std::filesystem::path const& p, std::size_t size) { return write_random_file(p, size, 42); }

std::string expected(std::size_t size, std::uint64_t hash) {
  return "bytes=" + std::to_string(size) + " hash=" + std::to_string(hash) + " streamed=yes body=0";
}

}  // namespace

TEST_CASE("curl uploads 64 MiB with Content-Length and chunked framing; memory stays flat", "[upload][curl]") {
  fixture f;
  kt::running_app running(f.app);
  temp_file file("keel-upload");
  constexpr std::size_t size = 64u << 20;
  auto hash = make_file(file.path, size);
  auto url = running.url() + "/upload";
  auto rss_before = vm_kib("VmRSS:");
  reset_peak_rss();
  // curl sends Expect: 100-continue for a body this large: keel answers it at the first read.
  auto by_length = run_command("curl -s --data-binary @" + file.path.string() + " " + url);
  auto chunked = run_command("curl -s -H 'Transfer-Encoding: chunked' --data-binary @" + file.path.string() + " " + url);
  auto hwm = vm_kib("VmHWM:");
  CHECK(by_length == expected(size, hash));
  CHECK(chunked == expected(size, hash));
  INFO("VmRSS before " << rss_before << " KiB, VmHWM after " << hwm << " KiB");
  // Two 64 MiB bodies; a buffering server would hold at least one of them.
  CHECK(hwm < rss_before + 16 * 1024);
}

TEST_CASE("every piece is a view of what arrived: bodies of many sizes and framings hash right", "[upload]") {
  fixture f;
  kt::running_app running(f.app);
  kt::client c(running.port());
  for (std::size_t size : {0u, 1u, 5u, 4095u, 70000u, 300000u}) {
    std::string body;
    for (std::size_t i = 0; i < size; ++i) body.push_back(static_cast<char>((i * 131) % 256));
    auto r = c.request("POST", "/upload", body);
    CHECK(r.status == 200);
    CHECK(r.body == expected(size, fnv1a(fnv_offset, body)));
    // The same body chunked, in uneven chunks, with an extension and a trailer.
    std::string chunked;
    for (std::size_t at = 0, k = 1; at < size; k = k * 3 + 1) {
      auto n = std::min(k, size - at);
      char line[32];
      std::snprintf(line, sizeof line, "%zx;ext=1\r\n", n);
      chunked += line + body.substr(at, n) + "\r\n";
      at += n;
    }
    chunked += "0\r\nX-Trailer: yes\r\n\r\n";
    c.send_raw("POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked);
    auto rc = c.read_response();
    CHECK(rc.status == 200);
    CHECK(rc.body == expected(size, fnv1a(fnv_offset, body)));
  }
  CHECK(c.get("/plain").body == "plain");  // one connection throughout
}

TEST_CASE("a chunked body sent a byte at a time streams and the request behind it is served", "[upload]") {
  fixture f;
  kt::running_app running(f.app);
  kt::client c(running.port());
  std::string msg = "POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                    "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
                    "GET /plain HTTP/1.1\r\nHost: x\r\n\r\n";
  for (char ch : msg) c.send_raw(std::string_view(&ch, 1));
  auto first = c.read_response();
  CHECK(first.body == expected(5, fnv1a(fnv_offset, "abcde")));
  CHECK(c.read_response().body == "plain");
}

TEST_CASE("Expect: 100-continue is answered at the first read, and never when the handler refuses", "[upload]") {
  fixture f;
  kt::running_app running(f.app);
  {
    kt::client c(running.port());
    c.send_raw("POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n");
    auto interim = c.read_response();
    CHECK(interim.status == 100);
    c.send_raw("hello");
    auto r = c.read_response();
    CHECK(r.status == 200);
    CHECK(r.body == expected(5, fnv1a(fnv_offset, "hello")));
  }
  {
    kt::client c(running.port());
    c.send_raw("POST /refuse HTTP/1.1\r\nHost: x\r\nContent-Length: 50000000\r\nExpect: 100-continue\r\n\r\n");
    auto r = c.read_response();
    CHECK(r.status == 403);  // not 100: the client never sends its 50 MB
    CHECK(r.header("Connection") == "close");
    CHECK(c.closed_by_server());
  }
}

TEST_CASE("the route's stream_body limit: 413 before the body by length, during it when chunked", "[upload]") {
  fixture f;
  kt::running_app running(f.app);
  {
    kt::client c(running.port());
    auto r = c.request("POST", "/small", std::string(1001, 'x'));
    CHECK(r.status == 413);
    CHECK(c.closed_by_server());
  }
  {
    kt::client c(running.port());
    CHECK(c.request("POST", "/small", std::string(1000, 'x')).body == expected(1000, fnv1a(fnv_offset, std::string(1000, 'x'))));
    std::string chunk(600, 'y');
    c.send_raw("POST /small HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n258\r\n" + chunk + "\r\n258\r\n" +
               chunk + "\r\n0\r\n\r\n");
    auto r = c.read_response();
    CHECK(r.status == 413);
    CHECK(r.header("Content-Type") == "application/problem+json");
    CHECK(c.closed_by_server());
  }
  kt::client c(running.port());
  c.send_raw("POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nab\r\n0\r\n\r\n");
  CHECK(c.read_response().status == 400);
  CHECK(c.closed_by_server());
}

TEST_CASE("a body that stops arriving gets 408 after body_timeout; waiting for it is not the handler's time",
          "[upload][timeout]") {
  auto o = test_options();
  o.body_timeout = std::chrono::milliseconds(200);
  fixture f(o);
  kt::running_app running(f.app);
  {
    kt::client c(running.port());
    c.send_raw("POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly part");
    auto r = c.read_response();
    CHECK(r.status == 408);
    CHECK(r.header("Connection") == "close");
    CHECK(c.closed_by_server());
  }
  // /paced has a 300 ms handler deadline; its body takes ~600 ms to arrive in
  // pieces 150 ms apart (each within body_timeout). The handler still finishes.
  kt::client c(running.port());
  c.send_raw("POST /paced HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\n");
  for (int i = 0; i < 4; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(150));  // the pacing under test
    c.send_raw("z");
  }
  auto r = c.read_response();
  CHECK(r.status == 200);
  CHECK(r.body == "got 4");
}

TEST_CASE("a client that leaves mid-body cancels the handler and the server goes on", "[upload]") {
  fixture f;
  kt::running_app running(f.app);
  auto before = cancelled_reads.load();
  auto runs_before = handler_runs.load();
  {
    kt::client c(running.port());
    c.send_raw("POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n" + std::string(70000, 'q'));
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (handler_runs.load() == runs_before && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    c.close();
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (cancelled_reads.load() == before && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  CHECK(cancelled_reads.load() == before + 1);
  CHECK(running.get("/plain").body == "plain");
}

TEST_CASE("what the handler leaves unread: a small rest is discarded, a large one ends the connection", "[upload]") {
  fixture f;
  kt::running_app running(f.app);
  kt::client c(running.port());
  // Unread entirely, and read in part: either way the next request on the connection works.
  auto r = c.request("POST", "/peek", std::string(100000, 'a'));
  CHECK(r.status == 200);
  CHECK_FALSE(r.has_header("Connection"));
  r = c.request("POST", "/peek?read=1", std::string(200000, 'b'));
  CHECK(r.status == 200);
  CHECK(c.get("/plain").body == "plain");
  // 8 MiB the handler never reads: the response says close, and arrives whole.
  kt::client big(running.port());
  big.send_raw("POST /peek HTTP/1.1\r\nHost: x\r\nContent-Length: 8388608\r\n\r\n" + std::string(1 << 20, 'c'));
  auto answer = big.read_response();
  CHECK(answer.status == 200);
  CHECK(answer.body == "peeked");
  CHECK(answer.header("Connection") == "close");
}

TEST_CASE("read_some() on a route without stream_body yields the buffered body once", "[upload]") {
  fixture f;
  kt::running_app running(f.app);
  auto r = running.request("POST", "/buffered", "abc");
  CHECK(r.body == "bytes=3 hash=" + std::to_string(fnv1a(fnv_offset, "abc")) + " streamed=no body=3");
  r = running.request("POST", "/buffered", "");
  CHECK(r.body == "bytes=0 hash=" + std::to_string(fnv_offset) + " streamed=no body=0");
}

TEST_CASE("uploads stream over TLS too, both framings, with curl as the client", "[upload][tls][curl]") {
  temp_file key("keel-upload-key.pem");
  temp_file cert("keel-upload-cert.pem");
  auto made = std::system(("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1"
                           " -subj /CN=localhost -keyout " + key.path.string() + " -out " + cert.path.string() +
                           " > /dev/null 2>&1").c_str());
  REQUIRE(made == 0);
  auto o = test_options();
  o.tls_key = key.path.string();
  o.tls_cert = cert.path.string();
  fixture f(o);
  kt::running_app running(f.app);
  REQUIRE(running.url().rfind("https://", 0) == 0);
  temp_file file("keel-upload-tls");
  constexpr std::size_t size = 8u << 20;
  auto hash = make_file(file.path, size);
  auto url = running.url() + "/upload";
  CHECK(run_command("curl -sk --data-binary @" + file.path.string() + " " + url) == expected(size, hash));
  CHECK(run_command("curl -sk -H 'Transfer-Encoding: chunked' --data-binary @" + file.path.string() + " " + url) ==
        expected(size, hash));
  // Refused before the body: 100 Continue is never sent, the answer arrives whole.
  CHECK(run_command("curl -sk -o /dev/null -w '%{http_code}' --data-binary @" + file.path.string() + " " + running.url() +
            "/refuse") == "403");
}
