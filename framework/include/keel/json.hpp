#pragma once
// Typed JSON bodies: convert a parsed boost::json::value to a C++ type and
// back, naming every field that does not fit.
//
//   struct new_todo {
//     std::string title;
//     std::optional<bool> done;
//   };
//   BOOST_DESCRIBE_STRUCT(new_todo, (), (title, done))
//
//   auto body = keel::json::convert<new_todo>(ctx.json_body());   // or ctx.json<new_todo>()
//   if (body.title.empty() || body.title.size() > 200)
//     throw keel::json::validation_error({{"/title", "must be 1 to 200 characters"}});
//   ...
//   co_return keel::response::json(keel::json::to_value(todo), 201);
//
// Why not boost::json::value_to: in Boost 1.81 it rejects a described struct
// when the object has an extra key or lacks an optional member, and its errors
// name no field. convert<T> walks the value itself and reports each failure
// with a JSON pointer (RFC 6901) so the 422 can say "/items/3/name is required".
//
// Supported types, for convert and to_value alike:
//   bool; every integer type (range-checked); float, double; std::string;
//   std::optional<U>; std::vector<U>; std::map / std::unordered_map with
//   std::string keys; boost::json::value, object and array (copied as they are);
//   enums described with BOOST_DESCRIBE_ENUM (as their enumerator names);
//   structs described with BOOST_DESCRIBE_STRUCT (public members, nested freely,
//   members of described bases included).
// Anything else is a compile-time error. std::string_view is refused by
// convert (it would point into the parsed value, which the caller may not keep)
// but accepted by to_value.
#include <keel/error.hpp>

#include <boost/describe/class.hpp>  // BOOST_DESCRIBE_STRUCT, for users too
#include <boost/describe/enum.hpp>   // BOOST_DESCRIBE_ENUM
#include <boost/describe/enumerators.hpp>
#include <boost/describe/members.hpp>
#include <boost/describe/modifiers.hpp>
#include <boost/json/value.hpp>
#include <boost/mp11/algorithm.hpp>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

namespace keel::json {

/// One field that failed conversion or validation.
struct field_error {
  /// A JSON pointer to the field: "/title", "/items/3/name"; "" is the whole body.
  std::string field;
  /// What is wrong, phrased to follow the field: "is required", "must be a string".
  std::string message;
};
// Described so that `to_value(e.errors())` gives the problem's "errors" array.
BOOST_DESCRIBE_STRUCT(field_error, (), (field, message))

/// A 422: the body is JSON but not the expected shape, or a handler's own check
/// failed. The framework renders it as problem details with
/// "errors":[{"field":"/title","message":"…"}].
///
/// detail() is "<field> <message>" when there is exactly one error on a field
/// ("/title must be a string"), "the body <message>" for one error on the whole
/// body, and "the body does not match the expected shape" otherwise.
class validation_error : public http_error {
 public:
  explicit validation_error(std::vector<field_error> errors);
  /// `throw validation_error({{"/title", "must be 1 to 200 characters"}});`
  validation_error(std::initializer_list<field_error> errors)
      : validation_error(std::vector<field_error>(errors)) {}
  /// One error: `throw validation_error("/title", "must be 1 to 200 characters");`
  validation_error(std::string field, std::string message)
      : validation_error(std::vector<field_error>{{std::move(field), std::move(message)}}) {}
  std::vector<field_error> const& errors() const noexcept { return errors_; }

 private:
  std::vector<field_error> errors_;
};

/// A key or array index escaped as one JSON-pointer reference token
/// (RFC 6901: "~" becomes "~0", "/" becomes "~1"), without the leading "/".
std::string escape_pointer_token(std::string_view token);

/// convert<T> stops recording (and walking) after this many field errors, so a
/// huge array of wrong elements cannot produce a response larger than itself.
inline constexpr std::size_t max_errors = 100;

namespace detail {

// The walk's state: the pointer to the value being read and the errors so far.
class reader {
 public:
  void fail(std::string message);
  bool full() const noexcept { return errors_.size() >= max_errors; }
  std::vector<field_error>& errors() noexcept { return errors_; }

  // enter() appends one reference token and returns the length to leave() back to.
  std::size_t enter(std::string_view key);
  std::size_t enter(std::size_t index);
  void leave(std::size_t mark) { path_.resize(mark); }

 private:
  std::string path_;
  std::vector<field_error> errors_;
};

// "must be an integer from <lo> to <hi>"
std::string integer_range_message(std::int64_t lo, std::uint64_t hi);

template <class T>
inline constexpr bool always_false = false;

template <class T>
struct is_optional : std::false_type {};
template <class U>
struct is_optional<std::optional<U>> : std::true_type {};

template <class T>
struct is_vector : std::false_type {};
template <class U, class A>
struct is_vector<std::vector<U, A>> : std::true_type {};

template <class T>
struct is_string_map : std::false_type {};
template <class U, class C, class A>
struct is_string_map<std::map<std::string, U, C, A>> : std::true_type {};
template <class U, class H, class E, class A>
struct is_string_map<std::unordered_map<std::string, U, H, E, A>> : std::true_type {};

template <class T>
inline constexpr bool is_described_enum =
    std::is_enum_v<T> && boost::describe::has_describe_enumerators<T>::value;

template <class T>
inline constexpr bool is_described_struct =
    std::is_class_v<T> && boost::describe::has_describe_members<T>::value;

template <class T>
using public_members =
    boost::describe::describe_members<T, boost::describe::mod_public |
                                             boost::describe::mod_inherited>;

template <class E>
std::string enum_choices() {
  std::string s = "must be one of";
  char const* sep = " ";
  boost::mp11::mp_for_each<boost::describe::describe_enumerators<E>>([&](auto d) {
    s += sep;
    s += '"';
    s += d.name;
    s += '"';
    sep = ", ";
  });
  return s;
}

template <class T>
void read_integer(reader& r, boost::json::value const& v, T& out) {
  using lim = std::numeric_limits<T>;
  bool ok = false;
  if (auto const* i = v.if_int64()) {
    if constexpr (std::is_signed_v<T>) {
      ok = *i >= lim::min() && *i <= lim::max();
    } else {
      ok = *i >= 0 && static_cast<std::uint64_t>(*i) <= lim::max();
    }
    if (ok) out = static_cast<T>(*i);
  } else if (auto const* u = v.if_uint64()) {
    ok = *u <= static_cast<std::uint64_t>(lim::max());
    if (ok) out = static_cast<T>(*u);
  } else if (auto const* d = v.if_double()) {
    // 1e3 and 5.0 are integers written as doubles; 2.5 is not. The bounds are
    // exact powers of two: min() is -2^digits (or 0), max() is 2^digits - 1.
    if (std::trunc(*d) != *d) {
      r.fail("must be an integer");
      return;
    }
    ok = *d >= static_cast<double>(lim::min()) && *d < std::ldexp(1.0, lim::digits);
    if (ok) out = static_cast<T>(*d);
  } else {
    r.fail("must be an integer");
    return;
  }
  if (!ok)
    r.fail(integer_range_message(static_cast<std::int64_t>(lim::min()),
                                 static_cast<std::uint64_t>(lim::max())));
}

template <class T>
void read(reader& r, boost::json::value const& v, T& out);

template <class T>
void read_members(reader& r, boost::json::object const& obj, T& out) {
  boost::mp11::mp_for_each<public_members<T>>([&](auto d) {
    if (r.full()) return;
    auto& member = out.*d.pointer;
    using M = std::remove_reference_t<decltype(member)>;
    auto const* field = obj.if_contains(d.name);
    auto mark = r.enter(d.name);
    if (field) {
      read(r, *field, member);
    } else if constexpr (is_optional<M>::value) {
      member.reset();
    } else {
      r.fail("is required");
    }
    r.leave(mark);
  });
}

template <class T>
void read(reader& r, boost::json::value const& v, T& out) {
  if constexpr (std::is_same_v<T, boost::json::value>) {
    out = v;
  } else if constexpr (std::is_same_v<T, boost::json::object>) {
    if (auto const* o = v.if_object()) out = *o;
    else r.fail("must be an object");
  } else if constexpr (std::is_same_v<T, boost::json::array>) {
    if (auto const* a = v.if_array()) out = *a;
    else r.fail("must be an array");
  } else if constexpr (std::is_same_v<T, bool>) {
    if (auto const* b = v.if_bool()) out = *b;
    else r.fail("must be a boolean");
  } else if constexpr (std::is_integral_v<T>) {
    read_integer(r, v, out);
  } else if constexpr (std::is_floating_point_v<T>) {
    double d = 0;
    if (auto const* i = v.if_int64()) d = static_cast<double>(*i);
    else if (auto const* u = v.if_uint64()) d = static_cast<double>(*u);
    else if (auto const* f = v.if_double()) d = *f;
    else {
      r.fail("must be a number");
      return;
    }
    // A float cannot hold 1e300, and a huge exponent parses as infinity.
    if (!std::isfinite(d) || std::abs(d) > std::numeric_limits<T>::max())
      r.fail("is out of range");
    else
      out = static_cast<T>(d);
  } else if constexpr (std::is_same_v<T, std::string>) {
    if (auto const* s = v.if_string()) out.assign(s->data(), s->size());
    else r.fail("must be a string");
  } else if constexpr (std::is_same_v<T, std::string_view>) {
    static_assert(always_false<T>,
                  "keel::json::convert: std::string_view would dangle; use std::string");
  } else if constexpr (is_optional<T>::value) {
    if (v.is_null()) {
      out.reset();
    } else {
      read(r, v, out.emplace());
    }
  } else if constexpr (is_vector<T>::value) {
    auto const* a = v.if_array();
    if (!a) {
      r.fail("must be an array");
      return;
    }
    out.clear();
    out.reserve(a->size());
    for (std::size_t i = 0; i < a->size() && !r.full(); ++i) {
      typename T::value_type item{};
      auto mark = r.enter(i);
      read(r, (*a)[i], item);
      r.leave(mark);
      out.push_back(std::move(item));
    }
  } else if constexpr (is_string_map<T>::value) {
    auto const* o = v.if_object();
    if (!o) {
      r.fail("must be an object");
      return;
    }
    out.clear();
    for (auto const& kv : *o) {
      if (r.full()) break;
      typename T::mapped_type item{};
      auto mark = r.enter(kv.key());
      read(r, kv.value(), item);
      r.leave(mark);
      out.insert_or_assign(std::string(kv.key()), std::move(item));
    }
  } else if constexpr (is_described_enum<T>) {
    bool found = false;
    if (auto const* s = v.if_string()) {
      boost::mp11::mp_for_each<boost::describe::describe_enumerators<T>>([&](auto d) {
        if (!found && *s == d.name) {
          out = d.value;
          found = true;
        }
      });
    }
    if (!found) r.fail(enum_choices<T>());
  } else if constexpr (is_described_struct<T>) {
    // Keys the struct does not describe are ignored: clients may send more
    // than a handler reads (forward compatibility, PATCH bodies with extras).
    if (auto const* o = v.if_object()) read_members(r, *o, out);
    else r.fail("must be an object");
  } else {
    static_assert(always_false<T>,
                  "keel::json::convert: unsupported type; describe it with "
                  "BOOST_DESCRIBE_STRUCT or BOOST_DESCRIBE_ENUM");
  }
}

}  // namespace detail

/// Converts a parsed JSON value to T (see the list of types at the top).
///
/// - Keys an object has but T does not describe are ignored.
/// - A missing member is an error ("is required") unless it is a std::optional,
///   which is then nullopt; null is also nullopt. null for a non-optional
///   member is a type error ("must be a string").
/// - Integers are range-checked; a double with an integral value (5.0, 1e3)
///   is accepted as an integer.
/// - Every failing field is reported, each with its JSON pointer, up to
///   max_errors; then validation_error (422) is thrown.
///
/// T must be default-constructible (so must every element and member type).
/// Throws validation_error.
template <class T>
T convert(boost::json::value const& v) {
  detail::reader r;
  T out{};
  detail::read(r, v, out);
  if (!r.errors().empty()) throw validation_error(std::move(r.errors()));
  return out;
}

/// The JSON form of `x`, for `response::json(keel::json::to_value(todo))`.
///
/// A std::optional struct member that is nullopt is omitted from the object;
/// a nullopt anywhere else (top level, array element, map value) is null.
/// Struct members appear in declaration order. An enum value with no described
/// name throws std::invalid_argument (a bug, hence a 500).
template <class T>
boost::json::value to_value(T const& x) {
  if constexpr (std::is_same_v<T, boost::json::value> || std::is_same_v<T, boost::json::object> ||
                std::is_same_v<T, boost::json::array>) {
    return boost::json::value(x);
  } else if constexpr (std::is_same_v<T, bool>) {
    return boost::json::value(x);
  } else if constexpr (std::is_integral_v<T> && std::is_signed_v<T>) {
    return boost::json::value(static_cast<std::int64_t>(x));
  } else if constexpr (std::is_integral_v<T>) {
    return boost::json::value(static_cast<std::uint64_t>(x));
  } else if constexpr (std::is_floating_point_v<T>) {
    return boost::json::value(static_cast<double>(x));
  } else if constexpr (std::is_same_v<T, std::string> || std::is_same_v<T, std::string_view>) {
    return boost::json::value(boost::json::string_view(x.data(), x.size()));
  } else if constexpr (detail::is_optional<T>::value) {
    return x ? to_value(*x) : boost::json::value(nullptr);
  } else if constexpr (detail::is_vector<T>::value) {
    boost::json::array a;
    a.reserve(x.size());
    for (auto const& item : x) a.push_back(to_value(item));
    return a;
  } else if constexpr (detail::is_string_map<T>::value) {
    boost::json::object o;
    o.reserve(x.size());
    for (auto const& [k, item] : x) o.insert_or_assign(k, to_value(item));
    return o;
  } else if constexpr (detail::is_described_enum<T>) {
    char const* name = nullptr;
    boost::mp11::mp_for_each<boost::describe::describe_enumerators<T>>([&](auto d) {
      if (!name && x == d.value) name = d.name;
    });
    if (!name) throw std::invalid_argument("keel::json::to_value: enum value has no described name");
    return boost::json::value(boost::json::string_view(name));
  } else if constexpr (detail::is_described_struct<T>) {
    boost::json::object o;
    boost::mp11::mp_for_each<detail::public_members<T>>([&](auto d) {
      auto const& member = x.*d.pointer;
      using M = std::remove_cv_t<std::remove_reference_t<decltype(member)>>;
      if constexpr (detail::is_optional<M>::value) {
        if (!member) return;
      }
      o.insert_or_assign(d.name, to_value(member));
    });
    return o;
  } else {
    static_assert(detail::always_false<T>,
                  "keel::json::to_value: unsupported type; describe it with "
                  "BOOST_DESCRIBE_STRUCT or BOOST_DESCRIBE_ENUM");
    return {};
  }
}

}  // namespace keel::json
