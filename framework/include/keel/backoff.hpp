#pragma once
// Exponential backoff with full jitter, for anything that retries: the
// WebSocket client's reconnects, the HTTP client's retries, a hub's link.
//
//   keel::backoff retry;                     // SPEC §2: base 0.5 s, ×2, cap 30 s
//   for (;;) {
//     if (co_await try_connect()) { retry.reset(); break; }
//     timer.expires_after(retry.next());     // uniform in [0, ceiling]
//     co_await timer.async_wait(keel::use_task);
//   }
//
// The n-th delay (counting from 0 since the last reset) is drawn uniformly
// from [0, min(cap, base * multiplier^n)] ("full jitter": clients that lost
// the same server at the same moment spread out instead of returning in
// lockstep). Not thread-safe: one owner draws from it.
#include <chrono>
#include <cstdint>
#include <random>

namespace keel {

struct backoff_options {
  std::chrono::milliseconds base{500};  ///< ceiling of the first delay
  double multiplier = 2.0;              ///< growth of the ceiling per attempt (>= 1)
  std::chrono::milliseconds cap{30000}; ///< the ceiling never exceeds this
};

class backoff {
 public:
  /// Seeded from std::random_device; pass a seed for a reproducible sequence.
  explicit backoff(backoff_options o = {});
  backoff(backoff_options o, std::uint64_t seed);

  /// The delay before the next attempt; counts the attempt.
  std::chrono::milliseconds next();
  /// The upper bound the next call to next() draws under.
  std::chrono::milliseconds ceiling() const;
  /// Delays drawn since the last reset.
  unsigned attempts() const { return attempts_; }
  /// Back to the first ceiling (after a success that lasted).
  void reset() { attempts_ = 0; }
  backoff_options const& options() const { return opts_; }

 private:
  backoff_options opts_;
  unsigned attempts_ = 0;
  std::mt19937_64 rng_;
};

}  // namespace keel
