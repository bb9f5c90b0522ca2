#pragma once
// Shared setup for keel's own integration tests: options with short timeouts
// and a single I/O thread unless a test asks otherwise.
#include <keel/app.hpp>
#include <keel/testing.hpp>

#include <chrono>

namespace keel::test {

using namespace std::chrono_literals;

/// Defaults for tests: every timeout long enough not to trip by accident, short
/// enough that a hang fails fast; tests shorten the one they exercise.
inline options test_options() {
  options o;
  o.listen = "127.0.0.1:0";
  o.threads = 2;
  o.drain_timeout = 5s;
  return o;
}

}  // namespace keel::test
