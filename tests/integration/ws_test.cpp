// WebSocket sessions over loopback with Beast's client as the peer: echo,
// fragmentation, heartbeat, limits and their close codes, slow consumers,
// cross-thread sends, drain and handler failures.
#include <catch2/catch.hpp>

#include "test_app.hpp"
#include "ws_client.hpp"

#include <keel/hub.hpp>
#include <keel/metrics.hpp>
#include <keel/ws.hpp>

#include <boost/asio/this_coro.hpp>
#include <boost/asio/write.hpp>

#include <atomic>
#include <thread>

using namespace keel::test;
using keel::task;
using keel::websocket;
namespace kt = keel::testing;
namespace bws = boost::beast::websocket;

namespace {

double metric(std::string const& series) {
  auto text = keel::metrics::global().render();
  auto pos = text.find("\n" + series + " ");
  if (pos == std::string::npos) return -1;
  return std::stod(text.substr(pos + series.size() + 2));
}

task<void> echo(websocket& ws) {
  for (;;) {
    auto msg = co_await ws.read();
    if (!msg) co_return;
    ws.send(msg.data, msg.is_binary());
  }
}

task<void> thrower(websocket& ws) {
  co_await ws.read();
  throw std::runtime_error("handler bug");
}

std::atomic<int> flood_refused{0};
task<void> flood(websocket& ws) {
  std::string chunk(64 * 1024, 'x');
  for (int i = 0; i < 2000; ++i) {
    if (!ws.send(chunk)) {
      flood_refused++;
      break;
    }
  }
  while (co_await ws.read()) {
  }
}

// Quiet for half a second, then one message: the peer must survive the pings.
task<void> delayed(websocket& ws) {
  keel::steady_timer t(co_await boost::asio::this_coro::executor);
  t.expires_after(std::chrono::milliseconds(500));
  co_await t.async_wait(keel::use_task);
  ws.send("late");
  while (co_await ws.read()) {
  }
}

// Far more than the send queue holds, each send waiting for room: nothing is
// refused or dropped, and the writer's "room" wake-ups pace it.
std::atomic<int> patient_sent{0};
task<void> patient(websocket& ws) {
  for (int i = 0; i < 200; ++i) {
    auto msg = std::to_string(i) + ":" + std::string(16 * 1024, 'p');
    auto ok = co_await ws.send_wait(std::move(msg));
    if (!ok) break;
    patient_sent++;
  }
  while (co_await ws.read()) {
  }
}

keel::local_hub hub;
task<void> member(websocket& ws) {
  auto handle = ws.handle();
  std::string const room = "room";
  hub.join(room, handle);
  while (co_await ws.read()) {
  }
}

struct fixture {
  keel::app app;
  explicit fixture(keel::options o = test_options()) : app(o) {
    app.ws("/echo", echo);
    app.ws("/throw", thrower);
    app.ws("/flood", flood);
    app.ws("/member", member);
    app.ws("/delayed", delayed);
    app.ws("/patient", patient);
  }
};

// A raw client that completes the handshake by hand, for hostile frames.
struct raw_ws {
  boost::asio::io_context ioc;
  boost::asio::ip::tcp::socket s{ioc};
  explicit raw_ws(std::uint16_t port, std::string const& target = "/echo") {
    s.connect({boost::asio::ip::make_address("127.0.0.1"), port});
    timeval tv{10, 0};
    setsockopt(s.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    std::string req = "GET " + target + " HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    boost::asio::write(s, boost::asio::buffer(req));
    std::string head;
    char ch;
    while (head.find("\r\n\r\n") == std::string::npos && s.read_some(boost::asio::buffer(&ch, 1)) == 1) head += ch;
    REQUIRE(head.rfind("HTTP/1.1 101", 0) == 0);
  }
  void send(std::string const& bytes) { boost::asio::write(s, boost::asio::buffer(bytes)); }
  // The close code in the server's close frame, 0 when the connection ended without one.
  std::uint16_t close_code() {
    std::string in;
    char buf[4096];
    boost::system::error_code ec;
    for (;;) {
      auto n = s.read_some(boost::asio::buffer(buf), ec);
      if (ec) break;
      in.append(buf, n);
    }
    for (std::size_t i = 0; i + 4 <= in.size();) {
      auto op = static_cast<unsigned char>(in[i]) & 0x0f;
      std::size_t len = static_cast<unsigned char>(in[i + 1]) & 0x7f;
      std::size_t hdr = 2;
      if (len == 126) len = (std::size_t(static_cast<unsigned char>(in[i + 2])) << 8) | static_cast<unsigned char>(in[i + 3]), hdr = 4;
      if (op == 8 && len >= 2) return static_cast<std::uint16_t>((static_cast<unsigned char>(in[i + hdr]) << 8) | static_cast<unsigned char>(in[i + hdr + 1]));
      i += hdr + len;
    }
    return 0;
  }
};

// A masked client frame (RFC 6455 §5.2), mask of zeros for readability.
std::string frame(std::uint8_t first, std::string const& payload, bool masked = true) {
  std::string f;
  f.push_back(static_cast<char>(first));
  auto mask_bit = masked ? 0x80 : 0;
  if (payload.size() < 126) {
    f.push_back(static_cast<char>(mask_bit | payload.size()));
  } else {
    f.push_back(static_cast<char>(mask_bit | 126));
    f.push_back(static_cast<char>(payload.size() >> 8));
    f.push_back(static_cast<char>(payload.size() & 0xff));
  }
  if (masked) f.append(4, '\0');
  return f + payload;
}

}  // namespace

TEST_CASE("text is echoed as text and binary as binary", "[ws]") {
  fixture f;
  kt::running_app run(f.app);
  ws_client c(run.port(), "/echo");
  c.send("hello");
  CHECK(c.read() == "hello");
  CHECK_FALSE(c.last_was_binary());
  c.send(std::string("\x00\x01\x02", 3), true);
  CHECK(c.read() == std::string("\x00\x01\x02", 3));
  CHECK(c.last_was_binary());
}

TEST_CASE("fragmented messages are reassembled", "[ws]") {
  fixture f;
  kt::running_app run(f.app);
  ws_client c(run.port(), "/echo");
  auto& ws = c.stream();
  ws.text(true);
  ws.write_some(false, boost::asio::buffer(std::string("frag")));
  ws.write_some(false, boost::asio::buffer(std::string("men")));
  ws.write_some(true, boost::asio::buffer(std::string("ted")));
  CHECK(c.read() == "fragmented");
}

TEST_CASE("a plain GET to a WebSocket route gets 426 with Upgrade", "[ws]") {
  fixture f;
  kt::running_app run(f.app);
  auto r = run.get("/echo");
  CHECK(r.status == 426);
  CHECK(r.header("Upgrade") == "websocket");
  CHECK(r.header("Sec-WebSocket-Version") == "13");
}

TEST_CASE("a browser upgrade from another origin gets 403, the same host passes", "[ws]") {
  fixture f;
  kt::running_app run(f.app);
  CHECK_THROWS(ws_client(run.port(), "/echo", "http://evil.example"));
  ws_client ok(run.port(), "/echo", "http://127.0.0.1:" + std::to_string(run.port()));
  ok.send("x");
  CHECK(ok.read() == "x");
}

TEST_CASE("the server pings a quiet peer and keeps a peer that answers", "[ws][heartbeat]") {
  auto o = test_options();
  o.ws_ping_interval = 100ms;
  o.ws_pong_timeout = 100ms;
  fixture f(o);
  kt::running_app run(f.app);
  ws_client c(run.port(), "/delayed");
  std::atomic<int> pings{0};
  c.stream().control_callback([&](bws::frame_type k, boost::beast::string_view) {
    if (k == bws::frame_type::ping) pings++;
  });
  // Blocked in read, the client answers the server's pings until "late" comes.
  CHECK(c.read() == "late");
  CHECK(pings.load() >= 2);
  c.send("still here");
  c.stream().close(bws::close_code::normal);
}

TEST_CASE("a peer that never answers pings is closed and counted", "[ws][heartbeat]") {
  auto o = test_options();
  o.ws_ping_interval = 100ms;
  o.ws_pong_timeout = 100ms;
  fixture f(o);
  kt::running_app run(f.app);
  auto before = metric(R"(keel_ws_dropped_total{reason="no_pong"})");
  raw_ws raw(run.port());  // never reads, so never pongs
  auto t0 = std::chrono::steady_clock::now();
  raw.close_code();
  CHECK(std::chrono::steady_clock::now() - t0 < 5s);
  CHECK(metric(R"(keel_ws_dropped_total{reason="no_pong"})") == before + 1);
  CHECK(kt::eventually([&] { return f.app.server().stats().ws_connections_active == 0; }));
}

TEST_CASE("an oversized message closes with 1009", "[ws][limits]") {
  auto o = test_options();
  o.ws_max_message = 1024;
  fixture f(o);
  kt::running_app run(f.app);
  ws_client c(run.port(), "/echo");
  c.send(std::string(2048, 'a'));
  CHECK(c.read_until_closed() == 1009);
}

TEST_CASE("invalid UTF-8 in a text message closes with 1007", "[ws][limits]") {
  fixture f;
  kt::running_app run(f.app);
  raw_ws raw(run.port());
  raw.send(frame(0x81, "\xff\xfe"));
  CHECK(raw.close_code() == 1007);
}

TEST_CASE("protocol violations close with 1002", "[ws][limits]") {
  fixture f;
  kt::running_app run(f.app);
  SECTION("an unmasked client frame") {
    raw_ws raw(run.port());
    raw.send(frame(0x81, "hi", false));
    CHECK(raw.close_code() == 1002);
  }
  SECTION("a reserved opcode") {
    raw_ws raw(run.port());
    raw.send(frame(0x83, "hi"));
    CHECK(raw.close_code() == 1002);
  }
  SECTION("reserved bits set") {
    raw_ws raw(run.port());
    raw.send(frame(0xC1, "hi"));
    CHECK(raw.close_code() == 1002);
  }
  SECTION("a fragmented control frame") {
    raw_ws raw(run.port());
    raw.send(frame(0x09, "ping"));
    CHECK(raw.close_code() == 1002);
  }
  SECTION("a control frame over 125 bytes") {
    raw_ws raw(run.port());
    raw.send(frame(0x89, std::string(200, 'p')));
    CHECK(raw.close_code() == 1002);
  }
}

TEST_CASE("a handler that throws closes its session with 1011 and the server lives", "[ws]") {
  fixture f;
  kt::running_app run(f.app);
  ws_client c(run.port(), "/throw");
  c.send("boom");
  CHECK(c.read_until_closed() == 1011);
  ws_client d(run.port(), "/echo");
  d.send("alive");
  CHECK(d.read() == "alive");
}

TEST_CASE("a slow consumer is closed with 1008 and its queue stays bounded", "[ws][limits]") {
  auto o = test_options();
  o.ws_send_queue = 256 * 1024;
  fixture f(o);
  kt::running_app run(f.app);
  auto before = metric(R"(keel_ws_dropped_total{reason="slow_consumer"})");
  int refused = flood_refused.load();
  raw_ws raw(run.port(), "/flood");  // reads nothing until the end
  CHECK(kt::eventually([&] { return flood_refused.load() > refused; }));
  raw.close_code();
  CHECK(metric(R"(keel_ws_dropped_total{reason="slow_consumer"})") == before + 1);
  CHECK(kt::eventually([&] { return f.app.server().stats().ws_connections_active == 0; }));
}

TEST_CASE("send_wait waits for room in the send queue and loses nothing", "[ws][limits]") {
  auto o = test_options();
  o.ws_send_queue = 64 * 1024;
  fixture f(o);
  kt::running_app run(f.app);
  auto dropped = metric(R"(keel_ws_dropped_total{reason="slow_consumer"})");
  patient_sent = 0;
  ws_client c(run.port(), "/patient");
  for (int i = 0; i < 200; ++i) {
    auto msg = c.read();
    REQUIRE(msg.substr(0, msg.find(':')) == std::to_string(i));
    CHECK(msg.size() == std::to_string(i).size() + 1 + 16 * 1024);
  }
  CHECK(patient_sent.load() == 200);
  CHECK(metric(R"(keel_ws_dropped_total{reason="slow_consumer"})") == dropped);
}

TEST_CASE("sends from other threads interleave with replies without corruption", "[ws][concurrency]") {
  fixture f;
  kt::running_app run(f.app);
  ws_client c(run.port(), "/member");
  REQUIRE(kt::eventually([&] { return hub.member_count("room") == 1; }));
  constexpr int threads = 4, per_thread = 200;
  std::vector<std::thread> senders;
  for (int t = 0; t < threads; ++t) {
    senders.emplace_back([t] {
      for (int i = 0; i < per_thread; ++i) hub.publish("room", "t" + std::to_string(t) + ":" + std::to_string(i));
    });
  }
  std::vector<int> next(threads, 0);
  for (int n = 0; n < threads * per_thread; ++n) {
    auto msg = c.read();
    auto colon = msg.find(':');
    int t = std::stoi(msg.substr(1, colon - 1));
    int i = std::stoi(msg.substr(colon + 1));
    CHECK(i == next[t]);  // per-publisher order holds
    next[t] = i + 1;
  }
  for (auto& s : senders) s.join();
}

TEST_CASE("drain closes open sessions with 1001 after their queued messages", "[ws][drain]") {
  fixture f;
  kt::running_app run(f.app);
  ws_client c(run.port(), "/member");
  REQUIRE(kt::eventually([&] { return hub.member_count("room") == 1; }));
  hub.publish("room", "last words");
  std::thread stopper([&] { run.stop(); });
  CHECK(c.read() == "last words");
  CHECK(c.read_until_closed() == 1001);
  stopper.join();
}

TEST_CASE("thousands of abandoned connections leave no session behind", "[ws][churn]") {
  auto o = test_options();
  o.ws_ping_interval = 200ms;
  o.ws_pong_timeout = 200ms;
  fixture f(o);
  kt::running_app run(f.app);
  for (int i = 0; i < 1000; ++i) {
    if (i % 2 == 0) {
      ws_client c(run.port(), "/member");  // destroyed without a close handshake
    } else {
      raw_ws raw(run.port());
      raw.s.close();
    }
  }
  CHECK(kt::eventually([&] {
    auto s = f.app.server().stats();
    return s.ws_connections_active == 0 && s.connections_active == 0;
  }, 20s));
  CHECK(kt::eventually([&] { return hub.member_count("room") == 0; }));
}

TEST_CASE("local_hub: an observer sees a room's publishes, members or not, until its subscription goes",
          "[ws][hub]") {
  keel::local_hub h;
  std::vector<std::string> seen;
  auto sub = h.observe("news", [&](std::string_view m) { seen.emplace_back(m); });
  auto other = h.observe("sport", [&](std::string_view) { seen.emplace_back("wrong room"); });
  CHECK(h.publish("news", "one") == 0);  // no member was sent it
  CHECK(h.observed_rooms().size() == 2);
  CHECK(h.rooms().empty());
  sub.reset();
  h.publish("news", "two");
  other = {};
  CHECK(h.observed_rooms().empty());
  REQUIRE(seen == std::vector<std::string>{"one"});
  keel::hub_subscription outlives;
  {
    keel::local_hub gone;
    outlives = gone.observe("x", [](std::string_view) {});
  }
  outlives.reset();  // after its hub: nothing to undo, no crash
}
