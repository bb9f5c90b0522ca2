// The WebSocket rooms and the page, over real loopback sockets through
// keel::testing (its ws_client is a Beast client, not keel's session code).
#include "routes.hpp"

#include <keel/testing.hpp>
#include <keel/testing/ws_client.hpp>

#include <boost/json/parse.hpp>
#include <catch2/catch.hpp>

namespace json = boost::json;

namespace {

struct service {
  service() : cfg("{{name}}") {
    {{ident}}::declare_settings(cfg);
    cfg.load({}, [](char const*) -> char const* { return nullptr; });
    app = std::make_unique<keel::app>(cfg.server());
    {{ident}}::setup(*app, cfg);
    running = std::make_unique<keel::testing::running_app>(*app);
  }
  keel::config cfg;
  std::unique_ptr<keel::app> app;
  std::unique_ptr<keel::testing::running_app> running;
};

json::value joined(keel::testing::ws_client& c) { return json::parse(c.read()); }

}  // namespace

TEST_CASE("a message goes from one member of a room to the other") {
  service s;
  keel::testing::ws_client alice(s.running->port(), "/ws?room=lobby");
  REQUIRE(joined(alice).at("type") == "joined");
  keel::testing::ws_client bob(s.running->port(), "/ws?room=lobby");
  REQUIRE(joined(bob).at("room") == "lobby");

  alice.send("hello bob");
  auto m = json::parse(bob.read());
  CHECK(m.at("type") == "message");
  CHECK(m.at("text") == "hello bob");
  CHECK(json::parse(alice.read()).at("text") == "hello bob");  // the sender is a member too

  auto rooms = json::parse(s.running->get("/api/rooms").body);
  CHECK(rooms == json::parse(R"([{"room":"lobby","members":2}])"));
  alice.close();
  bob.close();
}

TEST_CASE("rooms are separate") {
  service s;
  keel::testing::ws_client a(s.running->port(), "/ws?room=a");
  joined(a);
  keel::testing::ws_client b(s.running->port(), "/ws?room=b");
  joined(b);
  a.send("only for a");
  CHECK(json::parse(a.read()).at("text") == "only for a");
  b.send("only for b");
  CHECK(json::parse(b.read()).at("text") == "only for b");  // a's message never reached b
}

TEST_CASE("an upgrade without a room is a 400 before the upgrade") {
  service s;
  CHECK_THROWS_WITH(keel::testing::ws_client(s.running->port(), "/ws"), Catch::Contains("400"));
  CHECK(s.running->get("/ws?room=x").status == 426);  // a plain GET of a WebSocket route
}

TEST_CASE("the page is served") {
  service s;
  auto r = s.running->get("/");
  REQUIRE(r.status == 200);
  CHECK(r.header("Content-Type").rfind("text/html", 0) == 0);
  CHECK(r.body.find("new WebSocket") != std::string::npos);
}
