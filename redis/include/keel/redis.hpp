#pragma once
// One connection to Redis, spoken through hiredis's RESP formatter and reader
// while Asio does the socket I/O (nothing blocks the thread that awaits it).
//
//   keel::redis_connection c(ex);                          // ex: the executor it lives on
//   if (auto ec = co_await c.connect(keel::redis_url::parse("redis://127.0.0.1:6379/0"), 500ms)) …
//   auto [ec, replies] = co_await c.pipeline({{"INCR", "n"}, {"GET", "n"}}, 500ms);
//
// connect() resolves, connects and SELECTs the database (PINGs for db 0),
// all within the timeout: a server that accepts but does not answer fails it. pipeline() writes its commands in one buffer and reads one reply
// per command; a Redis error reply is a reply (kind::error), not an error
// code. Failures are error codes, never exceptions: asio::error::timed_out
// (the connection is closed then: a late reply would be taken for the next
// one), asio::error::not_connected, errc::protocol_error for bytes that are
// not RESP, or the socket's own error. For pub/sub, write() and read() are the
// two halves, used by one writer and one reader coroutine.
//
// Not thread-safe: use it from coroutines on its executor, one pipeline() at
// a time (or one write() and one read() at a time). keel::redis_hub uses it.
#include <keel/net.hpp>

#include <boost/system/error_code.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace keel {

/// `redis://HOST[:PORT][/DB]` (port 6379 and db 0 by default).
struct redis_url {
  std::string host = "127.0.0.1";
  std::uint16_t port = 6379;
  int db = 0;
  /// Throws std::invalid_argument naming what is wrong.
  static redis_url parse(std::string_view text);
  std::string str() const;
};

/// One RESP reply.
struct redis_reply {
  enum class kind { nil, string, status, error, integer, array };
  kind type = kind::nil;
  std::string str;           ///< string, status and error
  std::int64_t integer = 0;  ///< integer
  std::vector<redis_reply> elements;  ///< array
  bool is_error() const { return type == kind::error; }
};

using redis_command = std::vector<std::string>;

class redis_connection {
 public:
  explicit redis_connection(executor const& ex);
  ~redis_connection();
  redis_connection(redis_connection const&) = delete;
  redis_connection& operator=(redis_connection const&) = delete;

  /// Closes any previous connection, then connects and SELECTs `url.db`.
  task<boost::system::error_code> connect(redis_url const& url, std::chrono::milliseconds timeout);
  /// Sends the commands and reads their replies, within `timeout` in all.
  task<std::pair<boost::system::error_code, std::vector<redis_reply>>> pipeline(
      std::vector<redis_command> const& commands, std::chrono::milliseconds timeout);

  /// Writes already formatted commands (see format()).
  task<boost::system::error_code> write(std::string const& data);
  /// The next reply (a pushed pub/sub message is an array), reading as needed.
  task<std::pair<boost::system::error_code, redis_reply>> read();

  /// Appends `args` as one RESP command to `out` (hiredis's redisFormatCommandArgv).
  static void format(std::string& out, redis_command const& args);

  bool is_open() const;
  /// Closes the socket: pending reads and writes complete with an error.
  void close();

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace keel
