#pragma once
// A request body read as it arrives, for uploads larger than memory should
// hold. The route opts in; the handler pulls pieces:
//
//   app.put("/files/{name}", [](keel::context& ctx) -> keel::task<keel::response> {
//     auto& body = ctx.body_stream();
//     while (auto piece = co_await body.read_some()) {
//       file.write(piece->data(), piece->size());    // a view: valid until the next read_some()
//     }
//     co_return keel::response::text("stored " + std::to_string(body.received()) + " bytes\n");
//   }).stream_body(4ull << 30);                      // up to 4 GiB; nothing buffered
//
// Every read has the body's deadlines (SPEC §2): `body_timeout` between reads
// and `body_min_rate` on average, answered 408 with the connection closed.
// The time a handler spends waiting in read_some() does not count against its
// handler_timeout, exactly as for a body keel reads before the handler runs.
// `Expect: 100-continue` is answered at the first read_some(), so a handler
// (or an auth middleware) that refuses the request never makes the client
// send the body. A body over the route's stream_body limit throws
// http_error 413, malformed chunked framing 400; a client that leaves mid-body
// cancels the handler like any client that leaves. Whatever the handler did
// not read is discarded after its response, up to 256 KiB; beyond that the
// response carries `Connection: close` and the connection ends.
//
// On a route without stream_body, read_some() yields ctx.body() once: handlers
// written for streaming work on any route. Use it from its handler's
// coroutine only.
#include <keel/net.hpp>

#include <cstdint>
#include <optional>
#include <string_view>

namespace keel {

class context;

namespace detail {
class exchange;
}

class body_stream {
 public:
  explicit body_stream(context& ctx) : ctx_(&ctx) {}
  body_stream(body_stream const&) = delete;
  body_stream& operator=(body_stream const&) = delete;

  /// The next piece of the body (never empty), or nullopt at its end. The
  /// view is valid until the next call.
  task<std::optional<std::string_view>> read_some();
  /// Body bytes handed out so far.
  std::uint64_t received() const { return received_; }
  /// True once read_some() has returned nullopt.
  bool done() const { return done_; }
  /// True when the route streams its body (stream_body) rather than keel
  /// reading it into ctx.body() first.
  bool streamed() const { return source_ != nullptr; }

  // Framework plumbing, not for handlers.
  void attach(detail::exchange* s) { source_ = s; }

 private:
  context* ctx_;
  detail::exchange* source_ = nullptr;
  std::uint64_t received_ = 0;
  bool done_ = false;
  bool whole_given_ = false;  // routes without stream_body
};

}  // namespace keel
