// trusted_proxies: CIDR parsing and the walk over Forwarded / X-Forwarded-For
// that turns a trusted peer into the client it forwards for (SPEC §2).
#include "http/client_address.hpp"

#include <keel/config.hpp>

#include <catch2/catch.hpp>

#include <string>
#include <vector>

using keel::detail::trusted_proxies;
namespace ip = boost::asio::ip;

namespace {

ip::address addr(char const* s) { return ip::make_address(s); }

std::string client_of(trusted_proxies const& t, char const* peer, std::vector<std::string_view> forwarded,
                      std::vector<std::string_view> xff) {
  return t.client(addr(peer), forwarded, xff).to_string();
}

std::string refusal(std::vector<std::string> cidrs) {
  try {
    trusted_proxies t(cidrs);
  } catch (keel::config_error const& e) {
    return e.what();
  }
  return {};
}

}  // namespace

TEST_CASE("trusted_proxies parses IPv4 and IPv6 CIDRs and single addresses", "[client_address]") {
  trusted_proxies t({"10.0.0.0/8", "192.168.1.7", "fd00::/8", "::1", " 172.16.0.0/12 "});
  CHECK(t.contains(addr("10.255.1.2")));
  CHECK_FALSE(t.contains(addr("11.0.0.1")));
  CHECK(t.contains(addr("192.168.1.7")));
  CHECK_FALSE(t.contains(addr("192.168.1.8")));
  CHECK(t.contains(addr("172.31.255.255")));
  CHECK_FALSE(t.contains(addr("172.32.0.0")));
  CHECK(t.contains(addr("fd12:3456::1")));
  CHECK_FALSE(t.contains(addr("fe80::1")));
  CHECK(t.contains(addr("::1")));
  CHECK_FALSE(t.contains(addr("::2")));
  // An IPv4-mapped IPv6 peer (a dual-stack socket) is its IPv4 address.
  CHECK(t.contains(addr("::ffff:10.1.2.3")));
  // Host bits are ignored, /0 trusts everything of its family.
  trusted_proxies loose({"10.1.2.3/8", "::/0"});
  CHECK(loose.contains(addr("10.9.9.9")));
  CHECK(loose.contains(addr("2001:db8::1")));
  CHECK_FALSE(loose.contains(addr("11.0.0.1")));
  CHECK(trusted_proxies(std::vector<std::string>{}).empty());
}

TEST_CASE("an invalid CIDR is refused naming trusted_proxies and the entry", "[client_address]") {
  for (auto bad : {"10.0.0.0/33", "::1/129", "10.0.0.0/", "10.0.0.0/8x", "ten.0.0.0/8", "", "10.0.0/8",
                   "10.0.0.0/-1", "[::1]/128", "::ffff:10.0.0.0/95"}) {
    INFO(bad);
    auto why = refusal({"127.0.0.1/32", bad});
    CHECK(why.find("trusted_proxies") != std::string::npos);
    CHECK(why.find(std::string("\"") + bad + "\"") != std::string::npos);
  }
  CHECK(refusal({"::ffff:10.0.0.0/104"}).empty());
}

TEST_CASE("an untrusted peer is the client whatever its headers say", "[client_address]") {
  trusted_proxies t({"10.0.0.0/8"});
  CHECK(client_of(t, "203.0.113.9", {"for=198.51.100.1"}, {"198.51.100.2"}) == "203.0.113.9");
  CHECK(client_of(t, "203.0.113.9", {}, {"10.0.0.1"}) == "203.0.113.9");
  trusted_proxies none;
  CHECK(client_of(none, "10.0.0.1", {}, {"198.51.100.2"}) == "10.0.0.1");
}

TEST_CASE("X-Forwarded-For is walked from the right past trusted proxies", "[client_address]") {
  trusted_proxies t({"10.0.0.0/8", "2001:db8:ffff::/48"});
  // The proxy appended the address it saw; the client's own entries on the left are not read.
  CHECK(client_of(t, "10.0.0.1", {}, {"198.51.100.7"}) == "198.51.100.7");
  CHECK(client_of(t, "10.0.0.1", {}, {"6.6.6.6, 198.51.100.7"}) == "198.51.100.7");
  CHECK(client_of(t, "10.0.0.1", {}, {"not an address, 6.6.6.6, 198.51.100.7"}) == "198.51.100.7");
  // Trusted hops are skipped, however many.
  CHECK(client_of(t, "10.0.0.1", {}, {"6.6.6.6, 198.51.100.7, 10.0.0.3, 10.0.0.2"}) == "198.51.100.7");
  // Several fields are one list, in order.
  CHECK(client_of(t, "10.0.0.1", {}, {"6.6.6.6", "198.51.100.7, 10.0.0.2"}) == "198.51.100.7");
  // Ports and brackets as some proxies write them; IPv6 hops and peers.
  CHECK(client_of(t, "10.0.0.1", {}, {"198.51.100.7:4711"}) == "198.51.100.7");
  CHECK(client_of(t, "10.0.0.1", {}, {"[2001:db8::7]:4711"}) == "2001:db8::7");
  CHECK(client_of(t, "2001:db8:ffff::1", {}, {"2001:db8::7, 2001:db8:ffff::2"}) == "2001:db8::7");
  CHECK(client_of(t, "::ffff:10.0.0.1", {}, {"::ffff:198.51.100.7"}) == "198.51.100.7");
}

TEST_CASE("a chain of trusted proxies only gives its leftmost address", "[client_address]") {
  trusted_proxies t({"10.0.0.0/8"});
  CHECK(client_of(t, "10.0.0.1", {}, {"10.0.0.9, 10.0.0.3, 10.0.0.2"}) == "10.0.0.9");
}

TEST_CASE("a malformed hop reached by the walk: the last trusted hop before it, else the peer", "[client_address]") {
  trusted_proxies t({"10.0.0.0/8"});
  // The rightmost hop, which the trusted peer wrote, is not an address: the peer.
  for (auto bad : {"", "garbage", "198.51.100.7, garbage", "198.51.100.7:http",
                   "[198.51.100.7]", "2001:db8::7:4711x", "198.51.100.7 10.0.0.2", "unknown"}) {
    INFO(bad);
    CHECK(client_of(t, "10.0.0.1", {}, {bad}) == "10.0.0.1");
  }
  // Past a trusted hop: that hop, not the peer every client of the proxy shares.
  CHECK(client_of(t, "10.0.0.1", {}, {"198.51.100.7,,10.0.0.2"}) == "10.0.0.2");
  CHECK(client_of(t, "10.0.0.1", {}, {"garbage, 10.0.0.3, 10.0.0.2"}) == "10.0.0.3");
  CHECK(client_of(t, "10.0.0.1", {}, {}) == "10.0.0.1");
}

TEST_CASE("a client's stray quote in X-Forwarded-For does not swallow the hop the proxy appended",
          "[client_address]") {
  // Found by the hostile review: a quote-aware split joined `"` and the
  // proxy's hop, and the walk fell back to the proxy's own address.
  trusted_proxies t({"10.0.0.0/8"});
  CHECK(client_of(t, "10.0.0.1", {}, {"\", 198.51.100.7"}) == "198.51.100.7");
  CHECK(client_of(t, "10.0.0.1", {}, {"\"a, 198.51.100.7"}) == "198.51.100.7");
  CHECK(client_of(t, "10.0.0.1", {}, {"\"6.6.6.6, 7.7.7.7\", 198.51.100.7"}) == "198.51.100.7");
}

TEST_CASE("Forwarded's for= nodes are walked the same way (RFC 7239)", "[client_address]") {
  trusted_proxies t({"10.0.0.0/8"});
  CHECK(client_of(t, "10.0.0.1", {"for=198.51.100.7;proto=http;by=10.0.0.1"}, {}) == "198.51.100.7");
  CHECK(client_of(t, "10.0.0.1", {"for=6.6.6.6, For=\"198.51.100.7\", for=10.0.0.2"}, {}) == "198.51.100.7");
  CHECK(client_of(t, "10.0.0.1", {R"(for="[2001:db8:cafe::17]:4711")"}, {}) == "2001:db8:cafe::17");
  CHECK(client_of(t, "10.0.0.1", {R"(for="6.6.6.6, evil"; proto=http, for=198.51.100.7)"}, {}) == "198.51.100.7");
  CHECK(client_of(t, "10.0.0.1", {"for=6.6.6.6", "for=198.51.100.7"}, {}) == "198.51.100.7");
  // An unknown or obfuscated node, or an element without for=, is not an address.
  CHECK(client_of(t, "10.0.0.1", {"for=unknown"}, {}) == "10.0.0.1");
  CHECK(client_of(t, "10.0.0.1", {"for=_hidden"}, {}) == "10.0.0.1");
  CHECK(client_of(t, "10.0.0.1", {"proto=https"}, {}) == "10.0.0.1");
  CHECK(client_of(t, "10.0.0.1", {"for=\"[2001:db8::1\""}, {}) == "10.0.0.1");
}

TEST_CASE("Forwarded and X-Forwarded-For that disagree leave the peer as the client", "[client_address]") {
  trusted_proxies t({"10.0.0.0/8"});
  // A proxy that appends to one passes the other through from the client.
  CHECK(client_of(t, "10.0.0.1", {"for=6.6.6.6"}, {"198.51.100.7"}) == "10.0.0.1");
  CHECK(client_of(t, "10.0.0.1", {"for=198.51.100.7"}, {"198.51.100.7"}) == "198.51.100.7");
}
