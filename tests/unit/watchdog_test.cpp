// keel::watchdog (keel/timeout.hpp): an armed deadline cancels the operation
// bound to its slot; a disarmed or moved deadline does not; an earlier deadline
// re-arms the sleeping timer; and a deadline that was replaced never cuts the
// operation that comes after it.
//
// Each guarded operation is a timer of its own with a long expiry, so a
// watchdog that fails to fire makes the test fail when that timer ends instead
// of hanging; a watchdog that fires when it must not shows as a cut operation.
#include <catch2/catch.hpp>

#include "io_thread.hpp"

#include <keel/timeout.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/system/error_code.hpp>

#include <chrono>
#include <memory>

namespace asio = boost::asio;
using keel::task;
using keel::test::io_thread;
using namespace std::chrono_literals;

namespace {

// How one guarded operation ended.
struct outcome {
  bool cut = false;                  // completed with operation_aborted
  std::chrono::milliseconds took{};  // from `since` (taken before arming) to its completion
  bool fired = false;                // the watchdog's fired() afterwards
};

// Waits `length` on a timer bound to `wd`'s slot: the operation the watchdog
// guards. `since` is taken before the deadline is armed, so `took` is never
// shorter than the time from arming to the cut.
task<outcome> guarded(keel::watchdog& wd, std::chrono::milliseconds length, keel::clock::time_point since) {
  keel::steady_timer op(co_await asio::this_coro::executor);
  op.expires_after(length);
  auto [ec] = co_await op.async_wait(asio::bind_cancellation_slot(wd.slot(), asio::as_tuple(keel::use_task)));
  outcome o;
  o.cut = ec == asio::error::operation_aborted;
  o.took = std::chrono::duration_cast<std::chrono::milliseconds>(keel::clock::now() - since);
  o.fired = wd.fired();
  co_return o;
}

// A watchdog on the io_thread's executor, stopped there (its timer released) when the test ends.
struct watched {
  watched(io_thread& io, std::chrono::milliseconds period)
      : io(io), wd(keel::watchdog::create(io.executor(), period)) {}
  ~watched() {
    io.run([this] { wd->stop(); });
  }
  watched(watched const&) = delete;
  watched& operator=(watched const&) = delete;
  keel::watchdog* operator->() const { return wd.get(); }
  keel::watchdog& operator*() const { return *wd; }

  io_thread& io;
  std::shared_ptr<keel::watchdog> wd;
};

}  // namespace

TEST_CASE("an armed watchdog cuts the guarded operation at its deadline", "[watchdog]") {
  io_thread io;
  watched wd(io, 10s);
  auto run = [&]() -> task<outcome> {
    auto since = keel::clock::now();
    wd->arm_after(50ms);
    co_return co_await guarded(*wd, 10s, since);
  };
  auto o = io.result(run());
  CHECK(o.cut);
  CHECK(o.fired);
  CHECK(o.took >= 50ms);
  CHECK(o.took < 5s);
}

TEST_CASE("a disarmed watchdog lets the operation run past the old deadline", "[watchdog]") {
  io_thread io;
  watched wd(io, 10s);
  auto run = [&]() -> task<outcome> {
    auto since = keel::clock::now();
    wd->arm_after(30ms);
    wd->disarm();
    co_return co_await guarded(*wd, 300ms, since);
  };
  auto o = io.result(run());
  CHECK_FALSE(o.cut);
  CHECK_FALSE(o.fired);
  CHECK(o.took >= 300ms);
}

TEST_CASE("a deadline earlier than the timer's planned wake re-arms it", "[watchdog]") {
  io_thread io;
  // The timer first sleeps until the 8 s deadline (the period is longer still);
  // only a re-arm makes the 50 ms deadline count before that.
  watched wd(io, 60s);
  auto run = [&]() -> task<outcome> {
    auto since = keel::clock::now();
    wd->arm_after(8s);
    wd->arm_after(50ms);
    co_return co_await guarded(*wd, 20s, since);
  };
  auto o = io.result(run());
  CHECK(o.cut);
  CHECK(o.fired);
  CHECK(o.took >= 50ms);
  CHECK(o.took < 4s);
}

TEST_CASE("an old deadline does not cut the operation armed after it", "[watchdog]") {
  io_thread io;
  watched wd(io, 10s);
  auto run = [&]() -> task<outcome> {
    // The first operation's deadline schedules the timer for 100 ms; the next
    // operation's deadline is later, so the timer wakes at 100 ms, during the
    // second operation, with a stale plan and must sleep again instead of firing.
    wd->arm_after(100ms);
    auto first = co_await guarded(*wd, 1ms, keel::clock::now());
    wd->disarm();
    if (first.cut) co_return first;
    auto since = keel::clock::now();
    wd->arm_after(2s);
    auto second = co_await guarded(*wd, 400ms, since);
    wd->disarm();
    co_return second;
  };
  auto o = io.result(run());
  CHECK_FALSE(o.cut);
  CHECK_FALSE(o.fired);
  CHECK(o.took >= 400ms);
}

TEST_CASE("a watchdog that fired guards the next operation afresh", "[watchdog]") {
  io_thread io;
  watched wd(io, 10s);
  struct both {
    outcome first, second, third;
  };
  auto run = [&]() -> task<both> {
    both b;
    wd->arm_after(30ms);
    b.first = co_await guarded(*wd, 10s, keel::clock::now());
    // Re-armed later: the earlier expiry and its emitted signal are spent.
    auto since = keel::clock::now();
    wd->arm_after(5s);
    b.second = co_await guarded(*wd, 200ms, since);
    // And the new deadline still fires when it is due.
    since = keel::clock::now();
    wd->arm_after(40ms);
    b.third = co_await guarded(*wd, 10s, since);
    co_return b;
  };
  auto b = io.result(run());
  CHECK(b.first.cut);
  CHECK(b.first.fired);
  CHECK_FALSE(b.second.cut);
  CHECK_FALSE(b.second.fired);
  CHECK(b.second.took >= 200ms);
  CHECK(b.third.cut);
  CHECK(b.third.fired);
  CHECK(b.third.took < 5s);
}
