#include <keel/config.hpp>
#include <keel/log.hpp>

#include <boost/beast/core/string.hpp>
#include <boost/json.hpp>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <optional>
#include <system_error>
#include <utility>
#include <variant>

namespace keel {

namespace {

using namespace std::string_view_literals;

std::string_view trim(std::string_view s) {
  auto is_space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; };
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

bool is_digit(char c) { return c >= '0' && c <= '9'; }

char lower(char c) { return (c >= 'A' && c <= 'Z') ? char(c - 'A' + 'a') : c; }

using boost::beast::iequals;

std::string quoted(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 2);
  out += '"';
  // Values come from users and may hold control bytes; escaping keeps the
  // message on one readable line.
  log::append_escaped(out, s);
  out += '"';
  return out;
}

// A whole, unsigned number with optional fraction: "12", "1.5". Returns false
// on anything else. The fraction is kept as digits so callers can scale it
// exactly.
struct decimal {
  std::uint64_t whole = 0;
  std::uint64_t frac = 0;       // fraction digits as an integer
  std::uint64_t frac_scale = 1;  // 10^(number of fraction digits kept)
};

// Parses the leading number of `s`, advancing it. Fraction digits beyond 18
// are dropped: they cannot change a millisecond or byte result.
bool take_decimal(std::string_view& s, decimal& d) {
  std::size_t i = 0;
  bool any = false;
  while (i < s.size() && is_digit(s[i])) {
    if (d.whole > (std::numeric_limits<std::uint64_t>::max() - 9) / 10) return false;
    d.whole = d.whole * 10 + std::uint64_t(s[i] - '0');
    ++i;
    any = true;
  }
  if (i < s.size() && s[i] == '.') {
    ++i;
    int kept = 0;
    while (i < s.size() && is_digit(s[i])) {
      if (kept < 18) {
        d.frac = d.frac * 10 + std::uint64_t(s[i] - '0');
        d.frac_scale *= 10;
        ++kept;
      }
      ++i;
      any = true;
    }
  }
  s.remove_prefix(i);
  return any;
}

// whole * unit + frac * unit / scale, rounded to nearest, or nullopt on overflow.
std::optional<std::uint64_t> scale(decimal const& d, std::uint64_t unit) {
  std::uint64_t whole;
  if (__builtin_mul_overflow(d.whole, unit, &whole)) return std::nullopt;
  auto frac = static_cast<std::uint64_t>(
      (static_cast<unsigned __int128>(d.frac) * unit + d.frac_scale / 2) / d.frac_scale);
  std::uint64_t total;
  if (__builtin_add_overflow(whole, frac, &total)) return std::nullopt;
  return total;
}

std::invalid_argument bad_duration(std::string_view text, std::string_view why) {
  return std::invalid_argument("invalid duration " + quoted(text) + " (" + std::string(why) + ")");
}

std::invalid_argument bad_size(std::string_view text, std::string_view why) {
  return std::invalid_argument("invalid size " + quoted(text) + " (" + std::string(why) + ")");
}

std::uint64_t parse_count(std::string_view text) {
  std::string_view s = trim(text);
  std::uint64_t v = 0;
  if (s.empty()) throw std::invalid_argument("invalid number " + quoted(text) + " (a whole number >= 0)");
  for (char c : s) {
    if (!is_digit(c)) throw std::invalid_argument("invalid number " + quoted(text) + " (a whole number >= 0)");
    if (__builtin_mul_overflow(v, 10u, &v) || __builtin_add_overflow(v, std::uint64_t(c - '0'), &v))
      throw std::invalid_argument("invalid number " + quoted(text) + " (too large)");
  }
  return v;
}

bool parse_bool(std::string_view text) {
  std::string_view s = trim(text);
  for (auto t : {"true"sv, "1"sv, "on"sv, "yes"sv})
    if (iequals(s, t)) return true;
  for (auto f : {"false"sv, "0"sv, "off"sv, "no"sv})
    if (iequals(s, f)) return false;
  throw std::invalid_argument("invalid boolean " + quoted(text) + " (use true or false)");
}

std::vector<std::string> split_list(std::string_view text) {
  std::vector<std::string> out;
  while (true) {
    auto comma = text.find(',');
    auto item = trim(text.substr(0, comma));
    if (!item.empty()) out.emplace_back(item);
    if (comma == std::string_view::npos) break;
    text.remove_prefix(comma + 1);
  }
  return out;
}

// HOST:PORT with a bracketed IPv6 host. Only the shape is checked here: the
// name is resolved when the listener starts.
void check_address(std::string_view text) {
  auto fail = [&](std::string_view why) {
    throw std::invalid_argument("invalid address " + quoted(text) + " (" + std::string(why) + ")");
  };
  std::string_view host, port;
  if (!text.empty() && text.front() == '[') {
    auto close = text.find(']');
    if (close == std::string_view::npos) fail("unclosed '[' in an IPv6 address");
    host = text.substr(1, close - 1);
    if (host.find(':') == std::string_view::npos) fail("brackets are for IPv6 addresses");
    if (close + 1 >= text.size() || text[close + 1] != ':') fail("use HOST:PORT, e.g. [::1]:8080");
    port = text.substr(close + 2);
  } else {
    auto colon = text.rfind(':');
    if (colon == std::string_view::npos) fail("use HOST:PORT, e.g. 127.0.0.1:8080");
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) fail("put an IPv6 host in brackets, e.g. [::1]:8080");
  }
  if (host.empty()) fail("the host is missing: use 0.0.0.0:PORT for every interface");
  for (char c : host) {
    bool ok = is_digit(c) || (lower(c) >= 'a' && lower(c) <= 'z') || c == '.' || c == '-' ||
              c == '_' || c == ':' || c == '%';
    if (!ok) fail("the host has a character that is not allowed");
  }
  if (port.empty() || port.size() > 5 || !std::all_of(port.begin(), port.end(), is_digit))
    fail("the port must be a number from 0 to 65535");
  if (std::stoul(std::string(port)) > 65535) fail("the port must be a number from 0 to 65535");
}

std::string format_duration(milliseconds d) {
  auto ms = d.count();
  if (ms == 0) return "0s";
  if (ms % 3'600'000 == 0) return std::to_string(ms / 3'600'000) + "h";
  if (ms % 60'000 == 0) return std::to_string(ms / 60'000) + "m";
  if (ms % 1'000 == 0) return std::to_string(ms / 1'000) + "s";
  return std::to_string(ms) + "ms";
}

std::string format_size(std::size_t n) {
  if (n != 0 && n % (1024u * 1024 * 1024) == 0) return std::to_string(n >> 30) + "GiB";
  if (n != 0 && n % (1024u * 1024) == 0) return std::to_string(n >> 20) + "MiB";
  if (n != 0 && n % 1024 == 0) return std::to_string(n >> 10) + "KiB";
  return std::to_string(n);
}

std::string format_double(double v) {
  char buf[64];
  int n = std::snprintf(buf, sizeof buf, "%g", v);
  return std::string(buf, n > 0 ? std::size_t(n) : 0);
}

std::string join(std::vector<std::string> const& v) {
  std::string out;
  for (auto const& s : v) {
    if (!out.empty()) out += ',';
    out += s;
  }
  return out;
}

// What a setting's value means, which decides how it is parsed and checked.
enum class kind {
  text,          // any string
  address,       // HOST:PORT
  address_opt,   // HOST:PORT or empty
  level,         // debug|info|warn|error
  redis_url,     // redis://… or empty
  threads,       // whole number, 0 = CPUs
  count,         // whole number >= 1
  size,          // bytes with an optional unit
  duration,      // >= 0
  timeout,       // > 0
  boolean,
  list,
  factor,        // a number >= 1
};

using field_ptr = std::variant<std::string options::*, unsigned options::*, std::size_t options::*,
                               milliseconds options::*, bool options::*,
                               std::vector<std::string> options::*, milliseconds reconnect_policy::*,
                               double reconnect_policy::*>;

struct setting {
  std::string_view name;  // JSON spelling
  kind what;
  field_ptr field;
  std::string_view metavar;
  std::string_view help;
};

// The single table of server settings: flags, environment, file keys and
// usage() all come from it, so a setting cannot be reachable one way only.
setting const server_settings[] = {
    {"listen", kind::address, &options::listen, "HOST:PORT", "address to serve on; port 0 picks a free one"},
    {"threads", kind::threads, &options::threads, "N", "I/O threads; 0 = the CPUs in the affinity mask"},
    {"header_timeout", kind::timeout, &options::header_timeout, "DURATION", "time to read a request head"},
    {"body_timeout", kind::timeout, &options::body_timeout, "DURATION", "time between reads of a body"},
    {"body_min_rate", kind::size, &options::body_min_rate, "BYTES", "minimum average body rate per second"},
    {"body_min_rate_grace", kind::duration, &options::body_min_rate_grace, "DURATION", "time before body_min_rate applies"},
    {"idle_timeout", kind::timeout, &options::idle_timeout, "DURATION", "keep-alive wait for the next request"},
    {"write_timeout", kind::timeout, &options::write_timeout, "DURATION", "time between writes"},
    {"handler_timeout", kind::timeout, &options::handler_timeout, "DURATION", "handler deadline (504 when it passes)"},
    {"max_head", kind::size, &options::max_head, "BYTES", "largest request head (431)"},
    {"max_header_count", kind::count, &options::max_header_count, "N", "most header fields in a request (431)"},
    {"max_body", kind::size, &options::max_body, "BYTES", "largest request body (413)"},
    {"max_connections", kind::count, &options::max_connections, "N", "open connections before new ones are refused"},
    {"max_connections_per_client", kind::count, &options::max_connections_per_client, "N",
     "open connections from one client address (trusted proxies exempt)"},
    {"ws_handshake_timeout", kind::timeout, &options::ws_handshake_timeout, "DURATION", "time for a WebSocket upgrade"},
    {"ws_ping_interval", kind::timeout, &options::ws_ping_interval, "DURATION", "silence before a WebSocket ping"},
    {"ws_pong_timeout", kind::timeout, &options::ws_pong_timeout, "DURATION", "wait for a pong before closing"},
    {"ws_max_message", kind::size, &options::ws_max_message, "BYTES", "largest WebSocket message (close 1009)"},
    {"ws_send_queue", kind::size, &options::ws_send_queue, "BYTES", "queued bytes per WebSocket before close 1008"},
    {"ws_permessage_deflate", kind::boolean, &options::ws_permessage_deflate, "BOOL", "offer permessage-deflate"},
    {"ws_allowed_origins", kind::list, &options::ws_allowed_origins, "LIST", "origins allowed to upgrade; none = same host, * = any"},
    {"drain_timeout", kind::timeout, &options::drain_timeout, "DURATION", "longest graceful drain"},
    {"drain_delay", kind::duration, &options::drain_delay, "DURATION", "readiness 503 before accepting stops"},
    {"trusted_proxies", kind::list, &options::trusted_proxies, "LIST", "CIDRs whose Forwarded/X-Forwarded-For are believed"},
    {"admin_listen", kind::address_opt, &options::admin_listen, "HOST:PORT", "separate listener for /metrics, /healthz, /readyz"},
    {"dev_mode", kind::boolean, &options::dev_mode, "BOOL", "put exception text in problem bodies"},
    {"tls_cert", kind::text, &options::tls_cert, "FILE", "TLS certificate chain (PEM); enables TLS"},
    {"tls_key", kind::text, &options::tls_key, "FILE", "TLS private key (PEM)"},
    {"tls_handshake_timeout", kind::timeout, &options::tls_handshake_timeout, "DURATION", "time for a TLS handshake"},
    {"https_redirect", kind::address_opt, &options::https_redirect, "HOST:PORT",
     "plain-HTTP listener that redirects every request to the https one (needs tls_cert)"},
    {"sse_heartbeat", kind::timeout, &options::sse_heartbeat, "DURATION", "comment line interval on idle SSE streams"},
    {"log_level", kind::level, &options::log_level, "LEVEL", "debug, info, warn or error"},
    {"offload_threads", kind::count, &options::offload_threads, "N", "threads for blocking work"},
    {"offload_queue", kind::count, &options::offload_queue, "N", "queued blocking jobs before 503"},
    {"reconnect_base", kind::timeout, &reconnect_policy::base, "DURATION", "WebSocket client: first reconnect delay"},
    {"reconnect_multiplier", kind::factor, &reconnect_policy::multiplier, "X", "WebSocket client: delay growth per attempt"},
    {"reconnect_cap", kind::timeout, &reconnect_policy::cap, "DURATION", "WebSocket client: longest reconnect delay"},
    {"reconnect_reset_after", kind::timeout, &reconnect_policy::reset_after, "DURATION", "WebSocket client: connected time that resets the delay"},
    {"redis", kind::redis_url, &options::redis, "URL", "redis://HOST:PORT/DB for cross-instance fan-out"},
};

setting const* find_server_setting(std::string_view name) {
  for (auto const& s : server_settings)
    if (s.name == name) return &s;
  return nullptr;
}

// Names reserved by the loader itself.
bool is_reserved(std::string_view name) { return name == "config" || name == "help" || name == "reconnect"; }

std::string flag_of(std::string_view name) {
  std::string f = "--";
  for (char c : name) f += (c == '_') ? '-' : c;
  return f;
}

std::string env_of(std::string_view name) {
  std::string e = "KEEL_";
  for (char c : name) e += (c >= 'a' && c <= 'z') ? char(c - 'a' + 'A') : c;
  return e;
}

std::string to_string(options const& o, setting const& s) {
  return std::visit(
      [&](auto ptr) -> std::string {
        using P = decltype(ptr);
        if constexpr (std::is_same_v<P, std::string options::*>) {
          return o.*ptr;
        } else if constexpr (std::is_same_v<P, unsigned options::*>) {
          return std::to_string(o.*ptr);
        } else if constexpr (std::is_same_v<P, std::size_t options::*>) {
          return s.what == kind::size ? format_size(o.*ptr) : std::to_string(o.*ptr);
        } else if constexpr (std::is_same_v<P, milliseconds options::*>) {
          return format_duration(o.*ptr);
        } else if constexpr (std::is_same_v<P, bool options::*>) {
          return o.*ptr ? "true" : "false";
        } else if constexpr (std::is_same_v<P, std::vector<std::string> options::*>) {
          return join(o.*ptr);
        } else if constexpr (std::is_same_v<P, milliseconds reconnect_policy::*>) {
          return format_duration(o.reconnect.*ptr);
        } else {
          return format_double(o.reconnect.*ptr);
        }
      },
      s.field);
}

// Parses `value` for setting `s` into `o`. Throws std::invalid_argument with
// a message that names the value; the caller prefixes the setting.
void assign(options& o, setting const& s, std::string_view value) {
  std::visit(
      [&](auto ptr) {
        using P = decltype(ptr);
        if constexpr (std::is_same_v<P, std::string options::*>) {
          std::string v(trim(value));
          if (s.what == kind::address || (s.what == kind::address_opt && !v.empty())) check_address(v);
          if (s.what == kind::level) {
            log::parse_level(v);
            for (char& c : v) c = lower(c);
          }
          if (s.what == kind::redis_url && !v.empty() && v.rfind("redis://", 0) != 0)
            throw std::invalid_argument("invalid URL " + quoted(value) + " (use redis://HOST:PORT/DB)");
          o.*ptr = std::move(v);
        } else if constexpr (std::is_same_v<P, unsigned options::*>) {
          auto n = parse_count(value);
          if (n > std::numeric_limits<unsigned>::max())
            throw std::invalid_argument("invalid number " + quoted(value) + " (too large)");
          o.*ptr = static_cast<unsigned>(n);
        } else if constexpr (std::is_same_v<P, std::size_t options::*>) {
          std::size_t n = s.what == kind::size ? parse_size(value) : parse_count(value);
          if (s.what == kind::count && n < 1)
            throw std::invalid_argument("invalid number " + quoted(value) + " (must be at least 1)");
          o.*ptr = n;
        } else if constexpr (std::is_same_v<P, milliseconds options::*> ||
                             std::is_same_v<P, milliseconds reconnect_policy::*>) {
          auto d = parse_duration(value);
          if (s.what == kind::timeout && d.count() <= 0)
            throw std::invalid_argument("invalid duration " + quoted(value) + " (must be greater than 0)");
          if constexpr (std::is_same_v<P, milliseconds options::*>)
            o.*ptr = d;
          else
            o.reconnect.*ptr = d;
        } else if constexpr (std::is_same_v<P, bool options::*>) {
          o.*ptr = parse_bool(value);
        } else if constexpr (std::is_same_v<P, std::vector<std::string> options::*>) {
          o.*ptr = split_list(value);
        } else {
          std::string v(trim(value));
          char* end = nullptr;
          errno = 0;
          double x = v.empty() ? 0.0 : std::strtod(v.c_str(), &end);
          if (v.empty() || end != v.c_str() + v.size() || errno != 0 || !std::isfinite(x) || x < 1.0)
            throw std::invalid_argument("invalid number " + quoted(value) + " (a number >= 1, e.g. 2 or 1.5)");
          o.reconnect.*ptr = x;
        }
      },
      s.field);
}

std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diag = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      std::size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

// Builds "<line>:<column>" for a byte offset, for JSON syntax errors.
std::string position_of(std::string_view text, std::size_t offset) {
  std::size_t line = 1, col = 1;
  for (std::size_t i = 0; i < offset && i < text.size(); ++i) {
    if (text[i] == '\n') {
      ++line;
      col = 1;
    } else {
      ++col;
    }
  }
  return "line " + std::to_string(line) + ", column " + std::to_string(col);
}

std::string read_file(std::string const& path, std::string const& origin) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) {
    int e = errno;
    throw config_error(origin + ": cannot open: " + std::generic_category().message(e));
  }
  std::string data;
  char buf[8192];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) data.append(buf, n);
  bool failed = std::ferror(f) != 0;
  std::fclose(f);
  if (failed) throw config_error(origin + ": cannot read");
  return data;
}

}  // namespace

std::chrono::milliseconds parse_duration(std::string_view text) {
  std::string_view s = trim(text);
  if (s.empty()) throw bad_duration(text, "empty; use a unit: 250ms, 10s, 2m");
  if (s.front() == '-') throw bad_duration(text, "must not be negative");
  if (s.front() == '+') s.remove_prefix(1);
  // A bare zero is unambiguous; every other number needs its unit.
  if (s == "0") return milliseconds{0};
  std::uint64_t total = 0;
  // Go-style sequences ("1m30s") are accepted: each number carries its own unit.
  while (!s.empty()) {
    decimal d;
    if (!take_decimal(s, d)) throw bad_duration(text, "use a unit: 250ms, 10s, 2m");
    std::uint64_t unit = 0;
    if (s.rfind("ms", 0) == 0) {
      unit = 1;
      s.remove_prefix(2);
    } else if (!s.empty() && s.front() == 's') {
      unit = 1'000;
      s.remove_prefix(1);
    } else if (!s.empty() && s.front() == 'm') {
      unit = 60'000;
      s.remove_prefix(1);
    } else if (!s.empty() && s.front() == 'h') {
      unit = 3'600'000;
      s.remove_prefix(1);
    } else {
      throw bad_duration(text, "use a unit: 250ms, 10s, 2m");
    }
    auto part = scale(d, unit);
    // Deadlines are steady_clock time points in nanoseconds: now + ~292 years
    // overflows and is already past. No timeout needs more than a year.
    constexpr std::uint64_t longest = 8760ull * 3'600'000;
    if (!part || __builtin_add_overflow(total, *part, &total) || total > longest)
      throw bad_duration(text, "too large (at most 8760h, one year)");
    if (*part == 0 && (d.whole != 0 || d.frac != 0))
      throw bad_duration(text, "below the 1ms resolution");
  }
  return milliseconds{static_cast<milliseconds::rep>(total)};
}

std::size_t parse_size(std::string_view text) {
  std::string_view s = trim(text);
  if (s.empty()) throw bad_size(text, "empty; use bytes or a unit: 1024, 64KiB, 1MiB");
  if (s.front() == '-') throw bad_size(text, "must not be negative");
  decimal d;
  if (!take_decimal(s, d)) throw bad_size(text, "use bytes or a unit: 1024, 64KiB, 1MiB");
  s = trim(s);
  std::uint64_t unit = 0;
  struct suffix {
    std::string_view text;
    std::uint64_t factor;
  };
  // KB/MB/GB are taken as powers of 1024: that is what people mean when they
  // write them for a buffer limit, and the two readings must not coexist.
  static constexpr suffix suffixes[] = {
      {"", 1},          {"b", 1},
      {"k", 1ull << 10}, {"kb", 1ull << 10}, {"kib", 1ull << 10},
      {"m", 1ull << 20}, {"mb", 1ull << 20}, {"mib", 1ull << 20},
      {"g", 1ull << 30}, {"gb", 1ull << 30}, {"gib", 1ull << 30},
      {"t", 1ull << 40}, {"tb", 1ull << 40}, {"tib", 1ull << 40},
  };
  for (auto const& sfx : suffixes)
    if (iequals(s, sfx.text)) unit = sfx.factor;
  if (unit == 0) throw bad_size(text, "use bytes or a unit: 1024, 64KiB, 1MiB");
  auto n = scale(d, unit);
  if (!n || *n > std::numeric_limits<std::size_t>::max()) throw bad_size(text, "too large");
  return static_cast<std::size_t>(*n);
}

config::config(std::string program) : program_(std::move(program)) {}

config& config::add(std::string name, std::string default_value, std::string help) {
  bool ok = !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || is_digit(c) || c == '_';
  });
  if (!ok) throw std::invalid_argument("config::add: setting name \"" + name + "\" must be lowercase snake_case");
  if (find_server_setting(name) || is_reserved(name) || app_.count(name))
    throw std::invalid_argument("config::add: setting \"" + name + "\" is already defined");
  app_setting s;
  s.default_value = default_value;
  s.value = std::move(default_value);
  s.help = std::move(help);
  app_.emplace(std::move(name), std::move(s));
  return *this;
}

config& config::add_flag(std::string name, std::string help) {
  auto const key = name;
  add(std::move(name), "false", std::move(help));
  app_.find(key)->second.is_flag = true;
  return *this;
}

void config::load(int argc, char** argv) {
  std::vector<std::string> args;
  for (int i = 1; i < argc; ++i) args.emplace_back(argv[i]);
  load(args, [](char const* name) -> char const* { return std::getenv(name); });
}

// `source` is how the setting was spelled where the value came from; every
// error names it and the value, so a user can find the line to fix.
void config::set(std::string_view name, std::string_view value, std::string_view source) {
  try {
    if (auto const* s = find_server_setting(name)) {
      assign(server_, *s, value);
      return;
    }
    auto it = app_.find(name);
    if (it == app_.end()) throw std::invalid_argument("unknown setting");
    if (it->second.is_flag) {
      it->second.value = parse_bool(value) ? "true" : "false";
    } else {
      it->second.value = std::string(value);
    }
  } catch (std::invalid_argument const& e) {
    throw config_error(std::string(source) + ": " + e.what());
  }
}

namespace {

struct flag_spec {
  bool known = false;
  bool boolean = false;
};

// One flag from the command line, to be applied after the file and the environment.
struct parsed_flag {
  std::string name;  // JSON spelling
  std::string value;
  std::string spelling;
};

// The command line, read but not yet applied.
struct command_line {
  std::vector<parsed_flag> flags;
  std::optional<std::string> config_file;  // --config
  std::optional<config_error> error;       // the first one, thrown unless --help was given
};

void note(command_line& cli, std::string const& message) {
  if (!cli.error) cli.error = config_error(message);
}

// Reads the JSON object of a config file; `origin` names the file in errors.
boost::json::value parse_file(std::string const& path, std::string const& origin) {
  std::string text = read_file(path, origin);
  boost::json::parse_options popts;
  // Config files are written by people: comments and a trailing comma
  // should not cost a failed deploy.
  popts.allow_comments = true;
  popts.allow_trailing_commas = true;
  boost::json::stream_parser parser({}, popts);
  boost::system::error_code ec;
  std::size_t used = parser.write_some(text.data(), text.size(), ec);
  if (!ec && used < text.size())
    throw config_error(origin + ": invalid JSON at " + position_of(text, used) +
                       ": unexpected text after the object");
  if (!ec) parser.finish(ec);
  if (ec) throw config_error(origin + ": invalid JSON at " + position_of(text, used) + ": " + ec.message());
  boost::json::value root = parser.release();
  if (!root.is_object()) throw config_error(origin + ": must hold a JSON object of settings");
  return root;
}

}  // namespace

// load()'s steps, in the order of precedence: command line read, file,
// environment, flags applied, then the checks across settings.
class config::loader {
 public:
  loader(config& c, std::function<char const*(char const*)> const& getenv) : c_(c), getenv_(getenv) {}

  // Flags are parsed first but applied last: the file they may name has to be
  // read before them, and --help must win over any error.
  command_line read_command_line(std::vector<std::string> const& args) {
    command_line cli;
    for (std::size_t i = 0; i < args.size(); ++i) {
      std::string const& arg = args[i];
      if (arg == "--") {
        for (++i; i < args.size(); ++i) c_.positional_.push_back(args[i]);
        break;
      }
      if (arg == "--help" || arg == "-h") {
        c_.help_ = true;
      } else if (arg.rfind("--", 0) != 0) {
        take_positional(arg, cli);
      } else {
        take_flag(args, i, cli);
      }
    }
    return cli;
  }

  // The file named by --config, else by KEEL_CONFIG; applied key by key.
  void apply_file(std::optional<std::string> config_file) {
    std::string origin;
    if (config_file) {
      origin = "config file " + *config_file;
    } else if (char const* env = getenv_("KEEL_CONFIG"); env && *env) {
      config_file = env;
      origin = "config file " + *config_file + " (from KEEL_CONFIG)";
    }
    if (!config_file) return;
    if (config_file->empty()) throw config_error("--config: missing file name");
    boost::json::value root = parse_file(*config_file, origin);
    for (auto const& [k, v] : root.get_object()) {
      std::string key(k);
      if (key == "reconnect" && v.is_object()) {
        // The policy reads naturally as one object; it is the same four settings.
        for (auto const& [sk, sv] : v.get_object()) {
          std::string sub(sk);
          if (sub != "base" && sub != "multiplier" && sub != "cap" && sub != "reset_after")
            throw config_error(origin + ": unknown setting " + quoted("reconnect." + sub));
          apply_file_setting(origin, "reconnect_" + sub, sv);
        }
        continue;
      }
      apply_file_setting(origin, key, v);
    }
  }

  // Only known names are looked up: other KEEL_* variables may belong to other
  // tools. An empty variable counts as unset, as in most deploy tooling where
  // `KEEL_X=` is how a value gets blanked out of a template.
  void apply_environment() {
    auto from_env = [&](std::string_view name) {
      std::string var = env_of(name);
      char const* v = getenv_(var.c_str());
      if (v && *v) c_.set(name, v, var + " (" + flag_of(name) + ")");
    };
    for (auto const& s : server_settings) from_env(s.name);
    for (auto const& [name, s] : c_.app_) from_env(name);
  }

  void apply_flags(std::vector<parsed_flag> const& flags) {
    for (auto const& f : flags) c_.set(f.name, f.value, f.spelling);
  }

  // Settings that are valid alone but not together.
  void check_combinations() const {
    options const& o = c_.server_;
    if (o.tls_cert.empty() != o.tls_key.empty())
      throw config_error("--tls-cert and --tls-key must be given together");
    if (!o.https_redirect.empty() && o.tls_cert.empty())
      throw config_error("--https-redirect needs --tls-cert and --tls-key: there is no https listener to redirect to");
    if (o.reconnect.cap < o.reconnect.base)
      throw config_error("--reconnect-cap: " + format_duration(o.reconnect.cap) +
                         " is below --reconnect-base " + format_duration(o.reconnect.base));
  }

 private:
  void take_positional(std::string const& arg, command_line& cli) {
    // A single dash is almost always a mistyped flag (-threads): refusing it
    // beats silently taking it for a positional argument. A lone "-" is the
    // usual stdin placeholder and stays positional.
    if (arg.size() > 1 && arg[0] == '-') {
      note(cli, "unknown flag " + arg + " (flags start with --)");
      return;
    }
    c_.positional_.push_back(arg);
  }

  // `--name`, `--name=value` or `--name value` (which consumes args[i + 1]).
  void take_flag(std::vector<std::string> const& args, std::size_t& i, command_line& cli) {
    std::string_view body = std::string_view(args[i]).substr(2);
    std::optional<std::string> inline_value;
    if (auto eq = body.find('='); eq != std::string_view::npos) {
      inline_value = std::string(body.substr(eq + 1));
      body = body.substr(0, eq);
    }
    std::string spelling = "--" + std::string(body);
    std::string name;
    bool well_formed = !body.empty() && body.find('_') == std::string_view::npos;
    for (char c : body) name += (c == '-') ? '_' : c;
    flag_spec spec = well_formed ? lookup(name) : flag_spec{};
    if (!spec.known) {
      if (!cli.error) note(cli, "unknown flag " + spelling + suggest(spelling, flag_of));
      return;
    }
    std::string value;
    if (inline_value) {
      value = *inline_value;
    } else if (spec.boolean) {
      // A bare boolean flag means true; "--dev-mode false" would be ambiguous
      // with a positional argument, so false needs "--dev-mode=false".
      value = "true";
    } else if (i + 1 < args.size() && args[i + 1].rfind("--", 0) != 0) {
      value = args[++i];
    } else {
      note(cli, spelling + ": missing value");
      return;
    }
    if (name == "config") {
      cli.config_file = value;
      return;
    }
    cli.flags.push_back({std::move(name), std::move(value), std::move(spelling)});
  }

  flag_spec lookup(std::string_view name) const {
    flag_spec spec;
    if (auto const* s = find_server_setting(name)) {
      spec.known = true;
      spec.boolean = s->what == kind::boolean;
    } else if (auto it = c_.app_.find(name); it != c_.app_.end()) {
      spec.known = true;
      spec.boolean = it->second.is_flag;
    } else if (name == "config") {
      spec.known = true;
    }
    return spec;
  }

  // " (did you mean X?)" for the known name nearest to `typed`, or "".
  std::string suggest(std::string const& typed, std::string (*spell)(std::string_view)) const {
    std::string best;
    std::size_t best_d = 3;
    // Compared in the spelling the user typed, so "--header_timeout" is one
    // edit from "--header-timeout". An exact match is a name known only in
    // another place ("config" inside the file): suggesting it would confuse.
    auto consider = [&](std::string_view candidate) {
      std::string spelled = spell(candidate);
      auto d = edit_distance(typed, spelled);
      if (d > 0 && d < best_d) {
        best_d = d;
        best = std::move(spelled);
      }
    };
    for (auto const& s : server_settings) consider(s.name);
    for (auto const& [n, s] : c_.app_) consider(n);
    consider("config");
    return best.empty() ? std::string() : " (did you mean " + best + "?)";
  }

  // One key of the file: a string is parsed like a flag's value; a JSON
  // boolean, number or array only where the setting's kind takes it.
  void apply_file_setting(std::string const& origin, std::string const& key, boost::json::value const& v) {
    auto where = origin + ": " + quoted(key);
    setting const* s = find_server_setting(key);
    auto app = c_.app_.find(key);
    if (!s && app == c_.app_.end())
      throw config_error(origin + ": unknown setting " + quoted(key) + suggest(quoted(key), quoted));
    where += " (" + flag_of(key) + ")";
    bool is_bool = s ? s->what == kind::boolean : app->second.is_flag;
    bool numeric_ok = s && (s->what == kind::threads || s->what == kind::count ||
                            s->what == kind::size || s->what == kind::factor);
    if (v.is_string()) {
      c_.set(key, v.get_string(), where);
    } else if (v.is_bool() && is_bool) {
      c_.set(key, v.get_bool() ? "true" : "false", where);
    } else if (v.is_array() && s && s->what == kind::list) {
      std::vector<std::string> items;
      for (auto const& e : v.get_array()) {
        if (!e.is_string())
          throw config_error(where + ": list items must be strings, got " + boost::json::serialize(e));
        items.emplace_back(e.get_string());
      }
      c_.server_.*std::get<std::vector<std::string> options::*>(s->field) = std::move(items);
    } else if (v.is_number() && numeric_ok && !(v.is_double() && s->what != kind::factor)) {
      c_.set(key, boost::json::serialize(v), where);
    } else if (v.is_number() && s && (s->what == kind::duration || s->what == kind::timeout)) {
      throw config_error(where + ": invalid duration " + boost::json::serialize(v) +
                         " (use a string with a unit: \"250ms\", \"10s\", \"2m\")");
    } else {
      throw config_error(where + ": unexpected value " + boost::json::serialize(v));
    }
  }

  config& c_;
  std::function<char const*(char const*)> const& getenv_;
};

void config::load(std::vector<std::string> const& args,
                  std::function<char const*(char const*)> const& getenv) {
  defaults_ = server_;
  positional_.clear();
  help_ = false;
  loader steps(*this, getenv);
  command_line cli = steps.read_command_line(args);
  // With --help nothing is applied or checked: the user asked how to fix the
  // command line, not to be told again that it is wrong.
  if (help_) return;
  if (cli.error) throw config_error(*cli.error);
  steps.apply_file(cli.config_file);
  steps.apply_environment();
  steps.apply_flags(cli.flags);
  steps.check_combinations();
}

std::string const& config::get(std::string_view name) const {
  auto it = app_.find(name);
  if (it == app_.end()) throw std::out_of_range("keel::config: no app setting \"" + std::string(name) + "\"");
  return it->second.value;
}

bool config::get_bool(std::string_view name) const {
  std::string const& v = get(name);
  try {
    return parse_bool(v);
  } catch (std::invalid_argument const& e) {
    throw config_error(flag_of(name) + ": " + e.what());
  }
}

std::string config::usage() const {
  auto show = [](std::string const& v) { return v.empty() ? std::string("(none)") : v; };
  std::string out = "usage: " + program_ + " [flags]";
  out +=
      "\n\nEvery setting has three spellings, lowest precedence first: a key in the JSON file"
      "\nnamed by --config FILE or KEEL_CONFIG (header_timeout), an environment variable"
      "\n(KEEL_HEADER_TIMEOUT) and a flag (--header-timeout 10s or --header-timeout=10s)."
      "\nDurations carry a unit (250ms, 10s, 2m, 1h); sizes are bytes or carry KiB/MiB/GiB;"
      "\nbooleans are true/false (a bare boolean flag means true); lists are comma-separated"
      "\n(JSON arrays in the file).\n\n";
  auto line = [&](std::string_view left, std::string_view help, std::string const& def) {
    out += "  ";
    out += left;
    out.append(left.size() < 34 ? 34 - left.size() : 1, ' ');
    out += help;
    if (!def.empty()) {
      out += " [default ";
      out += def;
      out += ']';
    }
    out += '\n';
  };
  line("--config FILE", "JSON file of settings (KEEL_CONFIG)", "");
  line("--help, -h", "print this help", "");
  if (!app_.empty()) {
    out += "\n" + program_ + " settings:\n";
    for (auto const& [name, s] : app_) {
      std::string left = flag_of(name) + (s.is_flag ? std::string() : std::string(" VALUE"));
      line(std::move(left), s.help, s.is_flag ? s.default_value : show(s.default_value));
    }
  }
  out += "\nserver settings:\n";
  for (auto const& s : server_settings) {
    std::string left = flag_of(s.name) + " " + std::string(s.metavar);
    line(std::move(left), s.help, show(to_string(defaults_, s)));
  }
  return out;
}

}  // namespace keel
