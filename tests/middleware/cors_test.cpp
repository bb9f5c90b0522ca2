// cors: preflights answered before auth and the handler, allowed origins
// echoed, Vary: Origin everywhere.
#include <catch2/catch.hpp>

#include "sse_client.hpp"
#include "test_app.hpp"

#include <keel/context.hpp>
#include <keel/middleware/auth.hpp>
#include <keel/middleware/cors.hpp>
#include <keel/middleware/security_headers.hpp>
#include <keel/sse.hpp>

using namespace keel::test;
using keel::context;
using keel::response;
using keel::task;
namespace kt = keel::testing;
namespace mw = keel::mw;

namespace {

int handler_runs = 0;

task<response> counted(context&) {
  ++handler_runs;
  co_return response::text("data");
}

kt::header_list preflight(std::string origin, std::string method, std::string headers = {}) {
  kt::header_list h{{"Origin", std::move(origin)}, {"Access-Control-Request-Method", std::move(method)}};
  if (!headers.empty()) h.emplace_back("Access-Control-Request-Headers", std::move(headers));
  return h;
}

mw::cors_options app_origin() {
  mw::cors_options o;
  o.origins = {"https://app.example"};
  o.max_age = std::chrono::seconds(300);
  return o;
}

}  // namespace

TEST_CASE("a preflight from an allowed origin is answered 204 without reaching the handler", "[cors]") {
  keel::app app(test_options());
  app.use(mw::cors(app_origin()));
  app.post("/items", counted);
  kt::running_app run(app);
  handler_runs = 0;
  auto r = run.request("OPTIONS", "/items", {}, preflight("https://app.example", "POST", "content-type"));
  CHECK(r.status == 204);
  CHECK(r.header("Access-Control-Allow-Origin") == "https://app.example");
  CHECK(r.header("Access-Control-Allow-Methods") == "GET, HEAD, POST, PUT, PATCH, DELETE");
  CHECK(r.header("Access-Control-Allow-Headers") == "Content-Type, Authorization");
  CHECK(r.header("Access-Control-Max-Age") == "300");
  CHECK(r.header("Vary") == "Origin, Access-Control-Request-Method, Access-Control-Request-Headers");
  CHECK_FALSE(r.has_header("Access-Control-Allow-Credentials"));
  CHECK(handler_runs == 0);
}

TEST_CASE("a preflight from another origin, for another method or header is refused with 403", "[cors]") {
  keel::app app(test_options());
  app.use(mw::cors(app_origin()));
  app.post("/items", counted);
  kt::running_app run(app);
  handler_runs = 0;
  for (auto const& h : {preflight("https://evil.example", "POST"), preflight("https://app.example", "PURGE"),
                        preflight("https://app.example", "post"),
                        preflight("https://app.example", "POST", "X-Custom")}) {
    auto r = run.request("OPTIONS", "/items", {}, h);
    CHECK(r.status == 403);
    CHECK_FALSE(r.has_header("Access-Control-Allow-Origin"));
    CHECK(r.header("Vary").find("Origin") != std::string::npos);
  }
  CHECK(handler_runs == 0);
}

TEST_CASE("actual requests from allowed origins get Allow-Origin, others do not, all get Vary", "[cors]") {
  keel::app app(test_options());
  app.use(mw::cors(app_origin()));
  app.get("/items", counted);
  kt::running_app run(app);
  auto ok = run.get("/items", {{"Origin", "https://app.example"}});
  CHECK(ok.status == 200);
  CHECK(ok.header("Access-Control-Allow-Origin") == "https://app.example");
  CHECK(ok.header("Access-Control-Expose-Headers") == "X-Request-Id");
  CHECK(ok.header("Vary") == "Origin");
  auto other = run.get("/items", {{"Origin", "https://app.example.evil"}});
  CHECK(other.status == 200);  // the browser, not the server, withholds it
  CHECK_FALSE(other.has_header("Access-Control-Allow-Origin"));
  CHECK(other.header("Vary") == "Origin");
  auto none = run.get("/items");
  CHECK_FALSE(none.has_header("Access-Control-Allow-Origin"));
  CHECK(none.header("Vary") == "Origin");
}

TEST_CASE("a wildcard origin is * without credentials and echoed with them", "[cors]") {
  keel::app app(test_options());
  app.group("/open", {mw::cors({.origins = {"*"}})}).get("/x", counted);
  app.group("/creds", {mw::cors({.origins = {"*"}, .credentials = true})}).get("/x", counted);
  kt::running_app run(app);
  CHECK(run.get("/open/x", {{"Origin", "https://a.example"}}).header("Access-Control-Allow-Origin") == "*");
  auto c = run.get("/creds/x", {{"Origin", "https://a.example"}});
  CHECK(c.header("Access-Control-Allow-Origin") == "https://a.example");
  CHECK(c.header("Access-Control-Allow-Credentials") == "true");
}

TEST_CASE("a predicate allows origins the list does not name; * headers echo the request", "[cors]") {
  keel::app app(test_options());
  mw::cors_options o;
  o.allow_origin = [](std::string_view origin) {
    return origin.size() > 13 && origin.substr(origin.size() - 13) == ".example.test";
  };
  o.headers = {"*"};
  app.use(mw::cors(o));
  app.put("/x", counted);
  kt::running_app run(app);
  auto r = run.request("OPTIONS", "/x", {}, preflight("https://a.example.test", "PUT", "X-One, X-Two"));
  CHECK(r.status == 204);
  CHECK(r.header("Access-Control-Allow-Origin") == "https://a.example.test");
  CHECK(r.header("Access-Control-Allow-Headers") == "X-One, X-Two");
  CHECK(run.request("OPTIONS", "/x", {}, preflight("https://example.test.evil", "PUT")).status == 403);
}

TEST_CASE("CORS outside auth answers the preflight before auth asks for credentials", "[cors][order]") {
  keel::app app(test_options());
  auto api = app.group("/api", {mw::cors(app_origin()), mw::authenticate(mw::bearer_tokens({{"t", {.subject = "u"}}}))});
  api.get("/items", counted);
  kt::running_app run(app);
  handler_runs = 0;
  CHECK(run.request("OPTIONS", "/api/items", {}, preflight("https://app.example", "GET", "authorization")).status == 204);
  // The actual request still needs credentials, and its 401 carries the CORS
  // headers so the page can read why.
  auto r = run.get("/api/items", {{"Origin", "https://app.example"}});
  CHECK(r.status == 401);
  CHECK(r.header("Access-Control-Allow-Origin") == "https://app.example");
  CHECK(run.get("/api/items", {{"Origin", "https://app.example"}, {"Authorization", "Bearer t"}}).status == 200);
  CHECK(handler_runs == 1);
}

TEST_CASE("a plain OPTIONS without a preflight's headers reaches the automatic answer", "[cors]") {
  keel::app app(test_options());
  app.use(mw::cors(app_origin()));
  app.get("/x", counted);
  kt::running_app run(app);
  auto r = run.request("OPTIONS", "/x", {}, {{"Origin", "https://app.example"}});
  CHECK(r.status == 204);
  CHECK(r.header("Allow") == "GET, HEAD, OPTIONS");
  CHECK(r.header("Access-Control-Allow-Origin") == "https://app.example");
}

TEST_CASE("cors attached to a route applies to that route only", "[cors][attach]") {
  keel::app app(test_options());
  app.get("/with", counted).use(mw::cors(app_origin()));
  app.get("/without", counted);
  kt::running_app run(app);
  CHECK(run.get("/with", {{"Origin", "https://app.example"}}).header("Access-Control-Allow-Origin") ==
        "https://app.example");
  CHECK_FALSE(run.get("/without", {{"Origin", "https://app.example"}}).has_header("Access-Control-Allow-Origin"));
  // The automatic OPTIONS of a route runs through that route's chain.
  CHECK(run.request("OPTIONS", "/with", {}, preflight("https://app.example", "GET")).header(
            "Access-Control-Allow-Origin") == "https://app.example");
}

TEST_CASE("an SSE stream's head carries the headers CORS and security headers middleware set", "[cors][sse]") {
  keel::app app(test_options());
  app.use(mw::cors(app_origin()));
  app.use(mw::security_headers());
  keel::add_sse_route(app, "/events", [](keel::sse_stream& s) -> task<void> {
    co_await s.send("hello", "world");
  });
  kt::running_app run(app);
  sse_client c(run.port(), "/events", "Origin: https://app.example\r\n");
  REQUIRE(c.read_to_eof());
  auto head = c.head();
  INFO(head);
  CHECK(head.rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
  CHECK(head.find("Access-Control-Allow-Origin: https://app.example\r\n") != std::string::npos);
  CHECK(head.find("Vary: Origin\r\n") != std::string::npos);
  CHECK(head.find("X-Content-Type-Options: nosniff\r\n") != std::string::npos);
  CHECK(head.find("Content-Type: text/event-stream\r\n") != std::string::npos);
  CHECK(head.find("X-Request-Id: ") != std::string::npos);
  CHECK(c.body() == "event: hello\ndata: world\n\n");
}
