#pragma once
// What a handler returns: status, headers and a body that keel frames itself
// (Content-Length, Date, Server and Connection are the framework's job).
//
//   co_return keel::response::text("Hello, World!");
//   co_return keel::response::json({{"message", "Hello, World!"}});
//   co_return keel::response::redirect("/login");
//   keel::response r(201); r.set_header("Location", "/api/todos/7");
//
// Problem details (RFC 9457) need the request's trace id: see
// keel::context::problem().
#include <keel/net.hpp>

#include <boost/json/fwd.hpp>

#include <cstddef>
#include <cstdint>
#include <iterator>

#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace keel {

class context;
namespace detail {
class exchange;
}

class response {
 public:
  /// One header, viewing the response's storage (valid until it changes).
  struct field {
    std::string_view name;
    std::string_view value;
  };
  /// The headers in order, as `field`s: `for (auto [name, value] : r.headers())`.
  class header_range {
   public:
    class iterator {
     public:
      using iterator_category = std::forward_iterator_tag;
      using value_type = field;
      using difference_type = std::ptrdiff_t;
      using pointer = void;
      using reference = field;
      iterator() = default;
      iterator(std::string_view rest) : rest_(rest) { parse(); }
      field operator*() const { return current_; }
      iterator& operator++() {
        rest_.remove_prefix(line_);
        parse();
        return *this;
      }
      iterator operator++(int) {
        auto old = *this;
        ++*this;
        return old;
      }
      friend bool operator==(iterator const& a, iterator const& b) { return a.rest_.size() == b.rest_.size(); }

     private:
      void parse();
      std::string_view rest_;
      std::size_t line_ = 0;
      field current_;
    };
    explicit header_range(std::string_view lines) : lines_(lines) {}
    iterator begin() const { return iterator(lines_); }
    iterator end() const { return iterator(lines_.substr(lines_.size())); }
    bool empty() const { return lines_.empty(); }

   private:
    std::string_view lines_;
  };

  response() = default;
  explicit response(unsigned status) : status(status) {}

  /// text/plain; charset=utf-8
  static response text(std::string body, unsigned status = 200);
  /// text/html; charset=utf-8
  static response html(std::string body, unsigned status = 200);
  /// application/json, serialized with Boost.JSON.
  static response json(boost::json::value const& value, unsigned status = 200);
  /// application/json from text the caller already serialized.
  static response json_text(std::string body, unsigned status = 200);
  /// A redirect (301, 302, 303, 307 or 308) to `location`.
  static response redirect(std::string_view location, unsigned status = 302);

  /// Replaces every header of that name (case-insensitive). CR, LF and NUL
  /// in a value become spaces, so no value can start another header.
  void set_header(std::string_view name, std::string_view value);
  /// Adds a header even if one of that name exists (Set-Cookie, Vary, ...).
  void add_header(std::string_view name, std::string_view value);
  std::optional<std::string_view> header(std::string_view name) const;
  void remove_header(std::string_view name);
  header_range headers() const { return header_range(fields_); }
  /// The headers as `Name: value\r\n` lines, ready for the wire.
  std::string_view header_lines() const { return fields_; }
  /// True when a header keel frames itself (Content-Length, Connection, Date,
  /// Server, Transfer-Encoding) was set: the writer then drops those.
  bool has_framework_header() const { return framework_header_; }

  unsigned status = 200;
  std::string body;
  /// Ask keel to close the connection after this response.
  bool close = false;

  /// Protocol upgrades (WebSocket) and streamed responses (Server-Sent Events,
  /// keel/stream.hpp) set this: once the response has come back through the
  /// middleware chain, the transport hands the exchange to this coroutine
  /// instead of writing the response. It gets the response as the chain left
  /// it, so headers that middleware set reach the client, and the exchange
  /// (the transport's seam, framework plumbing) to write through.
  std::function<task<void>(context&, response const&, detail::exchange&)> upgrade;

 private:
  // One string of wire-ready lines rather than a container of strings: a
  // response moves through every middleware layer, and this moves as one
  // pointer, costs one allocation and is written with one append.
  std::string fields_;
  // One bit per header name ever added (by length and first and last letter,
  // case-folded): most lookups and removals are of a name that is not there,
  // and this answers them without a scan.
  std::uint64_t names_ = 0;
  bool framework_header_ = false;

  static std::uint64_t name_bit(std::string_view name) noexcept {
    if (name.empty()) return 1;
    auto fold = [](char c) { return static_cast<unsigned>(static_cast<unsigned char>(c) | 0x20); };
    return std::uint64_t{1} << ((name.size() * 7 + fold(name.front()) * 3 + fold(name.back())) & 63);
  }
};

/// The reason phrase of a status code ("Not Found"); "Unknown" for others.
std::string_view reason_phrase(unsigned status);

}  // namespace keel
