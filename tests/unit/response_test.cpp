// keel::response's header storage: lookups, replacement, removal and the
// CR/LF/NUL scrubbing, at every length around the eight-byte words the
// scanner works in.
#include <catch2/catch.hpp>

#include <keel/response.hpp>

#include <string>
#include <vector>

using keel::response;

namespace {

std::vector<std::pair<std::string, std::string>> all(response const& r) {
  std::vector<std::pair<std::string, std::string>> out;
  for (auto [name, value] : r.headers()) out.emplace_back(std::string(name), std::string(value));
  return out;
}

}  // namespace

TEST_CASE("a CR, LF or NUL anywhere in a name or value of any length becomes a space", "[response]") {
  for (std::size_t len = 1; len <= 40; ++len) {
    for (char bad : {'\r', '\n', '\0'}) {
      for (std::size_t at = 0; at < len; ++at) {
        std::string value(len, 'v');
        value[at] = bad;
        response r;
        r.add_header("X-Test", value);
        std::string expected(len, 'v');
        expected[at] = ' ';
        INFO("length " << len << ", byte " << int(bad) << " at " << at);
        REQUIRE(r.header("X-Test") == expected);
        REQUIRE(r.header_lines() == "X-Test: " + expected + "\r\n");
      }
    }
  }
  response r;
  r.add_header(std::string("X-\r\nEvil", 8), "1");
  CHECK(r.header_lines() == "X-  Evil: 1\r\n");
}

TEST_CASE("tabs and bytes below 14 that do not break a line are kept", "[response]") {
  std::string value = "a\tb\x01\x0b\x0c\x0d";
  value.pop_back();  // no CR
  value += "0123456789\t";
  response r;
  r.add_header("X-Tabs", value);
  CHECK(r.header("X-Tabs") == value);
}

TEST_CASE("header lookups are case-insensitive and find only whole names", "[response]") {
  response r = response::text("hi");
  r.add_header("X-Request-Id", "abc");
  r.add_header("Vary", "Origin");
  r.add_header("vary", "Accept-Encoding");
  CHECK(r.header("content-type") == "text/plain; charset=utf-8");
  CHECK(r.header("X-REQUEST-ID") == "abc");
  CHECK(r.header("Vary") == "Origin");  // the first
  CHECK_FALSE(r.header("X-Request"));
  CHECK_FALSE(r.header("Request-Id"));
  CHECK_FALSE(r.header("X-Request-Id: abc"));
  CHECK_FALSE(r.header("Missing"));
  r.remove_header("VARY");
  CHECK_FALSE(r.header("vary"));
  CHECK(all(r) == std::vector<std::pair<std::string, std::string>>{{"Content-Type", "text/plain; charset=utf-8"},
                                                                    {"X-Request-Id", "abc"}});
}

TEST_CASE("set_header replaces every header of that name, also with a view of itself", "[response]") {
  response r;
  r.add_header("X-A", "1");
  r.add_header("x-a", "2");
  r.add_header("X-B", "3");
  r.set_header("X-A", "4");
  CHECK(all(r) == std::vector<std::pair<std::string, std::string>>{{"X-B", "3"}, {"X-A", "4"}});
  r.set_header("X-C", *r.header("X-B"));  // the value views the storage it changes
  CHECK(r.header("X-C") == "3");
  r.remove_header("X-A");
  r.remove_header("X-A");  // removing what is not there is harmless
  CHECK(all(r) == std::vector<std::pair<std::string, std::string>>{{"X-B", "3"}, {"X-C", "3"}});
}

TEST_CASE("a header that keel frames itself is flagged for the writer", "[response]") {
  response r;
  r.add_header("Content-Type", "text/plain");
  CHECK_FALSE(r.has_framework_header());
  r.add_header("content-length", "3");
  CHECK(r.has_framework_header());
}
