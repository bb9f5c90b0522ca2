// keel::task_scope, the one way keel spawns work: children joined, cancelled
// and their exceptions logged with the trace id; and the WebSocket engine's
// reader and writer, which run in one, failing loudly instead of silently.
#include <catch2/catch.hpp>

#include "capture_stderr.hpp"
#include "test_app.hpp"
#include "ws/engine.hpp"
#include "ws_client.hpp"

#include <keel/task_scope.hpp>
#include <keel/ws.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>

#include <atomic>
#include <functional>
#include <future>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>

using namespace keel::test;
using keel::task;
namespace kt = keel::testing;
namespace asio = boost::asio;

namespace {

task<void> sleep_for(std::chrono::milliseconds d) {
  keel::steady_timer t(co_await asio::this_coro::executor);
  t.expires_after(d);
  co_await t.async_wait(keel::use_task);
}

task<void> throws_after(std::chrono::milliseconds d) {
  co_await sleep_for(d);
  throw std::runtime_error("child gave up");
}

// Runs `body` on a fresh io_context until it returns; its result.
template <class T>
T run(std::function<task<T>(asio::io_context&)> body) {
  asio::io_context ioc;
  T result{};
  asio::co_spawn(ioc.get_executor(), body(ioc), [&](std::exception_ptr e, T r) {
    if (e) std::rethrow_exception(e);
    result = r;
  });
  ioc.run();
  return result;
}

}  // namespace

TEST_CASE("join completes when the last child ends, and at once when none runs", "[task_scope]") {
  auto order = run<std::string>([](asio::io_context& ioc) -> task<std::string> {
    keel::task_scope scope;
    bool joined_1 = co_await scope.join();
    CHECK(joined_1);
    auto log = std::make_shared<std::string>();
    auto child = [](std::shared_ptr<std::string> log, int ms, char tag) -> task<void> {
      co_await sleep_for(std::chrono::milliseconds(ms));
      *log += tag;
    };
    scope.spawn(ioc.get_executor(), child(log, 30, 'b'), "child b");
    scope.spawn(ioc.get_executor(), child(log, 10, 'a'), "child a");
    CHECK(scope.active() == 2);
    bool joined_2 = co_await scope.join();
    CHECK(joined_2);
    CHECK(scope.active() == 0);
    co_return *log;
  });
  CHECK(order == "ab");
}

TEST_CASE("cancel reaches every child, each on its own thread, and join sees them end", "[task_scope][concurrency]") {
  asio::io_context a, b;
  auto work_a = asio::make_work_guard(a), work_b = asio::make_work_guard(b);
  std::thread ta([&] { a.run(); }), tb([&] { b.run(); });
  {
    keel::task_scope scope;
    std::atomic<int> ended{0};
    auto forever = [](std::atomic<int>& ended) -> task<void> {
      struct count {
        std::atomic<int>& n;
        ~count() { ++n; }
      } c{ended};
      co_await sleep_for(std::chrono::hours(1));
    };
    scope.spawn(a.get_executor(), forever(ended), "on a");
    scope.spawn(b.get_executor(), forever(ended), "on b");
    scope.cancel();
    std::promise<bool> joined;
    asio::co_spawn(a.get_executor(), scope.join(), [&](std::exception_ptr, bool ok) { joined.set_value(ok); });
    auto f = joined.get_future();
    REQUIRE(f.wait_for(std::chrono::seconds(10)) == std::future_status::ready);
    CHECK(f.get());
    CHECK(ended == 2);
  }
  work_a.reset();
  work_b.reset();
  ta.join();
  tb.join();
}

TEST_CASE("a bounded join returns false when its timer wins, and the children run on", "[task_scope]") {
  auto result = run<int>([](asio::io_context& ioc) -> task<int> {
    using namespace asio::experimental::awaitable_operators;
    keel::task_scope scope;
    scope.spawn(ioc.get_executor(), sleep_for(std::chrono::milliseconds(200)), "slow child");
    keel::steady_timer t(ioc.get_executor());
    t.expires_after(std::chrono::milliseconds(20));
    auto r = co_await (scope.join() || t.async_wait(asio::as_tuple(keel::use_task)));
    CHECK(r.index() == 1);
    CHECK(scope.active() == 1);
    bool joined_3 = co_await scope.join();
    CHECK(joined_3);
    co_return static_cast<int>(scope.active());
  });
  CHECK(result == 0);
}

TEST_CASE("a child's exception is logged once with its trace id; a cancelled child is not an error",
          "[task_scope][log]") {
  capture_stderr err;
  run<int>([](asio::io_context& ioc) -> task<int> {
    keel::task_scope scope;
    scope.spawn(ioc.get_executor(), throws_after(std::chrono::milliseconds(1)), "the worker",
                "4bf92f3577b34da6a3ce929d0e0e4736");
    scope.spawn(ioc.get_executor(), sleep_for(std::chrono::hours(1)), "the sleeper", "trace-of-sleeper");
    co_await sleep_for(std::chrono::milliseconds(20));
    scope.cancel();
    co_await scope.join();
    co_return 0;
  });
  auto failed = err.lines("the worker failed");
  REQUIRE(failed.size() == 1);
  CHECK(failed[0].at("trace_id") == "4bf92f3577b34da6a3ce929d0e0e4736");
  CHECK(failed[0].at("error") == "child gave up");
  CHECK(err.lines("the sleeper failed").empty());
}

TEST_CASE("an exception inside a WebSocket reader or writer is logged with the upgrade's trace id, and the session ends",
          "[task_scope][websocket]") {
  for (std::string where : {"reader", "writer"}) {
    INFO(where);
    capture_stderr err;
    auto trace = std::make_shared<std::string>();
    auto mu = std::make_shared<std::mutex>();
    keel::app app(test_options());
    app.ws("/ws", [trace, mu](keel::websocket& ws) -> task<void> {
      {
        std::lock_guard lock(*mu);
        *trace = std::string(ws.ctx().trace_id());
      }
      for (;;) {
        auto m = co_await ws.read();
        if (m.type == keel::ws_message::kind::closed) co_return;
        ws.send(m.data);
      }
    });
    // Armed once the session has its first message: the handshake and the first echo go through.
    std::atomic<bool> armed{false};
    keel::detail::ws_fault_for_tests = [&armed, where](std::string_view who) {
      if (armed.load() && who == where) throw std::runtime_error("injected " + std::string(who) + " fault");
    };
    {
      kt::running_app run(app);
      ws_client c(run.port(), "/ws");
      c.send("one");
      CHECK(c.read() == "one");
      armed = true;
      c.send("two");
      c.read_until_closed();  // the session ends: a failed reader or writer is not silently stuck
    }
    keel::detail::ws_fault_for_tests = nullptr;
    auto failed = err.lines("websocket " + where + " failed");
    REQUIRE(failed.size() == 1);
    std::lock_guard lock(*mu);
    CHECK(!trace->empty());
    CHECK(failed[0].at("trace_id") == boost::json::string_view(*trace));
    CHECK(failed[0].at("error") == boost::json::string_view("injected " + where + " fault"));
  }
}
