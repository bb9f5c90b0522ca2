// keel::pool<T>: leases, limits, timeouts, eviction, health checks, factory
// backoff, FIFO waiters and cancellation, across threads.
#include <catch2/catch.hpp>

#include "io_thread.hpp"

#include <keel/offload.hpp>
#include <keel/pool.hpp>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/system/system_error.hpp>

#include <atomic>
#include <chrono>
#include <future>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace asio = boost::asio;
using keel::task;
using keel::test::io_thread;
using namespace std::chrono_literals;

namespace {

template <class Pred>
bool soon(Pred pred, std::chrono::milliseconds limit = 5s) {
  auto end = std::chrono::steady_clock::now() + limit;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > end) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

// A resource that counts how many of its kind are alive.
struct conn {
  static inline std::atomic<int> alive{0};
  int id = 0;
  bool healthy = true;
  explicit conn(int i) : id(i) { alive++; }
  conn(conn&& o) noexcept : id(o.id), healthy(o.healthy) { alive++; }
  conn(conn const&) = delete;
  ~conn() { alive--; }
};

// A factory and a health check that fail on demand.
struct source {
  std::atomic<int> next{1};
  std::atomic<int> fail_next{0};  // this many calls throw
  std::mutex m;
  std::vector<std::chrono::steady_clock::time_point> calls;

  task<conn> make() {
    {
      std::lock_guard lock(m);
      calls.push_back(std::chrono::steady_clock::now());
    }
    if (fail_next > 0) {
      fail_next--;
      throw std::runtime_error("database is down");
    }
    co_return conn(next++);
  }
};

keel::pool_options<conn> options_for(source& s) {
  keel::pool_options<conn> o;
  o.max_size = 2;
  o.acquire_timeout = 2s;
  o.backoff_base = 1ms;
  o.housekeeping_interval = 10ms;
  o.factory = [&s] { return s.make(); };
  return o;
}

// Acquires, reads the resource's id, gives it back.
task<int> use_once(keel::pool<conn>& p) {
  auto l = co_await p.acquire();
  co_return l->id;
}

// Acquires and holds the lease until `release` is set.
task<int> hold(keel::pool<conn>& p, std::shared_future<void> release, std::atomic<int>* got = nullptr) {
  auto l = co_await p.acquire();
  if (got) *got = l->id;
  auto wait = [release] { release.wait(); };
  co_await keel::offload(wait);
  co_return l->id;
}

}  // namespace

TEST_CASE("acquire creates up to max_size, reuses what comes back, and counts return to zero",
          "[pool]") {
  io_thread io;
  source s;
  {
    keel::pool<conn> p(options_for(s));
    CHECK(io.result(use_once(p)) == 1);
    CHECK(io.result(use_once(p)) == 1);  // the same one, reused
    auto st = p.stats();
    CHECK(st.size == 1);
    CHECK(st.idle == 1);
    CHECK(st.in_use == 0);
    CHECK(st.created == 1);
    CHECK(st.acquired == 2);

    std::promise<void> gate;
    auto open = gate.get_future().share();
    std::atomic<int> a{0}, b{0};
    auto h1 = io.spawn(hold(p, open, &a));
    auto h2 = io.spawn(hold(p, open, &b));
    REQUIRE(soon([&] { return a && b; }));
    CHECK(a != b);
    CHECK(p.stats().in_use == 2);
    CHECK(p.stats().size == 2);
    gate.set_value();
    h1.get();
    h2.get();
    st = p.stats();
    CHECK(st.in_use == 0);
    CHECK(st.waiters == 0);
    CHECK(st.idle == 2);
    CHECK(st.created == 2);
  }
  CHECK(conn::alive == 0);
}

TEST_CASE("an acquire that waits past acquire_timeout gets a clear 503 error and is counted",
          "[pool]") {
  io_thread io;
  source s;
  auto o = options_for(s);
  o.max_size = 1;
  o.acquire_timeout = 50ms;
  keel::pool<conn> p(std::move(o));
  std::promise<void> gate;
  std::atomic<int> got{0};
  auto holder = io.spawn(hold(p, gate.get_future().share(), &got));
  REQUIRE(soon([&] { return got != 0; }));

  auto t0 = std::chrono::steady_clock::now();
  try {
    io.result(use_once(p));
    FAIL("acquire did not time out");
  } catch (keel::pool_timeout const& e) {
    CHECK(e.status() == 503);
    CHECK(std::string(e.what()).find("50 ms") != std::string::npos);
  }
  CHECK(std::chrono::steady_clock::now() - t0 >= 45ms);
  CHECK(p.stats().timeouts == 1);
  CHECK(p.stats().waiters == 0);
  gate.set_value();
  holder.get();
  CHECK(p.stats().in_use == 0);
}

TEST_CASE("waiters are served first come, first served", "[pool]") {
  io_thread io;
  source s;
  auto o = options_for(s);
  o.max_size = 1;
  keel::pool<conn> p(std::move(o));
  std::promise<void> gate;
  std::atomic<int> got{0};
  auto holder = io.spawn(hold(p, gate.get_future().share(), &got));
  REQUIRE(soon([&] { return got != 0; }));

  std::mutex m;
  std::vector<int> order;
  auto waiter = [&](int n) -> task<void> {
    auto l = co_await p.acquire();
    std::lock_guard lock(m);
    order.push_back(n);
  };
  std::vector<std::future<void>> done;
  for (int i = 0; i < 5; ++i) {
    done.push_back(io.spawn(waiter(i)));
    REQUIRE(soon([&] { return p.stats().waiters == std::size_t(i + 1); }));
  }
  gate.set_value();
  holder.get();
  for (auto& f : done) f.get();
  CHECK(order == std::vector<int>{0, 1, 2, 3, 4});
  CHECK(p.stats().created == 1);
}

TEST_CASE("a cancelled waiting acquire leaves the queue at once", "[pool][cancel]") {
  io_thread io;
  source s;
  auto o = options_for(s);
  o.max_size = 1;
  o.acquire_timeout = 0ms;  // wait forever: only the cancellation ends it
  keel::pool<conn> p(std::move(o));
  std::promise<void> gate;
  std::atomic<int> got{0};
  auto holder = io.spawn(hold(p, gate.get_future().share(), &got));
  REQUIRE(soon([&] { return got != 0; }));

  asio::cancellation_signal signal;
  auto waiting = asio::co_spawn(io.executor(), use_once(p),
                                asio::bind_cancellation_slot(signal.slot(), asio::use_future));
  REQUIRE(soon([&] { return p.stats().waiters == 1; }));
  io.run([&] { signal.emit(asio::cancellation_type::terminal); });
  CHECK_THROWS_AS(io.get(waiting), boost::system::system_error);
  CHECK(p.stats().waiters == 0);
  CHECK(p.stats().cancelled == 1);

  gate.set_value();
  holder.get();
  auto st = p.stats();
  CHECK(st.idle == 1);  // not handed to the waiter that left
  CHECK(st.in_use == 0);
}

TEST_CASE("a lease goes back on exceptions and cancellation", "[pool][cancel]") {
  io_thread io;
  source s;
  keel::pool<conn> p(options_for(s));
  auto throws = [&]() -> task<void> {
    auto l = co_await p.acquire();
    throw std::runtime_error("handler bug");
  };
  CHECK_THROWS_AS(io.result(throws()), std::runtime_error);
  CHECK(p.stats().in_use == 0);

  // Cancelled while it holds a lease and awaits something else.
  asio::cancellation_signal signal;
  std::atomic<bool> holding{false};
  auto sleeper = [&]() -> task<void> {
    auto l = co_await p.acquire();
    holding = true;
    keel::steady_timer t(co_await asio::this_coro::executor);
    t.expires_after(10s);
    co_await t.async_wait(keel::use_task);
  };
  auto f = asio::co_spawn(io.executor(), sleeper(),
                          asio::bind_cancellation_slot(signal.slot(), asio::use_future));
  REQUIRE(soon([&] { return holding.load(); }));
  CHECK(p.stats().in_use == 1);
  io.run([&] { signal.emit(asio::cancellation_type::terminal); });
  CHECK_THROWS(io.get(f));
  CHECK(p.stats().in_use == 0);
  CHECK(p.stats().idle == 1);
}

TEST_CASE("an invalidated lease is destroyed, not reused", "[pool]") {
  io_thread io;
  source s;
  keel::pool<conn> p(options_for(s));
  auto broken = [&]() -> task<int> {
    auto l = co_await p.acquire();
    l.invalidate();
    co_return l->id;
  };
  CHECK(io.result(broken()) == 1);
  auto st = p.stats();
  CHECK(st.destroyed == 1);
  CHECK(st.size == 0);
  CHECK(conn::alive == 0);
  CHECK(io.result(use_once(p)) == 2);
  CHECK(p.stats().created == 2);
}

TEST_CASE("idle resources are evicted after max_idle_time and old ones after max_lifetime",
          "[pool]") {
  io_thread io;
  SECTION("idle") {
    source s;
    auto o = options_for(s);
    o.max_idle_time = 30ms;
    o.max_lifetime = 0ms;
    keel::pool<conn> p(std::move(o));
    CHECK(io.result(use_once(p)) == 1);
    CHECK(p.stats().idle == 1);
    REQUIRE(soon([&] { return p.stats().destroyed == 1; }));
    CHECK(p.stats().idle == 0);
    CHECK(p.stats().size == 0);
    CHECK(io.result(use_once(p)) == 2);
  }
  SECTION("lifetime") {
    source s;
    auto o = options_for(s);
    o.max_idle_time = 0ms;
    o.max_lifetime = 40ms;
    o.housekeeping_interval = 1h;  // only acquire and release look
    keel::pool<conn> p(std::move(o));
    std::promise<void> gate;
    std::atomic<int> got{0};
    auto holder = io.spawn(hold(p, gate.get_future().share(), &got));
    REQUIRE(soon([&] { return got != 0; }));
    std::this_thread::sleep_for(60ms);
    gate.set_value();
    holder.get();
    auto st = p.stats();
    CHECK(st.destroyed == 1);  // too old to go back
    CHECK(st.idle == 0);
    CHECK(io.result(use_once(p)) == 2);
  }
  CHECK(conn::alive == 0);
}

TEST_CASE("min_idle resources are created ahead by housekeeping", "[pool]") {
  source s;
  auto o = options_for(s);
  o.max_size = 4;
  o.min_idle = 2;
  keel::pool<conn> p(std::move(o));
  REQUIRE(soon([&] { return p.stats().idle == 2; }));
  CHECK(p.stats().created == 2);
  CHECK(p.stats().in_use == 0);
}

TEST_CASE("a resource that fails its health check is destroyed and replaced", "[pool]") {
  io_thread io;
  source s;
  auto o = options_for(s);
  o.health_check_after = 0ms;  // check every hand-out
  std::atomic<int> checks{0};
  o.health_check = [&checks](conn& c) -> task<bool> {
    checks++;
    co_return c.healthy;
  };
  keel::pool<conn> p(std::move(o));
  auto sicken = [&]() -> task<int> {
    auto l = co_await p.acquire();
    l->healthy = false;  // breaks while idle, say
    co_return l->id;
  };
  CHECK(io.result(sicken()) == 1);
  CHECK(io.result(use_once(p)) == 2);
  CHECK(checks == 1);
  auto st = p.stats();
  CHECK(st.health_check_failures == 1);
  CHECK(st.destroyed == 1);
  CHECK(st.size == 1);
}

TEST_CASE("a failing factory backs off instead of spinning", "[pool]") {
  io_thread io;
  source s;
  s.fail_next = 3;
  auto o = options_for(s);
  o.backoff_base = 20ms;
  o.backoff_cap = 1s;
  keel::pool<conn> p(std::move(o));
  CHECK(io.result(use_once(p)) == 1);
  std::lock_guard lock(s.m);
  REQUIRE(s.calls.size() == 4);
  // 20, 40, 80 ms between attempts (a millisecond of timer slack allowed).
  for (std::size_t i = 1; i < 4; ++i) {
    auto gap = s.calls[i] - s.calls[i - 1];
    INFO("attempt " << i);
    CHECK(gap >= std::chrono::milliseconds(20 << (i - 1)) - 1ms);
  }
  CHECK(p.stats().create_failures == 3);
}

TEST_CASE("an acquire that times out while the factory fails says why", "[pool]") {
  io_thread io;
  source s;
  s.fail_next = 1'000'000;
  auto o = options_for(s);
  o.acquire_timeout = 100ms;
  o.backoff_base = 10ms;
  o.backoff_cap = 20ms;
  keel::pool<conn> p(std::move(o));
  try {
    io.result(use_once(p));
    FAIL("acquire succeeded");
  } catch (keel::pool_timeout const& e) {
    CHECK(std::string(e.what()).find("database is down") != std::string::npos);
  }
  // Backed off: a handful of attempts in 100 ms, not thousands.
  std::lock_guard lock(s.m);
  CHECK(s.calls.size() <= 12);
  CHECK(p.stats().size == 0);
}

TEST_CASE("shutdown waits a bounded time for leases and then refuses acquires", "[pool]") {
  io_thread io;
  source s;
  auto p = std::make_unique<keel::pool<conn>>(options_for(s));
  std::promise<void> gate;
  std::atomic<int> got{0};
  auto holder = io.spawn(hold(*p, gate.get_future().share(), &got));
  REQUIRE(soon([&] { return got != 0; }));
  auto t0 = std::chrono::steady_clock::now();
  CHECK(io.result(p->shutdown(50ms)) == 1);
  CHECK(std::chrono::steady_clock::now() - t0 >= 45ms);
  CHECK_THROWS_AS(io.result(use_once(*p)), keel::pool_closed);
  p.reset();  // the lease still out keeps what it needs alive
  gate.set_value();
  holder.get();
  CHECK(conn::alive == 0);
}

TEST_CASE("a pool shared by coroutines on several threads stays consistent",
          "[pool][concurrency]") {
  io_thread a, b;
  source s;
  auto o = options_for(s);
  o.max_size = 3;
  o.acquire_timeout = 10s;
  keel::pool<conn> p(std::move(o));
  std::atomic<int> inside{0}, worst{0};
  auto job = [&]() -> task<void> {
    auto l = co_await p.acquire();
    int now = ++inside;
    int seen = worst.load();
    while (now > seen && !worst.compare_exchange_weak(seen, now)) {
    }
    auto work = [] { std::this_thread::sleep_for(100us); };
    co_await keel::offload(work);
    --inside;
  };
  std::vector<std::future<void>> all;
  for (int i = 0; i < 300; ++i) all.push_back((i % 2 ? a : b).spawn(job()));
  for (auto& f : all) f.get();
  auto st = p.stats();
  CHECK(worst <= 3);
  CHECK(st.acquired == 300);
  CHECK(st.in_use == 0);
  CHECK(st.waiters == 0);
  CHECK(st.size <= 3);
  CHECK(st.timeouts == 0);
}
