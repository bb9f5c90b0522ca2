// What one wake-up costs: two coroutines on one io_context hand a turn back
// and forth N times through (a) keel's detail::event, (b) a capacity-0
// asio::experimental::channel<void(error_code)> (try_send wakes a waiting
// receiver), (c) a steady_timer set to time_point::max() and cancelled, the
// pattern the event replaced. One round trip is two waits and two wake-ups.
//
//   event_bench event|channel|timer [N]     prints ns per round trip
// Instructions: run under `valgrind --tool=callgrind` at two N and divide the
// difference (bench/event/run).
#include "core/event.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/channel.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>

using namespace keel;
using boost::system::error_code;

struct via_event {
  detail::event ev;
  explicit via_event(executor ex) : ev(ex) {}
  void wake() { ev.notify_all(); }
  task<void> wait() { co_await ev.async_wait(tuple_task); }
};

struct via_channel {
  asio::experimental::channel<executor, void(error_code)> ch;
  explicit via_channel(executor ex) : ch(ex, 0) {}
  void wake() {
    while (ch.try_send(error_code{})) {
    }
  }
  task<void> wait() { co_await ch.async_receive(tuple_task); }
};

struct via_timer {
  steady_timer t;
  explicit via_timer(executor ex) : t(ex) {}
  void wake() { t.cancel(); }
  task<void> wait() {
    t.expires_at(clock::time_point::max());
    co_await t.async_wait(tuple_task);
  }
};

template <class W>
struct pair_of {
  W a, b;
  bool turn_a = true;
  long left;
  pair_of(executor ex, long n) : a(ex), b(ex), left(n) {}
};

template <class W>
task<void> side(pair_of<W>& p, bool is_a) {
  auto& mine = is_a ? p.a : p.b;
  auto& theirs = is_a ? p.b : p.a;
  for (;;) {
    while (p.turn_a != is_a && p.left > 0) co_await mine.wait();
    if (p.left <= 0) break;
    if (!is_a) --p.left;
    p.turn_a = !is_a;
    theirs.wake();
  }
  theirs.wake();
}

template <class W>
double run(long n) {
  asio::io_context ioc(1);
  pair_of<W> p(ioc.get_executor(), n);
  asio::co_spawn(ioc.get_executor(), side(p, true), asio::detached);
  asio::co_spawn(ioc.get_executor(), side(p, false), asio::detached);
  auto t0 = std::chrono::steady_clock::now();
  ioc.run();
  auto dt = std::chrono::steady_clock::now() - t0;
  return std::chrono::duration<double, std::nano>(dt).count() / static_cast<double>(n);
}

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: event_bench event|channel|timer [round trips]\n");
    return 2;
  }
  long n = argc > 2 ? std::atol(argv[2]) : 1000000;
  double ns = 0;
  if (!std::strcmp(argv[1], "event")) ns = run<via_event>(n);
  else if (!std::strcmp(argv[1], "channel")) ns = run<via_channel>(n);
  else if (!std::strcmp(argv[1], "timer")) ns = run<via_timer>(n);
  else return 2;
  std::printf("%s: %.1f ns per round trip (%ld)\n", argv[1], ns, n);
}
