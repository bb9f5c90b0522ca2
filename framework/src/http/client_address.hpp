#pragma once
// The client address behind trusted proxies (SPEC §2 `trusted_proxies`).
//
// Only a TCP peer inside a trusted CIDR is believed about who it forwards for:
// `Forwarded` (RFC 7239, its `for=` nodes) or `X-Forwarded-For` are walked
// from the rightmost hop leftwards past trusted proxies, and the first
// untrusted hop is the client. Hops left of it are never read, so whatever a
// client prepends cannot choose its address. docs/configuration.md has the
// rules for malformed headers, all-trusted chains and both headers at once.
#include <keel/net.hpp>
#include <keel/request.hpp>

#include <boost/asio/ip/address.hpp>

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace keel::detail {

class trusted_proxies {
 public:
  trusted_proxies() = default;
  /// Parses CIDRs ("10.0.0.0/8", "fd00::/8"; a bare address is one host).
  /// Throws keel::config_error naming `trusted_proxies` and the entry.
  explicit trusted_proxies(std::vector<std::string> const& cidrs);

  bool empty() const { return blocks_.empty(); }
  /// True when `a` (an IPv4-mapped IPv6 address counts as IPv4) is inside a block.
  bool contains(asio::ip::address const& a) const;

  /// The client of a request that `peer` delivered: `peer` itself unless it
  /// is trusted and its forwarding headers name someone else.
  asio::ip::address client(asio::ip::address const& peer, request const& req) const;

  /// The walk over already-extracted header values (tests use it directly):
  /// `forwarded` and `x_forwarded_for` hold each field's value, in order.
  asio::ip::address client(asio::ip::address const& peer, std::vector<std::string_view> const& forwarded,
                           std::vector<std::string_view> const& x_forwarded_for) const;

 private:
  struct block {
    std::array<std::uint8_t, 16> net{};  // IPv4 in the first 4 bytes
    unsigned bits = 0;
    bool v4 = false;
  };
  std::vector<block> blocks_;
};

/// The address with an IPv4-mapped IPv6 address (::ffff:a.b.c.d) made IPv4.
asio::ip::address unmapped(asio::ip::address const& a);

}  // namespace keel::detail
