#pragma once
// The raw bytes of one exchange as an Asio AsyncStream, whatever carries
// them: the connection's socket, its TLS stream, or a transport behind
// virtual_stream (an HTTP/2 stream next; an in-memory pipe in tests). Beast's
// WebSocket runs over it, so the engine never learns which one it has.
//
// A kind and a pointer, cheap to copy: what it points to belongs to the
// transport, which the takeover keeps alive (exchange::keep_alive()). The
// socket and TLS kinds forward each operation with its handler unchanged (no
// allocation, cancellation slots intact); a virtual_stream's operation is a
// coroutine, one frame per call.
#include <keel/net.hpp>

#include <boost/asio/async_result.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/beast/core/role.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <boost/beast/websocket/teardown.hpp>

#include <cstddef>
#include <exception>
#include <tuple>
#include <type_traits>

namespace keel::detail {

using tls_socket_stream = asio::ssl::stream<tcp_socket&>;
using io_result = std::tuple<boost::system::error_code, std::size_t>;

/// A transport's bytes that keel does not know at compile time. Operations
/// run on get_executor(), one read and one write at a time, like a socket's.
class virtual_stream {
 public:
  virtual ~virtual_stream() = default;
  virtual executor get_executor() = 0;
  /// Some bytes into `into`; error::eof once the peer ended its side.
  virtual task<io_result> read_some(asio::mutable_buffer into) = 0;
  /// Some of `from`, at least one byte unless it is empty or an error.
  virtual task<io_result> write_some(asio::const_buffer from) = 0;
  /// Ends pending operations with operation_aborted; later ones still run.
  virtual void cancel() = 0;
  /// Ends the bytes for good (an abort: no goodbye to the peer).
  virtual void close() = 0;
};

class byte_stream {
 public:
  using executor_type = executor;

  explicit byte_stream(tcp_socket& s) : kind_(kind::plain), plain_(&s) {}
  explicit byte_stream(tls_socket_stream& s) : kind_(kind::tls), tls_(&s) {}
  explicit byte_stream(virtual_stream& s) : kind_(kind::other), other_(&s) {}

  executor_type get_executor() const {
    switch (kind_) {
      case kind::plain: return plain_->get_executor();
      case kind::tls: return tls_->get_executor();
      case kind::other: break;
    }
    return other_->get_executor();
  }

  template <class MutableBuffers, class Token>
  auto async_read_some(MutableBuffers const& buffers, Token&& token) {
    return asio::async_initiate<Token, void(boost::system::error_code, std::size_t)>(
        [this](auto handler, MutableBuffers const& b) {
          switch (kind_) {
            case kind::plain: plain_->async_read_some(b, std::move(handler)); return;
            case kind::tls: tls_->async_read_some(b, std::move(handler)); return;
            case kind::other: break;
          }
          complete_with(other_->read_some(first_of<asio::mutable_buffer>(b)), std::move(handler));
        },
        token, buffers);
  }

  template <class ConstBuffers, class Token>
  auto async_write_some(ConstBuffers const& buffers, Token&& token) {
    return asio::async_initiate<Token, void(boost::system::error_code, std::size_t)>(
        [this](auto handler, ConstBuffers const& b) {
          switch (kind_) {
            case kind::plain: plain_->async_write_some(b, std::move(handler)); return;
            case kind::tls: tls_->async_write_some(b, std::move(handler)); return;
            case kind::other: break;
          }
          complete_with(other_->write_some(first_of<asio::const_buffer>(b)), std::move(handler));
        },
        token, buffers);
  }

  /// Ends pending reads and writes (operation_aborted).
  void cancel() {
    boost::system::error_code ignored;
    switch (kind_) {
      case kind::plain: plain_->cancel(ignored); return;
      case kind::tls: tls_->next_layer().cancel(ignored); return;
      case kind::other: other_->cancel(); return;
    }
  }

  /// Closes the bytes at once (Beast's get_lowest_layer(ws).close(ec)).
  void close(boost::system::error_code& ec) {
    switch (kind_) {
      case kind::plain: plain_->close(ec); return;
      case kind::tls: tls_->next_layer().close(ec); return;
      case kind::other: other_->close(); return;
    }
  }

  /// A WebSocket's goodbye below its close frame: TCP shutdown, TLS
  /// close_notify, or the virtual transport's end.
  template <class Handler>
  void async_teardown(boost::beast::role_type role, Handler handler) {
    // Beast's overloads for sockets and for TLS streams live in different
    // namespaces: found as Beast finds them, by argument-dependent lookup.
    using boost::beast::websocket::async_teardown;
    switch (kind_) {
      case kind::plain: async_teardown(role, *plain_, std::move(handler)); return;
      case kind::tls: async_teardown(role, *tls_, std::move(handler)); return;
      case kind::other: break;
    }
    other_->close();
    auto ex = asio::get_associated_executor(handler, other_->get_executor());
    asio::post(ex, [h = std::move(handler)]() mutable { std::move(h)(boost::system::error_code{}); });
  }

  void teardown(boost::beast::role_type role, boost::system::error_code& ec) {
    using boost::beast::websocket::teardown;
    switch (kind_) {
      case kind::plain: teardown(role, *plain_, ec); return;
      case kind::tls: teardown(role, *tls_, ec); return;
      case kind::other: other_->close(); return;
    }
  }

 private:
  enum class kind : unsigned char { plain, tls, other };

  // A virtual transport moves one buffer per call: a read or write may be
  // partial, so the first non-empty buffer of the sequence is enough.
  template <class Buffer, class Buffers>
  static Buffer first_of(Buffers const& buffers) {
    for (auto it = asio::buffer_sequence_begin(buffers); it != asio::buffer_sequence_end(buffers); ++it) {
      Buffer b(*it);
      if (b.size() != 0) return b;
    }
    return Buffer();
  }

  template <class Handler>
  void complete_with(task<io_result> op, Handler handler) {
    auto ex = other_->get_executor();
    auto handler_ex = asio::get_associated_executor(handler, ex);
    auto done = [h = std::move(handler)](std::exception_ptr const& e, io_result r) mutable {
      auto [ec, n] = r;
      if (e) ec = asio::error::operation_aborted;  // the transport failed this operation
      std::move(h)(ec, n);
    };
    asio::co_spawn(ex, std::move(op), asio::bind_executor(handler_ex, std::move(done)));
  }

  kind kind_;
  union {
    tcp_socket* plain_;
    tls_socket_stream* tls_;
    virtual_stream* other_;
  };
};

/// Found by Beast's WebSocket through argument-dependent lookup.
template <class Handler>
void async_teardown(boost::beast::role_type role, byte_stream& s, Handler&& handler) {
  s.async_teardown(role, std::forward<Handler>(handler));
}

inline void teardown(boost::beast::role_type role, byte_stream& s, boost::system::error_code& ec) {
  s.teardown(role, ec);
}

/// Beast's close_socket(), which its WebSocket calls on a failed handshake or a timeout.
inline void beast_close_socket(byte_stream& s) {
  boost::system::error_code ignored;
  s.close(ignored);
}

}  // namespace keel::detail
