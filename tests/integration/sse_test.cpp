// Server-Sent Events over loopback with a raw socket as the client: framing,
// ids, heartbeat, Last-Event-ID, pushes from other threads, a client that
// leaves, drain, and the slow consumer.
#include <catch2/catch.hpp>

#include "sse_client.hpp"
#include "test_app.hpp"

#include <keel/sse.hpp>

#include <boost/asio/this_coro.hpp>

#include <sys/socket.h>

#include <atomic>
#include <mutex>
#include <thread>

using namespace keel::test;
using keel::sse_stream;
using keel::task;
namespace kt = keel::testing;

namespace {

std::size_t count(std::string const& hay, std::string const& needle) {
  std::size_t n = 0;
  for (auto p = hay.find(needle); p != std::string::npos; p = hay.find(needle, p + 1)) ++n;
  return n;
}

task<void> three_events(sse_stream& ev) {
  co_await ev.send("greeting", "hello", "1");
  co_await ev.send("", "line one\nline two\r\nline three", "2");
  co_await ev.send("bye", "{\"n\":3}", "3");
}

task<void> echo_last_id(sse_stream& ev) {
  co_await ev.send("resume", "after=" + ev.last_event_id(), "");
}

std::atomic<int> waiters_done{0};
task<void> wait_for_end(sse_stream& ev) {
  co_await ev.wait_closed();
  waiters_done++;
}

std::atomic<int> sleepers_cancelled{0};
task<void> sleeper(sse_stream& ev) {
  co_await ev.send("", "started", "");
  keel::steady_timer t(co_await boost::asio::this_coro::executor);
  t.expires_after(std::chrono::minutes(5));
  try {
    co_await t.async_wait(keel::use_task);
  } catch (boost::system::system_error const&) {
    sleepers_cancelled++;
    throw;
  }
}

std::mutex handles_mutex;
std::vector<keel::sse_handle> handles;
task<void> relay(sse_stream& ev) {
  {
    std::lock_guard lock(handles_mutex);
    handles.push_back(ev.handle());
  }
  co_await ev.send("", "ready", "");
  co_await ev.wait_closed();
}

keel::task<keel::response> with_header(keel::context& ctx) {
  keel::sse_options o;
  o.headers.emplace_back("Access-Control-Allow-Origin", "*");
  o.retry = std::chrono::milliseconds(2500);
  co_return keel::sse_response(ctx, three_events, std::move(o));
}

struct fixture {
  keel::app app;
  explicit fixture(keel::options o = test_options()) : app(o) {
    keel::add_sse_route(app, "/three", three_events);
    keel::add_sse_route(app, "/last", echo_last_id);
    keel::add_sse_route(app, "/wait", wait_for_end);
    keel::add_sse_route(app, "/sleep", sleeper);
    keel::add_sse_route(app, "/relay", relay);
    keel::sse_options small;
    small.queue_limit = 4096;
    keel::add_sse_route(app, "/relay-small", relay, small);
    app.get("/custom", with_header);
  }
};

}  // namespace

TEST_CASE("an event's data is split into one data line per line", "[sse][unit]") {
  CHECK(keel::format_sse_event("e", "a", "7") == "event: e\nid: 7\ndata: a\n\n");
  CHECK(keel::format_sse_event("", "a\nb\r\nc\rd", "") == "data: a\ndata: b\ndata: c\ndata: d\n\n");
  CHECK(keel::format_sse_event("", "a\n", "") == "data: a\ndata: \n\n");
  CHECK(keel::format_sse_event("", "", "") == "data: \n\n");
  CHECK(keel::format_sse_event("x\ny", "z", "1\r2") == "event: xy\nid: 12\ndata: z\n\n");
}

TEST_CASE("events arrive in order with their ids on a close-delimited stream", "[sse]") {
  fixture f;
  kt::running_app run(f.app);
  sse_client c(run.port(), "/three");
  REQUIRE(c.read_to_eof());
  auto head = c.head();
  CHECK(head.rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
  CHECK(head.find("Content-Type: text/event-stream\r\n") != std::string::npos);
  CHECK(head.find("Cache-Control: no-cache\r\n") != std::string::npos);
  CHECK(head.find("Connection: close\r\n") != std::string::npos);
  CHECK(head.find("X-Request-Id: ") != std::string::npos);
  CHECK(head.find("Content-Length") == std::string::npos);
  CHECK(head.find("Transfer-Encoding") == std::string::npos);
  CHECK(c.body() ==
        "event: greeting\nid: 1\ndata: hello\n\n"
        "id: 2\ndata: line one\ndata: line two\ndata: line three\n\n"
        "event: bye\nid: 3\ndata: {\"n\":3}\n\n");
}

TEST_CASE("sse_response sends extra headers and the retry field", "[sse]") {
  fixture f;
  kt::running_app run(f.app);
  sse_client c(run.port(), "/custom");
  REQUIRE(c.read_to_eof());
  CHECK(c.head().find("Access-Control-Allow-Origin: *\r\n") != std::string::npos);
  CHECK(c.body().rfind("retry: 2500\n\nevent: greeting\nid: 1\n", 0) == 0);
}

TEST_CASE("a HEAD request to a stream gets the head only", "[sse]") {
  fixture f;
  kt::running_app run(f.app);
  sse_client c(run.port(), "/three", {}, "HEAD");
  REQUIRE(c.read_to_eof());
  CHECK(c.head().find("Content-Type: text/event-stream") != std::string::npos);
  CHECK(c.body().empty());
}

TEST_CASE("an idle stream gets keep-alive comments every sse_heartbeat", "[sse][heartbeat]") {
  auto o = test_options();
  o.sse_heartbeat = 100ms;
  fixture f(o);
  kt::running_app run(f.app);
  sse_client c(run.port(), "/wait");
  auto t0 = std::chrono::steady_clock::now();
  REQUIRE(c.read_until([](std::string const& s) { return count(s, ": keep-alive\n\n") >= 3; }));
  // Three heartbeats take at least three periods (and far less than the 15 s default).
  CHECK(std::chrono::steady_clock::now() - t0 >= 250ms);
  CHECK(std::chrono::steady_clock::now() - t0 < 5s);
  CHECK_FALSE(c.eof);
}

TEST_CASE("the handler sees the client's Last-Event-ID", "[sse]") {
  fixture f;
  kt::running_app run(f.app);
  sse_client c(run.port(), "/last", "Last-Event-ID: 41\r\n");
  REQUIRE(c.read_to_eof());
  CHECK(c.body() == "event: resume\ndata: after=41\n\n");
  sse_client none(run.port(), "/last");
  REQUIRE(none.read_to_eof());
  CHECK(none.body() == "event: resume\ndata: after=\n\n");
}

TEST_CASE("a client that leaves ends the stream and its handler", "[sse]") {
  fixture f;
  kt::running_app run(f.app);
  SECTION("a handler waiting for the end") {
    auto before = waiters_done.load();
    {
      sse_client c(run.port(), "/wait");
      REQUIRE(c.read_contains("\r\n\r\n"));
    }
    CHECK(kt::eventually([&] { return waiters_done.load() == before + 1; }));
  }
  SECTION("a handler awaiting something else is cancelled") {
    auto before = sleepers_cancelled.load();
    {
      sse_client c(run.port(), "/sleep");
      REQUIRE(c.read_contains("data: started\n\n"));
    }
    CHECK(kt::eventually([&] { return sleepers_cancelled.load() == before + 1; }));
  }
  CHECK(kt::eventually([&] { return f.app.server().stats().connections_active == 0; }));
}

TEST_CASE("events pushed from other threads arrive in order", "[sse][concurrency]") {
  {
    std::lock_guard lock(handles_mutex);
    handles.clear();
  }
  fixture f;
  kt::running_app run(f.app);
  sse_client c(run.port(), "/relay");
  REQUIRE(c.read_contains("data: ready\n\n"));
  keel::sse_handle h;
  {
    std::lock_guard lock(handles_mutex);
    REQUIRE(handles.size() == 1);
    h = handles[0];
  }
  std::thread pusher([h] {
    for (int i = 0; i < 200; ++i) REQUIRE(h.push("n", std::to_string(i), std::to_string(i)));
  });
  pusher.join();
  REQUIRE(c.read_contains("id: 199\ndata: 199\n\n"));
  auto body = c.body();
  std::size_t pos = 0;
  for (int i = 0; i < 200; ++i) {
    auto next = body.find("event: n\nid: " + std::to_string(i) + "\ndata: " + std::to_string(i) + "\n\n", pos);
    REQUIRE(next != std::string::npos);
    pos = next + 1;
  }
  h.close();
  CHECK(c.read_to_eof());
  CHECK_FALSE(h.is_open());
  CHECK_FALSE(h.push("n", "late"));
}

TEST_CASE("drain writes what is queued, then ends the stream", "[sse][drain]") {
  {
    std::lock_guard lock(handles_mutex);
    handles.clear();
  }
  fixture f;
  kt::running_app run(f.app);
  sse_client c(run.port(), "/relay");
  REQUIRE(c.read_contains("data: ready\n\n"));
  keel::sse_handle h;
  {
    std::lock_guard lock(handles_mutex);
    h = handles.at(0);
  }
  REQUIRE(h.push("last", "before drain", "9"));
  auto t0 = std::chrono::steady_clock::now();
  std::thread stopper([&] { run.stop(); });
  CHECK(c.read_to_eof());
  stopper.join();
  CHECK(c.body().find("event: last\nid: 9\ndata: before drain\n\n") != std::string::npos);
  // Well before drain_timeout (5 s): the stream ended on the drain itself.
  CHECK(std::chrono::steady_clock::now() - t0 < 3s);
}

TEST_CASE("a consumer that does not keep up is disconnected, memory bounded", "[sse][slow]") {
  {
    std::lock_guard lock(handles_mutex);
    handles.clear();
  }
  fixture f;
  kt::running_app run(f.app);
  sse_client c(run.port(), "/relay-small");
  // A tiny receive buffer so the socket fills quickly.
  int small = 4096;
  setsockopt(c.s.native_handle(), SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  REQUIRE(c.read_contains("data: ready\n\n"));
  keel::sse_handle h;
  {
    std::lock_guard lock(handles_mutex);
    h = handles.at(0);
  }
  std::string big(1000, 'x');
  bool refused = false;
  for (int i = 0; i < 100000 && !refused; ++i) refused = !h.push("", big, std::to_string(i));
  CHECK(refused);
  CHECK(kt::eventually([&] { return !h.is_open(); }));
  CHECK(c.read_to_eof(std::chrono::seconds(20)));
}
