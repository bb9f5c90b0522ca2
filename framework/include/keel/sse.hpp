#pragma once
// Server-Sent Events: a long-lived `text/event-stream` response the handler
// writes event by event.
//
//   keel::task<void> ticks(keel::sse_stream& events) {
//     auto resume_after = events.last_event_id();       // from Last-Event-ID
//     for (int i = 0;; ++i) {
//       if (!co_await events.send("tick", "n=" + std::to_string(i), std::to_string(i))) co_return;
//       co_await sleep(1s);                            // cancelled when the client leaves
//     }
//   }
//   app.get("/ticks", [](keel::context& ctx) -> keel::task<keel::response> {
//     co_return keel::sse_response(ctx, ticks);
//   });
//   // or: keel::add_sse_route(app, "/ticks", ticks);
//
// The route runs through the router and middleware like any request (auth,
// trace ids, the access line: status 200, 0 bytes). Then the connection is
// handed to the stream: keel writes
//   HTTP/1.1 200 OK / Content-Type: text/event-stream / Cache-Control: no-cache /
//   Connection: close / X-Accel-Buffering: no
// and no Content-Length: the stream is close-delimited (RFC 9112 §6.3), the
// simplest framing every client (EventSource, curl, proxies) reads, for
// HTTP/1.0 and 1.1 alike. The connection is not reused afterwards.
//
// One writer: every event goes through the stream's bounded queue, which one
// writer coroutine drains in order with write_timeout per write, so the
// handler's send(), pushes from other threads (sse_handle) and the heartbeat
// never write to the socket at once. With nothing written for sse_heartbeat
// (SPEC §2, default 15 s) the writer sends the comment line `: keep-alive` so
// proxies keep the stream open.
//
// The stream ends when the client goes away (a write fails, or the socket reads
// EOF), when the handler returns, on close(), when a push overflows the queue
// (a slow consumer: EventSource reconnects and resumes with Last-Event-ID), and
// on drain (what is queued is written first). When it ends, whatever the
// handler awaits is cancelled (terminal), and the connection closes once the
// handler has returned: a handler must not ignore cancellation.
#include <keel/context.hpp>
#include <keel/net.hpp>
#include <keel/response.hpp>
#include <keel/router.hpp>

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace keel {

namespace detail {
class sse_state;
struct sse_shared;
}

/// Per-stream settings; unset fields take the server's (SPEC §2).
struct sse_options {
  /// Idle time before a `: keep-alive` comment; nullopt = sse_heartbeat.
  std::optional<std::chrono::milliseconds> heartbeat;
  /// Bytes of formatted events waiting to be written; a push beyond it ends
  /// the stream (slow consumer). One event always fits an empty queue.
  std::size_t queue_limit = 1024 * 1024;
  /// When set, a `retry:` field first: the client's reconnection delay.
  std::optional<std::chrono::milliseconds> retry;
  /// The route's own response headers, set over those middleware set.
  /// Content-Type, Cache-Control, Connection, X-Request-Id and
  /// traceresponse are always there.
  std::vector<std::pair<std::string, std::string>> headers;
};

/// Formats one event: `event:` (omitted when empty), `id:` (omitted when
/// empty), one `data:` line per line of `data` (split at CRLF, CR or LF), and
/// the blank line. CR and LF are removed from `event` and `id`.
std::string format_sse_event(std::string_view event, std::string_view data, std::string_view id = {});

/// A thread-safe handle to a stream for pushing from anywhere (a hub, another
/// thread). Copyable; it outlives the stream (and the server) harmlessly:
/// pushes then return false.
class sse_handle {
 public:
  sse_handle() = default;
  explicit sse_handle(std::shared_ptr<detail::sse_shared> s) : state_(std::move(s)) {}
  /// Queues an event without waiting. False when the stream has ended or the
  /// queue is over its limit (the stream is then ended as a slow consumer).
  bool push(std::string_view event, std::string_view data, std::string_view id = {}) const;
  /// Queues an already formatted frame (format_sse_event), e.g. one shared by many streams.
  bool push_formatted(std::string frame) const;
  /// Ends the stream after what is queued. Any thread.
  void close() const;
  bool is_open() const;
  explicit operator bool() const { return state_ != nullptr; }
  friend bool operator==(sse_handle const& a, sse_handle const& b) { return a.state_ == b.state_; }

 private:
  std::shared_ptr<detail::sse_shared> state_;
};

/// The stream an SSE handler gets. Use it from the handler's coroutine; from
/// elsewhere use handle().
class sse_stream {
 public:
  sse_stream(std::shared_ptr<detail::sse_state> s, context& ctx);

  /// Queues an event and waits until the socket took it (backpressure: waits
  /// for queue room first). False once the stream has ended: stop then.
  task<bool> send(std::string_view event, std::string_view data, std::string_view id = {});
  /// The same for a comment line (`: text`), which clients ignore.
  task<bool> comment(std::string_view text);
  /// Queues an event without waiting; see sse_handle::push.
  bool push(std::string_view event, std::string_view data, std::string_view id = {}) {
    return handle().push(event, data, id);
  }
  /// Waits until the stream ends (client gone, drain, close(), overflow),
  /// while pushed events keep flowing. The usual end of a handler that only
  /// relays pushes.
  task<void> wait_closed();
  /// Ends the stream after what is queued.
  void close() { handle().close(); }

  /// The client's `Last-Event-ID` header (sent by EventSource on reconnect), or empty.
  std::string const& last_event_id() const;
  bool is_open() const { return handle().is_open(); }
  sse_handle handle() const;
  /// The request's context: params, query, trace id, principal.
  context& ctx() { return ctx_; }

 private:
  std::shared_ptr<detail::sse_state> state_;
  context& ctx_;
};

using sse_handler = std::function<task<void>(sse_stream&)>;

/// The response that turns this request into an event stream run by `h`.
/// Its status (200) and headers are what middleware and the access log see,
/// and what the stream's head carries: every header middleware set, with
/// the event stream's own and `o.headers` set over them. A HEAD request
/// gets the head only.
response sse_response(context& ctx, sse_handler h, sse_options o = {});

/// Registers a GET route that streams with `h` (app.get + sse_response).
route_ref add_sse_route(route_group group, std::string_view pattern, sse_handler h, sse_options o = {});
route_ref add_sse_route(router& r, std::string_view pattern, sse_handler h, sse_options o = {});

}  // namespace keel
