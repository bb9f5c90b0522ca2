#include <keel/timeout.hpp>

#include <algorithm>

namespace keel {

std::shared_ptr<watchdog> watchdog::create(executor const& ex, std::chrono::milliseconds check_period) {
  return std::make_shared<watchdog>(ex, check_period);
}

watchdog::watchdog(executor const& ex, std::chrono::milliseconds check_period)
    : timer_(ex), period_(std::max(check_period, std::chrono::milliseconds(1))) {}

void watchdog::arm(clock::time_point deadline) {
  deadline_ = deadline;
  fired_ = false;
  if (stopped_) return;
  if (!waiting_) {
    schedule(std::min(deadline, clock::now() + period_));
  } else if (deadline < wake_at_) {
    // Only a deadline earlier than the planned wake costs a timer move.
    wake_at_ = deadline;
    timer_.cancel();
  }
}

void watchdog::schedule(clock::time_point wake) {
  wake_at_ = wake;
  waiting_ = true;
  timer_.expires_at(wake);
  timer_.async_wait([self = shared_from_this()](boost::system::error_code) { self->on_wake(); });
}

void watchdog::on_wake() {
  waiting_ = false;
  if (stopped_) return;  // releases the last reference the timer held
  auto now = clock::now();
  if (deadline_ <= now) {
    deadline_ = clock::time_point::max();
    fired_ = true;
    signal_.emit(asio::cancellation_type::terminal);
  }
  if (deadline_ == clock::time_point::max()) return;  // nothing armed: sleep until arm()
  schedule(std::min(deadline_, now + period_));
}

void watchdog::cancel_now() {
  if (stopped_) return;
  signal_.emit(asio::cancellation_type::terminal);
}

void watchdog::stop() {
  if (stopped_) return;
  stopped_ = true;
  deadline_ = clock::time_point::max();
  timer_.cancel();
}

}  // namespace keel
