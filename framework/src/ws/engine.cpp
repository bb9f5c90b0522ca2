// The WebSocket engine both ends share: the send queue and its one writer,
// the reader and its bounded inbox, the heartbeat and the closing handshake,
// and the handles (ws_handle, websocket) a handler holds.
#include <keel/context.hpp>
#include <keel/log.hpp>
#include <keel/metrics.hpp>
#include <keel/utf8.hpp>
#include <keel/ws.hpp>

#include "ws/engine.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/websocket/error.hpp>
#include <boost/beast/websocket/rfc6455.hpp>
#include <boost/beast/websocket/ssl.hpp>

#include <atomic>
#include <tuple>

namespace keel {

namespace beast = boost::beast;
namespace websocket_ns = boost::beast::websocket;
using boost::system::error_code;

namespace detail {

namespace {
std::atomic<std::uint64_t> next_ws_id{1};

// A close reason is UTF-8 too, in at most 123 bytes (RFC 6455 §5.5.1): longer
// is cut at a character boundary, as Beast would throw on it.
std::string valid_close_reason(std::string reason) {
  if (!is_valid_utf8(reason)) reason = to_valid_utf8(reason);
  constexpr std::size_t max_reason = 123;
  if (reason.size() > max_reason) {
    auto n = max_reason;
    while (n > 0 && (static_cast<unsigned char>(reason[n]) & 0xC0) == 0x80) --n;
    reason.resize(n);
  }
  return reason;
}

std::shared_ptr<std::string const> valid_text(std::shared_ptr<std::string const> const& data) {
  // A hub hands one buffer to every member in turn from one thread: the last
  // buffer checked here is remembered, so a broadcast is checked once, not
  // once per recipient. weak_ptrs: a freed buffer's address reused is a miss.
  thread_local std::weak_ptr<std::string const> last_in, last_out;
  if (auto in = last_in.lock(); in && in == data) {
    if (auto out = last_out.lock()) return out;
  }
  auto out = is_valid_utf8(*data) ? data : std::make_shared<std::string const>(to_valid_utf8(*data));
  last_in = data;
  last_out = out;
  return out;
}
}  // namespace

ws_state::ws_state(executor e, ws_settings s)
    : ex(std::move(e)),
      settings(s),
      id(next_ws_id.fetch_add(1)),
      last_rx(clock::now()),
      wake_(ex),
      room_(ex),
      heartbeat_(ex, wake_),
      write_wd_(watchdog::create(ex, s.write_timeout)),
      inbox_filled_(ex),
      reader_wake_(ex),
      side_ended_(ex),
      close_timer_(ex) {}

bool ws_state::send(std::shared_ptr<std::string const> data, bool binary) {
  if (!open.load(std::memory_order_relaxed)) return false;
  // A peer fails the connection (1007) on a text message that is not UTF-8.
  if (!binary) data = valid_text(data);
  auto size = data->size();
  auto before = queued_bytes_.fetch_add(size, std::memory_order_relaxed);
  // One message always fits an empty queue; beyond the limit the peer is too slow.
  if (before > 0 && before + size > settings.send_queue) {
    queued_bytes_.fetch_sub(size, std::memory_order_relaxed);
    asio::post(ex, [self = shared_from_this()] { self->overflow(); });
    return false;
  }
  outbound m{std::move(data), binary};
  if (ex.running_in_this_thread()) {
    enqueue(std::move(m));
  } else {
    asio::post(ex, [self = shared_from_this(), m = std::move(m)]() mutable { self->enqueue(std::move(m)); });
  }
  return true;
}

void ws_state::enqueue(outbound m) {
  if (!open.load(std::memory_order_relaxed) || slow_) {
    queued_bytes_.fetch_sub(m.data->size(), std::memory_order_relaxed);
    if (settings.counted) metrics::ws_message_dropped();
    return;
  }
  queue_.push_back(std::move(m));
  wake();
}

void ws_state::wake() { wake_.notify_all(); }

task<bool> ws_state::send_when_room(std::shared_ptr<std::string const> data, bool binary) {
  for (;;) {
    if (!open.load()) co_return false;
    if (has_room(data->size())) co_return send(std::move(data), binary);
    co_await room_.async_wait(use_task);
  }
}

void ws_state::overflow() {
  if (slow_ || !open.load()) return;
  slow_ = true;
  if (settings.counted) metrics::ws_dropped(metrics::ws_drop_reason::slow_consumer);
  // A message being written to a peer that stopped reading would hold the
  // connection (and the message) until write_timeout, 30 s by default: it
  // gets the one second the 1008 close frame gets (SPEC §2), then the
  // writer sees the write fail and closes.
  auto limit = clock::now() + std::chrono::seconds(1);
  if (write_wd_->deadline() != clock::time_point::max() && write_wd_->deadline() > limit) write_wd_->arm(limit);
  wake();
}

void ws_state::request_close(std::uint16_t code, std::string reason) {
  if (!ex.running_in_this_thread()) {
    asio::post(ex, [self = shared_from_this(), code, r = std::move(reason)]() mutable {
      self->request_close(code, std::move(r));
    });
    return;
  }
  if (close_requested_) return;
  close_requested_ = true;
  close_code_ = code;
  close_reason_ = valid_close_reason(std::move(reason));
  wake();
}

void ws_state::drain() { request_close(websocket_ns::close_code::going_away, "server shutting down"); }

template <class NextLayer>
ws_session<NextLayer>::ws_session(NextLayer&& next, ws_settings s, std::shared_ptr<void> o)
    : ws_state(next.get_executor(), s), owner(std::move(o)), stream(std::move(next)) {}

template <class NextLayer>
void ws_session<NextLayer>::abort() {
  open.store(false);
  error_code ec;
  beast::get_lowest_layer(stream).close(ec);
  wake();
}

// Beast 1.81's async_close, when cancelled while it waits for the read
// block, shuts the stream down without releasing its write block: a read
// suspended on that block (it got the peer's close frame and wants to write)
// is never resumed, and the reader never ends. So the handshake is bounded by
// closing the socket, which fails whatever Beast waits on through its normal
// paths, never by cancelling the operation.
template <class NextLayer>
task<bool> ws_session<NextLayer>::close_within(websocket_ns::close_reason why, std::chrono::milliseconds limit) {
  close_expired_ = false;
  close_timer_.expires_after(limit);
  close_timer_.async_wait([this, self = shared_from_this()](error_code ec) {
    if (ec) return;
    close_expired_ = true;
    abort();
  });
  auto [ec] = co_await stream.async_close(why, tuple_task);
  close_timer_.cancel();
  co_return !ec && !close_expired_;
}

template <class NextLayer>
task<void> ws_session<NextLayer>::writer() {
  auto self = shared_from_this();
  auto guarded = [this] { return asio::bind_cancellation_slot(write_wd_->slot(), tuple_task); };
  for (;;) {
    if (ws_fault_for_tests) ws_fault_for_tests("writer");
    if (slow_) {
      // A slow consumer: what it has not taken is dropped (and counted), a
      // 1008 is tried for a second, then the connection goes.
      if (settings.counted) metrics::ws_message_dropped(queue_.size());
      queue_.clear();
      queued_bytes_.store(0);
      room_.notify_all();
      websocket_ns::close_reason why(websocket_ns::close_code::policy_error, "send queue overflow");
      co_await close_within(why, std::chrono::seconds(1));
      abort();
      break;
    }
    if (!queue_.empty() && open.load()) {
      auto m = std::move(queue_.front());
      queue_.pop_front();
      stream.text(!m.binary);
      write_wd_->arm_after(settings.write_timeout);
      auto [ec, n] = co_await stream.async_write(asio::buffer(*m.data), guarded());
      write_wd_->disarm();
      queued_bytes_.fetch_sub(m.data->size(), std::memory_order_relaxed);
      room_.notify_all();
      if (ec) {
        if (settings.counted) metrics::ws_message_dropped(1 + queue_.size());
        abort();
        break;
      }
      if (settings.counted) metrics::ws_message_out();
      continue;
    }
    if (!open.load()) {
      if (!queue_.empty() && settings.counted) metrics::ws_message_dropped(queue_.size());
      queue_.clear();
      break;
    }
    if (close_requested_) {
      websocket_ns::close_reason why(static_cast<websocket_ns::close_code>(close_code_),
                                     boost::beast::string_view(close_reason_));
      if (!co_await close_within(why, std::min(settings.write_timeout, settings.drain_timeout))) abort();
      // async_close read up to the peer's close frame; the reader reports it.
      break;
    }
    if (writer_stop_) break;
    auto now = clock::now();
    auto due = ping_outstanding_ ? ping_sent_ + settings.pong_timeout : last_rx + settings.ping_interval;
    if (now >= due) {
      if (ping_outstanding_) {
        if (settings.counted) metrics::ws_dropped(metrics::ws_drop_reason::no_pong);
        abort();
        break;
      }
      ping_outstanding_ = true;
      ping_sent_ = now;
      write_wd_->arm_after(settings.write_timeout);
      auto [ec] = co_await stream.async_ping({}, guarded());
      write_wd_->disarm();
      if (ec) {
        abort();
        break;
      }
      continue;
    }
    heartbeat_.ring_at(due);
    co_await wake_.async_wait(tuple_task);
  }
}

void ws_state::writer_ended() {
  write_wd_->stop();
  writer_done_ = true;
  heartbeat_.stop();  // no more pings: the deadline ends with the writer
  room_.notify_all();
  reader_wake_.notify_all();  // a reader that left the close to us reports it now
  side_ended_.notify_all();
}

void ws_state::reader_ended() {
  reader_done_ = true;
  inbox_filled_.notify_all();
  wake();  // the writer has nothing left to wait for
  room_.notify_all();  // the session is closed now: send_when_room() answers false
  side_ended_.notify_all();
}

namespace {

// The writer or the reader, then what its end means to the session, however
// it ended: an exception (logged by the scope, with the trace id) closes the
// socket, so the other side ends too, and ends it like a return.
task<void> run_side(std::shared_ptr<ws_state> s, task<void> (ws_state::*side)(), void (ws_state::*ended)()) {
  std::exception_ptr failed;
  try {
    co_await ((*s).*side)();
  } catch (...) {
    failed = std::current_exception();
  }
  if (failed) s->abort();
  ((*s).*ended)();
  if (failed) std::rethrow_exception(failed);
}

}  // namespace

void ws_state::start(std::string_view trace_id) {
  tasks.spawn(ex, run_side(shared_from_this(), &ws_state::writer, &ws_state::writer_ended), "websocket writer",
              trace_id);
  tasks.spawn(ex, run_side(shared_from_this(), &ws_state::reader, &ws_state::reader_ended), "websocket reader",
              trace_id);
}

task<void> ws_state::join_writer() {
  writer_stop_ = true;
  wake();
  while (!writer_done_) co_await side_ended_.async_wait(tuple_task);
}

void ws_state::ping_pong_seen() { ping_outstanding_ = false; }

template <class NextLayer>
void ws_session<NextLayer>::watch_control_frames() {
  stream.control_callback([this](websocket_ns::frame_type kind, beast::string_view) {
    last_rx = clock::now();
    if (kind == websocket_ns::frame_type::pong) ping_pong_seen();
  });
}

template <class NextLayer>
task<void> ws_session<NextLayer>::reader() {
  auto self = shared_from_this();
  namespace err = websocket_ns;
  for (;;) {
    if (ws_fault_for_tests) ws_fault_for_tests("reader");
    // A handler that does not keep up pauses reading; the peer stays alive
    // in the heartbeat's eyes because it has been sending.
    if (inbox_.size() >= 64 || inbox_bytes_ >= std::max<std::size_t>(settings.max_message, 64 * 1024)) {
      last_rx = clock::now();
      co_await reader_wake_.async_wait(tuple_task);
      if (!open.load()) break;
      continue;
    }
    if (close_requested_ || slow_) {
      // The writer's async_close reads until the peer's close frame itself.
      // A read started now can find that frame already buffered behind the
      // last message and then never complete (boostorg/beast#2647), so the
      // reader leaves the rest to the close and reports its outcome.
      while (!writer_done_) co_await reader_wake_.async_wait(tuple_task);
      open.store(false);
      peer_close_code = stream.reason().code;
      auto const& why = stream.reason().reason;
      peer_close_reason.assign(why.data(), why.size());
      if (!peer_close_code) peer_close_code = err::close_code::abnormal;
      break;
    }
    read_buffer.clear();
    auto [ec, n] = co_await stream.async_read(read_buffer, tuple_task);
    if (ec) {
      open.store(false);
      if (ec == err::error::closed) {
        peer_close_code = stream.reason().code;
        auto const& why = stream.reason().reason;
        peer_close_reason.assign(why.data(), why.size());
      } else if (ec == err::error::message_too_big) {
        if (settings.counted) metrics::ws_dropped(metrics::ws_drop_reason::too_big);
        peer_close_code = err::close_code::too_big;
      } else if (ec == err::error::bad_frame_payload) {
        if (settings.counted) metrics::ws_dropped(metrics::ws_drop_reason::bad_utf8);
        peer_close_code = err::close_code::bad_payload;
      } else if (ec == err::condition::protocol_violation) {
        if (settings.counted) metrics::ws_dropped(metrics::ws_drop_reason::protocol);
        peer_close_code = err::close_code::protocol_error;
      } else {
        peer_close_code = err::close_code::abnormal;
      }
      break;
    }
    last_rx = clock::now();
    ping_pong_seen();
    if (settings.counted) metrics::ws_message_in();
    ws_message m;
    m.type = stream.got_text() ? ws_message::kind::text : ws_message::kind::binary;
    m.data = beast::buffers_to_string(read_buffer.data());
    // One large message must not pin its size on a connection that goes idle.
    if (read_buffer.capacity() > 64 * 1024) {
      read_buffer.clear();
      read_buffer.shrink_to_fit();
    }
    inbox_bytes_ += m.data.size();
    inbox_.push_back(std::move(m));
    inbox_filled_.notify_all();
  }
}

task<ws_message> ws_state::next_message() {
  for (;;) {
    if (!inbox_.empty()) {
      auto m = std::move(inbox_.front());
      inbox_.pop_front();
      inbox_bytes_ -= m.data.size();
      reader_wake_.notify_all();
      co_return m;
    }
    if (reader_done_) {
      ws_message closed;
      closed.close_code = peer_close_code ? peer_close_code : 1006;
      closed.close_reason = peer_close_reason;
      co_return closed;
    }
    // Woken by the reader; a drain-timeout abort ends the reader too.
    co_await inbox_filled_.async_wait(tuple_task);
  }
}

task<void> ws_state::wait_ended() {
  while (!reader_done_ && !writer_done_) co_await side_ended_.async_wait(tuple_task);
}

task<void> ws_state::join_reader() {
  abort();
  reader_wake_.notify_all();
  while (!reader_done_) co_await side_ended_.async_wait(tuple_task);
}

template class ws_session<tcp_socket>;
template class ws_session<tls_next_layer>;
template class ws_session<byte_stream>;

}  // namespace detail

bool ws_handle::send(std::string text, bool binary) const {
  if (!state_) return false;
  return state_->send(std::make_shared<std::string const>(std::move(text)), binary);
}

bool ws_handle::send_shared(std::shared_ptr<std::string const> data, bool binary) const {
  return state_ && state_->send(std::move(data), binary);
}

bool ws_handle::is_open() const { return state_ && state_->open.load(); }
std::uint64_t ws_handle::id() const { return state_ ? state_->id : 0; }

void ws_handle::on_end(std::function<void()> f) const {
  if (!state_) return;
  auto run_or_keep = [state = state_, f = std::move(f)]() mutable {
    // The session sets open to false before it runs the callbacks, on this thread.
    if (state->open.load()) state->on_end.push_back(std::move(f));
    else f();
  };
  if (state_->ex.running_in_this_thread()) run_or_keep();
  else asio::post(state_->ex, std::move(run_or_keep));
}

websocket::websocket(std::shared_ptr<detail::ws_state> s, context& ctx) : state_(std::move(s)), ctx_(ctx) {}

std::string const& websocket::subprotocol() const { return state_->subprotocol; }

task<ws_message> websocket::read() { return state_->next_message(); }

task<bool> websocket::send_wait(std::string data, bool binary) {
  auto shared = std::make_shared<std::string const>(std::move(data));
  // Made valid before it is measured against the room left in the queue.
  if (!binary) shared = detail::valid_text(shared);
  auto waiting = state_->send_when_room(std::move(shared), binary);
  // The writer signals room on the session's thread; a caller elsewhere waits there.
  if (!state_->ex.running_in_this_thread()) co_return co_await asio::co_spawn(state_->ex, std::move(waiting), use_task);
  co_return co_await std::move(waiting);
}

task<void> websocket::close(std::uint16_t code, std::string reason) {
  state_->request_close(code, std::move(reason));
  co_await state_->join_writer();
}

}  // namespace keel
