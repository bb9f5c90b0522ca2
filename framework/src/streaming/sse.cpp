// Server-Sent Events: the stream's queue and its one writer, the handler run
// beside it, and the watch for a client that leaves.
//
// Shape of one stream (all on the connection's thread):
//   - run_sse (the exchange's coroutine, so the exchange's deadline guards it)
//     is the writer: it drains the queue through the exchange, which frames
//     and bounds each write, and writes the heartbeat when nothing else was
//     written for a while;
//   - the user's handler runs as its own coroutine in the stream's task
//     scope, cancelled when the stream ends first;
//   - a read on the exchange's bytes notices EOF (the client left) while the
//     writer sleeps: an SSE client sends nothing after its request.
// run_sse returns only after the handler did, since the handler holds the
// request's context, which lives in the session's frame.
#include <keel/log.hpp>
#include <keel/metrics.hpp>
#include <keel/sse.hpp>
#include <keel/task_scope.hpp>

#include "core/alarm.hpp"
#include "core/event.hpp"
#include "http/exchange.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <deque>
#include <vector>

namespace keel {

using boost::system::error_code;

namespace {


struct sse_metrics {
  metrics::gauge& active = metrics::global().add_gauge("keel_sse_streams_active", "Open Server-Sent Events streams.");
  metrics::counter& events = metrics::global().add_counter("keel_sse_events_total", "Server-Sent Events written.");
  metrics::counter& dropped =
      metrics::global().add_counter("keel_sse_events_dropped_total", "Server-Sent Events accepted but never written.");
  static sse_metrics& get() {
    static sse_metrics m;
    return m;
  }
};

void append_clean(std::string& out, std::string_view s) {
  for (char ch : s) {
    if (ch != '\r' && ch != '\n') out.push_back(ch);
  }
}

}  // namespace

std::string format_sse_event(std::string_view event, std::string_view data, std::string_view id) {
  std::string out;
  out.reserve(event.size() + data.size() + id.size() + 24);
  if (!event.empty()) {
    out.append("event: ");
    append_clean(out, event);
    out.push_back('\n');
  }
  if (!id.empty()) {
    out.append("id: ");
    append_clean(out, id);
    out.push_back('\n');
  }
  // Each line of the data is its own `data:` field; the client joins them with LF.
  std::size_t pos = 0;
  for (;;) {
    auto end = data.find_first_of("\r\n", pos);
    out.append("data: ");
    out.append(data.substr(pos, end == std::string_view::npos ? std::string_view::npos : end - pos));
    out.push_back('\n');
    if (end == std::string_view::npos) break;
    pos = end + ((data[end] == '\r' && end + 1 < data.size() && data[end + 1] == '\n') ? 2 : 1);
    if (pos == data.size()) {
      out.append("data: \n");
      break;
    }
  }
  out.push_back('\n');
  return out;
}

namespace detail {

class sse_state;

// What handles share: the accounting and a way to reach the stream, but no
// I/O object, so a handle kept anywhere (a room, a global) may outlive the
// stream and the server. Once the stream has ended `open` is false and a
// handle touches nothing else.
struct sse_shared {
  sse_shared(executor e, std::size_t l) : ex(std::move(e)), limit(l) {}

  executor ex;
  std::size_t limit;
  std::atomic<bool> open{true};  ///< accepting events
  std::atomic<std::size_t> queued_bytes{0};
  std::weak_ptr<sse_state> stream;

  bool has_room(std::size_t size) const {
    auto q = queued_bytes.load(std::memory_order_relaxed);
    return q == 0 || q + size <= limit;
  }
  bool push(std::string frame);  // any thread
  void close();                  // any thread
};

class sse_state : public std::enable_shared_from_this<sse_state> {
 public:
  sse_state(executor const& e, std::size_t limit)
      : ex(e),
        shared(std::make_shared<sse_shared>(e, limit)),
        wake_(e),
        heartbeat_(e, wake_),
        progress_(e) {}

  bool is_open() const { return shared->open.load(); }
  bool has_room(std::size_t size) const { return shared->has_room(size); }

  /// Queues a frame whose bytes are not yet counted (head, heartbeat, send()).
  std::uint64_t enqueue(std::string frame) {
    shared->queued_bytes.fetch_add(frame.size(), std::memory_order_relaxed);
    return enqueue_accounted(std::move(frame));
  }

  std::uint64_t enqueue_accounted(std::string frame) {
    if (ended_) {
      shared->queued_bytes.fetch_sub(frame.size(), std::memory_order_relaxed);
      sse_metrics::get().dropped.inc();
      return 0;
    }
    queue_.push_back(std::move(frame));
    wake();
    return ++enqueued_;
  }

  /// No more events: the writer flushes the queue and ends.
  void close() {
    shared->open.store(false);
    wake();
  }

  /// The client left or a write failed: nothing more can be written.
  void abort() {
    aborted = true;
    shared->open.store(false);
    wake();
    notify();
  }

  void wake() { wake_.notify_all(); }
  void notify() { progress_.notify_all(); }

  /// Waits until the writer makes progress or the stream ends.
  task<void> wait_progress() { co_await progress_.async_wait(tuple_task); }

  task<bool> write_and_wait(std::string frame) {
    while (!has_room(frame.size())) {
      if (!is_open() || ended_) co_return false;
      co_await wait_progress();
    }
    if (!is_open() || ended_) co_return false;
    auto seq = enqueue(std::move(frame));
    while (written_ < seq) {
      if (ended_ || aborted) co_return false;
      co_await wait_progress();
    }
    co_return true;
  }

  task<void> wait_closed() {
    while (!ended_) co_await wait_progress();
  }

  /// The writer: run by run_sse, the exchange's coroutine. The head goes
  /// out at once, with whatever is queued by then.
  task<void> write_loop(exchange& x, std::chrono::milliseconds heartbeat) {
    auto last_write = clock::now();
    std::vector<std::string> batch;
    std::vector<asio::const_buffer> buffers;
    struct stop_heartbeat {
      sse_state& st;
      ~stop_heartbeat() {
        st.heartbeat_.stop();  // the deadline ends with the writer, however it ends
      }
    } stop{*this};
    for (;;) {
      if (aborted) break;
      if (!queue_.empty() || !x.head_written()) {
        // Several queued events go out in one write.
        batch.clear();
        buffers.clear();
        std::size_t bytes = 0;
        while (!queue_.empty() && batch.size() < 64 && bytes < 64 * 1024) {
          bytes += queue_.front().size();
          batch.push_back(std::move(queue_.front()));
          queue_.pop_front();
        }
        for (auto const& f : batch) buffers.push_back(asio::buffer(f));
        bool ok = co_await x.write_body(buffers);
        shared->queued_bytes.fetch_sub(bytes, std::memory_order_relaxed);
        if (!ok) {
          sse_metrics::get().dropped.inc(batch.size());
          abort();
          break;
        }
        written_ += batch.size();
        sse_metrics::get().events.inc(batch.size());
        last_write = clock::now();
        notify();
        continue;
      }
      if (!is_open()) break;  // closed, and everything queued is written
      auto due = last_write + heartbeat;
      if (clock::now() >= due) {
        enqueue(": keep-alive\n\n");
        continue;
      }
      heartbeat_.ring_at(due);
      co_await wake_.async_wait(tuple_task);
    }
    ended_ = true;
    shared->open.store(false);
    if (!queue_.empty()) {
      sse_metrics::get().dropped.inc(queue_.size());
      queue_.clear();
    }
    shared->queued_bytes.store(0);
    notify();
  }

  void handler_finished() {
    handler_done = true;
    close();
  }

  bool ended() const { return ended_; }

  executor ex;
  std::shared_ptr<sse_shared> shared;
  bool aborted = false;  ///< nothing more can be written
  bool handler_done = false;
  std::string last_event_id;
  /// The user's handler: cancelled when the stream ends first, joined before it returns.
  task_scope tasks;
  std::array<char, 512> scratch{};

 private:
  std::deque<std::string> queue_;
  std::uint64_t enqueued_ = 0;
  std::uint64_t written_ = 0;
  bool ended_ = false;  ///< the writer has finished
  event wake_;  // the writer waits here for an event, the close or its heartbeat
  alarm heartbeat_;  // rings wake_ when a keep-alive comment is due
  event progress_;       // write_and_wait() and wait_closed() wait here for the writer

};

bool sse_shared::push(std::string frame) {
  if (!open.load(std::memory_order_relaxed)) return false;
  auto size = frame.size();
  auto before = queued_bytes.fetch_add(size, std::memory_order_relaxed);
  if (before > 0 && before + size > limit) {
    queued_bytes.fetch_sub(size, std::memory_order_relaxed);
    sse_metrics::get().dropped.inc();
    // A consumer this slow reconnects and resumes from Last-Event-ID.
    close();
    return false;
  }
  if (ex.running_in_this_thread()) {
    if (auto s = stream.lock()) {
      s->enqueue_accounted(std::move(frame));
      return true;
    }
    return false;
  }
  asio::post(ex, [w = stream, f = std::move(frame)]() mutable {
    if (auto s = w.lock()) s->enqueue_accounted(std::move(f));
  });
  return true;
}

void sse_shared::close() {
  if (!open.exchange(false)) return;  // whoever closed it first woke the writer
  if (ex.running_in_this_thread()) {
    if (auto s = stream.lock()) s->wake();
    return;
  }
  asio::post(ex, [w = stream] {
    if (auto s = w.lock()) s->wake();
  });
}

namespace {

struct sse_job {
  sse_handler handler;
  sse_options options;
};

// An SSE client sends nothing after its request, so a completed read is EOF
// or an error (the client left); stray bytes are discarded.
void watch_reads(std::shared_ptr<void> owner, byte_stream bytes, std::shared_ptr<sse_state> st) {
  auto& buf = st->scratch;
  bytes.async_read_some(asio::buffer(buf), [owner = std::move(owner), bytes, st = std::move(st)](error_code ec,
                                                                                               std::size_t) mutable {
    if (st->ended()) return;
    if (ec) {
      st->abort();
      bytes.cancel();  // a write stuck on a peer that left
      return;
    }
    watch_reads(std::move(owner), bytes, std::move(st));
  });
}

// The head is the response the middleware chain built (CORS, security
// headers, cookies reach SSE clients like any other), with what an event
// stream needs set over it, and the request id and trace response added
// when no middleware did. The stream ends with the connection.
response sse_head(context& ctx, sse_options const& o, response const& chain) {
  response r = chain;
  r.status = 200;
  r.body.clear();
  r.set_header("Content-Type", "text/event-stream");
  r.set_header("Cache-Control", "no-cache");
  r.set_header("X-Accel-Buffering", "no");
  if (!r.header("X-Request-Id")) r.set_header("X-Request-Id", ctx.request_id());
  if (!r.header("traceresponse")) {
    static constexpr char hex[] = "0123456789abcdef";
    auto const& t = ctx.trace();
    std::string value = "00-";
    value.append(t.trace_id);
    value.push_back('-');
    value.append(t.span_id);
    value.push_back('-');
    value.push_back(hex[t.flags >> 4]);
    value.push_back(hex[t.flags & 0xf]);
    r.set_header("traceresponse", value);
  }
  for (auto const& [name, value] : o.headers) r.set_header(name, value);
  return r;
}

// The user's handler, owned by the stream's task scope, which logs what
// escapes it with the trace id; the end of the handler ends the stream.
task<void> run_sse_handler(std::shared_ptr<sse_state> st, context& ctx, std::shared_ptr<sse_job> job) {
  struct finished {
    sse_state& s;
    ~finished() { s.handler_finished(); }
  } on_end{*st};
  sse_stream stream(st, ctx);
  try {
    co_await job->handler(stream);
  } catch (boost::system::system_error const& x) {
    // The stream ended and cancelled the handler: the normal way out.
    if (x.code() != asio::error::operation_aborted) metrics::handler_exception();
    throw;
  } catch (...) {
    metrics::handler_exception();
    throw;
  }
}

task<void> run_sse(context& ctx, std::shared_ptr<sse_job> job, response const& chain, exchange& x) {
  auto const& opts = job->options;
  auto st = std::make_shared<sse_state>(x.get_executor(), opts.queue_limit);
  st->shared->stream = st;
  if (auto h = ctx.header("Last-Event-ID")) st->last_event_id.assign(*h);

  x.begin_body(sse_head(ctx, opts, chain), std::nullopt, true);
  if (!x.body_allowed()) {
    st->close();
    co_await st->write_loop(x, ctx.settings().sse_heartbeat);
    if (x.deadline().fired()) co_await asio::this_coro::reset_cancellation_state();
    co_return;
  }
  if (opts.retry) st->enqueue("retry: " + std::to_string(opts.retry->count()) + "\n\n");

  auto& m = sse_metrics::get();
  m.active.inc();
  std::weak_ptr<sse_state> weak = st;
  on_shutdown_of(x, weak, &sse_state::close, &sse_state::abort);
  if (x.draining()) st->close();
  watch_reads(x.keep_alive(), x.bytes(), st);

  st->tasks.spawn(st->ex, run_sse_handler(st, ctx, job), "sse handler", ctx.trace_id());

  co_await st->write_loop(x, opts.heartbeat.value_or(ctx.settings().sse_heartbeat));
  // From here on, cleanup: a deadline (write timeout) or a forced close
  // already did its job and must not cut the join short.
  co_await asio::this_coro::reset_cancellation_state();
  if (!st->handler_done) st->tasks.cancel();
  co_await st->tasks.join();
  x.bytes().cancel();  // the EOF watch
  x.on_shutdown(nullptr, nullptr);
  m.active.dec();
}

}  // namespace
}  // namespace detail

// --- public API ------------------------------------------------------------------

bool sse_handle::push(std::string_view event, std::string_view data, std::string_view id) const {
  if (!state_ || !state_->open.load(std::memory_order_relaxed)) return false;
  return state_->push(format_sse_event(event, data, id));
}

bool sse_handle::push_formatted(std::string frame) const { return state_ && state_->push(std::move(frame)); }

void sse_handle::close() const {
  if (state_) state_->close();
}

bool sse_handle::is_open() const { return state_ && state_->open.load(); }

sse_stream::sse_stream(std::shared_ptr<detail::sse_state> s, context& ctx) : state_(std::move(s)), ctx_(ctx) {}

sse_handle sse_stream::handle() const { return sse_handle(state_->shared); }

task<bool> sse_stream::send(std::string_view event, std::string_view data, std::string_view id) {
  // Formatted before the first suspension: the views need not outlive the call.
  return state_->write_and_wait(format_sse_event(event, data, id));
}

task<bool> sse_stream::comment(std::string_view text) {
  std::string frame = ": ";
  for (char ch : text) frame.push_back(ch == '\r' || ch == '\n' ? ' ' : ch);
  frame.append("\n\n");
  return state_->write_and_wait(std::move(frame));
}

task<void> sse_stream::wait_closed() { return state_->wait_closed(); }

std::string const& sse_stream::last_event_id() const { return state_->last_event_id; }

response sse_response(context& ctx, sse_handler h, sse_options o) {
  (void)ctx;
  response r(200);
  r.set_header("Content-Type", "text/event-stream");
  r.set_header("Cache-Control", "no-cache");
  auto job = std::make_shared<detail::sse_job>(detail::sse_job{std::move(h), std::move(o)});
  r.upgrade = [job](context& c, response const& chain, detail::exchange& x) {
    return detail::run_sse(c, job, chain, x);
  };
  return r;
}

namespace {

task<response> sse_route(context& ctx, std::shared_ptr<detail::sse_job> job) {
  co_return sse_response(ctx, job->handler, job->options);
}

}  // namespace

route_ref add_sse_route(route_group group, std::string_view pattern, sse_handler h, sse_options o) {
  auto job = std::make_shared<detail::sse_job>(detail::sse_job{std::move(h), std::move(o)});
  return group.get(pattern, [job](context& ctx) { return sse_route(ctx, job); });
}

route_ref add_sse_route(router& r, std::string_view pattern, sse_handler h, sse_options o) {
  auto job = std::make_shared<detail::sse_job>(detail::sse_job{std::move(h), std::move(o)});
  return r.get(pattern, [job](context& ctx) { return sse_route(ctx, job); });
}

}  // namespace keel
