#include "live_app.hpp"

#include <keel/app.hpp>
#include <keel/log.hpp>
#include <keel/multipart.hpp>
#include <keel/sse.hpp>
#include <keel/stream.hpp>
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
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace keel_fuzz {
namespace {

keel::task<void> ws_echo(keel::websocket& ws) {
  for (;;) {
    auto msg = co_await ws.read();
    if (!msg) co_return;
    ws.send(msg.data, msg.is_binary());
  }
}

[[noreturn]] void oracle_failed(char const* what, keel::context& ctx) {
  std::fprintf(stderr, "live_app: ORACLE %s (%.*s %.*s)\n", what, static_cast<int>(ctx.req().method_string().size()),
               ctx.req().method_string().data(), static_cast<int>(ctx.req().target().size()),
               ctx.req().target().data());
  __builtin_trap();
}

// Connections whose every request head the live_framing harness built, by the
// client's port: the X-Seq of the last request routed on it (-1: none yet).
std::mutex framed_mutex;
std::map<std::uint16_t, long> framed_last;

// The live_framing oracles: X-Seq numbers the requests of a framed connection
// and only grows (a request parsed out of another's body has none: the harness
// keeps the name out of bodies; one that middleware answered before this check
// is skipped, hence "grows", not "counts"), and X-Trailer-Only, sent only as a
// trailer field, is never a header.
void check_framed(keel::context& ctx, bool counts) {
  std::lock_guard lock(framed_mutex);
  auto it = framed_last.find(ctx.peer().port());
  if (it == framed_last.end()) return;
  if (ctx.header("X-Trailer-Only")) oracle_failed("#2: a trailer field is visible as a header", ctx);
  if (!counts) return;
  auto seq = ctx.header("X-Seq");
  char* end = nullptr;
  std::string text(seq.value_or(""));
  long n = std::strtol(text.c_str(), &end, 10);
  if (!seq || text.empty() || *end != '\0' || n <= it->second) {
    oracle_failed("#3: a request the client never framed as one (from another request's body)", ctx);
  }
  it->second = n;
}

// Everything a handler can read, copied: any view the body's arrival left
// dangling is read here, under ASan.
std::string describe(keel::context& ctx) {
  auto const& req = ctx.req();
  std::string out;
  out.append(req.method_string()).append(" ").append(req.target()).append("\n");
  out.append("path=").append(ctx.path()).append("\nquery=").append(req.query_string()).append("\n");
  out.append("route=").append(ctx.route()).append("\n");
  for (auto name : {"id", "path"}) out.append("param ").append(name).append("=").append(ctx.param(name)).append("\n");
  out.append("q=").append(ctx.query("q").value_or("-")).append("\n");
  for (auto const& h : req.headers()) out.append(h.name).append(": ").append(h.value).append("\n");
  out.append("body=").append(std::to_string(ctx.body().size())).append("\n");
  return out;
}

// The head as the handler saw it before a streamed body: views (which must stay
// valid for the whole request) and copies to compare them with.
struct head_snapshot {
  std::string_view path_view, target_view;
  std::string path, target, id;
  std::vector<keel::header_view> views;
  std::vector<std::pair<std::string, std::string>> copies;

  explicit head_snapshot(keel::context& ctx)
      : path_view(ctx.path()), target_view(ctx.req().target()), path(path_view), target(target_view),
        id(ctx.param("id")), views(ctx.req().headers()) {
    for (auto const& h : views) copies.emplace_back(h.name, h.value);
  }

  // After the body: the views still read what they read, and the header
  // section is the one the head had.
  void check(keel::context& ctx) const {
    if (path_view != path || target_view != target || ctx.path() != path || ctx.param("id") != id) {
      oracle_failed("#1: the path or a parameter changed while the body was read", ctx);
    }
    auto now = ctx.req().headers();
    if (now.size() != copies.size()) oracle_failed("#2: the header section changed while the body was read", ctx);
    for (std::size_t i = 0; i < copies.size(); ++i) {
      if (views[i].name != copies[i].first || views[i].value != copies[i].second || now[i].name != copies[i].first ||
          now[i].value != copies[i].second) {
        oracle_failed("#1: a header changed while the body was read", ctx);
      }
    }
  }
};

// ?read=N bytes of a streamed body (all: everything; default none).
keel::task<std::uint64_t> read_some_of_body(keel::context& ctx) {
  auto want = ctx.query("read").value_or("0");
  std::uint64_t limit = want == "all" ? ~std::uint64_t{0} : std::strtoull(want.c_str(), nullptr, 10);
  auto& body = ctx.body_stream();
  while (body.received() < limit) {
    if (!co_await body.read_some()) break;
  }
  co_return body.received();
}

keel::task<keel::response> whole_body(keel::context& ctx) {
  check_framed(ctx, false);
  co_return keel::response::text(describe(ctx));
}

keel::task<keel::response> streamed_body(keel::context& ctx) {
  head_snapshot before(ctx);
  auto& body = ctx.body_stream();
  while (co_await body.read_some()) {
  }
  before.check(ctx);
  check_framed(ctx, false);
  co_return keel::response::text(describe(ctx) + "streamed=" + std::to_string(body.received()) + "\n");
}

// A streamed response that reads the request again while it writes (after the
// chain returned, the request's storage must still hold).
keel::response describing_stream() {
  return keel::stream_response([](keel::response_stream& out) -> keel::task<void> {
    check_framed(out.ctx(), false);
    if (!co_await out.write(describe(out.ctx()))) co_return;
    co_await out.write("end\n");
  });
}

keel::task<keel::response> pipe(keel::context& ctx) {
  std::optional<head_snapshot> before;
  if (ctx.body_streamed()) {
    before.emplace(ctx);
    co_await read_some_of_body(ctx);
    before->check(ctx);
  }
  check_framed(ctx, false);
  co_return describing_stream();
}

keel::task<keel::response> events(keel::context& ctx) {
  if (ctx.body_streamed()) {
    head_snapshot before(ctx);
    co_await read_some_of_body(ctx);
    before.check(ctx);
  }
  check_framed(ctx, false);
  co_return keel::sse_response(ctx, [](keel::sse_stream& s) -> keel::task<void> {
    check_framed(s.ctx(), false);
    co_await s.send("request", describe(s.ctx()));
  });
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
  // Low, so that inputs within -max_len (4 KiB) reach every limit: 414/431 on
  // the head, 431 on the field count, 413 on bodies, 1009 on messages.
  o.max_head = 1024;
  o.max_header_count = 16;
  o.max_body = 2048;
  o.ws_max_message = 2048;
  o.drain_timeout = std::chrono::milliseconds(1000);
  return o;
}

constexpr std::uint64_t stream_limit = 3072;

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
    // The X-Seq count, on every request routed (404s and 405s too): the
    // innermost app-wide layer, so it runs once the head is known.
    app.use([](keel::context& ctx, keel::next next) -> keel::task<keel::response> {
      if (ctx.rejected_status() == 0) check_framed(ctx, true);
      co_return co_await next();
    });
    app.get("/", [](keel::context&) -> keel::task<keel::response> { co_return keel::response::text("hello"); });
    auto const all_verbs = {keel::verb::get, keel::verb::post, keel::verb::put, keel::verb::patch, keel::verb::delete_};
    for (auto verb : all_verbs) {
      app.route(verb, "/echo", [](keel::context& ctx) -> keel::task<keel::response> {
        check_framed(ctx, false);
        co_return keel::response::text(std::string(ctx.body()));
      });
      app.route(verb, "/users/{id}", whole_body);
    }
    app.get("/files/{*path}", whole_body);
    app.post("/files/{*path}", whole_body);
    app.get("/trace", [](keel::context& ctx) -> keel::task<keel::response> {
      co_return keel::response::text(std::string(ctx.request_id()));
    });
    // Streamed bodies, streamed responses, SSE and multipart forms
    // (keel/body_stream.hpp, stream.hpp, sse.hpp, multipart.hpp).
    for (auto verb : {keel::verb::post, keel::verb::put}) {
      app.route(verb, "/upload", streamed_body).stream_body(stream_limit);
      app.route(verb, "/upload/{id}", streamed_body).stream_body(stream_limit);
      app.route(verb, "/pipe/{id}", pipe).stream_body(stream_limit);
    }
    app.get("/pipe/{id}", pipe);
    app.get("/events/{id}", events);
    app.post("/events/{id}", events).stream_body(stream_limit);
    app.post("/form", [](keel::context& ctx) -> keel::task<keel::response> {
      keel::multipart_reader form(ctx, {512, 8});
      std::string names;
      while (co_await form.next_part()) {
        names += form.name() + "=" + std::to_string((co_await form.read_all(4096)).size()) + ";";
      }
      check_framed(ctx, false);
      co_return keel::response::text(names);
    }).stream_body(stream_limit);
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

exchange_result exchange(std::string_view input, std::size_t piece, bool framed) {
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
  std::uint16_t local_port = 0;
  if (framed) {
    sockaddr_in local{};
    socklen_t len = sizeof local;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &len);
    local_port = ntohs(local.sin_port);
    std::lock_guard lock(framed_mutex);
    framed_last[local_port] = -1;
  }
  if (piece == 0) piece = std::max<std::size_t>(input.size(), 1);
  auto const deadline = clock::now() + std::chrono::seconds(5);
  bool write_open = true;
  // keel takes a half-close while a handler or a streamed response runs for
  // the client leaving (and cancels it), so a framed input, whose last request
  // asks to close, keeps its side open until the server closes, or 1 s.
  std::optional<clock::time_point> half_close_at;
  char buf[16 * 1024];
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now()).count();
    if (left <= 0) {
      out.timed_out = true;
      break;
    }
    if (write_open && input.empty()) {
      if (!half_close_at) half_close_at = clock::now() + (framed ? std::chrono::milliseconds(1000) : clock::duration{});
      if (clock::now() >= *half_close_at) {
        ::shutdown(fd, SHUT_WR);
        write_open = false;
      } else {
        left = std::min<long>(left, std::chrono::duration_cast<std::chrono::milliseconds>(*half_close_at - clock::now()).count() + 1);
      }
    }
    bool sending = write_open && !input.empty();
    pollfd p{fd, static_cast<short>(POLLIN | (sending ? POLLOUT : 0)), 0};
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
    if (sending && (p.revents & POLLOUT)) {
      auto n = ::send(fd, input.data(), std::min(piece, input.size()), MSG_NOSIGNAL);
      if (n > 0) {
        input.remove_prefix(static_cast<std::size_t>(n));
      } else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        write_open = false;  // the server closed its end early (a 400, a 413): read what it said
      }
    }
  }
  ::close(fd);
  if (framed) {
    std::lock_guard lock(framed_mutex);
    framed_last.erase(local_port);
  }
  return out;
}

}  // namespace keel_fuzz
