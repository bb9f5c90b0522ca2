// Exponential backoff with full jitter (see keel/backoff.hpp).
#include <keel/backoff.hpp>

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace keel {

namespace {
backoff_options checked(backoff_options o) {
  if (o.base.count() < 0 || o.cap < o.base || !(o.multiplier >= 1.0)) {
    throw std::invalid_argument("keel::backoff: need 0 <= base <= cap and multiplier >= 1");
  }
  return o;
}
}  // namespace

backoff::backoff(backoff_options o) : backoff(o, std::random_device{}()) {}

backoff::backoff(backoff_options o, std::uint64_t seed) : opts_(checked(o)), rng_(seed) {}

std::chrono::milliseconds backoff::ceiling() const {
  // In double so that many attempts saturate at the cap instead of overflowing.
  double c = static_cast<double>(opts_.base.count()) * std::pow(opts_.multiplier, attempts_);
  double cap = static_cast<double>(opts_.cap.count());
  return std::chrono::milliseconds(static_cast<std::int64_t>(std::min(c, cap)));
}

std::chrono::milliseconds backoff::next() {
  auto c = ceiling();
  ++attempts_;
  std::uniform_int_distribution<std::int64_t> pick(0, c.count());
  return std::chrono::milliseconds(pick(rng_));
}

}  // namespace keel
