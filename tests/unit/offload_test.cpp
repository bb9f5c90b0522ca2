// keel::offload: blocking work on a bounded pool, resumption on the caller's
// executor, cancellation before the work starts, and the full-queue 503.
#include <catch2/catch.hpp>

#include "io_thread.hpp"

#include <keel/offload.hpp>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/system/system_error.hpp>

#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace asio = boost::asio;
using keel::task;
using keel::test::io_thread;
using namespace std::chrono_literals;

namespace {

// Polls `pred` from the test's thread.
template <class Pred>
bool soon(Pred pred, std::chrono::milliseconds limit = 5s) {
  auto end = std::chrono::steady_clock::now() + limit;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > end) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

struct where {
  std::thread::id before, work, after;
  bool work_on_worker = false;
  bool after_on_executor = false;
  int value = 0;
};

task<where> record_threads(keel::offload_pool& pool) {
  where w;
  w.before = std::this_thread::get_id();
  auto work = [&w] {
    w.work = std::this_thread::get_id();
    w.work_on_worker = keel::offload_pool::on_worker_thread();
    return 42;
  };
  w.value = co_await pool.run(work);
  w.after = std::this_thread::get_id();
  auto ex = co_await asio::this_coro::executor;
  w.after_on_executor = ex.running_in_this_thread();
  co_return w;
}

// Occupies every worker of a one-thread pool until release() is called.
struct blocker {
  std::promise<void> gate;
  std::shared_future<void> opened = gate.get_future().share();
  std::atomic<bool> running{false};

  task<void> occupy(keel::offload_pool& pool) {
    auto wait = [this] {
      running = true;
      opened.wait();
    };
    co_await pool.run(wait);
  }
  void release() { gate.set_value(); }
};

}  // namespace

TEST_CASE("offload runs the work on a worker and resumes the caller on its own executor",
          "[offload]") {
  io_thread io;
  keel::offload_pool pool(2, 16);
  auto w = io.result(record_threads(pool));
  CHECK(w.value == 42);
  CHECK(w.before == io.id());
  CHECK(w.work != io.id());
  CHECK(w.work_on_worker);
  CHECK(w.after == io.id());
  CHECK(w.after_on_executor);
  CHECK_FALSE(keel::offload_pool::on_worker_thread());
  CHECK(pool.stats().completed == 1);
}

TEST_CASE("offload rethrows the work's exception in the awaiting coroutine", "[offload]") {
  io_thread io;
  keel::offload_pool pool(1, 4);
  auto fails = [&pool]() -> task<std::string> {
    auto boom = [] () -> int { throw std::runtime_error("disk on fire"); };
    try {
      co_await pool.run(boom);
    } catch (std::runtime_error const& e) {
      co_return e.what();
    }
    co_return "no exception";
  };
  CHECK(io.result(fails()) == "disk on fire");
}

TEST_CASE("offload supports work that returns nothing and move-only results", "[offload]") {
  io_thread io;
  keel::offload_pool pool(1, 4);
  std::atomic<int> ran{0};
  auto go = [&]() -> task<int> {
    auto side_effect = [&ran] { ran++; };
    co_await pool.run(side_effect);
    auto make = [] { return std::make_unique<int>(7); };
    auto p = co_await pool.run(make);
    co_return *p;
  };
  CHECK(io.result(go()) == 7);
  CHECK(ran == 1);
}

TEST_CASE("work cancelled before it starts never runs", "[offload][cancel]") {
  io_thread io;
  keel::offload_pool pool(1, 8);
  blocker b;
  auto first = io.spawn(b.occupy(pool));
  REQUIRE(soon([&] { return b.running.load(); }));

  std::atomic<bool> second_ran{false};
  asio::cancellation_signal signal;
  auto second = [&]() -> task<void> {
    auto work = [&second_ran] { second_ran = true; };
    co_await pool.run(work);
  };
  auto done = asio::co_spawn(io.executor(), second(),
                             asio::bind_cancellation_slot(signal.slot(), asio::use_future));
  REQUIRE(soon([&] { return pool.stats().queued == 1; }));
  io.run([&] { signal.emit(asio::cancellation_type::terminal); });

  CHECK_THROWS_AS(io.get(done), boost::system::system_error);
  CHECK(pool.stats().queued == 0);
  CHECK(pool.stats().cancelled == 1);
  b.release();
  first.get();
  // The worker is free now; had the job stayed queued it would run here.
  auto probe = [&]() -> task<int> {
    auto one = [] { return 1; };
    co_return co_await pool.run(one);
  };
  CHECK(io.result(probe()) == 1);
  CHECK_FALSE(second_ran);
}

TEST_CASE("cancelling running work waits for it and asks it to stop through its stop_token",
          "[offload][cancel]") {
  io_thread io;
  keel::offload_pool pool(1, 8);
  std::atomic<bool> started{false};
  asio::cancellation_signal signal;
  auto job = [&]() -> task<std::string> {
    auto spin = [&started](std::stop_token stop) {
      started = true;
      while (!stop.stop_requested()) std::this_thread::sleep_for(1ms);
      return std::string("stopped");
    };
    co_return co_await pool.run(spin);
  };
  auto done = asio::co_spawn(io.executor(), job(),
                             asio::bind_cancellation_slot(signal.slot(), asio::use_future));
  REQUIRE(soon([&] { return started.load(); }));
  io.run([&] { signal.emit(asio::cancellation_type::terminal); });
  CHECK(io.get(done) == "stopped");
  CHECK(pool.stats().completed == 1);
}

TEST_CASE("a full offload queue refuses work with a 503", "[offload]") {
  io_thread io;
  keel::offload_pool pool(1, 1);
  blocker b;
  auto first = io.spawn(b.occupy(pool));
  REQUIRE(soon([&] { return b.running.load(); }));
  auto queued_job = [&]() -> task<int> {
    auto two = [] { return 2; };
    co_return co_await pool.run(two);
  };
  auto queued = io.spawn(queued_job());
  REQUIRE(soon([&] { return pool.stats().queued == 1; }));

  auto third = io.spawn(queued_job());
  try {
    io.get(third);
    FAIL("the third job was accepted");
  } catch (keel::offload_rejected const& e) {
    CHECK(e.status() == 503);
    CHECK(std::string(e.what()).find("full") != std::string::npos);
  }
  CHECK(pool.stats().rejected == 1);
  b.release();
  first.get();
  CHECK(queued.get() == 2);
}

TEST_CASE("a named closure that owns its captures survives the co_await", "[offload][asan]") {
  // The form docs/offload.md asks for: the closure is named in a statement,
  // not written inside the co_await (g++ 12 destroys that temporary twice).
  io_thread io;
  keel::offload_pool pool(2, 8);
  auto go = [&]() -> task<std::size_t> {
    auto data = std::make_shared<std::vector<int>>(1000, 1);
    auto words = std::string(100, 'x');
    auto sum = [data, words = std::move(words)] { return data->size() + words.size(); };
    co_return co_await pool.run(std::move(sum));
  };
  CHECK(io.result(go()) == 1100);
}

TEST_CASE("offload from several I/O threads resumes each caller on its own thread",
          "[offload][concurrency]") {
  io_thread a, b;
  keel::offload_pool pool(3, 1024);
  std::atomic<int> wrong{0};
  auto one = [&](std::thread::id home, int i) -> task<int> {
    auto square = [i] { return i * i; };
    auto r = co_await pool.run(square);
    if (std::this_thread::get_id() != home) wrong++;
    co_return r;
  };
  std::vector<std::future<int>> results;
  for (int i = 0; i < 200; ++i) {
    auto& io = i % 2 ? a : b;
    results.push_back(io.spawn(one(io.id(), i)));
  }
  long total = 0;
  for (auto& f : results) total += f.get();
  long want = 0;
  for (int i = 0; i < 200; ++i) want += i * i;
  CHECK(total == want);
  CHECK(wrong == 0);
  CHECK(pool.stats().completed == 200);
  CHECK(pool.stats().running == 0);
}

TEST_CASE("the process-wide pool takes its size and queue limit from configure", "[offload]") {
  keel::offload_pool::configure(3, 64);
  auto s = keel::offload_pool::global().stats();
  CHECK(s.threads >= 3);
  CHECK(s.queue_limit == 64);
  io_thread io;
  auto go = []() -> task<bool> {
    auto check = [] { return keel::offload_pool::on_worker_thread(); };
    co_return co_await keel::offload(check);
  };
  CHECK(io.result(go()));
}
