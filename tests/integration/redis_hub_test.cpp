// keel::redis_hub against a real redis-server: two hubs (two "instances") in
// one process, each behind its own app, with members connected over loopback.
// Skipped (with a warning) where redis-server is not installed.
#include <catch2/catch.hpp>

#include <keel/metrics.hpp>
#include <keel/redis.hpp>
#include <keel/redis_hub.hpp>

#include "io_thread.hpp"
#include "redis_server.hpp"
#include "test_app.hpp"
#include "ws_client.hpp"

#include <memory>
#include <mutex>
#include <sstream>
#include <string>

using namespace std::chrono_literals;
using keel::test::io_thread;
using keel::test::redis_server;
using keel::test::ws_client;
namespace kt = keel::testing;

namespace {

double metric(std::string const& name_and_labels) {
  std::istringstream in(keel::metrics::global().render());
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(name_and_labels + " ", 0) == 0) return std::stod(line.substr(name_and_labels.size() + 1));
  }
  return 0;
}

keel::task<void> member(keel::websocket& ws, keel::hub& hub) {
  auto room = ws.ctx().query("r").value_or("r");
  hub.join(room, ws.handle());
  for (;;) {
    auto msg = co_await ws.read();
    if (!msg) co_return;
    hub.publish(room, msg.data);
  }
}

keel::redis_hub_options hub_options(redis_server const& redis) {
  keel::redis_hub_options o;
  o.url = keel::redis_url::parse(redis.url());
  o.reconnect = {.base = 20ms, .multiplier = 2, .cap = 200ms};
  o.connect_timeout = 500ms;
  o.command_timeout = 1s;
  o.health_interval = 100ms;
  return o;
}

// One instance: a hub and an app whose /room?r=R joins R and publishes what it reads.
struct instance {
  keel::redis_hub hub;
  keel::app app{keel::test::test_options()};
  std::unique_ptr<kt::running_app> running;
  explicit instance(keel::redis_hub_options o) : hub(std::move(o)) {
    app.ws("/room", [this](keel::websocket& ws) { return member(ws, hub); });
    running = std::make_unique<kt::running_app>(app);
  }
  std::uint16_t port() const { return running->port(); }
};

// Subscribers of a room's channel, as Redis counts them (PUBSUB NUMSUB).
std::int64_t subscribers(io_thread& io, redis_server const& redis, std::string const& room) {
  return io.result([&]() -> keel::task<std::int64_t> {
    keel::redis_connection c(co_await boost::asio::this_coro::executor);
    if (co_await c.connect(keel::redis_url::parse(redis.url()), 1s)) co_return -1;
    std::vector<keel::redis_command> cmds{{"PUBSUB", "NUMSUB", "keel:hub:" + room}};
    auto [ec, r] = co_await c.pipeline(cmds, 1s);
    if (ec || r.size() != 1 || r[0].elements.size() != 2) co_return -1;
    co_return r[0].elements[1].integer;
  }());
}

}  // namespace

TEST_CASE("redis URLs are parsed with their defaults, and bad ones are refused naming the fault", "[redis]") {
  auto u = keel::redis_url::parse("redis://10.1.2.3:6380/4");
  CHECK(u.host == "10.1.2.3");
  CHECK(u.port == 6380);
  CHECK(u.db == 4);
  auto d = keel::redis_url::parse("redis://cache");
  CHECK(d.host == "cache");
  CHECK(d.port == 6379);
  CHECK(d.db == 0);
  CHECK(keel::redis_url::parse("redis://[::1]:7000/1").str() == "redis://[::1]:7000/1");
  CHECK_THROWS_WITH(keel::redis_url::parse("http://x"), Catch::Contains("redis://"));
  CHECK_THROWS_WITH(keel::redis_url::parse("redis://x:0"), Catch::Contains("port"));
  CHECK_THROWS_WITH(keel::redis_url::parse("redis://x:6379/a"), Catch::Contains("database"));
  CHECK_THROWS(keel::redis_url::parse("redis://:6379"));
}

TEST_CASE("a redis_connection pipelines commands and reports a dead server as an error code", "[redis]") {
  if (!keel::test::redis_available()) {
    WARN("redis-server is not installed (Debian package redis-server): skipping");
    return;
  }
  redis_server redis;
  io_thread io;
  auto replies = io.result([&]() -> keel::task<std::vector<keel::redis_reply>> {
    keel::redis_connection c(co_await boost::asio::this_coro::executor);
    auto ec = co_await c.connect(keel::redis_url::parse(redis.url()), 1s);
    REQUIRE_FALSE(ec);
    std::vector<keel::redis_command> cmds{{"SET", "k", std::string("a\r\nb\0c", 6)}, {"GET", "k"}, {"INCR", "k"},
                                          {"LRANGE", "none", "0", "-1"}, {"GET", "none"}};
    auto [pec, r] = co_await c.pipeline(cmds, 1s);
    REQUIRE_FALSE(pec);
    co_return r;
  }());
  REQUIRE(replies.size() == 5);
  CHECK(replies[0].type == keel::redis_reply::kind::status);
  CHECK(replies[1].str == std::string("a\r\nb\0c", 6));
  CHECK(replies[2].is_error());
  CHECK(replies[3].type == keel::redis_reply::kind::array);
  CHECK(replies[4].type == keel::redis_reply::kind::nil);

  auto port = redis.port();
  redis.stop();
  auto ec = io.result([&]() -> keel::task<boost::system::error_code> {
    keel::redis_connection c(co_await boost::asio::this_coro::executor);
    co_return co_await c.connect(keel::redis_url::parse("redis://127.0.0.1:" + std::to_string(port)), 500ms);
  }());
  CHECK(ec);
}

TEST_CASE("redis_hub: members on two instances get each message once, in publish order, and no echo",
          "[redis][redis_hub]") {
  if (!keel::test::redis_available()) {
    WARN("redis-server is not installed (Debian package redis-server): skipping");
    return;
  }
  redis_server redis;
  io_thread io;
  instance one(hub_options(redis)), two(hub_options(redis));
  CHECK(one.hub.instance_id() != two.hub.instance_id());
  REQUIRE(kt::eventually([&] { return one.hub.connected() && two.hub.connected(); }));

  ws_client a(one.port(), "/room?r=lobby");
  ws_client b(two.port(), "/room?r=lobby");
  ws_client other(two.port(), "/room?r=elsewhere");
  REQUIRE(kt::eventually([&] { return subscribers(io, redis, "lobby") == 2; }));
  REQUIRE(kt::eventually([&] { return subscribers(io, redis, "elsewhere") == 1; }));

  double received = metric("keel_hub_received_total");
  constexpr int n = 200;
  for (int i = 0; i < n; ++i) a.send("m" + std::to_string(i));
  for (int i = 0; i < n; ++i) REQUIRE(b.read() == "m" + std::to_string(i));
  for (int i = 0; i < n; ++i) REQUIRE(a.read() == "m" + std::to_string(i));  // local, at once
  // b's reply went through Redis after a's 200: had one's own echoes been
  // delivered, a would read one of them before it.
  b.send("end");
  CHECK(b.read() == "end");
  CHECK(a.read() == "end");
  CHECK(metric("keel_hub_received_total") - received == n + 1);
  CHECK(metric("keel_hub_delivery_latency_seconds_count") >= n + 1);
  CHECK(one.hub.member_count("lobby") == 1);
  CHECK(two.hub.rooms().size() == 2);
}

TEST_CASE("redis_hub: an observer without members subscribes its instance and sees local and remote "
          "messages once, in order, until its subscription is dropped",
          "[redis][redis_hub]") {
  if (!keel::test::redis_available()) {
    WARN("redis-server is not installed (Debian package redis-server): skipping");
    return;
  }
  redis_server redis;
  io_thread io;
  instance one(hub_options(redis)), two(hub_options(redis));
  REQUIRE(kt::eventually([&] { return one.hub.connected() && two.hub.connected(); }));

  std::mutex m;
  std::vector<std::string> seen;
  auto sub = two.hub.observe("feed", [&](std::string_view msg) {
    std::lock_guard lock(m);
    seen.emplace_back(msg);
  });
  CHECK(two.hub.member_count("feed") == 0);  // an observer is not a member
  ws_client a(one.port(), "/room?r=feed");
  REQUIRE(kt::eventually([&] { return subscribers(io, redis, "feed") == 2; }));
  auto count = [&] {
    std::lock_guard lock(m);
    return seen.size();
  };
  constexpr int n = 50;
  for (int i = 0; i < n; ++i) a.send("r" + std::to_string(i));    // through Redis
  REQUIRE(kt::eventually([&] { return count() == n; }));
  two.hub.publish("feed", "local");                                 // on the observer's instance
  REQUIRE(kt::eventually([&] { return count() == n + 1; }));
  {
    std::lock_guard lock(m);
    for (int i = 0; i < n; ++i) CHECK(seen[i] == "r" + std::to_string(i));
    CHECK(seen[n] == "local");
  }
  for (int i = 0; i <= n; ++i) CHECK(a.read() == (i < n ? "r" + std::to_string(i) : "local"));

  sub.reset();
  CHECK(kt::eventually([&] { return subscribers(io, redis, "feed") == 1; }));
  two.hub.publish("feed", "after");
  CHECK(a.read() == "after");
  CHECK(count() == n + 1);
}

TEST_CASE("redis_hub: a room whose last local member leaves is unsubscribed, and one joined again resubscribed",
          "[redis][redis_hub]") {
  if (!keel::test::redis_available()) {
    WARN("redis-server is not installed (Debian package redis-server): skipping");
    return;
  }
  redis_server redis;
  io_thread io;
  instance one(hub_options(redis));
  {
    ws_client a(one.port(), "/room?r=short");
    REQUIRE(kt::eventually([&] { return subscribers(io, redis, "short") == 1; }));
    a.stream().close(boost::beast::websocket::close_code::normal);
  }
  CHECK(kt::eventually([&] { return subscribers(io, redis, "short") == 0; }));
  ws_client again(one.port(), "/room?r=short");
  CHECK(kt::eventually([&] { return subscribers(io, redis, "short") == 1; }));
}

TEST_CASE("redis_hub: with Redis down local delivery goes on and the loss is counted; after a restart "
          "the rooms are subscribed again and nothing arrives twice",
          "[redis][redis_hub]") {
  if (!keel::test::redis_available()) {
    WARN("redis-server is not installed (Debian package redis-server): skipping");
    return;
  }
  redis_server redis;
  io_thread io;
  instance one(hub_options(redis)), two(hub_options(redis));
  ws_client a(one.port(), "/room?r=r");
  ws_client a2(one.port(), "/room?r=r");
  ws_client b(two.port(), "/room?r=r");
  REQUIRE(kt::eventually([&] { return subscribers(io, redis, "r") == 2; }));
  a.send("before");
  for (auto* c : {&a, &a2, &b}) CHECK(c->read() == "before");

  redis.stop(true);
  // Both publishers have seen it (else a publish fails in flight: publish_failed).
  REQUIRE(kt::eventually([&] { return metric("keel_hub_redis_connected{connection=\"publish\"}") == 0; }));
  REQUIRE(kt::eventually([&] { return !one.hub.connected() && !two.hub.connected(); }));
  double down = metric("keel_hub_dropped_total{reason=\"redis_down\"}");
  double gap = metric("keel_hub_dropped_total{reason=\"gap\"}");
  for (int i = 0; i < 3; ++i) a.send("during" + std::to_string(i));
  for (int i = 0; i < 3; ++i) {
    CHECK(a.read() == "during" + std::to_string(i));
    CHECK(a2.read() == "during" + std::to_string(i));
  }
  CHECK(metric("keel_hub_dropped_total{reason=\"redis_down\"}") - down == 3);
  CHECK(metric("keel_hub_redis_connected{connection=\"subscribe\"}") == 0);

  REQUIRE(redis.start());
  REQUIRE(kt::eventually([&] { return one.hub.connected() && two.hub.connected(); }));
  REQUIRE(kt::eventually([&] { return subscribers(io, redis, "r") == 2; }));
  CHECK(metric("keel_hub_redis_connected{connection=\"subscribe\"}") == 2);
  a.send("after");
  CHECK(b.read() == "after");  // not one of the "during" ones: they are lost, not late
  CHECK(a.read() == "after");
  CHECK(a2.read() == "after");
  // two saw one's sequence jump from "before" to "after": three missed.
  CHECK(metric("keel_hub_dropped_total{reason=\"gap\"}") - gap == 3);
  b.send("back");
  for (auto* c : {&a, &a2, &b}) CHECK(c->read() == "back");
}

TEST_CASE("redis_hub: a Redis that stops answering without closing is found by the subscriber's pings "
          "and reconnected once it answers again",
          "[redis][redis_hub]") {
  if (!keel::test::redis_available()) {
    WARN("redis-server is not installed (Debian package redis-server): skipping");
    return;
  }
  redis_server redis;
  io_thread io;
  instance one(hub_options(redis)), two(hub_options(redis));
  ws_client a(one.port(), "/room?r=frozen");
  ws_client b(two.port(), "/room?r=frozen");
  REQUIRE(kt::eventually([&] { return subscribers(io, redis, "frozen") == 2; }));
  redis.pause();
  CHECK(kt::eventually([&] { return !one.hub.connected() && !two.hub.connected(); }, 5s));
  redis.resume();
  REQUIRE(kt::eventually([&] { return one.hub.connected() && two.hub.connected(); }));
  REQUIRE(kt::eventually([&] { return subscribers(io, redis, "frozen") == 2; }));
  a.send("thawed");
  CHECK(b.read() == "thawed");
  CHECK(a.read() == "thawed");
}
