// detail::fifo, the WebSocket send queue and inbox: order, reclaiming the
// popped prefix, and what it holds once empty.
#include <catch2/catch.hpp>

#include "core/fifo.hpp"

#include <memory>
#include <string>

using keel::detail::fifo;

TEST_CASE("fifo keeps order across pushes and pops interleaved around its compaction", "[fifo]") {
  fifo<std::string> q;
  CHECK(q.empty());
  int next_in = 0, next_out = 0;
  // Push 3, pop 2, many times: the popped prefix grows past 32 and is reclaimed.
  for (int round = 0; round < 500; ++round) {
    for (int i = 0; i < 3; ++i) q.push_back(std::to_string(next_in++));
    for (int i = 0; i < 2; ++i) {
      REQUIRE(q.front() == std::to_string(next_out++));
      q.pop_front();
    }
    REQUIRE(q.size() == static_cast<std::size_t>(next_in - next_out));
  }
  while (!q.empty()) {
    REQUIRE(q.front() == std::to_string(next_out++));
    q.pop_front();
  }
  CHECK(next_out == next_in);
}

TEST_CASE("fifo releases what it popped at once, and a burst's storage once empty", "[fifo]") {
  fifo<std::shared_ptr<int>> q;
  auto held = std::make_shared<int>(7);
  q.push_back(held);
  q.push_back(std::make_shared<int>(8));
  CHECK(held.use_count() == 2);
  auto first = std::move(q.front());
  q.pop_front();
  first.reset();
  CHECK(held.use_count() == 1);  // no copy left in a dead slot
  CHECK(q.size() == 1);
  for (int i = 0; i < 10000; ++i) q.push_back(held);
  CHECK(held.use_count() == 10001);
  q.clear();
  CHECK(q.empty());
  CHECK(held.use_count() == 1);
  q.push_back(held);
  CHECK(q.size() == 1);
  CHECK(*q.front() == 7);
}
