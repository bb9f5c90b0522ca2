// keel::redis_connection: hiredis formats commands and parses replies; the
// socket is Asio's, so a slow or dead Redis costs a suspended coroutine, never
// a blocked thread (hiredis's own blocking and async contexts are not used).
#include <keel/redis.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>

#include <hiredis/hiredis.h>

#include <array>
#include <charconv>
#include <stdexcept>
#include <variant>

namespace keel {

using namespace asio::experimental::awaitable_operators;
using boost::system::error_code;

namespace {

constexpr auto as_tuple_task = asio::as_tuple(use_task);

error_code protocol_error() { return make_error_code(boost::system::errc::protocol_error); }

redis_reply convert(redisReply const* r) {
  redis_reply out;
  switch (r->type) {
    case REDIS_REPLY_STRING: out.type = redis_reply::kind::string; out.str.assign(r->str, r->len); break;
    case REDIS_REPLY_STATUS: out.type = redis_reply::kind::status; out.str.assign(r->str, r->len); break;
    case REDIS_REPLY_ERROR: out.type = redis_reply::kind::error; out.str.assign(r->str, r->len); break;
    case REDIS_REPLY_INTEGER: out.type = redis_reply::kind::integer; out.integer = r->integer; break;
    case REDIS_REPLY_ARRAY:
      out.type = redis_reply::kind::array;
      out.elements.reserve(r->elements);
      for (std::size_t i = 0; i < r->elements; ++i) out.elements.push_back(convert(r->element[i]));
      break;
    default: out.type = redis_reply::kind::nil; break;
  }
  return out;
}

task<void> sleep_for(executor ex, std::chrono::milliseconds d) {
  steady_timer t(ex, d);
  co_await t.async_wait(as_tuple_task);
}

}  // namespace

redis_url redis_url::parse(std::string_view text) {
  constexpr std::string_view scheme = "redis://";
  if (text.substr(0, scheme.size()) != scheme) {
    throw std::invalid_argument("expected redis://HOST[:PORT][/DB], got \"" + std::string(text) + "\"");
  }
  auto rest = text.substr(scheme.size());
  redis_url u;
  auto slash = rest.find('/');
  auto hostport = rest.substr(0, slash);
  if (slash != std::string_view::npos) {
    auto db = rest.substr(slash + 1);
    if (!db.empty()) {
      auto [p, ec] = std::from_chars(db.data(), db.data() + db.size(), u.db);
      if (ec != std::errc() || p != db.data() + db.size() || u.db < 0) {
        throw std::invalid_argument("bad database number in \"" + std::string(text) + "\"");
      }
    }
  }
  if (hostport.find('@') != std::string_view::npos) {
    throw std::invalid_argument("credentials in the Redis URL are not supported: \"" + std::string(text) + "\"");
  }
  std::string_view host = hostport;
  if (!hostport.empty() && hostport.front() == '[') {  // [::1]:6379
    auto close = hostport.find(']');
    if (close == std::string_view::npos) throw std::invalid_argument("bad IPv6 host in \"" + std::string(text) + "\"");
    host = hostport.substr(1, close - 1);
    hostport.remove_prefix(close + 1);
    if (!hostport.empty() && hostport.front() != ':') {
      throw std::invalid_argument("bad host in \"" + std::string(text) + "\"");
    }
  } else {
    auto colon = hostport.rfind(':');
    host = hostport.substr(0, colon);
    hostport = colon == std::string_view::npos ? std::string_view{} : hostport.substr(colon);
  }
  if (host.empty()) throw std::invalid_argument("no host in \"" + std::string(text) + "\"");
  u.host = std::string(host);
  if (!hostport.empty()) {
    auto port = hostport.substr(1);
    unsigned v = 0;
    auto [p, ec] = std::from_chars(port.data(), port.data() + port.size(), v);
    if (ec != std::errc() || p != port.data() + port.size() || v == 0 || v > 65535) {
      throw std::invalid_argument("bad port in \"" + std::string(text) + "\"");
    }
    u.port = static_cast<std::uint16_t>(v);
  }
  return u;
}

std::string redis_url::str() const {
  bool v6 = host.find(':') != std::string::npos;
  return "redis://" + (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port) + "/" + std::to_string(db);
}

struct redis_connection::impl {
  explicit impl(executor const& e) : ex(e), socket(e) {}
  ~impl() {
    if (reader) redisReaderFree(reader);
  }
  executor ex;
  tcp_socket socket;
  redisReader* reader = nullptr;
  std::array<char, 16 * 1024> buf{};

  void reset_reader() {
    if (reader) redisReaderFree(reader);
    reader = redisReaderCreate();
    if (!reader) throw std::bad_alloc();
  }

  task<error_code> connect(redis_url u) {
    asio::ip::basic_resolver<asio::ip::tcp, executor> resolver(ex);
    auto [rec, results] = co_await resolver.async_resolve(u.host, std::to_string(u.port), as_tuple_task);
    if (rec) co_return rec;
    error_code last = asio::error::host_not_found;
    for (auto const& entry : results) {
      socket = tcp_socket(ex);
      auto [ec] = co_await socket.async_connect(entry.endpoint(), as_tuple_task);
      if (!ec) {
        last = {};
        break;
      }
      last = ec;
    }
    if (last) co_return last;
    socket.set_option(asio::ip::tcp::no_delay(true), last);
    reset_reader();
    // One round trip before calling it connected: a server that accepts but
    // does not answer (stopped, overloaded) fails here, within the timeout.
    std::string cmd;
    if (u.db != 0) format(cmd, {"SELECT", std::to_string(u.db)});
    else format(cmd, {"PING"});
    if (auto ec = co_await write(cmd)) co_return ec;
    auto [ec, reply] = co_await read();
    if (ec) co_return ec;
    if (reply.is_error()) co_return make_error_code(boost::system::errc::invalid_argument);
    co_return error_code{};
  }

  task<error_code> write(std::string const& data) {
    auto [ec, n] = co_await asio::async_write(socket, asio::buffer(data), as_tuple_task);
    (void)n;
    co_return ec;
  }

  task<std::pair<error_code, redis_reply>> read() {
    if (!reader) co_return std::pair{error_code(asio::error::not_connected), redis_reply{}};
    for (;;) {
      void* raw = nullptr;
      if (redisReaderGetReply(reader, &raw) != REDIS_OK) {
        co_return std::pair{protocol_error(), redis_reply{}};
      }
      if (raw) {
        auto* r = static_cast<redisReply*>(raw);
        auto out = convert(r);
        freeReplyObject(r);
        co_return std::pair{error_code{}, std::move(out)};
      }
      auto [ec, n] = co_await socket.async_read_some(asio::buffer(buf), as_tuple_task);
      if (ec) co_return std::pair{ec, redis_reply{}};
      if (redisReaderFeed(reader, buf.data(), n) != REDIS_OK) co_return std::pair{protocol_error(), redis_reply{}};
    }
  }

  task<std::pair<error_code, std::vector<redis_reply>>> pipeline(std::string data, std::size_t n) {
    std::vector<redis_reply> replies;
    if (auto ec = co_await write(data)) co_return std::pair{ec, std::move(replies)};
    replies.reserve(n);
    for (std::size_t i = 0; i < n; ++i) {
      auto [ec, r] = co_await read();
      if (ec) co_return std::pair{ec, std::move(replies)};
      replies.push_back(std::move(r));
    }
    co_return std::pair{error_code{}, std::move(replies)};
  }

  void close() {
    error_code ignored;
    socket.shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
    socket.close(ignored);
  }
};

redis_connection::redis_connection(executor const& ex) : impl_(std::make_unique<impl>(ex)) {}
redis_connection::~redis_connection() = default;

task<error_code> redis_connection::connect(redis_url const& url, std::chrono::milliseconds timeout) {
  impl_->close();
  auto result = co_await (impl_->connect(url) || sleep_for(impl_->ex, timeout));
  if (result.index() == 1) {
    impl_->close();
    co_return make_error_code(asio::error::timed_out);
  }
  auto ec = std::get<0>(result);
  if (ec) impl_->close();
  co_return ec;
}

task<std::pair<error_code, std::vector<redis_reply>>> redis_connection::pipeline(
    std::vector<redis_command> const& commands, std::chrono::milliseconds timeout) {
  if (!is_open()) co_return std::pair{error_code(asio::error::not_connected), std::vector<redis_reply>{}};
  std::string data;
  for (auto const& c : commands) format(data, c);
  auto result = co_await (impl_->pipeline(std::move(data), commands.size()) || sleep_for(impl_->ex, timeout));
  if (result.index() == 1) {
    // A reply that comes later would be read as the next command's.
    impl_->close();
    co_return std::pair{error_code(asio::error::timed_out), std::vector<redis_reply>{}};
  }
  auto r = std::get<0>(std::move(result));
  if (r.first) impl_->close();
  co_return r;
}

task<error_code> redis_connection::write(std::string const& data) { return impl_->write(data); }

task<std::pair<error_code, redis_reply>> redis_connection::read() { return impl_->read(); }

void redis_connection::format(std::string& out, redis_command const& args) {
  std::vector<char const*> argv;
  std::vector<std::size_t> lens;
  argv.reserve(args.size());
  lens.reserve(args.size());
  for (auto const& a : args) {
    argv.push_back(a.data());
    lens.push_back(a.size());
  }
  char* cmd = nullptr;
  int n = redisFormatCommandArgv(&cmd, static_cast<int>(args.size()), argv.data(), lens.data());
  if (n < 0 || !cmd) throw std::bad_alloc();
  out.append(cmd, static_cast<std::size_t>(n));
  redisFreeCommand(cmd);
}

bool redis_connection::is_open() const { return impl_->socket.is_open(); }

void redis_connection::close() { impl_->close(); }

}  // namespace keel
