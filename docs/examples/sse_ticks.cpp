// Server-Sent Events: a clock that ticks once a second and resumes after Last-Event-ID.
// Usage: docs_example_sse_ticks [--listen HOST:PORT] [--sse-heartbeat 15s]
//   curl -N localhost:8080/ticks                         -> event: tick / id: 1 / data: tick 1 ...
//   curl -N -H 'Last-Event-ID: 5' localhost:8080/ticks   -> resumes at id 6
#include <keel/app.hpp>
#include <keel/sse.hpp>

#include <boost/asio/this_coro.hpp>

#include <charconv>
#include <chrono>
#include <string>

namespace {

// [ticks]
// One linear loop. send() returns false once the stream has ended (the client
// left, the server drains); whatever the handler awaits then is cancelled too,
// so the loop never outlives its client.
keel::task<void> ticks(keel::sse_stream& events) {
  auto const& last = events.last_event_id();  // "" on a first connect
  unsigned n = 0;
  std::from_chars(last.data(), last.data() + last.size(), n);
  keel::steady_timer timer(co_await boost::asio::this_coro::executor);
  for (;;) {
    ++n;
    if (!co_await events.send("tick", "tick " + std::to_string(n), std::to_string(n))) co_return;
    timer.expires_after(std::chrono::seconds(1));
    co_await timer.async_wait(keel::use_task);
  }
}
// [ticks]

}  // namespace

int main(int argc, char** argv) {
  keel::config cfg("sse_ticks");
  return keel::serve(cfg, argc, argv, [](keel::app& app, keel::config const&) {
    keel::add_sse_route(app, "/ticks", ticks);  // a GET route; or return keel::sse_response(ctx, ticks)
  });
}
