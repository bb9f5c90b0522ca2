#include <keel/middleware/access_log.hpp>

#include <keel/context.hpp>

#include "steps.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <cstring>
#include <exception>
#include <memory>

namespace keel::mw {

namespace {

using state = steps::access_log_state;

char lower(char c) noexcept { return c >= 'A' && c <= 'Z' ? char(c - 'A' + 'a') : c; }

int hex_value(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Whether a query key, percent-decoded as a form would be, equals one of the
// names (case-insensitively). Decodes into a small stack buffer: a key that
// cannot decode to something as short as the longest name is no match.
bool must_redact(std::string_view key, std::vector<std::string> const& names, std::size_t longest) {
  if (names.empty()) return false;
  std::array<char, 128> buf;
  std::size_t n = 0;
  for (std::size_t i = 0; i < key.size(); ++i) {
    if (n == buf.size() || n > longest) return false;
    char c = key[i];
    if (c == '%' && i + 2 < key.size()) {
      int hi = hex_value(key[i + 1]), lo = hex_value(key[i + 2]);
      if (hi >= 0 && lo >= 0) {
        c = static_cast<char>(hi * 16 + lo);
        i += 2;
      }
    } else if (c == '+') {
      c = ' ';
    }
    buf[n++] = lower(c);
  }
  std::string_view decoded(buf.data(), n);
  for (auto const& name : names) {
    if (name.size() != decoded.size()) continue;
    bool same = true;
    for (std::size_t i = 0; i < name.size() && same; ++i) same = lower(name[i]) == decoded[i];
    if (same) return true;
  }
  return false;
}

void append_redacted(std::string& out, std::string_view target, std::vector<std::string> const& names,
                     std::size_t longest) {
  auto q = target.find('?');
  if (q == std::string_view::npos || names.empty()) {
    out.append(target);
    return;
  }
  out.append(target.substr(0, q + 1));
  auto rest = target.substr(q + 1);
  bool first = true;
  while (true) {
    auto amp = rest.find('&');
    auto pair = rest.substr(0, amp);
    if (!first) out += '&';
    first = false;
    auto eq = pair.find('=');
    auto key = pair.substr(0, eq);
    if (eq != std::string_view::npos && must_redact(key, names, longest)) {
      out.append(key);
      out += '=';
      out.append(redacted);
    } else {
      out.append(pair);
    }
    if (amp == std::string_view::npos) break;
    rest = rest.substr(amp + 1);
  }
}

// The line is written through a raw pointer into a per-thread buffer sized
// for the worst case first: std::string's per-append bookkeeping cost more
// than the formatting itself (callgrind).
struct line_buffer {
  std::unique_ptr<char[]> data;
  std::size_t capacity = 0;
  char* reserve(std::size_t n) {
    if (n > capacity) {
      capacity = std::max<std::size_t>(n, 1024);
      data.reset(new char[capacity]);
    }
    return data.get();
  }
};

template <std::size_t N>
char* put(char* p, char const (&literal)[N]) {
  std::memcpy(p, literal, N - 1);
  return p + N - 1;
}

char* put(char* p, std::string_view s) {
  std::memcpy(p, s.data(), s.size());
  return p + s.size();
}

// Most numbers in a line are below 1000 (status, octets, milliseconds).
char* put_uint(char* p, std::uint64_t v) {
  if (v < 10) {
    *p = char('0' + v);
    return p + 1;
  }
  if (v < 100) {
    p[0] = char('0' + v / 10);
    p[1] = char('0' + v % 10);
    return p + 2;
  }
  if (v < 1000) {
    p[0] = char('0' + v / 100);
    p[1] = char('0' + v / 10 % 10);
    p[2] = char('0' + v % 10);
    return p + 3;
  }
  return std::to_chars(p, p + 20, v).ptr;
}

// Bytes copied as they are into a JSON string.
constexpr auto plain_bytes = [] {
  std::array<bool, 256> t{};
  for (int c = 0x20; c < 0x80; ++c) t[c] = c != '"' && c != '\\';
  return t;
}();

// Copies the plain leading bytes of `s` (those a JSON string takes as they
// are) to `p` and returns how many. Eight at a time: a word has a byte below
// 0x20, at or above 0x80, or equal to '"' or '\\' exactly when these bit
// tricks leave a high bit set (Hacker's Delight, "has less", "has zero"); a
// plain word is stored as it was loaded, so no memcpy call follows the scan.
std::size_t copy_plain_prefix(char* p, std::string_view s) {
  constexpr std::uint64_t ones = 0x0101010101010101ULL;
  constexpr std::uint64_t highs = 0x8080808080808080ULL;
  auto const* b = reinterpret_cast<unsigned char const*>(s.data());
  std::size_t i = 0;
  for (; i + 8 <= s.size(); i += 8) {
    std::uint64_t x;
    std::memcpy(&x, b + i, 8);
    std::uint64_t quote = x ^ (ones * '"');
    std::uint64_t backslash = x ^ (ones * '\\');
    std::uint64_t special = ((x - ones * 0x20) & ~x) | ((quote - ones) & ~quote) | ((backslash - ones) & ~backslash);
    if (((special & highs) | (x & highs)) != 0) break;
    std::memcpy(p + i, &x, 8);
  }
  for (; i < s.size() && plain_bytes[b[i]]; ++i) p[i] = static_cast<char>(b[i]);
  return i;
}

// JSON-escapes `s` (at most 6 bytes out per byte in). Plain ASCII is copied;
// anything else goes through log::append_escaped, which also replaces invalid
// UTF-8 exactly as every other log line does.
char* put_escaped(char* p, std::string_view s) {
  std::size_t i = copy_plain_prefix(p, s);
  if (i == s.size()) return p + i;
  p += i;
  thread_local std::string escaped;
  escaped.clear();
  log::append_escaped(escaped, s.substr(i));
  return put(p, escaped);
}

// Microseconds as milliseconds with up to three decimals, trailing zeros
// dropped: 210 -> "0.21", 1500 -> "1.5", 2000 -> "2".
char* put_ms(char* p, std::uint64_t us) {
  p = put_uint(p, us / 1000);
  auto frac = us % 1000;
  if (frac == 0) return p;
  char d[4] = {'.', char('0' + frac / 100), char('0' + frac / 10 % 10), char('0' + frac % 10)};
  std::size_t len = 4;
  while (d[len - 1] == '0') --len;
  std::memcpy(p, d, len);
  return p + len;
}

char* put_endpoint(char* p, asio::ip::tcp::endpoint const& ep) {
  auto a = ep.address();
  if (a.is_v4()) {
    auto b = a.to_v4().to_bytes();
    for (std::size_t i = 0; i < 4; ++i) {
      if (i) *p++ = '.';
      p = put_uint(p, b[i]);
    }
  } else {
    *p++ = '[';
    p = put(p, a.to_string());
    *p++ = ']';
  }
  *p++ = ':';
  return put_uint(p, ep.port());
}

char const* level_name(log::level l) {
  switch (l) {
    case log::level::debug: return "debug";
    case log::level::info: return "info";
    case log::level::warn: return "warn";
    case log::level::error: return "error";
  }
  return "info";
}

void write_line(context& ctx, response const& res, clock::duration elapsed, state const& s) {
  auto us = std::chrono::duration_cast<std::chrono::microseconds>(elapsed).count();
  thread_local line_buffer buf;
  thread_local std::string ts;
  thread_local std::string path;
  ts.clear();
  log::append_timestamp(ts);
  path.clear();
  append_redacted(path, ctx.req().target(), s.redact, s.longest);
  auto trace_id = ctx.trace_id();
  auto const& request_id = ctx.request_id();
  auto method = ctx.req().method_string();
  auto route = ctx.route();
  std::string client;
  // Only a trusted proxy can name another client; skip the comparison otherwise.
  if (!ctx.settings().trusted_proxies.empty() && ctx.client_address() != ctx.peer().address().to_string()) {
    client = ctx.client_address();
  }
  // Fixed text, numbers and an IPv6 peer fit in 320 bytes; escaped text takes
  // at most 6 bytes per byte.
  std::size_t bound = 320 + ts.size() + 6 * (trace_id.size() + request_id.size() + method.size() + route.size() +
                                             path.size() + client.size());
  char* const begin = buf.reserve(bound);
  char* p = begin;
  p = put(p, "{\"ts\":\"");
  p = put(p, ts);
  p = put(p, "\",\"level\":\"");
  p = put(p, std::string_view(level_name(s.level)));
  p = put(p, "\",\"msg\":\"access\",\"trace_id\":\"");
  char* trace_at = p;
  p = put_escaped(p, trace_id);
  std::string_view escaped_trace(trace_at, static_cast<std::size_t>(p - trace_at));
  p = put(p, "\",\"request_id\":\"");
  // Most requests carry no id of their own: it is the trace id, escaped once.
  bool same = request_id.data() == trace_id.data() && request_id.size() == trace_id.size();
  p = same ? put(p, escaped_trace) : put_escaped(p, request_id);
  p = put(p, "\",\"method\":\"");
  p = put_escaped(p, method);
  p = put(p, "\",\"route\":\"");
  p = put_escaped(p, route);
  p = put(p, "\",\"path\":\"");
  p = put_escaped(p, path);
  p = put(p, "\",\"status\":");
  p = put_uint(p, res.status);
  p = put(p, ",\"bytes\":");
  p = put_uint(p, ctx.method() == verb::head ? 0 : res.body.size());
  p = put(p, ",\"duration_ms\":");
  p = put_ms(p, us < 0 ? 0 : static_cast<std::uint64_t>(us));
  p = put(p, ",\"peer\":\"");
  p = put_endpoint(p, ctx.peer());
  *p++ = '"';
  if (!client.empty()) {
    p = put(p, ",\"client\":\"");
    p = put_escaped(p, client);
    *p++ = '"';
  }
  p = put(p, "}\n");
  log::write_line(std::string_view(begin, static_cast<std::size_t>(p - begin)));
  // A rare huge target should not pin its memory to the thread.
  if (path.capacity() > 64 * 1024) std::string().swap(path);
  if (buf.capacity > 256 * 1024) buf = line_buffer{};
}

// One response object in the coroutine frame, not two: a frame over 1020
// bytes misses Asio's per-thread frame cache and costs a malloc.
response logged(context& ctx, response res, clock::time_point started, state const& s) {
  steps::log_access(ctx, res, clock::now() - started, s);
  return res;
}

task<response> run(context& ctx, next n, state const& s) {
  auto started = clock::now();
  std::exception_ptr failure;
  try {
    auto res = co_await n();
    steps::log_access(ctx, res, clock::now() - started, s);
    co_return res;
  } catch (...) {
    failure = std::current_exception();
  }
  // Nothing inside caught it: log the response keel sends for it, and send that.
  co_return logged(ctx, response_for_exception(ctx, failure), started, s);
}

}  // namespace

void append_redacted_target(std::string& out, std::string_view target, std::vector<std::string> const& names) {
  std::size_t longest = 0;
  for (auto const& n : names) longest = std::max(longest, n.size());
  append_redacted(out, target, names, longest);
}

namespace steps {

std::shared_ptr<access_log_state const> make_access_log_state(access_log_options opts) {
  auto s = std::make_shared<access_log_state>();
  s->redact = std::move(opts.redact_query);
  for (auto const& n : s->redact) s->longest = std::max(s->longest, n.size());
  s->level = opts.level;
  return s;
}

void log_access(context& ctx, response const& res, clock::duration elapsed, access_log_state const& s) {
  if (log::enabled(s.level)) write_line(ctx, res, elapsed, s);
}

}  // namespace steps

middleware access_log(access_log_options opts) {
  auto s = steps::make_access_log_state(std::move(opts));
  return [s](context& ctx, next n) { return run(ctx, n, *s); };
}

}  // namespace keel::mw
