// multipart_reader: the I/O-free scanner (multipart_scanner.hpp) fed from the
// body stream. Bytes the scanner has not consumed yet (a possible boundary at
// the end of a piece, a part's header block) are kept in `held`; everything
// else is scanned where the body stream left it, so part data is handed out
// as views without a copy.
#include <keel/body_stream.hpp>
#include <keel/context.hpp>
#include <keel/error.hpp>
#include <keel/multipart.hpp>

#include "http/multipart_scanner.hpp"

#include <boost/beast/core/string.hpp>

namespace keel {

using detail::multipart_scanner;
using event = multipart_scanner::event;

struct multipart_reader::impl {
  impl(context& c, std::string_view boundary, multipart_options const& o)
      : body(c.body_stream()), scanner(boundary, {o.max_header_bytes, o.max_parts}) {}

  keel::body_stream& body;
  multipart_scanner scanner;
  std::string held;             // unconsumed bytes carried over from earlier pieces
  std::size_t held_off = 0;     // how much of `held` the scanner has consumed
  std::string_view fresh;       // the rest of the latest piece, when `held` is empty
  bool in_part = false;
  bool finished = false;

  std::string_view input() const {
    return held.empty() ? fresh : std::string_view(held).substr(held_off);
  }
  void advance(std::size_t n) {
    if (held.empty()) fresh.remove_prefix(n);
    else held_off += n;
  }

  // The next event that is not need_more; throws 400 on a malformed body.
  task<event> step() {
    for (;;) {
      auto ev = scanner.next(input());
      advance(scanner.consumed());
      if (ev == event::error) throw http_error(400, "malformed multipart body: " + std::string(scanner.error_message()));
      if (ev != event::need_more) co_return ev;
      // Keep what is left (the piece it points into dies at the next read).
      held.erase(0, held_off);
      held_off = 0;
      held.append(fresh);
      fresh = {};
      auto piece = co_await body.read_some();
      if (!piece) {
        auto end = scanner.finish();
        if (end == event::error) {
          throw http_error(400, "malformed multipart body: " + std::string(scanner.error_message()));
        }
        co_return end;
      }
      if (held.empty()) fresh = *piece;
      else held.append(*piece);
    }
  }
};

namespace {

std::string boundary_of(context& ctx) {
  auto type = ctx.header("Content-Type");
  auto b = type ? detail::multipart_boundary(*type) : std::nullopt;
  if (!b) throw http_error(415, "expected multipart/form-data with a boundary");
  return *b;
}

}  // namespace

multipart_reader::multipart_reader(context& ctx, multipart_options o)
    : impl_(std::make_unique<impl>(ctx, boundary_of(ctx), o)) {}

multipart_reader::~multipart_reader() = default;

task<bool> multipart_reader::next_part() {
  auto& m = *impl_;
  while (!m.finished) {
    auto ev = co_await m.step();
    if (ev == event::part_begin) {
      m.in_part = true;
      co_return true;
    }
    if (ev == event::part_end) m.in_part = false;
    if (ev == event::done) m.finished = true;
  }
  co_return false;
}

task<std::optional<std::string_view>> multipart_reader::read_some() {
  auto& m = *impl_;
  while (m.in_part) {
    auto ev = co_await m.step();
    if (ev == event::data) {
      auto d = m.scanner.data();
      if (!d.empty()) co_return d;
      continue;
    }
    if (ev == event::part_end || ev == event::part_begin) m.in_part = false;
    if (ev == event::done) m.in_part = false, m.finished = true;
  }
  co_return std::nullopt;
}

task<std::string> multipart_reader::read_all(std::size_t limit) {
  std::string all;
  while (auto piece = co_await read_some()) {
    if (piece->size() > limit - all.size()) {
      throw http_error(413, "form field \"" + name() + "\" is larger than " + std::to_string(limit) + " bytes");
    }
    all.append(*piece);
  }
  co_return all;
}

std::string const& multipart_reader::name() const { return impl_->scanner.head().name; }
std::string const& multipart_reader::filename() const { return impl_->scanner.head().filename; }
std::string const& multipart_reader::content_type() const { return impl_->scanner.head().content_type; }

std::optional<std::string_view> multipart_reader::header(std::string_view name) const {
  for (auto const& [n, v] : impl_->scanner.head().headers) {
    if (boost::beast::iequals(n, name)) return std::string_view(v);
  }
  return std::nullopt;
}

}  // namespace keel
