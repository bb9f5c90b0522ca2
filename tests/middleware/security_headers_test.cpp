// security_headers: nosniff, Referrer-Policy, a frame policy and a CSP on
// every response, HSTS only over TLS, and nothing the handler set overridden.
#include <catch2/catch.hpp>

#include "io_thread.hpp"
#include "test_app.hpp"

#include <keel/context.hpp>
#include <keel/http_client.hpp>
#include <keel/middleware/security_headers.hpp>
#include <keel/ws.hpp>

#include <openssl/evp.h>

#include <cstdlib>
#include <filesystem>

using namespace keel::test;
using keel::context;
using keel::response;
using keel::task;
namespace kt = keel::testing;
namespace mw = keel::mw;
namespace fs = std::filesystem;

namespace {

task<response> plain(context&) { co_return response::text("ok"); }

task<response> own_headers(context&) {
  auto r = response::html("<p>framed</p>");
  r.set_header("X-Frame-Options", "SAMEORIGIN");
  r.set_header("Content-Security-Policy", "default-src 'self'");
  r.set_header("Referrer-Policy", "same-origin");
  co_return r;
}

// The CSP source for `text`, through OpenSSL's streaming digest API (the
// middleware uses the one-shot call).
std::string expected_hash(std::string_view text) {
  unsigned char d[EVP_MAX_MD_SIZE];
  unsigned n = 0;
  auto* md = EVP_MD_CTX_new();
  EVP_DigestInit_ex(md, EVP_sha256(), nullptr);
  EVP_DigestUpdate(md, text.data(), text.size());
  EVP_DigestFinal_ex(md, d, &n);
  EVP_MD_CTX_free(md);
  unsigned char b64[128];
  int len = EVP_EncodeBlock(b64, d, static_cast<int>(n));
  return "'sha256-" + std::string(reinterpret_cast<char*>(b64), static_cast<std::size_t>(len)) + "'";
}

}  // namespace

TEST_CASE("without a policy every response gets nosniff, no-referrer and DENY, and no CSP or HSTS", "[security_headers]") {
  keel::app app(test_options());
  app.use(mw::security_headers());
  app.get("/", plain);
  kt::running_app run(app);
  for (auto target : {"/", "/missing"}) {  // a 404 of keel's own too
    auto r = run.get(target);
    CHECK(r.header("X-Content-Type-Options") == "nosniff");
    CHECK(r.header("Referrer-Policy") == "no-referrer");
    CHECK(r.header("X-Frame-Options") == "DENY");
    CHECK_FALSE(r.has_header("Content-Security-Policy"));
    CHECK_FALSE(r.has_header("Strict-Transport-Security"));  // plain HTTP: RFC 6797 §7.2
  }
}

TEST_CASE("a configured CSP gets frame-ancestors from the frame policy unless it names its own", "[security_headers]") {
  keel::app app(test_options());
  app.use(mw::security_headers({.content_security_policy = "default-src 'self';"}));
  auto same = app.group("/same", {mw::security_headers(
                                     {.frames = mw::frame_policy::same_origin,
                                      .content_security_policy = "default-src 'none'"})});
  same.get("/page", plain);
  auto own = app.group("/own", {mw::security_headers({.frames = mw::frame_policy::allow,
                                                      .content_security_policy = "img-src *; Frame-Ancestors https://a.example"})});
  own.get("/page", plain);
  auto trial = app.group("/trial", {mw::security_headers({.content_security_policy = "script-src 'self'", .csp_report_only = true})});
  trial.get("/page", plain);
  app.get("/", plain);
  kt::running_app run(app);

  auto r = run.get("/");
  CHECK(r.header("Content-Security-Policy") == "default-src 'self'; frame-ancestors 'none'");
  CHECK(r.header("X-Frame-Options") == "DENY");

  // The inner layer's headers are there first; the outer one leaves them.
  auto s = run.get("/same/page");
  CHECK(s.header("Content-Security-Policy") == "default-src 'none'; frame-ancestors 'self'");
  CHECK(s.header("X-Frame-Options") == "SAMEORIGIN");

  auto o = run.get("/own/page");
  CHECK(o.header("Content-Security-Policy") == "img-src *; Frame-Ancestors https://a.example");

  auto t = run.get("/trial/page");
  CHECK(t.header("Content-Security-Policy-Report-Only") == "script-src 'self'; frame-ancestors 'none'");
  CHECK(t.header("Content-Security-Policy") == "default-src 'self'; frame-ancestors 'none'");  // the outer layer's
}

TEST_CASE("headers the handler set are left as they are", "[security_headers]") {
  keel::app app(test_options());
  app.use(mw::security_headers({.content_security_policy = "default-src 'none'"}));
  app.get("/own", own_headers);
  kt::running_app run(app);
  auto r = run.get("/own");
  CHECK(r.header("X-Frame-Options") == "SAMEORIGIN");
  CHECK(r.header("Content-Security-Policy") == "default-src 'self'");
  CHECK(r.header("Referrer-Policy") == "same-origin");
  CHECK(r.header("X-Content-Type-Options") == "nosniff");
}

TEST_CASE("a 101 upgrade answer gets no security headers", "[security_headers][ws]") {
  keel::app app(test_options());
  app.use(mw::security_headers({.content_security_policy = "default-src 'none'"}));
  app.ws("/ws", [](keel::websocket& ws) -> task<void> {
    while (co_await ws.read()) {
    }
  });
  kt::running_app run(app);
  kt::client c(run.port());
  c.send_raw("GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
             "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n");
  auto r = c.read_response();
  CHECK(r.status == 101);
  CHECK_FALSE(r.has_header("X-Frame-Options"));
  CHECK_FALSE(r.has_header("Content-Security-Policy"));
}

TEST_CASE("every header can be turned off", "[security_headers]") {
  keel::app app(test_options());
  app.use(mw::security_headers({.nosniff = false, .referrer_policy = "", .frames = mw::frame_policy::allow}));
  app.get("/", plain);
  kt::running_app run(app);
  auto r = run.get("/");
  CHECK(r.status == 200);
  CHECK_FALSE(r.has_header("X-Content-Type-Options"));
  CHECK_FALSE(r.has_header("Referrer-Policy"));
  CHECK_FALSE(r.has_header("X-Frame-Options"));
}

TEST_CASE("Strict-Transport-Security is sent over TLS, with its options", "[security_headers][tls]") {
  std::string dir = (fs::temp_directory_path() / "keel-sechdr-XXXXXX").string();
  REQUIRE(mkdtemp(dir.data()) != nullptr);
  std::string cmd = "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=localhost -keyout " +
                    dir + "/k.pem -out " + dir + "/c.pem > " + dir + "/openssl.log 2>&1";
  REQUIRE(std::system(cmd.c_str()) == 0);
  auto o = test_options();
  o.tls_cert = dir + "/c.pem";
  o.tls_key = dir + "/k.pem";
  keel::app app(o);
  app.use(mw::security_headers());
  app.get("/", [](context& ctx) -> task<response> { co_return response::text(ctx.tls() ? "tls" : "plain"); });
  auto strict = app.group("/strict", {mw::security_headers(
                                         {.hsts_max_age = std::chrono::hours(48), .hsts_include_subdomains = true, .hsts_preload = true})});
  strict.get("/x", plain);
  kt::running_app run(app);

  io_thread io;
  keel::http_client_options co;
  co.insecure_skip_verify = true;
  keel::http_client client(co);
  auto base = "https://127.0.0.1:" + std::to_string(run.port());
  auto r = io.result(client.get(base + "/"));
  CHECK(r.body == "tls");
  CHECK(r.header("Strict-Transport-Security") == "max-age=31536000");
  CHECK(r.header("X-Content-Type-Options") == "nosniff");
  auto s = io.result(client.get(base + "/strict/x"));
  CHECK(s.header("Strict-Transport-Security") == "max-age=172800; includeSubDomains; preload");
  run.stop();
  fs::remove_all(dir);
}

TEST_CASE("csp_hashes hashes each inline element's exact text and skips external scripts", "[security_headers]") {
  std::string page =
      "<!doctype html><head><style>\n  body { margin: 0 }\n</style>"
      "<script src=\"/app.js\"></script>"
      "<SCRIPT type=module>let a = '</scrip' + 't>';</SCRIPT >"
      "<scripts>not one</scripts><script>\n'use strict';\n</script></head>";
  CHECK(mw::csp_hashes(page, "style") == expected_hash("\n  body { margin: 0 }\n"));
  CHECK(mw::csp_hashes(page, "script") ==
        expected_hash("let a = '</scrip' + 't>';") + " " + expected_hash("\n'use strict';\n"));
  CHECK(mw::csp_hashes("<p>no scripts</p>", "script").empty());
  CHECK(mw::csp_hashes("<script>unterminated", "script").empty());
  // A well-known value: the SHA-256 of the empty string.
  CHECK(mw::csp_hashes("<script></script>", "script") == "'sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU='");
}
