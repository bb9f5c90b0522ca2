#pragma once
// The executor keel runs on and the names built on it, in one place.
//
// Every connection lives on one io_context run by one thread, so keel uses the
// concrete io_context executor (cheaper than any_io_executor, see
// docs/performance.md). Users spell keel's awaitable `keel::task<T>` and never
// name an executor.
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/basic_socket_acceptor.hpp>
#include <boost/asio/basic_stream_socket.hpp>
#include <boost/asio/basic_waitable_timer.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>

namespace keel {

namespace asio = boost::asio;

/// The executor every keel coroutine runs on.
using executor = asio::io_context::executor_type;

/// keel's coroutine type: `keel::task<keel::response> handler(keel::context&)`.
template <class T = void>
using task = asio::awaitable<T, executor>;

/// Completion token that makes an Asio operation awaitable inside a keel::task.
using use_task_t = asio::use_awaitable_t<executor>;
inline constexpr use_task_t use_task{};
/// The same, with the operation's error code returned instead of thrown:
/// `auto [ec, n] = co_await sock.async_read_some(buf, keel::tuple_task);`
inline constexpr asio::as_tuple_t<use_task_t> tuple_task{};

using clock = std::chrono::steady_clock;
using steady_timer = asio::basic_waitable_timer<clock, asio::wait_traits<clock>, executor>;
using tcp_socket = asio::basic_stream_socket<asio::ip::tcp, executor>;
using tcp_acceptor = asio::basic_socket_acceptor<asio::ip::tcp, executor>;

}  // namespace keel
