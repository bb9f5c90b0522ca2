#include "live_app.hpp"

#include <keel/app.hpp>
#include <keel/log.hpp>
#include <keel/multipart.hpp>
#include <keel/middleware/compression.hpp>
#include <keel/middleware/defaults.hpp>
#include <keel/testing.hpp>
#include <keel/ws.hpp>

#include <arpa/inet.h>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <memory>
#include <utility>

namespace keel_fuzz {
namespace {

keel::task<void> ws_echo(keel::websocket& ws) {
  for (;;) {
    auto msg = co_await ws.read();
    if (!msg) co_return;
    ws.send(msg.data, msg.is_binary());
  }
}

keel::options live_options() {
  keel::options o;
  o.listen = "127.0.0.1:0";
  o.threads = 1;
  o.log_level = "error";  // an access log line per input would drown the fuzzer's output (see live())
  // Short enough that an input which stops mid-request ends well inside
  // exchange()'s 5 s cap; long enough for a loaded machine.
  o.header_timeout = std::chrono::milliseconds(2000);
  o.body_timeout = std::chrono::milliseconds(2000);
  o.idle_timeout = std::chrono::milliseconds(2000);
  o.write_timeout = std::chrono::milliseconds(2000);
  o.handler_timeout = std::chrono::milliseconds(2000);
  o.ws_handshake_timeout = std::chrono::milliseconds(2000);
  o.max_body = 64 * 1024;
  o.ws_max_message = 16 * 1024;
  o.drain_timeout = std::chrono::milliseconds(1000);
  return o;
}

// Destroyed at exit (libFuzzer ends with exit()): drains the app and joins its
// threads before the statics they use go away, so LeakSanitizer sees a clean
// shutdown rather than a server frozen mid-connection.
struct live {
  keel::app app{live_options()};
  std::unique_ptr<keel::testing::running_app> running;

  live() {
    // app::serve() applies log_level; this app is started by hand.
    keel::log::set_level(keel::log::parse_level("error"));
    keel::mw::use_defaults(app);
    app.use(keel::mw::compression());
    app.get("/", [](keel::context&) -> keel::task<keel::response> { co_return keel::response::text("hello"); });
    for (auto verb : {keel::verb::get, keel::verb::post, keel::verb::put, keel::verb::patch, keel::verb::delete_}) {
      app.route(verb, "/echo", [](keel::context& ctx) -> keel::task<keel::response> {
        co_return keel::response::text(std::string(ctx.body()));
      });
    }
    app.get("/users/{id}", [](keel::context& ctx) -> keel::task<keel::response> {
      co_return keel::response::text(ctx.param("id"));
    });
    app.get("/files/{*path}", [](keel::context& ctx) -> keel::task<keel::response> {
      co_return keel::response::text(ctx.param("path"));
    });
    app.get("/trace", [](keel::context& ctx) -> keel::task<keel::response> {
      co_return keel::response::text(std::string(ctx.request_id()));
    });
    // Streamed bodies and multipart forms (keel/body_stream.hpp, keel/multipart.hpp).
    app.post("/upload", [](keel::context& ctx) -> keel::task<keel::response> {
      auto& body = ctx.body_stream();
      while (co_await body.read_some()) {
      }
      co_return keel::response::text(std::to_string(body.received()));
    }).stream_body(1 << 20);
    app.post("/form", [](keel::context& ctx) -> keel::task<keel::response> {
      keel::multipart_reader form(ctx, {512, 8});
      std::string names;
      while (co_await form.next_part()) {
        names += form.name() + "=" + std::to_string((co_await form.read_all(4096)).size()) + ";";
      }
      co_return keel::response::text(names);
    }).stream_body(1 << 20);
    app.ws("/ws", ws_echo);
    running = std::make_unique<keel::testing::running_app>(app);
  }
  ~live() { running.reset(); }
};

live& the_app() {
  static live l;
  return l;
}

}  // namespace

std::uint16_t live_port() { return the_app().running->port(); }

std::string_view ws_upgrade_request() {
  return "GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
}

exchange_result exchange(std::string_view input, std::size_t piece) {
  using clock = std::chrono::steady_clock;
  auto const port = live_port();
  exchange_result out;
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) std::abort();  // out of descriptors: a leak in the harness or the server
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr const*>(&addr), sizeof addr) != 0 && errno != EINPROGRESS) {
    std::perror("fuzz: connect");
    std::abort();
  }
  if (piece == 0) piece = std::max<std::size_t>(input.size(), 1);
  auto const deadline = clock::now() + std::chrono::seconds(5);
  bool write_open = true;
  char buf[16 * 1024];
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now()).count();
    if (left <= 0) {
      out.timed_out = true;
      break;
    }
    if (write_open && input.empty()) {
      ::shutdown(fd, SHUT_WR);
      write_open = false;
    }
    pollfd p{fd, static_cast<short>(POLLIN | (write_open ? POLLOUT : 0)), 0};
    if (::poll(&p, 1, static_cast<int>(left)) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
      auto n = ::recv(fd, buf, sizeof buf, 0);
      if (n > 0) {
        out.received.append(buf, static_cast<std::size_t>(n));
        continue;
      }
      if (n == 0) break;  // the server closed
      if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) break;  // reset: closed too
    }
    if (write_open && (p.revents & POLLOUT)) {
      auto n = ::send(fd, input.data(), std::min(piece, input.size()), MSG_NOSIGNAL);
      if (n > 0) {
        input.remove_prefix(static_cast<std::size_t>(n));
      } else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        write_open = false;  // the server closed its end early (a 400, a 413): read what it said
      }
    }
  }
  ::close(fd);
  return out;
}

}  // namespace keel_fuzz
