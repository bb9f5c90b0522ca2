#include "http/client_address.hpp"

#include <keel/config.hpp>

#include <algorithm>
#include <charconv>
#include <optional>

namespace keel::detail {

namespace {

using address = asio::ip::address;

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           auto low = [](char c) { return c >= 'A' && c <= 'Z' ? char(c - 'A' + 'a') : c; };
           return low(x) == low(y);
         });
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// A port after a node: digits, or RFC 7239's obfuscated "_name".
bool valid_port(std::string_view p) {
  if (p.empty() || p.size() > 64) return false;
  if (p.front() == '_') return true;
  return p.size() <= 5 && std::all_of(p.begin(), p.end(), [](char c) { return c >= '0' && c <= '9'; });
}

std::optional<address> make(std::string_view text) {
  if (text.empty() || text.size() > 64) return std::nullopt;
  boost::system::error_code ec;
  auto a = asio::ip::make_address(std::string(text), ec);
  if (ec) return std::nullopt;
  return unmapped(a);
}

// One hop as proxies write it: 192.0.2.7, 192.0.2.7:4711, 2001:db8::1,
// [2001:db8::1] or [2001:db8::1]:4711. Anything else (RFC 7239's "unknown"
// and obfuscated names included) is not an address.
std::optional<address> parse_node(std::string_view s) {
  s = trim(s);
  if (!s.empty() && s.front() == '[') {
    auto close = s.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    auto rest = s.substr(close + 1);
    if (!rest.empty() && (rest.front() != ':' || !valid_port(rest.substr(1)))) return std::nullopt;
    auto a = make(s.substr(1, close - 1));
    if (a && !a->is_v6()) return std::nullopt;  // brackets are for IPv6 only
    return a;
  }
  auto colons = std::count(s.begin(), s.end(), ':');
  if (colons == 1) {
    auto colon = s.find(':');
    if (!valid_port(s.substr(colon + 1))) return std::nullopt;
    auto a = make(s.substr(0, colon));
    if (a && !a->is_v4()) return std::nullopt;
    return a;
  }
  return make(s);
}

// Splits on `sep` outside quoted strings.
template <class F>
void split_outside_quotes(std::string_view s, char sep, F each) {
  bool quoted = false, escaped = false;
  std::size_t start = 0;
  for (std::size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (escaped) {
      escaped = false;
    } else if (quoted && c == '\\') {
      escaped = true;
    } else if (c == '"') {
      quoted = !quoted;
    } else if (c == sep && !quoted) {
      each(s.substr(start, i - start));
      start = i + 1;
    }
  }
  each(s.substr(start));
}

std::string unquote(std::string_view v) {
  if (v.size() < 2 || v.front() != '"' || v.back() != '"') return std::string(v);
  std::string out;
  for (std::size_t i = 1; i + 1 < v.size(); ++i) {
    if (v[i] == '\\' && i + 2 < v.size()) ++i;
    out += v[i];
  }
  return out;
}

// Each Forwarded element's `for` node, in order; an element without one
// yields an empty node (not an address).
std::vector<std::string> forwarded_hops(std::vector<std::string_view> const& fields) {
  std::vector<std::string> hops;
  for (auto field : fields) {
    split_outside_quotes(field, ',', [&](std::string_view element) {
      std::string node;
      split_outside_quotes(element, ';', [&](std::string_view pair) {
        auto eq = pair.find('=');
        if (eq != std::string_view::npos && iequals(trim(pair.substr(0, eq)), "for")) {
          node = unquote(trim(pair.substr(eq + 1)));
        }
      });
      hops.push_back(std::move(node));
    });
  }
  return hops;
}

std::vector<std::string> list_hops(std::vector<std::string_view> const& fields) {
  std::vector<std::string> hops;
  for (auto field : fields) {
    // X-Forwarded-For has no quoted strings: a client's stray quote must not
    // join its own hop to the one the proxy appended.
    while (true) {
      auto comma = field.find(',');
      hops.emplace_back(trim(field.substr(0, comma)));
      if (comma == std::string_view::npos) break;
      field.remove_prefix(comma + 1);
    }
  }
  return hops;
}

}  // namespace

address unmapped(address const& a) {
  if (a.is_v6() && a.to_v6().is_v4_mapped()) {
    return asio::ip::make_address_v4(asio::ip::v4_mapped, a.to_v6());
  }
  return a;
}

trusted_proxies::trusted_proxies(std::vector<std::string> const& cidrs) {
  for (auto const& entry : cidrs) {
    auto bad = [&] {
      return config_error("trusted_proxies: \"" + entry +
                          "\" is not a CIDR (e.g. 10.0.0.0/8, fd00::/8, or one address such as 192.0.2.7)");
    };
    std::string_view text = trim(entry);
    auto slash = text.find('/');
    auto a = make(text.substr(0, slash));
    if (!a) throw bad();
    block b;
    b.v4 = a->is_v4();
    // An IPv4-mapped block (::ffff:10.0.0.0/104) is an IPv4 block (/8).
    bool mapped = b.v4 && text.substr(0, slash).find(':') != std::string_view::npos;
    unsigned max_bits = b.v4 && !mapped ? 32 : 128;
    b.bits = max_bits;
    if (slash != std::string_view::npos) {
      auto digits = text.substr(slash + 1);
      auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), b.bits);
      if (digits.empty() || ec != std::errc() || end != digits.data() + digits.size() || b.bits > max_bits) throw bad();
    }
    if (mapped) {
      if (b.bits < 96) throw bad();
      b.bits -= 96;
    }
    if (b.v4) {
      auto bytes = a->to_v4().to_bytes();
      std::copy(bytes.begin(), bytes.end(), b.net.begin());
    } else {
      b.net = a->to_v6().to_bytes();
    }
    // Host bits are masked off: 10.1.2.3/8 is 10.0.0.0/8.
    for (unsigned i = 0; i < 16; ++i) {
      unsigned keep = b.bits > i * 8 ? std::min(8u, b.bits - i * 8) : 0;
      b.net[i] &= static_cast<std::uint8_t>(0xff00u >> keep);
    }
    blocks_.push_back(b);
  }
}

bool trusted_proxies::contains(address const& addr) const {
  auto a = unmapped(addr);
  std::array<std::uint8_t, 16> bytes{};
  if (a.is_v4()) {
    auto v4 = a.to_v4().to_bytes();
    std::copy(v4.begin(), v4.end(), bytes.begin());
  } else {
    bytes = a.to_v6().to_bytes();
  }
  for (auto const& b : blocks_) {
    if (b.v4 != a.is_v4()) continue;
    bool inside = true;
    for (unsigned i = 0; i < 16 && inside; ++i) {
      unsigned keep = b.bits > i * 8 ? std::min(8u, b.bits - i * 8) : 0;
      auto mask = static_cast<std::uint8_t>(0xff00u >> keep);
      inside = (bytes[i] & mask) == b.net[i];
    }
    if (inside) return true;
  }
  return false;
}

address trusted_proxies::client(address const& peer, std::vector<std::string_view> const& forwarded,
                                 std::vector<std::string_view> const& x_forwarded_for) const {
  auto p = unmapped(peer);
  if (!contains(p)) return p;
  // The rightmost untrusted hop; the leftmost when every hop is trusted.
  // A hop that is not an address was written by someone we cannot believe:
  // the last trusted hop before it stands for the client, never the peer,
  // which every client of that proxy shares.
  auto walk = [this](std::vector<std::string> const& hops) -> std::optional<address> {
    std::optional<address> last_trusted;
    for (auto i = hops.size(); i-- > 0;) {
      auto a = parse_node(hops[i]);
      if (!a) return last_trusted;
      if (!contains(*a) || i == 0) return a;
      last_trusted = a;
    }
    return std::nullopt;
  };
  std::optional<address> by_forwarded, by_list;
  if (!forwarded.empty()) by_forwarded = walk(forwarded_hops(forwarded));
  if (!x_forwarded_for.empty()) by_list = walk(list_hops(x_forwarded_for));
  // A proxy writes one of the two and passes the other through from the
  // client: when they disagree, the client is trying to choose its address.
  if (!forwarded.empty() && !x_forwarded_for.empty()) {
    return by_forwarded && by_list && *by_forwarded == *by_list ? *by_forwarded : p;
  }
  if (by_forwarded) return *by_forwarded;
  if (by_list) return *by_list;
  return p;
}

address trusted_proxies::client(address const& peer, request const& req) const {
  if (!contains(peer)) return unmapped(peer);
  std::vector<std::string_view> forwarded, list;
  for (auto const& h : req.headers()) {
    if (iequals(h.name, "forwarded")) forwarded.push_back(h.value);
    else if (iequals(h.name, "x-forwarded-for")) list.push_back(h.value);
  }
  return client(peer, forwarded, list);
}

}  // namespace keel::detail
