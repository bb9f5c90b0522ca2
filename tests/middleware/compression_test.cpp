// compression: responses encoded by Accept-Encoding and decoded by tools keel
// does not share code with (Python's gzip and zlib, Debian's brotli), request
// bodies decoded with their size bounded, and every case left alone left alone.
#include <catch2/catch.hpp>

#include "test_app.hpp"

#include <keel/context.hpp>
#include <keel/middleware/compression.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

using namespace keel::test;
using keel::context;
using keel::response;
using keel::task;
namespace kt = keel::testing;
namespace mw = keel::mw;
namespace fs = std::filesystem;

namespace {

// Compressible but not trivially: words in a random order.
std::string sample_text(std::size_t size) {
  static char const* words[] = {"keel ", "coroutine ", "session ", "deadline ", "header ", "{\"id\":7} "};
  std::mt19937 rng(42);
  std::string s;
  while (s.size() < size) s += words[rng() % 6];
  s.resize(size);
  return s;
}

std::string const& big_text() {
  static std::string const t = sample_text(20000);
  return t;
}

struct temp_file {
  fs::path path;
  explicit temp_file(std::string_view bytes) {
    static int n = 0;
    path = fs::temp_directory_path() / ("keel-compression-" + std::to_string(::getpid()) + "-" + std::to_string(n++));
    std::ofstream(path, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  }
  ~temp_file() { fs::remove(path); }
};

// Runs a shell command and returns its stdout (binary-safe); fails the test on a non-zero exit.
std::string shell(std::string const& command) {
  std::string out;
  FILE* p = ::popen(command.c_str(), "r");
  REQUIRE(p != nullptr);
  char buf[65536];
  for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, p)) > 0;) out.append(buf, n);
  int rc = ::pclose(p);
  INFO(command);
  REQUIRE(rc == 0);
  return out;
}

// Runs `body` through an independent coder: Python's gzip or zlib module
// (compress or decompress) or Debian's brotli command.
std::string transcode(std::string const& coding, std::string const& body, bool encode) {
  temp_file f(body);
  auto file = f.path.string();
  if (coding == "br") return shell(std::string("brotli ") + (encode ? "" : "-d ") + "-c " + file);
  std::string module = coding == "gzip" ? "gzip" : "zlib";
  std::string fn = encode ? "compress" : "decompress";
  return shell("/usr/bin/python3 -c 'import " + module + ",sys; sys.stdout.buffer.write(" + module + "." + fn +
               "(open(sys.argv[1],\"rb\").read()))' " + file);
}

std::string decode(std::string const& coding, std::string const& body) { return transcode(coding, body, false); }
std::string encode(std::string const& coding, std::string const& body) { return transcode(coding, body, true); }

task<response> text(context&) { co_return response::text(big_text()); }
task<response> echo(context& ctx) { co_return response::text(std::string(ctx.body())); }

long peak_rss_kib() {
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stol(line.substr(6));
  }
  return -1;
}

void routes(keel::app& app) {
  app.get("/text", text);
  app.get("/small", [](context&) -> task<response> { co_return response::text("tiny"); });
  app.get("/png", [](context&) -> task<response> {
    response r(200);
    r.body = big_text();
    r.set_header("Content-Type", "image/png");
    co_return r;
  });
  app.get("/etag", [](context&) -> task<response> {
    auto r = response::json_text("[" + std::string(5000, '1') + "]");
    r.set_header("ETag", "\"v1\"");
    co_return r;
  });
  app.get("/partial", [](context&) -> task<response> {
    auto r = response::text(big_text(), 206);
    r.set_header("Content-Range", "bytes 0-19999/40000");
    co_return r;
  });
  app.get("/encoded", [](context&) -> task<response> {
    auto r = response::text(big_text());
    r.set_header("Content-Encoding", "gzip");  // the handler's own bytes, whatever they are
    co_return r;
  });
  app.get("/no-transform", [](context&) -> task<response> {
    auto r = response::text(big_text());
    r.set_header("Cache-Control", "no-transform");
    co_return r;
  });
  app.post("/echo", echo);
}

}  // namespace

TEST_CASE("the coding follows Accept-Encoding's q-values", "[compression]") {
  mw::compression_options o;
  CHECK(mw::choose_encoding("gzip, deflate, br", o) == "br");
  CHECK(mw::choose_encoding("gzip;q=1.0, br;q=0.5", o) == "gzip");
  CHECK(mw::choose_encoding("deflate", o) == "deflate");
  CHECK(mw::choose_encoding("br;q=0, gzip;q=0.001", o) == "gzip");
  CHECK(mw::choose_encoding("*", o) == "br");
  CHECK(mw::choose_encoding("*;q=0.5, br;q=0", o) == "gzip");
  CHECK(mw::choose_encoding("identity", o) == "");
  CHECK(mw::choose_encoding("br;q=0, gzip;q=0, deflate;q=0", o) == "");
  CHECK(mw::choose_encoding("GZIP ; Q=0.8 , x-unknown", o) == "gzip");
  CHECK(mw::choose_encoding("gzip;q=2, br;q=abc", o) == "");  // malformed q-values count as 0
  CHECK(mw::choose_encoding("", o) == "");
  o.brotli = false;
  CHECK(mw::choose_encoding("br, gzip;q=0.1", o) == "gzip");
}

TEST_CASE("a compressed response decodes to the original with Python's gzip and zlib and Debian's brotli", "[compression]") {
  keel::app app(test_options());
  app.use(mw::compression());
  routes(app);
  kt::running_app run(app);
  kt::client c(run.port());
  for (std::string coding : {"gzip", "deflate", "br"}) {
    auto r = c.get("/text", {{"Accept-Encoding", coding}});
    INFO(coding);
    CHECK(r.status == 200);
    CHECK(r.header("Content-Encoding") == coding);
    CHECK(r.header("Vary") == "Accept-Encoding");
    CHECK(r.header("Content-Length") == std::to_string(r.body.size()));
    CHECK(r.body.size() < big_text().size() / 2);
    CHECK(decode(coding, r.body) == big_text());
  }
  auto e = c.get("/etag", {{"Accept-Encoding", "gzip"}});
  CHECK(e.header("Content-Encoding") == "gzip");
  CHECK(e.header("ETag") == "W/\"v1\"");
  CHECK(decode("gzip", e.body) == "[" + std::string(5000, '1') + "]");
}

TEST_CASE("what must not be compressed is sent as it is", "[compression]") {
  keel::app app(test_options());
  app.use(mw::compression());
  routes(app);
  kt::running_app run(app);
  kt::client c(run.port());
  auto all = kt::header_list{{"Accept-Encoding", "br, gzip, deflate"}};

  auto none = c.get("/text");  // no Accept-Encoding
  CHECK_FALSE(none.has_header("Content-Encoding"));
  CHECK(none.header("Vary") == "Accept-Encoding");
  CHECK(none.body == big_text());

  auto refused = c.get("/text", {{"Accept-Encoding", "br;q=0, gzip;q=0, deflate;q=0, identity"}});
  CHECK_FALSE(refused.has_header("Content-Encoding"));
  CHECK(refused.body == big_text());

  auto small = c.get("/small", all);
  CHECK_FALSE(small.has_header("Content-Encoding"));
  CHECK(small.header("Vary") == "Accept-Encoding");
  CHECK(small.body == "tiny");

  auto png = c.get("/png", all);
  CHECK_FALSE(png.has_header("Content-Encoding"));
  CHECK_FALSE(png.has_header("Vary"));
  CHECK(png.body == big_text());

  auto partial = c.get("/partial", all);
  CHECK(partial.status == 206);
  CHECK_FALSE(partial.has_header("Content-Encoding"));
  CHECK(partial.body == big_text());

  auto encoded = c.get("/encoded", all);
  CHECK(encoded.header("Content-Encoding") == "gzip");
  CHECK(encoded.body == big_text());  // not compressed twice

  auto kept = c.get("/no-transform", all);
  CHECK_FALSE(kept.has_header("Content-Encoding"));
  CHECK(kept.body == big_text());
}

TEST_CASE("request bodies in gzip, deflate and br reach the handler decoded", "[compression]") {
  keel::app app(test_options());
  app.use(mw::compression());
  routes(app);
  kt::running_app run(app);
  kt::client c(run.port());
  for (std::string coding : {"gzip", "deflate", "br"}) {
    INFO(coding);
    auto r = c.request("POST", "/echo", encode(coding, big_text()), {{"Content-Encoding", coding}});
    CHECK(r.status == 200);
    CHECK(r.body == big_text());
  }
  auto plain = c.request("POST", "/echo", "as it is", {{"Content-Encoding", "identity"}});
  CHECK(plain.body == "as it is");
}

TEST_CASE("a bad request body encoding gets 415 or 400 and never reaches the handler", "[compression]") {
  keel::app app(test_options());
  app.use(mw::compression());
  int runs = 0;
  app.post("/count", [&runs](context&) -> task<response> {
    ++runs;
    co_return response::text("ran");
  });
  kt::running_app run(app);
  kt::client c(run.port());
  auto unknown = c.request("POST", "/count", "x", {{"Content-Encoding", "zstd"}});
  CHECK(unknown.status == 415);
  CHECK(unknown.header("Accept-Encoding") == "br, gzip, deflate");
  CHECK(unknown.header("Content-Type") == "application/problem+json");
  auto stacked = c.request("POST", "/count", "x", {{"Content-Encoding", "gzip, br"}});
  CHECK(stacked.status == 415);
  for (std::string coding : {"gzip", "deflate", "br"}) {
    INFO(coding);
    auto corrupt = c.request("POST", "/count", "definitely not " + coding, {{"Content-Encoding", coding}});
    CHECK(corrupt.status == 400);
    auto good = encode(coding, big_text());
    auto truncated = c.request("POST", "/count", good.substr(0, good.size() / 2), {{"Content-Encoding", coding}});
    CHECK(truncated.status == 400);
    auto trailing = c.request("POST", "/count", good + "junk", {{"Content-Encoding", coding}});
    CHECK(trailing.status == 400);
  }
  CHECK(runs == 0);
}

TEST_CASE("a zip bomb is refused with 413 and memory bounded by the limit", "[compression]") {
  keel::app app(test_options());
  mw::compression_options o;
  o.max_decompressed = 1 << 20;
  app.use(mw::compression(o));
  int runs = 0;
  app.post("/count", [&runs](context&) -> task<response> {
    ++runs;
    co_return response::text("ran");
  });
  kt::running_app run(app);
  kt::client c(run.port());
  // 512 MiB of zeros in about 500 KiB: under max_body, a thousand times the limit decoded.
  auto bomb = shell("/usr/bin/python3 -c 'import gzip,sys; sys.stdout.buffer.write(gzip.compress(bytes(512 << 20), 9))'");
  REQUIRE(bomb.size() < 1024 * 1024);
  auto before = peak_rss_kib();
  auto r = c.request("POST", "/count", bomb, {{"Content-Encoding", "gzip"}});
  CHECK(r.status == 413);
  CHECK(peak_rss_kib() - before < 16 * 1024);  // KiB: nowhere near 512 MiB
  // The ratio bounds small bodies too: 100 bytes may grow to 10 KB by default.
  auto ratio = shell("/usr/bin/python3 -c 'import gzip,sys; sys.stdout.buffer.write(gzip.compress(bytes(200000)))'");
  auto r2 = c.request("POST", "/count", ratio, {{"Content-Encoding", "gzip"}});
  CHECK(r2.status == 413);
  CHECK(runs == 0);
}
