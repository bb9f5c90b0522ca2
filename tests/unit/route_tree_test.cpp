#include "http/route_tree.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <cstdlib>
#include <new>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

// Counts heap allocations so the "match() never allocates" promise is checked, not assumed.
// Every non-aligned form is replaced: sanitizers pair each new with its own delete.
namespace {
std::atomic<std::size_t> allocations{0};
void* counted_alloc(std::size_t n) noexcept {
  allocations.fetch_add(1, std::memory_order_relaxed);
  return std::malloc(n == 0 ? 1 : n);
}
void* counted_alloc_or_throw(std::size_t n) {
  if (void* p = counted_alloc(n)) return p;
  throw std::bad_alloc();
}
}  // namespace
void* operator new(std::size_t n) { return counted_alloc_or_throw(n); }
void* operator new[](std::size_t n) { return counted_alloc_or_throw(n); }
void* operator new(std::size_t n, std::nothrow_t const&) noexcept { return counted_alloc(n); }
void* operator new[](std::size_t n, std::nothrow_t const&) noexcept { return counted_alloc(n); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, std::nothrow_t const&) noexcept { std::free(p); }
void operator delete[](void* p, std::nothrow_t const&) noexcept { std::free(p); }

using keel::detail::max_path_params;
using keel::detail::path_param;
using keel::detail::path_params;
using keel::detail::route_tree;

namespace {

constexpr auto npos = route_tree::npos;

// Asserts that inserting `pattern` throws invalid_argument quoting it.
void require_rejected(route_tree& tree, std::string const& pattern) {
  INFO("pattern: " << pattern);
  REQUIRE_THROWS_AS(tree.insert(pattern), std::invalid_argument);
  REQUIRE_THROWS_WITH(tree.insert(pattern), Catch::Contains("\"" + pattern + "\""));
}

// A std::string so Catch prints it; "<none>" when the param is missing.
std::string value_of(path_params const& params, std::string_view name) {
  auto v = params.find(name);
  return v ? std::string(*v) : "<none>";
}

bool points_into(std::string_view inner, std::string_view outer) {
  return inner.data() >= outer.data() && inner.data() + inner.size() <= outer.data() + outer.size();
}

}  // namespace

TEST_CASE("static routes match exactly and nothing else", "[route_tree]") {
  route_tree tree;
  auto users = tree.insert("/users");
  auto health = tree.insert("/health");
  auto deep = tree.insert("/api/v1/status");
  path_params params;
  CHECK(tree.match("/users", params) == users);
  CHECK(params.empty());
  CHECK(tree.match("/health", params) == health);
  CHECK(tree.match("/api/v1/status", params) == deep);
  CHECK(tree.match("/api/v1", params) == npos);
  CHECK(tree.match("/api", params) == npos);
  CHECK(tree.match("/user", params) == npos);
  CHECK(tree.match("/usersx", params) == npos);
  CHECK(tree.match("/users/extra", params) == npos);
  CHECK(tree.match("/Users", params) == npos);
  CHECK(tree.match("", params) == npos);
  CHECK(tree.match("users", params) == npos);
  CHECK(tree.match("*", params) == npos);
}

TEST_CASE("the root pattern matches only the root path", "[route_tree]") {
  route_tree tree;
  path_params params;
  CHECK(tree.match("/", params) == npos);
  auto root = tree.insert("/");
  tree.insert("/a");
  CHECK(tree.match("/", params) == root);
  CHECK(tree.match("//", params) == npos);
  CHECK(tree.match("/a", params) != root);
}

TEST_CASE("leaf indexes count up in insertion order and pattern() returns the text", "[route_tree]") {
  route_tree tree;
  CHECK(tree.size() == 0);
  CHECK(tree.insert("/b") == 0);
  CHECK(tree.insert("/a/{id}") == 1);
  CHECK(tree.insert("/") == 2);
  CHECK(tree.insert("/files/{*rest}") == 3);
  CHECK(tree.size() == 4);
  CHECK(tree.pattern(0) == "/b");
  CHECK(tree.pattern(1) == "/a/{id}");
  CHECK(tree.pattern(2) == "/");
  CHECK(tree.pattern(3) == "/files/{*rest}");
  CHECK_THROWS_AS(tree.pattern(4), std::out_of_range);
}

TEST_CASE("inserting the same pattern again returns the same index", "[route_tree]") {
  route_tree tree;
  auto a = tree.insert("/users/{id}");
  auto b = tree.insert("/files/{*rest}");
  auto c = tree.insert("/");
  CHECK(tree.insert("/users/{id}") == a);
  CHECK(tree.insert("/files/{*rest}") == b);
  CHECK(tree.insert("/") == c);
  CHECK(tree.size() == 3);
}

TEST_CASE("pattern() views stay valid while more routes are added", "[route_tree]") {
  route_tree tree;
  tree.insert("/a");  // short enough for the small-string buffer
  std::string_view first = tree.pattern(0);
  for (int i = 0; i < 1000; ++i) tree.insert("/r" + std::to_string(i));
  CHECK(first.data() == tree.pattern(0).data());
  CHECK(first == "/a");
}

TEST_CASE("a param captures one segment under its name", "[route_tree]") {
  route_tree tree;
  auto leaf = tree.insert("/users/{id}");
  path_params params;
  REQUIRE(tree.match("/users/42", params) == leaf);
  REQUIRE(params.size() == 1);
  CHECK(params[0].name == "id");
  CHECK(params[0].value == "42");
  CHECK(value_of(params, "id") == "42");
  CHECK_FALSE(params.find("other").has_value());
}

TEST_CASE("a param never matches an empty segment or more than one segment", "[route_tree]") {
  route_tree tree;
  tree.insert("/users/{id}");
  path_params params;
  CHECK(tree.match("/users/", params) == npos);
  CHECK(tree.match("/users", params) == npos);
  CHECK(tree.match("/users/1/2", params) == npos);
  CHECK(params.empty());
}

TEST_CASE("param values are raw: percent-encoding is left to the caller", "[route_tree]") {
  route_tree tree;
  tree.insert("/files/{name}");
  path_params params;
  REQUIRE(tree.match("/files/a%2Fb%20c", params) != npos);
  CHECK(value_of(params, "name") == "a%2Fb%20c");
}

TEST_CASE("multiple params are captured in path order", "[route_tree]") {
  route_tree tree;
  auto leaf = tree.insert("/users/{id}/posts/{post}");
  path_params params;
  REQUIRE(tree.match("/users/7/posts/99", params) == leaf);
  REQUIRE(params.size() == 2);
  CHECK(params[0].name == "id");
  CHECK(params[0].value == "7");
  CHECK(params[1].name == "post");
  CHECK(params[1].value == "99");
  std::vector<std::string> names;
  for (path_param const& p : params) names.emplace_back(p.name);
  CHECK(names == std::vector<std::string>{"id", "post"});
  CHECK(tree.match("/users/7/posts", params) == npos);
  CHECK(tree.match("/users/7/comments/99", params) == npos);
}

TEST_CASE("params at the same position may have different names in different patterns",
          "[route_tree]") {
  route_tree tree;
  auto items = tree.insert("/shop/{shop}/items");
  auto staff = tree.insert("/shop/{store}/staff/{person}");
  path_params params;
  REQUIRE(tree.match("/shop/s1/items", params) == items);
  CHECK(value_of(params, "shop") == "s1");
  CHECK_FALSE(params.find("store").has_value());
  REQUIRE(tree.match("/shop/s2/staff/bob", params) == staff);
  CHECK(value_of(params, "store") == "s2");
  CHECK(value_of(params, "person") == "bob");
  CHECK_FALSE(params.find("shop").has_value());
}

TEST_CASE("a wildcard matches the rest of the path, slashes included", "[route_tree]") {
  route_tree tree;
  auto leaf = tree.insert("/files/{*rest}");
  path_params params;
  REQUIRE(tree.match("/files/a/b/c.txt", params) == leaf);
  REQUIRE(params.size() == 1);
  CHECK(params[0].name == "rest");
  CHECK(params[0].value == "a/b/c.txt");
  REQUIRE(tree.match("/files/a", params) == leaf);
  CHECK(params[0].value == "a");
  REQUIRE(tree.match("/files/a/", params) == leaf);
  CHECK(params[0].value == "a/");
  REQUIRE(tree.match("/files//x", params) == leaf);
  CHECK(params[0].value == "/x");
}

TEST_CASE("a wildcard matches an empty remainder after the slash but not a missing slash",
          "[route_tree]") {
  route_tree tree;
  auto leaf = tree.insert("/files/{*rest}");
  path_params params;
  REQUIRE(tree.match("/files/", params) == leaf);
  REQUIRE(params.size() == 1);
  CHECK(params[0].value.empty());
  CHECK(tree.match("/files", params) == npos);
}

TEST_CASE("a wildcard at the root catches every path", "[route_tree]") {
  route_tree tree;
  auto any = tree.insert("/{*path}");
  path_params params;
  REQUIRE(tree.match("/", params) == any);
  CHECK(value_of(params, "path") == "");
  REQUIRE(tree.match("/x/y", params) == any);
  CHECK(value_of(params, "path") == "x/y");
}

TEST_CASE("params before a wildcard are captured with it", "[route_tree]") {
  route_tree tree;
  auto leaf = tree.insert("/repos/{owner}/{repo}/blob/{*path}");
  path_params params;
  REQUIRE(tree.match("/repos/boost/json/blob/include/boost/json.hpp", params) == leaf);
  REQUIRE(params.size() == 3);
  CHECK(value_of(params, "owner") == "boost");
  CHECK(value_of(params, "repo") == "json");
  CHECK(value_of(params, "path") == "include/boost/json.hpp");
}

TEST_CASE("static segments win over params, and params over wildcards", "[route_tree]") {
  route_tree tree;
  auto any = tree.insert("/users/{*rest}");
  auto by_id = tree.insert("/users/{id}");
  auto me = tree.insert("/users/me");
  path_params params;
  CHECK(tree.match("/users/me", params) == me);
  CHECK(params.empty());
  CHECK(tree.match("/users/42", params) == by_id);
  CHECK(value_of(params, "id") == "42");
  CHECK(tree.match("/users/42/x", params) == any);
  CHECK(value_of(params, "rest") == "42/x");
  CHECK(tree.match("/users/", params) == any);
  CHECK(value_of(params, "rest") == "");
}

TEST_CASE("priority does not depend on insertion order", "[route_tree]") {
  route_tree tree;
  auto me = tree.insert("/users/me");
  auto by_id = tree.insert("/users/{id}");
  auto any = tree.insert("/users/{*rest}");
  path_params params;
  CHECK(tree.match("/users/me", params) == me);
  CHECK(tree.match("/users/42", params) == by_id);
  CHECK(tree.match("/users/42/x", params) == any);
}

TEST_CASE("matching backtracks from a static dead end to a param", "[route_tree]") {
  route_tree tree;
  auto ab = tree.insert("/a/b");
  auto axc = tree.insert("/a/{x}/c");
  path_params params;
  REQUIRE(tree.match("/a/b/c", params) == axc);
  REQUIRE(params.size() == 1);
  CHECK(params[0].name == "x");
  CHECK(params[0].value == "b");
  CHECK(tree.match("/a/b", params) == ab);
  CHECK(params.empty());
}

TEST_CASE("matching backtracks to a wildcard and drops params of abandoned branches",
          "[route_tree]") {
  route_tree tree;
  tree.insert("/a/{x}/c");
  tree.insert("/a/b/d");
  auto any = tree.insert("/a/{*rest}");
  path_params params;
  REQUIRE(tree.match("/a/b/zzz", params) == any);
  REQUIRE(params.size() == 1);
  CHECK(params[0].name == "rest");
  CHECK(params[0].value == "b/zzz");
}

TEST_CASE("matching backtracks through several levels", "[route_tree]") {
  route_tree tree;
  tree.insert("/v/a/b/c");
  tree.insert("/v/a/{p}/x");
  auto leaf = tree.insert("/v/{q}/b/{r}/y");
  path_params params;
  REQUIRE(tree.match("/v/a/b/c/y", params) == leaf);
  REQUIRE(params.size() == 2);
  CHECK(value_of(params, "q") == "a");
  CHECK(value_of(params, "r") == "c");
}

TEST_CASE("a trailing slash is significant", "[route_tree]") {
  route_tree tree;
  auto users = tree.insert("/users");
  path_params params;
  CHECK(tree.match("/users", params) == users);
  CHECK(tree.match("/users/", params) == npos);
  auto users_slash = tree.insert("/users/");
  CHECK(users_slash != users);
  CHECK(tree.match("/users/", params) == users_slash);
  CHECK(tree.match("/users", params) == users);
  tree.insert("/users/{id}");
  CHECK(tree.match("/users/", params) == users_slash);
  tree.insert("/items/{id}");
  CHECK(tree.match("/items/", params) == npos);
  CHECK(tree.match("/items/1/", params) == npos);
}

TEST_CASE("patterns must start with a slash", "[route_tree]") {
  route_tree tree;
  require_rejected(tree, "");
  require_rejected(tree, "users");
  require_rejected(tree, "{id}");
  CHECK_THROWS_WITH(tree.insert("users"), Catch::Contains("start with '/'"));
}

TEST_CASE("malformed braces are rejected with the pattern in the message", "[route_tree]") {
  route_tree tree;
  for (std::string p : {"/{", "/{}", "/{a", "/a{b}", "/{a}b", "/a{b", "/a}", "/}", "/{a}}",
                        "/{{a}}", "/{a{b}}", "/{*}", "/x/{id", "/x/{id}/{", "/{*a}b", "/pre{*a}"})
    require_rejected(tree, p);
  CHECK_THROWS_WITH(tree.insert("/{a"), Catch::Contains("unclosed"));
  CHECK_THROWS_WITH(tree.insert("/a{b}"), Catch::Contains("whole segment"));
  CHECK_THROWS_WITH(tree.insert("/{}"), Catch::Contains("empty parameter name"));
  CHECK(tree.size() == 0);
}

TEST_CASE("invalid parameter names are rejected", "[route_tree]") {
  route_tree tree;
  for (std::string p : {"/{1a}", "/{a-b}", "/{a b}", "/{a.b}", "/{*1rest}", "/{**rest}",
                        "/{é}", "/{ id}", "/{id }"})
    require_rejected(tree, p);
  CHECK_THROWS_WITH(tree.insert("/{1a}"), Catch::Contains("\"1a\""));
  CHECK(tree.size() == 0);
  // The accepted alphabet, for contrast.
  CHECK_NOTHROW(tree.insert("/{_}"));
  CHECK_NOTHROW(tree.insert("/x/{Az_09}"));
  CHECK_NOTHROW(tree.insert("/y/{*_rest9}"));
}

TEST_CASE("a wildcard that is not the last segment is rejected", "[route_tree]") {
  route_tree tree;
  require_rejected(tree, "/files/{*rest}/x");
  require_rejected(tree, "/files/{*rest}/");
  require_rejected(tree, "/{*a}/{b}");
  CHECK_THROWS_WITH(tree.insert("/files/{*rest}/x"), Catch::Contains("last segment"));
}

TEST_CASE("the same parameter name twice in one pattern is rejected", "[route_tree]") {
  route_tree tree;
  require_rejected(tree, "/{id}/{id}");
  require_rejected(tree, "/a/{id}/b/{id}");
  require_rejected(tree, "/{id}/{*id}");
  CHECK_THROWS_WITH(tree.insert("/{id}/{id}"), Catch::Contains("appears twice"));
}

TEST_CASE("up to max_path_params params are accepted, one more is rejected", "[route_tree]") {
  std::string pattern, path;
  for (std::size_t i = 0; i < max_path_params; ++i) {
    pattern += "/{p" + std::to_string(i) + "}";
    path += "/v" + std::to_string(i);
  }
  route_tree tree;
  auto leaf = tree.insert(pattern);
  path_params params;
  REQUIRE(tree.match(path, params) == leaf);
  REQUIRE(params.size() == max_path_params);
  for (std::size_t i = 0; i < max_path_params; ++i) {
    std::string const n = std::to_string(i);  // a named string dodges a GCC 12 -Wrestrict false positive
    CHECK(params[i].name == "p" + n);
    CHECK(params[i].value == "v" + n);
  }
  require_rejected(tree, pattern + "/{one_more}");
  require_rejected(tree, pattern + "/{*one_more}");
  CHECK_THROWS_WITH(tree.insert(pattern + "/{x}"), Catch::Contains("more than 16"));
  CHECK_NOTHROW(tree.insert(pattern + "/static"));
}

TEST_CASE("patterns differing only in param names conflict, naming both", "[route_tree]") {
  route_tree tree;
  tree.insert("/a/{id}");
  tree.insert("/a/{x}/{y}/z");
  tree.insert("/files/{*rest}");
  tree.insert("/g/{a}/{*rest}");
  auto const conflict = [&](std::string const& existing, std::string const& added) {
    INFO(existing << " vs " << added);
    REQUIRE_THROWS_AS(tree.insert(added), std::invalid_argument);
    REQUIRE_THROWS_WITH(tree.insert(added), Catch::Contains("\"" + added + "\"") &&
                                                Catch::Contains("\"" + existing + "\"") &&
                                                Catch::Contains("conflicts"));
  };
  conflict("/a/{id}", "/a/{name}");
  conflict("/a/{x}/{y}/z", "/a/{x}/{other}/z");
  conflict("/a/{x}/{y}/z", "/a/{q}/{y}/z");
  conflict("/files/{*rest}", "/files/{*path}");
  conflict("/g/{a}/{*rest}", "/g/{b}/{*rest}");
  conflict("/g/{a}/{*rest}", "/g/{a}/{*other}");
  CHECK(tree.size() == 4);
}

TEST_CASE("a rejected insert leaves the tree unchanged", "[route_tree]") {
  route_tree tree;
  auto a = tree.insert("/a/{id}");
  CHECK_THROWS(tree.insert("/a/{name}"));
  CHECK_THROWS(tree.insert("/b/{x}/{x}"));
  CHECK(tree.size() == 1);
  path_params params;
  REQUIRE(tree.match("/a/1", params) == a);
  CHECK(value_of(params, "id") == "1");
  CHECK(tree.insert("/a/{name}/more") == 1);
}

TEST_CASE("params are views into the matched path and the tree", "[route_tree]") {
  route_tree tree;
  auto leaf = tree.insert("/users/{id}/files/{*rest}");
  std::string const path = "/users/abc/files/x/y";
  path_params params;
  REQUIRE(tree.match(path, params) == leaf);
  REQUIRE(params.size() == 2);
  for (auto const& p : params) {
    CHECK(points_into(p.value, path));
    CHECK(points_into(p.name, tree.pattern(leaf)));
  }
  CHECK(params[0].value.data() == path.data() + 7);
}

TEST_CASE("match() does not allocate", "[route_tree]") {
  route_tree tree;
  for (int i = 0; i < 200; ++i) {
    auto n = std::to_string(i);
    tree.insert("/s" + n + "/{id}/items/{item}");
    tree.insert("/s" + n + "/static/path/that/is/long/enough/to/defeat/sso");
  }
  tree.insert("/files/{*rest}");
  std::string const hit = "/s150/12345/items/abcdef";
  std::string const deep = "/files/a/very/long/path/that/would/not/fit/in/a/small/string";
  std::string const miss = "/s150/12345/nothing/here/at/all";
  path_params params;
  std::size_t found = 0;
  auto const before = allocations.load();
  for (int i = 0; i < 100; ++i) {
    found += tree.match(hit, params) != npos;
    found += tree.match(deep, params) != npos;
    found += tree.match(miss, params) == npos;
  }
  auto const after = allocations.load();
  CHECK(found == 300);
  CHECK(after == before);
}

TEST_CASE("path_params refuses to grow past its capacity", "[route_tree]") {
  path_params params;
  for (std::size_t i = 0; i < max_path_params; ++i) CHECK(params.push({"n", "v"}));
  CHECK_FALSE(params.push({"n", "v"}));
  CHECK(params.size() == max_path_params);
  params.clear();
  CHECK(params.empty());
  CHECK(params.begin() == params.end());
}

namespace {

// Patterns mixing statics, params and wildcards so that the 1000-route tree has wide
// static fan-out at several levels as well as shared param nodes.
std::string pattern_for(int i) {
  auto n = std::to_string(i);
  switch (i % 4) {
    case 0: return "/svc" + std::to_string(i % 10) + "/res" + n;
    case 1: return "/svc" + std::to_string(i % 10) + "/res" + n + "/{id}";
    case 2: return "/svc" + std::to_string(i % 10) + "/{tenant}/res" + n + "/{id}";
    default: return "/blob" + n + "/{*rest}";
  }
}

std::string path_for(int i) {
  auto n = std::to_string(i);
  switch (i % 4) {
    case 0: return "/svc" + std::to_string(i % 10) + "/res" + n;
    case 1: return "/svc" + std::to_string(i % 10) + "/res" + n + "/id" + n;
    case 2: return "/svc" + std::to_string(i % 10) + "/t" + n + "/res" + n + "/id" + n;
    default: return "/blob" + n + "/x/" + n;
  }
}

void check_every_route(int count) {
  route_tree tree;
  for (int i = 0; i < count; ++i) REQUIRE(tree.insert(pattern_for(i)) == std::size_t(i));
  REQUIRE(tree.size() == std::size_t(count));
  path_params params;
  for (int i = 0; i < count; ++i) {
    std::string const path = path_for(i);  // params view into it: keep it alive
    INFO("route " << i << ": " << path);
    REQUIRE(tree.match(path, params) == std::size_t(i));
    CHECK(tree.pattern(i) == pattern_for(i));
    auto n = std::to_string(i);
    switch (i % 4) {
      case 0: CHECK(params.empty()); break;
      case 1: CHECK(value_of(params, "id") == "id" + n); break;
      case 2:
        CHECK(value_of(params, "tenant") == "t" + n);
        CHECK(value_of(params, "id") == "id" + n);
        break;
      default: CHECK(value_of(params, "rest") == "x/" + n);
    }
  }
  CHECK(tree.match("/svc0/res999999", params) == npos);
  CHECK(tree.match("/svc0/res0/extra/more", params) == npos);
  CHECK(tree.match("/nothing", params) == npos);
}

}  // namespace

TEST_CASE("1000 routes all match their own paths", "[route_tree]") { check_every_route(1000); }

TEST_CASE("match() works the same on trees of 10 and 10000 routes", "[route_tree]") {
  check_every_route(10);
  check_every_route(10000);
}

TEST_CASE("match() can run from several threads at once", "[route_tree]") {
  route_tree tree;
  for (int i = 0; i < 100; ++i) tree.insert(pattern_for(i));
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&] {
      path_params params;
      for (int round = 0; round < 50; ++round)
        for (int i = 0; i < 100; ++i)
          if (tree.match(path_for(i), params) != std::size_t(i)) ++wrong;
    });
  for (auto& th : threads) th.join();
  CHECK(wrong == 0);
}
