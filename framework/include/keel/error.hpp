#pragma once
// Exceptions a handler may throw to answer with a status of its choosing.
//
//   throw keel::http_error(404, "no todo 7");
//   throw keel::unauthorized("token expired", "Bearer realm=\"todo\"");
//
// The framework turns them into RFC 9457 problem details carrying the
// request's trace id; any other exception becomes a 500 whose text reaches the
// client only in dev_mode.
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace keel {

class http_error : public std::runtime_error {
 public:
  http_error(unsigned status, std::string const& detail)
      : std::runtime_error(detail), status_(status) {}
  unsigned status() const noexcept { return status_; }
  std::string_view detail() const noexcept { return what(); }
  /// Headers the response must carry (WWW-Authenticate, Retry-After, Allow, ...).
  std::vector<std::pair<std::string, std::string>> const& headers() const noexcept {
    return headers_;
  }
  http_error& with_header(std::string name, std::string value) {
    headers_.emplace_back(std::move(name), std::move(value));
    return *this;
  }

 private:
  unsigned status_;
  std::vector<std::pair<std::string, std::string>> headers_;
};

inline http_error bad_request(std::string const& detail) { return {400, detail}; }
inline http_error not_found(std::string const& detail) { return {404, detail}; }
inline http_error forbidden(std::string const& detail) { return {403, detail}; }
/// A 401 always carries WWW-Authenticate (SPEC §3).
inline http_error unauthorized(std::string const& detail, std::string challenge = "Bearer") {
  http_error e{401, detail};
  e.with_header("WWW-Authenticate", std::move(challenge));
  return e;
}
inline http_error too_many_requests(std::string const& detail, unsigned retry_after_seconds) {
  http_error e{429, detail};
  e.with_header("Retry-After", std::to_string(retry_after_seconds));
  return e;
}
inline http_error service_unavailable(std::string const& detail) { return {503, detail}; }

}  // namespace keel
