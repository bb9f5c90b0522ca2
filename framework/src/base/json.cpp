#include <keel/json.hpp>

#include <string>
#include <utility>

namespace keel::json {
namespace {

std::string detail_for(std::vector<field_error> const& errors) {
  if (errors.size() != 1) return "the body does not match the expected shape";
  auto const& e = errors.front();
  // The root's pointer is "", which reads badly on its own.
  return (e.field.empty() ? std::string("the body") : e.field) + " " + e.message;
}

}  // namespace

validation_error::validation_error(std::vector<field_error> errors)
    : http_error(422, detail_for(errors)), errors_(std::move(errors)) {}

std::string escape_pointer_token(std::string_view token) {
  std::string out;
  out.reserve(token.size());
  for (char c : token) {
    if (c == '~') out += "~0";
    else if (c == '/') out += "~1";
    else out += c;
  }
  return out;
}

namespace detail {

void reader::fail(std::string message) {
  // Past the cap the walk is already stopping; more errors would only grow
  // the 422 with the size of the (possibly hostile) body.
  if (full()) return;
  errors_.push_back({path_, std::move(message)});
}

std::size_t reader::enter(std::string_view key) {
  auto mark = path_.size();
  path_ += '/';
  // Escape only when needed: member names almost never hold '~' or '/'.
  if (key.find_first_of("~/") == std::string_view::npos) path_ += key;
  else path_ += escape_pointer_token(key);
  return mark;
}

std::size_t reader::enter(std::size_t index) {
  auto mark = path_.size();
  path_ += '/';
  path_ += std::to_string(index);
  return mark;
}

std::string integer_range_message(std::int64_t lo, std::uint64_t hi) {
  return "must be an integer from " + std::to_string(lo) + " to " + std::to_string(hi);
}

}  // namespace detail
}  // namespace keel::json
