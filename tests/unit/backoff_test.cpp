// keel::backoff on its own: the ceiling grows by the multiplier up to the cap,
// every delay stays within [0, ceiling], reset starts over, jitter varies.
#include <catch2/catch.hpp>

#include <keel/backoff.hpp>

#include <set>
#include <stdexcept>

using namespace std::chrono_literals;
using ms = std::chrono::milliseconds;

TEST_CASE("the defaults are SPEC's reconnect policy: 0.5 s, doubling, capped at 30 s") {
  keel::backoff b;
  CHECK(b.options().base == 500ms);
  CHECK(b.options().multiplier == 2.0);
  CHECK(b.options().cap == 30s);
  CHECK(b.ceiling() == 500ms);
}

TEST_CASE("the ceiling grows by the multiplier and stops at the cap") {
  keel::backoff b({100ms, 3.0, 1000ms}, 1);
  ms expected[] = {100ms, 300ms, 900ms, 1000ms, 1000ms, 1000ms};
  for (auto e : expected) {
    CHECK(b.ceiling() == e);
    b.next();
  }
  for (int i = 0; i < 2000; ++i) b.next();  // no overflow after many attempts
  CHECK(b.ceiling() == 1000ms);
}

TEST_CASE("every delay lies within zero and the ceiling it was drawn under") {
  keel::backoff b({20ms, 2.0, 200ms});
  for (int i = 0; i < 500; ++i) {
    auto c = b.ceiling();
    auto d = b.next();
    REQUIRE(d >= 0ms);
    REQUIRE(d <= c);
  }
}

TEST_CASE("full jitter: delays under the same ceiling are not all equal and spread over it") {
  keel::backoff b({1000ms, 1.0, 1000ms});
  std::set<ms::rep> seen;
  ms::rep lo = 1000, hi = 0;
  for (int i = 0; i < 200; ++i) {
    auto d = b.next().count();
    seen.insert(d);
    lo = std::min(lo, d);
    hi = std::max(hi, d);
  }
  CHECK(seen.size() > 50);
  CHECK(lo < 250);
  CHECK(hi > 750);
}

TEST_CASE("reset starts over at the base ceiling") {
  keel::backoff b({50ms, 2.0, 10s});
  for (int i = 0; i < 5; ++i) b.next();
  CHECK(b.attempts() == 5);
  CHECK(b.ceiling() == 1600ms);
  b.reset();
  CHECK(b.attempts() == 0);
  CHECK(b.ceiling() == 50ms);
  CHECK(b.next() <= 50ms);
}

TEST_CASE("the same seed draws the same sequence, different seeds do not") {
  keel::backoff a({10ms, 2.0, 5s}, 42), b({10ms, 2.0, 5s}, 42), c({10ms, 2.0, 5s}, 43);
  bool differs = false;
  for (int i = 0; i < 20; ++i) {
    auto x = a.next();
    CHECK(x == b.next());
    differs = differs || x != c.next();
  }
  CHECK(differs);
}

TEST_CASE("nonsense options are refused") {
  CHECK_THROWS_AS(keel::backoff({100ms, 0.5, 1s}), std::invalid_argument);
  CHECK_THROWS_AS(keel::backoff({2s, 2.0, 1s}), std::invalid_argument);
}
