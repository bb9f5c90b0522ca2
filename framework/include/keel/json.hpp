#pragma once
// Typed JSON bodies: keel::json::convert<T>(value) for Boost.Describe'd structs.
// (Stub: the full walk lands with its tests.)
#include <keel/error.hpp>

#include <boost/json/value.hpp>
#include <boost/json/value_to.hpp>

#include <string>
#include <vector>

namespace keel::json {

/// One field that failed conversion: `field` is a JSON pointer ("/title").
struct field_error {
  std::string field;
  std::string message;
};

/// A 422: the body parsed but does not convert. Rendered as a problem with
/// "errors":[{"field","message"}].
class validation_error : public http_error {
 public:
  explicit validation_error(std::vector<field_error> errors);
  std::vector<field_error> const& errors() const noexcept { return errors_; }

 private:
  std::vector<field_error> errors_;
};

template <class T>
T convert(boost::json::value const& v) {
  return boost::json::value_to<T>(v);
}

}  // namespace keel::json
