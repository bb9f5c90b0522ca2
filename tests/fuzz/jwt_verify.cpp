// Any token through the JWT verifier with each pinned algorithm and the
// claims checks on: malformed, truncated, huge or alg-switched tokens are
// refused without a crash, a leak or undefined behaviour.
#include <keel/middleware/auth.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* data, std::size_t size) {
  std::string_view token(reinterpret_cast<char const*>(data), size);
  for (auto alg : {keel::mw::jwt_alg::hs256, keel::mw::jwt_alg::hs384, keel::mw::jwt_alg::hs512}) {
    keel::mw::jwt_options o;
    o.secret = "fuzzing-secret-fuzzing-secret-32";
    o.alg = alg;
    o.issuer = "keel";
    o.audience = "tests";
    (void)keel::mw::verify_jwt(token, o);
  }
  return 0;
}
