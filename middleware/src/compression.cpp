#include <keel/middleware/compression.hpp>

#include <keel/context.hpp>

#include "codecs.hpp"

#include <boost/beast/core/string.hpp>

#include <algorithm>
#include <array>
#include <memory>
#include <optional>

namespace keel::mw {

namespace {

bool istarts_with(std::string_view s, std::string_view prefix) noexcept {
  return s.size() >= prefix.size() && boost::beast::iequals(s.substr(0, prefix.size()), prefix);
}

bool icontains(std::string_view s, std::string_view needle) noexcept {
  for (std::size_t i = 0; i + needle.size() <= s.size(); ++i) {
    if (istarts_with(s.substr(i), needle)) return true;
  }
  return false;
}

std::string_view trim(std::string_view s) noexcept {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// A qvalue (RFC 9110 §12.4.2) in thousandths; a malformed one counts as 0.
int parse_q(std::string_view v) noexcept {
  v = trim(v);
  if (v.empty() || (v[0] != '0' && v[0] != '1')) return 0;
  int q = (v[0] - '0') * 1000;
  if (v.size() == 1) return q;
  if (v[1] != '.' || v.size() > 5) return 0;
  int scale = 100;
  for (std::size_t i = 2; i < v.size(); ++i, scale /= 10) {
    if (v[i] < '0' || v[i] > '9') return 0;
    q += (v[i] - '0') * scale;
  }
  return std::min(q, 1000);
}

struct state {
  compression_options opts;
};

bool compressible_type(std::string_view type, compression_options const& o) {
  return std::any_of(o.types.begin(), o.types.end(), [&](std::string const& t) { return istarts_with(type, t); });
}

std::optional<response> decode_request(context& ctx, compression_options const& o) {
  auto header = ctx.header("Content-Encoding");
  // A streamed body (stream_body routes) reaches the handler encoded, as sent.
  if (!header || ctx.rejected_status() != 0 || ctx.body_streamed()) return std::nullopt;
  auto token = trim(*header);
  if (token.empty() || (token.size() == 8 && istarts_with(token, "identity"))) return std::nullopt;
  auto c = codecs::parse(token);  // a list of several codings is not one we take
  if (!c) {
    auto r = ctx.problem(415, "Content-Encoding \"" + std::string(token) + "\" is not supported");
    r.set_header("Accept-Encoding", "br, gzip, deflate");
    return r;
  }
  auto compressed = ctx.body();
  std::size_t by_ratio = compressed.size() > o.max_decompressed / std::max<std::size_t>(o.max_ratio, 1)
                             ? o.max_decompressed
                             : compressed.size() * o.max_ratio;
  std::size_t limit = std::min(o.max_decompressed, by_ratio);
  std::string plain;
  switch (codecs::decompress(*c, compressed, limit, plain)) {
    case codecs::result::ok: break;
    case codecs::result::too_large:
      return ctx.problem(413, "the body decompresses to more than " + std::to_string(limit) + " bytes");
    case codecs::result::corrupt:
      return ctx.problem(400, "the body is not valid " + std::string(codecs::token(*c)) + " data");
  }
  ctx.replace_body(std::move(plain));
  return std::nullopt;
}

void encode_response(context& ctx, response& res, compression_options const& o) {
  if (res.upgrade || res.status < 200 || res.status == 204 || res.status == 206 || res.status == 304) return;
  auto type = res.header("Content-Type");
  if (!type || !compressible_type(*type, o)) return;
  // Caches must keep the variants apart whether or not this one is compressed.
  auto vary = res.header("Vary");
  if (!vary || (!icontains(*vary, "accept-encoding") && trim(*vary) != "*")) res.add_header("Vary", "Accept-Encoding");
  if (res.body.size() < o.min_size || res.header("Content-Encoding") || res.header("Content-Range")) return;
  if (auto cc = res.header("Cache-Control"); cc && icontains(*cc, "no-transform")) return;
  auto accept = ctx.header("Accept-Encoding");
  if (!accept) return;
  auto chosen = codecs::parse(choose_encoding(*accept, o));
  if (!chosen) return;
  std::string packed;
  int level = *chosen == codecs::coding::br ? o.brotli_quality : o.zlib_level;
  if (!codecs::compress(*chosen, res.body, level, packed) || packed.size() >= res.body.size()) return;
  res.body = std::move(packed);
  res.set_header("Content-Encoding", codecs::token(*chosen));
  // A strong ETag names the exact bytes; these are other bytes (RFC 9110 §8.8.1).
  if (auto etag = res.header("ETag"); etag && !istarts_with(*etag, "W/")) {
    res.set_header("ETag", "W/" + std::string(*etag));
  }
}

task<response> run(context& ctx, next n, state const& s) {
  if (s.opts.decompress_requests) {
    if (auto refused = decode_request(ctx, s.opts)) co_return std::move(*refused);
  }
  auto res = co_await n();
  encode_response(ctx, res, s.opts);
  co_return res;
}

}  // namespace

std::string_view choose_encoding(std::string_view accept, compression_options const& o) {
  // Thousandths per coding; -1 while not named.
  std::array<int, 3> q{-1, -1, -1};  // br, gzip, deflate
  int star = -1;
  while (!accept.empty()) {
    auto comma = accept.find(',');
    auto item = trim(accept.substr(0, comma));
    accept = comma == std::string_view::npos ? std::string_view{} : accept.substr(comma + 1);
    auto semi = item.find(';');
    auto name = trim(item.substr(0, semi));
    int value = 1000;
    if (semi != std::string_view::npos) {
      auto param = trim(item.substr(semi + 1));
      value = istarts_with(param, "q=") ? parse_q(param.substr(2)) : 1000;
    }
    if (name == "*") {
      star = value;
    } else if (auto c = codecs::parse(name)) {
      q[static_cast<std::size_t>(*c)] = value;
    }
  }
  std::array<bool, 3> enabled{o.brotli, o.gzip, o.deflate};
  int best = 0;
  std::string_view chosen;
  for (std::size_t i = 0; i < q.size(); ++i) {
    int v = q[i] >= 0 ? q[i] : std::max(star, 0);
    if (enabled[i] && v > best) {  // strictly greater: equal q keeps the earlier (br, gzip, deflate)
      best = v;
      chosen = codecs::token(static_cast<codecs::coding>(i));
    }
  }
  return chosen;
}

middleware compression(compression_options opts) {
  auto s = std::make_shared<state>(state{std::move(opts)});
  return [s](context& ctx, next n) { return run(ctx, n, *s); };
}

}  // namespace keel::mw
