#pragma once
// Streamed responses: a handler writes the body in pieces from a coroutine,
// each write completing when the socket took it (backpressure).
//
//   keel::task<void> numbers(keel::response_stream& out) {
//     for (int i = 0; i < 1000; ++i) {
//       if (!co_await out.write(std::to_string(i) + "\n")) co_return;  // client gone, write_timeout
//     }
//   }
//   app.get("/numbers", [](keel::context&) -> keel::task<keel::response> {
//     auto r = keel::stream_response(numbers);
//     r.set_header("Content-Type", "text/plain");
//     co_return r;
//   });
//
// The response returned runs back through the middleware chain like any other;
// its status and headers, as the chain left them, are the head keel writes
// before the first piece. Framing:
//   - `content_length` given: `Content-Length`, the pieces back to back; a
//     stream that ends short (or tries to write more) is cut by closing the
//     connection, so the client sees the truncation;
//   - unknown length, HTTP/1.1: `Transfer-Encoding: chunked`, one chunk per
//     write, the last chunk when the handler returns;
//   - unknown length, HTTP/1.0: close-delimited (no length, `Connection: close`).
// A HEAD request (and a 204 or 304 status) gets the head only: the handler
// does not run. After a stream that ended cleanly (handler returned, every
// byte written and framed) a kept-alive connection reads its next request;
// otherwise it closes.
//
// Deadlines and cancellation: every write runs under `write_timeout` (SPEC §2);
// between writes the handler has no deadline of its own (a download may take
// long), but whatever it awaits is cancelled (terminal) when a write times out,
// when the client leaves (the socket is watched, as for any handler), and at
// drain_timeout. Inside the handler a cancelled stream stays cancelled: every
// further co_await throws, and the exception ends the stream quietly. Any other
// exception is logged and counted; if nothing was written yet the client gets
// a 500, else the connection is closed mid-body.
//
// Not thread-safe: use the stream from its handler's coroutine only. Only one
// write at a time (the handler awaits each), so no socket is written twice.
#include <keel/context.hpp>
#include <keel/net.hpp>
#include <keel/response.hpp>

#include <cstdint>
#include <functional>
#include <optional>
#include <string_view>

namespace keel {

namespace detail {
struct stream_state;
}

/// How a streamed body is framed (see above).
struct stream_options {
  /// The exact body size when known (files): Content-Length framing.
  std::optional<std::uint64_t> content_length;
};

/// What a stream handler writes to.
class response_stream {
 public:
  explicit response_stream(detail::stream_state& s) : state_(&s) {}

  /// Writes `piece` (the head first, on the first call) and waits until the
  /// socket took it. False once the stream has ended (client gone, write
  /// timeout, more bytes than content_length): stop then. An empty piece
  /// writes nothing. `piece` need only live until the call returns.
  task<bool> write(std::string_view piece);
  /// Body bytes written so far.
  std::uint64_t written() const;
  /// False once a write failed.
  bool is_open() const;
  /// The request's context: params, query, trace id, headers.
  context& ctx();

 private:
  detail::stream_state* state_;
};

using stream_handler = std::function<task<void>(response_stream&)>;

/// A 200 response whose body `h` writes after the chain has returned. Set its
/// status and headers (Content-Type, ...) before returning it.
response stream_response(stream_handler h, stream_options o = {});

}  // namespace keel
