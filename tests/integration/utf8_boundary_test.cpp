// Text that leaves keel is UTF-8 (issue 21 #4): percent-decoded path and query
// values are checked where they are decoded, problem bodies are made valid,
// and a WebSocket text message or close reason is never put on the wire with
// invalid bytes. The peers are keel::testing's raw HTTP client, Boost.JSON's
// parser (which rejects invalid UTF-8), python3-websockets (which fails a
// connection with 1007 on invalid text, as RFC 6455 §8.1 requires) and
// keel's own server (Beast checks what it reads).
#include <catch2/catch.hpp>

#include "io_thread.hpp"
#include "process_helpers.hpp"
#include "test_app.hpp"

#include <keel/context.hpp>
#include <keel/error.hpp>
#include <keel/hub.hpp>
#include <keel/utf8.hpp>
#include <keel/ws.hpp>
#include <keel/ws_client.hpp>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <future>

using namespace keel::test;
using keel::context;
using keel::response;
using keel::task;
namespace kt = keel::testing;
namespace json = boost::json;

namespace {

std::string const replacement = "\xEF\xBF\xBD";

std::string hex(std::string_view bytes) {
  static char const digits[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : bytes) {
    out.push_back(digits[c >> 4]);
    out.push_back(digits[c & 15]);
  }
  return out;
}

task<response> echo_param(context& ctx) { co_return response::text(ctx.param("v")); }

task<response> echo_query(context& ctx) { co_return response::text(ctx.query("v").value_or("<absent>")); }

task<response> echo_bytes(context& ctx) {
  co_return response::text(hex(ctx.param_bytes("v")) + "," + hex(ctx.query_bytes("v").value_or("")));
}

// What todo did for an unknown id: the detail echoes the bytes it was given.
task<response> not_found_echo(context& ctx) {
  throw keel::not_found("no todo " + ctx.param_bytes("v"));
  co_return response::text("unreachable");
}

task<response> problem_from_bytes(context& ctx) {
  co_return ctx.problem(422, "bad byte \xFF here", {{"echo", "x\xFE\xFFy"}, {"list", json::array{"\xC0\xAF"}}},
                        "title \xE2\x82");
}

// A body that checks as a problem and parses as JSON; its object.
json::object problem_of(kt::http_response const& r, unsigned status) {
  CHECK(r.status == status);
  CHECK(r.header("Content-Type").rfind("application/problem+json", 0) == 0);
  CHECK(keel::is_valid_utf8(r.body));
  boost::system::error_code ec;
  auto v = json::parse(r.body, ec);  // Boost.JSON refuses invalid UTF-8 in strings
  CHECK_FALSE(ec);
  if (ec || !v.is_object()) return {};
  return v.as_object();
}

std::string str(json::object const& o, char const* key) {
  auto const* v = o.if_contains(key);
  return v && v->is_string() ? std::string(v->as_string()) : std::string("<missing>");
}

std::string str(json::value const& v, char const* key) { return v.is_object() ? str(v.as_object(), key) : ""; }

struct http_fixture {
  keel::app app{test_options()};
  std::unique_ptr<kt::running_app> running;
  http_fixture() {
    app.get("/p/{v}", echo_param);
    app.get("/q", echo_query);
    app.get("/bytes/{v}", echo_bytes);
    app.get("/todos/{v}", not_found_echo);
    app.get("/problem", problem_from_bytes);
    running = std::make_unique<kt::running_app>(app);
  }
};

}  // namespace

TEST_CASE("a path parameter that decodes to invalid UTF-8 is a 400 problem naming it", "[utf8]") {
  http_fixture f;
  for (char const* target : {"/p/%FF", "/p/ab%C3", "/p/%ED%A0%80", "/p/%C0%AF", "/p/%F4%90%80%80"}) {
    INFO(target);
    auto o = problem_of(f.running->get(target), 400);
    CHECK(str(o, "detail").find("'v'") != std::string::npos);
    CHECK(str(o, "detail").find("path parameter") != std::string::npos);
  }
}

TEST_CASE("a query value that decodes to invalid UTF-8 is a 400 problem naming it", "[utf8]") {
  http_fixture f;
  for (char const* target : {"/q?v=%FF", "/q?a=1&v=x%FE+y", "/q?%76=%80"}) {
    INFO(target);
    auto o = problem_of(f.running->get(target), 400);
    CHECK(str(o, "detail").find("'v'") != std::string::npos);
    CHECK(str(o, "detail").find("query parameter") != std::string::npos);
  }
  // Another parameter's bytes do not matter to a query for this one.
  auto r = f.running->get("/q?w=%FF&v=ok");
  CHECK(r.status == 200);
  CHECK(r.body == "ok");
}

TEST_CASE("valid multi-byte UTF-8 passes through the checked accessors", "[utf8]") {
  http_fixture f;
  auto r = f.running->get("/p/caf%C3%A9%20%E2%82%AC%F0%9F%98%80");
  CHECK(r.status == 200);
  CHECK(r.body == "caf\xC3\xA9 \xE2\x82\xAC\xF0\x9F\x98\x80");
  r = f.running->get("/q?v=%C3%A9+%E2%82%AC");
  CHECK(r.status == 200);
  CHECK(r.body == "\xC3\xA9 \xE2\x82\xAC");
  r = f.running->get("/q");
  CHECK(r.body == "<absent>");
}

TEST_CASE("the bytes accessors return decoded bytes unchecked", "[utf8]") {
  http_fixture f;
  auto r = f.running->get("/bytes/a%FF%00b?v=%FE%C3%A9");
  CHECK(r.status == 200);
  CHECK(r.body == "61ff0062,fec3a9");
}

TEST_CASE("a problem built from invalid bytes is valid UTF-8 JSON on the wire", "[utf8]") {
  http_fixture f;
  auto o = problem_of(f.running->get("/problem"), 422);
  CHECK(str(o, "detail") == "bad byte " + replacement + " here");
  CHECK(str(o, "title") == "title " + replacement);
  CHECK(str(o, "echo") == "x" + replacement + replacement + "y");
  // todo's GET /api/todos/%FF%FE: an http_error whose detail echoes the bytes.
  o = problem_of(f.running->get("/todos/%FF%FE"), 404);
  CHECK(str(o, "detail") == "no todo " + replacement + replacement);
}

namespace {

bool python_websockets_available() {
  if (::access("/usr/bin/python3", X_OK) != 0) return false;
  return std::system("/usr/bin/python3 -c 'import websockets' >/dev/null 2>&1") == 0;
}

std::string recv_client() {
  char const* src = std::getenv("KEEL_SOURCE_DIR");
  return std::string(src ? src : ".") + "/tests/support/ws_recv_client.py";
}

keel::local_hub hub;

// Every way a handler sends text, each with a byte that is not UTF-8; a
// binary message carries the same byte untouched; the close reason too.
task<void> bad_sender(keel::websocket& ws) {
  ws.send("send a\xFF" "b");
  auto handle = ws.handle();
  hub.join("room", handle);
  hub.publish("room", "hub \xC3");
  co_await ws.send_wait("wait \xED\xA0\x80");
  handle.send("handle \xF8");
  ws.send("bin \xFF", true);
  co_await ws.close(1000, "bye \xFF");
}

// A close reason over the 123 bytes a close frame has room for, in two-byte
// characters: cut at a character boundary, not inside one.
task<void> long_goodbye(keel::websocket& ws) {
  std::string reason;
  for (int i = 0; i < 70; ++i) reason += "\xC3\xA9";
  co_await ws.close(1000, reason);
}

json::object python_recv(std::uint16_t port, std::string const& path) {
  auto out = run_command("timeout 30 /usr/bin/python3 " + recv_client() + " ws://127.0.0.1:" + std::to_string(port) +
                         path);
  INFO(out);
  boost::system::error_code ec;
  auto v = json::parse(out, ec);
  REQUIRE_FALSE(ec);
  REQUIRE(v.is_object());
  return v.as_object();
}

int number(json::object const& o, char const* key) {
  auto const* v = o.if_contains(key);
  return v && v->is_int64() ? static_cast<int>(v->as_int64()) : -1;
}

std::atomic<int> echo_close_code{0};
task<void> echo(keel::websocket& ws) {
  for (;;) {
    auto msg = co_await ws.read();
    if (!msg) {
      echo_close_code = msg.close_code;
      co_return;
    }
    ws.send(msg.data, msg.is_binary());
  }
}

task<keel::ws_message> send_then_read(keel::ws_client& c) {
  auto s = c.state();
  while (s != keel::ws_client_state::open) s = co_await c.wait_state(s);
  c.send("client \xFF");
  co_return co_await c.read();
}

}  // namespace

TEST_CASE("text a handler sends with invalid UTF-8 or in a long close reason reaches python3-websockets valid",
          "[utf8][ws]") {
  if (!python_websockets_available()) {
    WARN("skipped: /usr/bin/python3 with the websockets module is not installed");
    return;
  }
  keel::app app(test_options());
  app.ws("/bad", bad_sender);
  app.ws("/long", long_goodbye);
  kt::running_app running(app);

  {
    auto o = python_recv(running.port(), "/long");
    INFO(json::serialize(o));
    CHECK(o.at("error").is_null());
    CHECK(number(o, "close_code") == 1000);
    std::string cut;
    for (int i = 0; i < 61; ++i) cut += "\xC3\xA9";
    CHECK(str(o, "close_reason") == cut);
  }
  auto o = python_recv(running.port(), "/bad");
  INFO(json::serialize(o));
  CHECK(o.at("error").is_null());
  CHECK(number(o, "close_code") == 1000);
  CHECK(str(o, "close_reason") == "bye " + replacement);
  auto const& m = o.at("messages").as_array();
  REQUIRE(m.size() == 5);
  CHECK(str(m[0], "data") == "send a" + replacement + "b");
  CHECK(str(m[1], "data") == "hub " + replacement);
  CHECK(str(m[2], "data") == "wait " + replacement + replacement + replacement);
  CHECK(str(m[3], "data") == "handle " + replacement);
  CHECK(m[4].at("text") == json::value(false));
  CHECK(str(m[4], "hex") == hex("bin \xFF"));
}

TEST_CASE("text keel::ws_client sends with invalid UTF-8 reaches the server as U+FFFD", "[utf8][ws]") {
  keel::app app(test_options());
  app.ws("/echo", echo);
  kt::running_app running(app);
  io_thread io;
  keel::ws_client_options o;
  o.max_attempts = 1;
  keel::ws_client client(io.executor(), "ws://127.0.0.1:" + std::to_string(running.port()) + "/echo", o);
  auto run = io.spawn(client.run());
  auto got = io.spawn(send_then_read(client));
  bool answered = got.wait_for(std::chrono::seconds(10)) == std::future_status::ready;
  CHECK(answered);
  // Beast on the server side would have failed a bad message with 1007.
  CHECK(echo_close_code.load() != 1007);
  client.stop();
  REQUIRE(run.wait_for(std::chrono::seconds(10)) == std::future_status::ready);
  io.get(run);
  if (answered) {
    auto m = io.get(got);
    CHECK(m.is_text());
    CHECK(m.data == "client " + replacement);
  }
}
