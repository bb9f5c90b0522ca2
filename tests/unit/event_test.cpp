// detail::event, the one way a keel coroutine waits for something another
// coroutine on its executor does: wake-ups, order, cancellation through the
// awaiting coroutine's slot (how the watchdog and task_scope reach a wait),
// and what destroying it does to a waiter.
#include <catch2/catch.hpp>

#include "core/event.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>

#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

using keel::task;
using keel::detail::event;
namespace asio = boost::asio;
using boost::system::error_code;

namespace {

constexpr auto tuple_task = asio::as_tuple(keel::use_task);

// Waits once and appends `name` and how the wait ended to `log`.
task<void> wait_once(event& ev, std::string name, std::vector<std::string>& log) {
  auto [ec] = co_await ev.async_wait(tuple_task);
  log.push_back(name + (ec ? ":aborted" : ":woken"));
}

}  // namespace

TEST_CASE("notify_all wakes every waiter and a notify nobody waits for is not remembered", "[event]") {
  asio::io_context ioc;
  event ev(ioc.get_executor());
  std::vector<std::string> log;
  ev.notify_all();  // nobody waits: nothing happens
  asio::co_spawn(ioc, wait_once(ev, "a", log), asio::detached);
  asio::co_spawn(ioc, wait_once(ev, "b", log), asio::detached);
  ioc.poll();
  CHECK(log.empty());
  CHECK(ev.waiting());
  ev.notify_all();
  CHECK(log.empty());  // completions are posted, never run inside notify
  ioc.poll();
  CHECK(log == std::vector<std::string>{"a:woken", "b:woken"});
  CHECK_FALSE(ev.waiting());
}

TEST_CASE("notify_one wakes the longest waiting coroutine first", "[event]") {
  asio::io_context ioc;
  event ev(ioc.get_executor());
  std::vector<std::string> log;
  for (auto const* n : {"first", "second", "third"}) asio::co_spawn(ioc, wait_once(ev, n, log), asio::detached);
  ioc.poll();
  ev.notify_one();
  ioc.poll();
  CHECK(log == std::vector<std::string>{"first:woken"});
  ev.notify_one();
  ev.notify_one();
  ioc.poll();
  CHECK(log == std::vector<std::string>{"first:woken", "second:woken", "third:woken"});
}

TEST_CASE("a terminal cancellation of the awaiting coroutine ends its wait with operation_aborted", "[event]") {
  asio::io_context ioc;
  event ev(ioc.get_executor());
  std::vector<std::string> log;
  asio::cancellation_signal cancel_a;
  asio::co_spawn(ioc, wait_once(ev, "a", log), asio::bind_cancellation_slot(cancel_a.slot(), asio::detached));
  asio::co_spawn(ioc, wait_once(ev, "b", log), asio::detached);
  ioc.poll();
  cancel_a.emit(asio::cancellation_type::terminal);
  ioc.poll();
  CHECK(log == std::vector<std::string>{"a:aborted"});
  // The other waiter is untouched, and a second emit finds nothing to cancel.
  cancel_a.emit(asio::cancellation_type::terminal);
  ev.notify_all();
  ioc.poll();
  CHECK(log == std::vector<std::string>{"a:aborted", "b:woken"});
}

TEST_CASE("a cancelled wait throws operation_aborted to a coroutine awaiting with use_task", "[event]") {
  asio::io_context ioc;
  event ev(ioc.get_executor());
  asio::cancellation_signal cancel;
  std::optional<error_code> caught;
  auto waiter = [&]() -> task<void> {
    try {
      co_await ev.async_wait(keel::use_task);
    } catch (boost::system::system_error const& e) {
      caught = e.code();
    }
  };
  asio::co_spawn(ioc, waiter(), asio::bind_cancellation_slot(cancel.slot(), asio::detached));
  ioc.poll();
  cancel.emit(asio::cancellation_type::terminal);
  ioc.poll();
  REQUIRE(caught.has_value());
  CHECK(*caught == asio::error::operation_aborted);
}

TEST_CASE("a woken waiter's slot is cleared, so a later emit reaches nothing of the event", "[event]") {
  asio::io_context ioc;
  event ev(ioc.get_executor());
  asio::cancellation_signal cancel;
  std::vector<std::string> log;
  bool second_wait_done = false;
  auto waiter = [&]() -> task<void> {
    auto [ec] = co_await ev.async_wait(tuple_task);
    log.push_back(ec ? "aborted" : "woken");
    // Still the same slot: the cancellation now reaches the second wait only.
    auto [ec2] = co_await ev.async_wait(tuple_task);
    log.push_back(ec2 ? "aborted" : "woken");
    second_wait_done = true;
  };
  asio::co_spawn(ioc, waiter(), asio::bind_cancellation_slot(cancel.slot(), asio::detached));
  ioc.poll();
  ev.notify_all();
  ioc.poll();
  CHECK(log == std::vector<std::string>{"woken"});
  cancel.emit(asio::cancellation_type::terminal);
  ioc.poll();
  CHECK(second_wait_done);
  CHECK(log == std::vector<std::string>{"woken", "aborted"});
}

TEST_CASE("a waiting coroutine keeps its io_context running, as a pending timer does", "[event]") {
  asio::io_context ioc;
  event ev(ioc.get_executor());
  std::vector<std::string> log;
  asio::co_spawn(ioc, wait_once(ev, "a", log), asio::detached);
  // Nothing else is pending: run_one() would return 0 at once if the wait were not work.
  ioc.poll();
  CHECK_FALSE(ioc.stopped());
  std::thread notifier([&] { asio::post(ioc, [&] { ev.notify_all(); }); });
  ioc.run();
  notifier.join();
  CHECK(log == std::vector<std::string>{"a:woken"});
}

TEST_CASE("destroying an event ends its waits with operation_aborted", "[event]") {
  asio::io_context ioc;
  std::vector<std::string> log;
  auto ev = std::make_unique<event>(ioc.get_executor());
  asio::co_spawn(ioc, wait_once(*ev, "a", log), asio::detached);
  ioc.poll();
  ev.reset();
  ioc.run();
  CHECK(log == std::vector<std::string>{"a:aborted"});
}
