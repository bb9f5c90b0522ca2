#pragma once
// keel::detail::alarm: a deadline for a coroutine that waits on an event for
// other reasons too (a writer waiting for messages and for its next
// heartbeat). At the time set it rings the event (notify_all); the waiter
// then looks at the clock. Moved only when the time comes earlier, so a
// stream of messages does not re-arm a timer each. Lives on the event's
// executor, like the event.
#include <keel/net.hpp>

#include "core/event.hpp"

#include <boost/system/error_code.hpp>

#include <memory>

namespace keel::detail {

class alarm {
 public:
  alarm(executor const& ex, event& bell) : state_(std::make_shared<state>(ex, bell)) {}
  ~alarm() = default;
  alarm(alarm const&) = delete;
  alarm& operator=(alarm const&) = delete;

  /// Rings at `due`, unless it already rings no later (then the waiter just looks again).
  void ring_at(clock::time_point due) {
    auto& s = *state_;
    if (s.due <= due) return;
    s.due = due;
    s.timer.expires_at(due);
    // The wait holds no strong reference: the timer must never be destroyed
    // by its own handler (an io_context that is torn down with the handler
    // still queued would destroy the timer inside its shutdown).
    s.timer.async_wait([weak = std::weak_ptr<state>(state_)](boost::system::error_code ec) {
      if (ec) return;  // moved earlier, or stopped
      auto st = weak.lock();
      if (!st) return;  // its owner is gone
      st->due = clock::time_point::max();
      st->bell.notify_all();
    });
  }

  /// No ring until the next ring_at().
  void stop() {
    state_->timer.cancel();
    state_->due = clock::time_point::max();
  }

 private:
  // Seen weakly by the pending wait, which may complete after the alarm is gone.
  struct state {
    state(executor const& ex, event& e) : timer(ex), bell(e) {}
    steady_timer timer;
    event& bell;
    clock::time_point due = clock::time_point::max();
  };
  std::shared_ptr<state> state_;
};

}  // namespace keel::detail
