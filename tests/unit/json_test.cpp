#include <keel/json.hpp>

#include <boost/describe.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <catch2/catch.hpp>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace sample {

enum class priority { low, normal, high };
BOOST_DESCRIBE_ENUM(priority, low, normal, high)

struct tag {
  std::string name;
  std::optional<std::string> color;
};
BOOST_DESCRIBE_STRUCT(tag, (), (name, color))

struct owner {
  std::string login;
  std::int64_t id;
};
BOOST_DESCRIBE_STRUCT(owner, (), (login, id))

struct todo {
  std::string title;
  std::optional<bool> done;
  priority level;
  owner by;
  std::vector<tag> tags;
  std::optional<std::vector<int>> scores;
  std::map<std::string, double> weights;
};
BOOST_DESCRIBE_STRUCT(todo, (), (title, done, level, by, tags, scores, weights))

struct numbers {
  std::int8_t i8;
  std::uint8_t u8;
  std::int32_t i32;
  std::uint32_t u32;
  std::int64_t i64;
  std::uint64_t u64;
  float f;
  double d;
};
BOOST_DESCRIBE_STRUCT(numbers, (), (i8, u8, i32, u32, i64, u64, f, d))

struct base {
  std::int64_t id;
};
BOOST_DESCRIBE_STRUCT(base, (), (id))

struct derived : base {
  std::string name;
};
BOOST_DESCRIBE_STRUCT(derived, (base), (name))

struct envelope {
  boost::json::value any;
  std::optional<boost::json::object> meta;
  std::unordered_map<std::string, std::vector<std::string>> groups;
};
BOOST_DESCRIBE_STRUCT(envelope, (), (any, meta, groups))

}  // namespace sample

namespace {

using keel::json::field_error;
using keel::json::validation_error;

boost::json::value parse(char const* text) { return boost::json::parse(text); }

// The errors convert<T> throws for `text`, as field → message pairs in order.
template <class T>
std::vector<std::pair<std::string, std::string>> errors_of(char const* text) {
  try {
    (void)keel::json::convert<T>(parse(text));
  } catch (validation_error const& e) {
    std::vector<std::pair<std::string, std::string>> out;
    for (auto const& f : e.errors()) out.emplace_back(f.field, f.message);
    return out;
  }
  FAIL("convert did not throw for " << text);
  return {};
}

using errs = std::vector<std::pair<std::string, std::string>>;

char const* const full_todo = R"({
  "title": "write tests",
  "done": true,
  "level": "high",
  "by": {"login": "alice", "id": 7},
  "tags": [{"name": "work", "color": "red"}, {"name": "later"}],
  "scores": [1, 2, 3],
  "weights": {"a": 0.5, "b": 2}
})";

}  // namespace

TEST_CASE("a described struct converts with required, optional, nested, vector, map and enum "
          "members") {
  auto t = keel::json::convert<sample::todo>(parse(full_todo));
  CHECK(t.title == "write tests");
  REQUIRE(t.done.has_value());
  CHECK(*t.done);
  CHECK(t.level == sample::priority::high);
  CHECK(t.by.login == "alice");
  CHECK(t.by.id == 7);
  REQUIRE(t.tags.size() == 2);
  CHECK(t.tags[0].name == "work");
  CHECK(t.tags[0].color == std::optional<std::string>("red"));
  CHECK(t.tags[1].name == "later");
  CHECK_FALSE(t.tags[1].color.has_value());
  CHECK(t.scores == std::optional<std::vector<int>>({1, 2, 3}));
  CHECK(t.weights == std::map<std::string, double>{{"a", 0.5}, {"b", 2.0}});
}

TEST_CASE("missing optional members and null optionals become nullopt") {
  auto t = keel::json::convert<sample::todo>(parse(R"({
    "title": "x", "done": null, "level": "low", "by": {"login": "a", "id": 1},
    "tags": [], "weights": {}
  })"));
  CHECK_FALSE(t.done.has_value());
  CHECK_FALSE(t.scores.has_value());
  CHECK(t.tags.empty());
}

TEST_CASE("keys the struct does not describe are ignored at every depth") {
  auto t = keel::json::convert<sample::tag>(
      parse(R"({"name": "n", "extra": 1, "nested": {"deep": [1, 2]}})"));
  CHECK(t.name == "n");

  auto o = keel::json::convert<sample::owner>(
      parse(R"({"login": "a", "id": 3, "id2": "not an id", "admin": true})"));
  CHECK(o.login == "a");
  CHECK(o.id == 3);
}

TEST_CASE("a missing required member is reported as required with its pointer") {
  CHECK(errors_of<sample::owner>(R"({"login": "a"})") == errs{{"/id", "is required"}});
  CHECK(errors_of<sample::tag>(R"({})") == errs{{"/name", "is required"}});
}

TEST_CASE("null for a non-optional member is a type error") {
  CHECK(errors_of<sample::owner>(R"({"login": null, "id": 1})") ==
        errs{{"/login", "must be a string"}});
}

TEST_CASE("a body that is not an object is reported at the root pointer") {
  CHECK(errors_of<sample::owner>("[1, 2]") == errs{{"", "must be an object"}});
  CHECK(errors_of<sample::owner>("null") == errs{{"", "must be an object"}});
  CHECK(errors_of<std::vector<int>>(R"({"a": 1})") == errs{{"", "must be an array"}});
}

TEST_CASE("wrong types are reported with exact pointers at several depths") {
  SECTION("top level") {
    CHECK(errors_of<sample::tag>(R"({"name": 5})") == errs{{"/name", "must be a string"}});
  }
  SECTION("inside a nested struct") {
    CHECK(errors_of<sample::owner>(R"({"login": "a", "id": "7"})") ==
          errs{{"/id", "must be an integer"}});
  }
  SECTION("inside an element of a vector of structs") {
    auto e = errors_of<sample::todo>(R"({
      "title": "t", "level": "low", "by": {"login": "a", "id": 1},
      "tags": [{"name": "ok"}, {"name": "ok"}, {"name": "ok"}, {"name": ["no"]}],
      "weights": {}
    })");
    CHECK(e == errs{{"/tags/3/name", "must be a string"}});
  }
  SECTION("inside a map and an optional vector") {
    auto e = errors_of<sample::todo>(R"({
      "title": "t", "level": "low", "by": {"login": "a", "id": 1}, "tags": [],
      "scores": [1, "two", 3], "weights": {"a": 1, "b": false}
    })");
    CHECK(e == errs{{"/scores/1", "must be an integer"}, {"/weights/b", "must be a number"}});
  }
  SECTION("a boolean, an array and an enum") {
    auto e = errors_of<sample::todo>(R"({
      "title": "t", "done": "yes", "level": "urgent", "by": {"login": "a", "id": 1},
      "tags": {}, "weights": {}
    })");
    CHECK(e == errs{{"/done", "must be a boolean"},
                    {"/level", R"(must be one of "low", "normal", "high")"},
                    {"/tags", "must be an array"}});
  }
}

TEST_CASE("all errors are collected in member order, not just the first") {
  auto e = errors_of<sample::todo>(R"({
    "title": 1, "level": 2, "by": {"id": "x"},
    "tags": [{"name": "a"}, {}, {"name": 3, "color": 4}],
    "weights": []
  })");
  CHECK(e == errs{
                 {"/title", "must be a string"},
                 {"/level", R"(must be one of "low", "normal", "high")"},
                 {"/by/login", "is required"},
                 {"/by/id", "must be an integer"},
                 {"/tags/1/name", "is required"},
                 {"/tags/2/name", "must be a string"},
                 {"/tags/2/color", "must be a string"},
                 {"/weights", "must be an object"},
             });
}

TEST_CASE("map keys are escaped as JSON pointer tokens") {
  CHECK(errors_of<std::map<std::string, int>>(R"({"a/b": "x", "c~d": "y"})") ==
        errs{{"/a~1b", "must be an integer"}, {"/c~0d", "must be an integer"}});
  CHECK(keel::json::escape_pointer_token("a~/b") == "a~0~1b");
  CHECK(keel::json::escape_pointer_token("") == "");
}

TEST_CASE("the number of collected errors is capped") {
  std::string text = "[";
  for (int i = 0; i < 1000; ++i) text += i ? ",\"x\"" : "\"x\"";
  text += "]";
  auto e = errors_of<std::vector<int>>(text.c_str());
  CHECK(e.size() == keel::json::max_errors);
  CHECK(e.front().first == "/0");
  CHECK(e.back().first == "/" + std::to_string(keel::json::max_errors - 1));
}

TEST_CASE("integers are range-checked and may be written as integral doubles") {
  auto n = keel::json::convert<sample::numbers>(parse(R"({
    "i8": -128, "u8": 255, "i32": 2147483647, "u32": 4294967295,
    "i64": -9223372036854775808, "u64": 18446744073709551615, "f": 1.5, "d": 1e300
  })"));
  CHECK(n.i8 == -128);
  CHECK(n.u8 == 255);
  CHECK(n.i32 == 2147483647);
  CHECK(n.u32 == 4294967295u);
  CHECK(n.i64 == INT64_MIN);
  CHECK(n.u64 == UINT64_MAX);
  CHECK(n.f == 1.5f);
  CHECK(n.d == 1e300);

  auto d = keel::json::convert<sample::numbers>(parse(R"({
    "i8": 5.0, "u8": 1e2, "i32": -0.0, "u32": 7, "i64": 1, "u64": 2, "f": 3, "d": 4
  })"));
  CHECK(d.i8 == 5);
  CHECK(d.u8 == 100);
  CHECK(d.i32 == 0);
  CHECK(d.f == 3.0f);
  CHECK(d.d == 4.0);

  auto e = errors_of<sample::numbers>(R"({
    "i8": 128, "u8": -1, "i32": 2.5, "u32": 4294967296,
    "i64": 9223372036854775808, "u64": -1, "f": 1e300, "d": "1"
  })");
  CHECK(e == errs{
                 {"/i8", "must be an integer from -128 to 127"},
                 {"/u8", "must be an integer from 0 to 255"},
                 {"/i32", "must be an integer"},
                 {"/u32", "must be an integer from 0 to 4294967295"},
                 {"/i64", "must be an integer from -9223372036854775808 to 9223372036854775807"},
                 {"/u64", "must be an integer from 0 to 18446744073709551615"},
                 {"/f", "is out of range"},
                 {"/d", "must be a number"},
             });

  // Doubles at the exact power-of-two bounds.
  CHECK(keel::json::convert<std::int64_t>(parse("-9.223372036854775808e18")) == INT64_MIN);
  CHECK(errors_of<std::int64_t>("9.223372036854775808e18") ==
        errs{{"", "must be an integer from -9223372036854775808 to 9223372036854775807"}});
  CHECK(errors_of<std::uint64_t>("1.8446744073709551616e19").size() == 1);
  CHECK(errors_of<int>("true") == errs{{"", "must be an integer"}});
}

TEST_CASE("containers of optionals and booleans convert element by element") {
  auto holes = keel::json::convert<std::vector<std::optional<int>>>(parse("[1, null, 3]"));
  CHECK(holes == std::vector<std::optional<int>>{1, std::nullopt, 3});
  CHECK(keel::json::convert<std::vector<bool>>(parse("[true, false]")) ==
        std::vector<bool>{true, false});
  CHECK(keel::json::convert<std::optional<std::string>>(parse("null")) == std::nullopt);
  CHECK(errors_of<std::vector<bool>>("[true, 1, null]") ==
        errs{{"/1", "must be a boolean"}, {"/2", "must be a boolean"}});
}

TEST_CASE("members of described bases are converted too") {
  auto d = keel::json::convert<sample::derived>(parse(R"({"id": 4, "name": "n"})"));
  CHECK(d.id == 4);
  CHECK(d.name == "n");
  CHECK(errors_of<sample::derived>(R"({"name": "n"})") == errs{{"/id", "is required"}});
}

TEST_CASE("boost json values, objects and arrays pass through unchanged") {
  auto e = keel::json::convert<sample::envelope>(
      parse(R"({"any": [1, {"x": null}], "meta": {"k": "v"}, "groups": {"g": ["a", "b"]}})"));
  CHECK(e.any == parse(R"([1, {"x": null}])"));
  REQUIRE(e.meta.has_value());
  CHECK(boost::json::value(*e.meta) == parse(R"({"k": "v"})"));
  CHECK(e.groups.at("g") == std::vector<std::string>{"a", "b"});

  CHECK(errors_of<sample::envelope>(R"({"any": null, "meta": [], "groups": {"g": [1]}})") ==
        errs{{"/meta", "must be an object"}, {"/groups/g/0", "must be a string"}});
  CHECK(errors_of<sample::envelope>(R"({"groups": {}})") == errs{{"/any", "is required"}});
}

TEST_CASE("to_value writes a struct that converts back to the same value") {
  auto t = keel::json::convert<sample::todo>(parse(full_todo));
  auto v = keel::json::to_value(t);
  auto back = keel::json::convert<sample::todo>(v);
  CHECK(back.title == t.title);
  CHECK(back.done == t.done);
  CHECK(back.level == t.level);
  CHECK(back.by.id == t.by.id);
  CHECK(back.tags.size() == 2);
  CHECK(back.tags[1].color == std::nullopt);
  CHECK(back.scores == t.scores);
  CHECK(back.weights == t.weights);
  CHECK(keel::json::to_value(back) == v);
}

TEST_CASE("to_value writes members in declaration order and omits nullopt members") {
  sample::tag t{"later", std::nullopt};
  CHECK(boost::json::serialize(keel::json::to_value(t)) == R"({"name":"later"})");

  sample::owner o{"alice", 7};
  CHECK(boost::json::serialize(keel::json::to_value(o)) == R"({"login":"alice","id":7})");

  std::vector<std::optional<int>> holes{1, std::nullopt};
  CHECK(boost::json::serialize(keel::json::to_value(holes)) == "[1,null]");
  CHECK(keel::json::to_value(std::optional<int>{}).is_null());
  CHECK(keel::json::to_value(sample::priority::normal) == "normal");
  CHECK(keel::json::to_value(std::uint64_t{UINT64_MAX}).is_uint64());
  CHECK(keel::json::to_value(std::int8_t{-3}) == -3);
  CHECK(keel::json::to_value(std::string_view("sv")) == "sv");
}

TEST_CASE("to_value refuses an enum value that has no described name") {
  CHECK_THROWS_AS(keel::json::to_value(static_cast<sample::priority>(42)), std::invalid_argument);
}

TEST_CASE("validation_error is a 422 that carries its field errors") {
  validation_error one({{"/title", "must be 1 to 200 characters"}});
  CHECK(one.status() == 422);
  REQUIRE(one.errors().size() == 1);
  CHECK(one.errors()[0].field == "/title");
  CHECK(one.errors()[0].message == "must be 1 to 200 characters");
  CHECK(one.detail() == "/title must be 1 to 200 characters");

  validation_error root({{"", "must be an object"}});
  CHECK(root.detail() == "the body must be an object");

  validation_error many({{"/a", "is required"}, {"/b", "is required"}});
  CHECK(many.detail() == "the body does not match the expected shape");
  CHECK(many.errors().size() == 2);

  validation_error pair("/title", "is required");
  REQUIRE(pair.errors().size() == 1);
  CHECK(pair.errors()[0].field == "/title");
  CHECK(pair.detail() == "/title is required");

  std::vector<field_error> built{{"/x", "is wrong"}};
  CHECK(validation_error(built).errors().size() == 1);

  keel::http_error const& as_base = many;
  CHECK(as_base.status() == 422);
}

TEST_CASE("the errors of a validation_error serialize as the problem's errors array") {
  validation_error e({{"/title", "is required"}, {"/done", "must be a boolean"}});
  CHECK(boost::json::serialize(keel::json::to_value(e.errors())) ==
        R"([{"field":"/title","message":"is required"},)"
        R"({"field":"/done","message":"must be a boolean"}])");
}

TEST_CASE("convert throws validation_error, which handlers can catch as http_error") {
  try {
    (void)keel::json::convert<sample::owner>(parse(R"({"login": "a"})"));
    FAIL("no exception");
  } catch (keel::http_error const& e) {
    CHECK(e.status() == 422);
    CHECK(e.detail() == "/id is required");
  }
}
