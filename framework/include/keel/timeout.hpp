#pragma once
// keel's one timeout mechanism: a per-connection watchdog whose deadline
// cancels the operation it guards through an Asio cancellation slot.
//
//   auto wd = keel::watchdog::create(ex, 10s);   // check period: the shortest timeout
//   wd->arm_after(header_timeout);               // guard the next operation
//   auto [ec, n] = co_await sock.async_read_some(buf,
//       asio::bind_cancellation_slot(wd->slot(), asio::as_tuple(keel::use_task)));
//   wd->disarm();
//   if (wd->fired()) { /* 408 */ }
//
// Arming costs a store and a compare, no syscall and no allocation: one timer
// per connection sleeps until the earliest deadline it may have to enforce and,
// on waking, either fires (terminal cancellation) or sleeps again. A deadline
// moved later never touches the timer; one moved earlier than the timer's wake
// re-arms it. Because the signal can be bound to a whole coroutine (co_spawn
// with bind_cancellation_slot), the same deadline reaches whatever a handler
// awaits: a timer, an offloaded job, an outbound call. Single-threaded: use it
// on its connection's executor only.
#include <keel/net.hpp>

#include <boost/asio/cancellation_signal.hpp>

#include <chrono>
#include <memory>

namespace keel {

class watchdog : public std::enable_shared_from_this<watchdog> {
 public:
  /// `check_period` bounds how long the timer sleeps without looking; use the
  /// shortest timeout the connection arms, so steady traffic never re-arms it.
  static std::shared_ptr<watchdog> create(executor const& ex, std::chrono::milliseconds check_period);

  /// The slot that the guarded operations (or a whole coroutine) are bound to.
  asio::cancellation_slot slot() { return signal_.slot(); }

  /// Guards what runs next: terminal cancellation at `deadline` unless disarmed.
  void arm(clock::time_point deadline);
  void arm_after(std::chrono::milliseconds d) { arm(clock::now() + d); }
  void disarm() { deadline_ = clock::time_point::max(); }
  clock::time_point deadline() const { return deadline_; }
  /// True when the deadline armed last fired; arm() clears it.
  bool fired() const { return fired_; }

  /// Emits terminal cancellation now (client gone, shutdown). Does not set fired().
  void cancel_now();
  /// Ends the watchdog; its timer releases it. Safe to call twice.
  void stop();

  explicit watchdog(executor const& ex, std::chrono::milliseconds check_period);

 private:
  void schedule(clock::time_point wake);
  void on_wake();

  steady_timer timer_;
  asio::cancellation_signal signal_;
  std::chrono::milliseconds period_;
  clock::time_point deadline_ = clock::time_point::max();
  clock::time_point wake_at_ = clock::time_point::max();
  bool waiting_ = false;
  bool fired_ = false;
  bool stopped_ = false;
};

}  // namespace keel
