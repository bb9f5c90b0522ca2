// A WebSocket client that stays connected: it resubscribes on every
// (re)connect, prints what arrives and stops after three messages.
// Usage: docs_example_ws_client ws://127.0.0.1:8080/ws/echo
#include <keel/ws_client.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/this_coro.hpp>

#include <iostream>
#include <string>

using namespace boost::asio::experimental::awaitable_operators;

namespace {

// [ws-client]
// Runs after every handshake, before the state is open: what it sends goes
// out ahead of anything sent through the client.
keel::task<void> resubscribe(keel::ws_handle link) {
  link.send(R"({"subscribe":"news"})");
  co_return;
}

// read() waits across reconnects; it yields closed only once the client is
// closed for good (stop(), close() or max_attempts).
keel::task<void> consume(keel::ws_client& ws) {
  int seen = 0;
  while (auto msg = co_await ws.read()) {
    std::cout << msg.data << '\n';
    if (++seen == 3) ws.stop();
  }
}

keel::task<void> watch(keel::ws_client& ws) {
  for (auto s = ws.state(); s != keel::ws_client_state::closed;) {
    s = co_await ws.wait_state(s);
    std::cerr << "state: " << keel::to_string(s) << '\n';
    if (s == keel::ws_client_state::open) ws.send("hello");  // false unless open
  }
}

keel::task<void> client(std::string url) {
  keel::ws_client_options o;  // reconnect: 0.5 s, x2, cap 30 s, full jitter
  o.max_attempts = 10;        // then give up (default: keep trying)
  keel::ws_client ws(co_await boost::asio::this_coro::executor, url, o);
  ws.on_connect(resubscribe);
  co_await (ws.run() && consume(ws) && watch(ws));  // all three end after stop()
}
// [ws-client]

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: " << argv[0] << " ws://HOST:PORT/PATH\n";
    return 2;
  }
  boost::asio::io_context ioc(1);
  boost::asio::co_spawn(ioc.get_executor(), client(argv[1]), [](std::exception_ptr e) {
    if (e) std::rethrow_exception(e);
  });
  ioc.run();
}
