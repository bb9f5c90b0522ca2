// Static files over loopback with curl, python3 and raw sockets as clients:
// every status (200, 206, 301, 304, 404, 405, 416), traversal attempts refused
// with one identical 404, ranges checked byte for byte, precompressed siblings
// chosen by Accept-Encoding, the opt-in index, and a 1 GiB sparse file served
// with the server's memory flat.
#include <catch2/catch.hpp>

#include "process_helpers.hpp"
#include "test_app.hpp"

#include <keel/middleware/compression.hpp>
#include <keel/static_files.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>

using namespace keel::test;
namespace kt = keel::testing;
namespace fs = std::filesystem;

namespace {

void write_file(fs::path const& p, std::string const& content) {
  std::ofstream(p, std::ios::binary) << content;
}

// A tree under a fresh temporary directory:
//   outside/secret.txt                 (never served)
//   root/hello.txt, root/site.css, root/app.js (+ .br, .gz), root/big.bin (200 KiB)
//   root/sub/index.html, root/empty/, root/.hidden
//   root/escape -> ../outside/secret.txt, root/inner -> hello.txt, root/fifo
struct tree {
  fs::path base;
  fs::path root;
  std::string big;
  tree() {
    char tmpl[] = "/tmp/keel-static-XXXXXX";
    base = ::mkdtemp(tmpl);
    root = base / "root";
    fs::create_directories(root / "sub");
    fs::create_directories(root / "empty");
    fs::create_directories(base / "outside");
    write_file(base / "outside" / "secret.txt", "top secret\n");
    write_file(root / "hello.txt", "Hello, static world!\n");
    write_file(root / "site.css", "body{color:red}\n");
    write_file(root / "app.js", "console.log('identity');\n");
    write_file(root / "app.js.br", "BROTLI-BYTES");
    write_file(root / "app.js.gz", "GZIP-BYTES");
    write_file(root / "sub" / "index.html", "<h1>index</h1>\n");
    write_file(root / ".hidden", "hidden\n");
    std::mt19937 rng(7);
    big.resize(200 * 1024);
    for (auto& ch : big) ch = static_cast<char>(rng());
    write_file(root / "big.bin", big);
    fs::create_symlink("../outside/secret.txt", root / "escape");
    fs::create_symlink("hello.txt", root / "inner");
    ::mkfifo((root / "fifo").c_str(), 0644);  // opening it must not wait for a writer
  }
  ~tree() {
    std::error_code ec;
    fs::remove_all(base, ec);
  }
};

struct fixture {
  tree t;
  keel::app app{test_options()};
  fixture() {
    app.static_files("/assets", t.root.string());
    keel::static_options o;
    o.index = true;
    o.cache_control = "public, max-age=60";
    app.static_files("/docs", t.root.string(), o);
  }
};

// One raw request on a fresh connection, the target sent exactly as given.
std::string raw_get(std::uint16_t port, std::string const& target) {
  boost::asio::io_context io;
  boost::asio::ip::tcp::socket s(io);
  s.connect({boost::asio::ip::make_address("127.0.0.1"), port});
  std::string req = "GET " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
  boost::asio::write(s, boost::asio::buffer(req));
  std::string all;
  boost::system::error_code ec;
  boost::asio::read(s, boost::asio::dynamic_buffer(all), ec);
  return all;
}

// The status line and everything but the per-request headers.
std::string without_volatile_headers(std::string const& all) {
  std::string out;
  std::size_t pos = 0;
  for (;;) {
    auto end = all.find("\r\n", pos);
    if (end == std::string::npos) break;
    auto line = all.substr(pos, end - pos);
    pos = end + 2;
    if (line.empty()) break;
    if (line.rfind("Date:", 0) == 0 || line.rfind("X-Request-Id:", 0) == 0 || line.rfind("traceresponse:", 0) == 0) {
      continue;
    }
    out += line + "\n";
  }
  return out + all.substr(pos);
}

}  // namespace

TEST_CASE("a file is served with its type, validators and cache policy", "[static]") {
  fixture f;
  kt::running_app run_app(f.app);
  auto r = run_app.get("/assets/hello.txt");
  CHECK(r.status == 200);
  CHECK(r.body == "Hello, static world!\n");
  CHECK(r.header("Content-Type") == "text/plain; charset=utf-8");
  CHECK(r.header("Content-Length") == "21");
  CHECK(r.header("Accept-Ranges") == "bytes");
  CHECK(r.header("Cache-Control") == "no-cache");
  CHECK(r.header("ETag").size() > 4);
  CHECK(r.header("Last-Modified").find(" GMT") != std::string::npos);
  CHECK(run_app.get("/assets/site.css").header("Content-Type") == "text/css; charset=utf-8");
  CHECK(run_app.get("/docs/hello.txt").header("Cache-Control") == "public, max-age=60");
  CHECK(keel::content_type_for("x/a.PNG") == "image/png");
  CHECK(keel::content_type_for("noext") == "application/octet-stream");
  // A symlink that stays inside the root is followed.
  CHECK(run_app.get("/assets/inner").body == "Hello, static world!\n");
}

TEST_CASE("curl gets 200, 304 on If-None-Match and If-Modified-Since, 404 and 405", "[static][curl]") {
  fixture f;
  kt::running_app run_app(f.app);
  auto url = run_app.url();
  auto etag = run_app.get("/assets/hello.txt").header("ETag");
  auto modified = run_app.get("/assets/hello.txt").header("Last-Modified");
  auto code = [&](std::string const& args) { return run_command("curl -s -o /dev/null -w '%{http_code}' " + args); };
  CHECK(code(url + "/assets/hello.txt") == "200");
  CHECK(code("-H 'If-None-Match: " + etag + "' " + url + "/assets/hello.txt") == "304");
  CHECK(code("-H 'If-None-Match: \"other\", W/" + etag + "' " + url + "/assets/hello.txt") == "304");
  CHECK(code("-H 'If-None-Match: \"other\"' " + url + "/assets/hello.txt") == "200");
  CHECK(code("-H 'If-Modified-Since: " + modified + "' " + url + "/assets/hello.txt") == "304");
  CHECK(code("-H 'If-Modified-Since: Sat, 01 Jan 2000 00:00:00 GMT' " + url + "/assets/hello.txt") == "200");
  CHECK(code(url + "/assets/missing.txt") == "404");
  CHECK(code("-X POST " + url + "/assets/hello.txt") == "405");
  auto r = run_app.request("DELETE", "/assets/hello.txt");
  CHECK(r.status == 405);
  CHECK(r.header("Allow").find("GET") != std::string::npos);
  CHECK(r.header("Allow").find("HEAD") != std::string::npos);
  auto nm = run_app.get("/assets/hello.txt", {{"If-None-Match", etag}});
  CHECK(nm.status == 304);
  CHECK(nm.header("ETag") == etag);
  CHECK(nm.body.empty());
}

TEST_CASE("single ranges are served byte for byte; unsatisfiable ones get 416", "[static][range]") {
  fixture f;
  kt::running_app run_app(f.app);
  auto const& big = f.t.big;
  auto check = [&](std::string const& spec, std::size_t first, std::size_t len) {
    auto r = run_app.get("/assets/big.bin", {{"Range", spec}});
    INFO(spec);
    CHECK(r.status == 206);
    CHECK(r.header("Content-Range") ==
          "bytes " + std::to_string(first) + "-" + std::to_string(first + len - 1) + "/" + std::to_string(big.size()));
    CHECK(r.body.size() == len);
    CHECK(r.body == big.substr(first, len));
  };
  check("bytes=0-9", 0, 10);
  check("bytes=100000-", 100000, big.size() - 100000);  // beyond one chunk: streamed
  check("bytes=-5", big.size() - 5, 5);
  check("bytes=1000-999999999", 1000, big.size() - 1000);
  check("bytes=0-", 0, big.size());
  auto bad = run_app.get("/assets/big.bin", {{"Range", "bytes=999999999-"}});
  CHECK(bad.status == 416);
  CHECK(bad.header("Content-Range") == "bytes */" + std::to_string(big.size()));
  // Several ranges, or an If-Range that no longer matches: the whole file.
  CHECK(run_app.get("/assets/big.bin", {{"Range", "bytes=0-1,5-6"}}).status == 200);
  CHECK(run_app.get("/assets/big.bin", {{"Range", "bytes=0-1"}, {"If-Range", "\"stale\""}}).status == 200);
  auto whole = run_app.get("/assets/big.bin");
  CHECK(whole.status == 200);
  CHECK(whole.body == big);
  // python3's http.client as a second real client.
  auto py = run_command("/usr/bin/python3 -c \"import http.client,sys; c=http.client.HTTPConnection('127.0.0.1'," +
                std::to_string(run_app.port()) +
                "); c.request('GET','/assets/big.bin',headers={'Range':'bytes=70000-70009'}); r=c.getresponse(); "
                "sys.stdout.buffer.write(str(r.status).encode()+b' '+r.read().hex().encode())\"");
  std::string want = "206 ";
  static constexpr char hex[] = "0123456789abcdef";
  for (std::size_t i = 70000; i < 70010; ++i) {
    want += hex[static_cast<unsigned char>(big[i]) >> 4];
    want += hex[static_cast<unsigned char>(big[i]) & 15];
  }
  CHECK(py == want);
}

TEST_CASE("traversal attempts all get the same plain 404", "[static][security]") {
  fixture f;
  kt::running_app run_app(f.app);
  auto reference = without_volatile_headers(raw_get(run_app.port(), "/assets/no-such-file"));
  CHECK(reference.rfind("HTTP/1.1 404 Not Found\n", 0) == 0);
  CHECK(reference.find("Not Found\n") != std::string::npos);
  std::vector<std::string> attempts = {
      "/assets/../outside/secret.txt",
      "/assets/%2e%2e/outside/secret.txt",
      "/assets/%2E%2e/outside/secret.txt",
      "/assets/..%2foutside%2fsecret.txt",
      "/assets/%2e%2e%2foutside%2fsecret.txt",
      "/assets/..\\outside\\secret.txt",
      "/assets/..%5coutside%5csecret.txt",
      "/assets/hello.txt%00.png",
      "/assets/hello.txt%00",
      "/assets//etc/passwd",
      "/assets/%2fetc%2fpasswd",
      "/assets/escape",
      "/assets/sub/../../outside/secret.txt",
      "/assets/sub/%2e%2e/%2e%2e/outside/secret.txt",
      "/assets/./hello.txt",
      "/assets/.hidden",
      "/assets/%2e%2e%5c%2e%2e%5coutside",
      "/assets/%zz",
      "/assets/sub",
      "/assets/empty/",
      "/assets/fifo",
  };
  for (auto const& a : attempts) {
    INFO(a);
    auto got = without_volatile_headers(raw_get(run_app.port(), a));
    CHECK(got == reference);
    CHECK(got.find("secret") == std::string::npos);
  }
}

TEST_CASE("precompressed siblings are chosen by Accept-Encoding", "[static][precompressed]") {
  fixture f;
  kt::running_app run_app(f.app);
  auto get = [&](std::string const& ae) {
    kt::header_list h;
    if (!ae.empty()) h.emplace_back("Accept-Encoding", ae);
    return run_app.get("/assets/app.js", h);
  };
  auto both = get("gzip, deflate, br");
  CHECK(both.body == "BROTLI-BYTES");
  CHECK(both.header("Content-Encoding") == "br");
  CHECK(both.header("Content-Type") == "text/javascript; charset=utf-8");
  CHECK(both.header("Vary") == "Accept-Encoding");
  auto gz = get("gzip");
  CHECK(gz.body == "GZIP-BYTES");
  CHECK(gz.header("Content-Encoding") == "gzip");
  CHECK(get("br;q=0, gzip").header("Content-Encoding") == "gzip");
  auto none = get("");
  CHECK(none.body == "console.log('identity');\n");
  CHECK_FALSE(none.has_header("Content-Encoding"));
  CHECK(none.header("Vary") == "Accept-Encoding");
  CHECK(get("identity").body == "console.log('identity');\n");
  CHECK(get("deflate").body == "console.log('identity');\n");
  // Each variant has its own ETag.
  CHECK(both.header("ETag") != none.header("ETag"));
  CHECK(both.header("ETag") != gz.header("ETag"));
  // A range is of the identity bytes, whatever the client accepts.
  auto ranged = run_app.get("/assets/app.js", {{"Accept-Encoding", "br, gzip"}, {"Range", "bytes=0-6"}});
  CHECK(ranged.status == 206);
  CHECK(ranged.body == "console");
  CHECK_FALSE(ranged.has_header("Content-Encoding"));
  // curl as a client: what it asks for is what it gets.
  auto url = run_app.url();
  CHECK(run_command("curl -s -H 'Accept-Encoding: br' " + url + "/assets/app.js") == "BROTLI-BYTES");
}

TEST_CASE("the directory index is opt-in per mount", "[static][index]") {
  fixture f;
  kt::running_app run_app(f.app);
  auto r = run_app.get("/docs/sub/");
  CHECK(r.status == 200);
  CHECK(r.body == "<h1>index</h1>\n");
  CHECK(r.header("Content-Type") == "text/html; charset=utf-8");
  auto redirect = run_app.get("/docs/sub?x=1");
  CHECK(redirect.status == 301);
  CHECK(redirect.header("Location") == "/docs/sub/?x=1");
  CHECK(run_app.get("/docs/empty/").status == 404);  // no index.html there
  CHECK(run_app.get("/assets/sub/").status == 404);  // index off on this mount
}

TEST_CASE("a 1 GiB sparse file streams to a client that discards it with memory flat", "[static][large]") {
  fixture f;
  auto path = f.t.root / "huge.bin";
  {
    int fd = ::open(path.c_str(), O_CREAT | O_WRONLY | O_TRUNC, 0644);
    REQUIRE(fd >= 0);
    REQUIRE(::ftruncate(fd, off_t{1} << 30) == 0);
    ::close(fd);
  }
  kt::running_app run_app(f.app);
  auto rss_before = vm_kib("VmRSS:");
  {
    std::ofstream("/proc/self/clear_refs") << "5";  // resets VmHWM to the current RSS
  }
  auto out = run_command("curl -s -o /dev/null -w '%{http_code} %{size_download}' " + run_app.url() + "/assets/huge.bin");
  CHECK(out == "200 1073741824");
  auto hwm = vm_kib("VmHWM:");
  INFO("VmRSS before " << rss_before << " KiB, VmHWM after " << hwm << " KiB");
  CHECK(hwm < rss_before + 16 * 1024);
  // HEAD: the length, no body, nothing read.
  kt::client c(run_app.port());
  auto head = c.request("HEAD", "/assets/huge.bin");
  CHECK(head.status == 200);
  CHECK(head.header("Content-Length") == "1073741824");
  CHECK(head.body.empty());
  CHECK(c.get("/assets/hello.txt").status == 200);  // the connection is still usable
}

TEST_CASE("the compression middleware leaves precompressed and streamed files alone", "[static][compression]") {
  tree t;
  std::string text(300 * 1024, 'a');  // compressible, and larger than a chunk: streamed
  write_file(t.root / "long.txt", text);
  write_file(t.root / "short.txt", std::string(2000, 'b'));
  keel::app app(test_options());
  app.use(keel::mw::compression({.min_size = 16}));
  app.static_files("/assets", t.root.string());
  kt::running_app run_app(app);
  auto pre = run_app.get("/assets/app.js", {{"Accept-Encoding", "gzip, br"}});
  CHECK(pre.body == "BROTLI-BYTES");
  CHECK(pre.header("Content-Encoding") == "br");
  auto streamed = run_app.get("/assets/long.txt", {{"Accept-Encoding", "gzip"}});
  CHECK(streamed.status == 200);
  CHECK_FALSE(streamed.has_header("Content-Encoding"));
  CHECK(streamed.body == text);
  // A small identity file is an ordinary response: the middleware may compress it.
  auto small = run_app.get("/assets/short.txt", {{"Accept-Encoding", "gzip"}});
  CHECK(small.status == 200);
  CHECK(small.header("Content-Encoding") == "gzip");
}
