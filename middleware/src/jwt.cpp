// JWT (RFC 7519) in JWS compact serialization (RFC 7515), HMAC only.
#include <keel/middleware/auth.hpp>

#include <keel/context.hpp>

#include "auth_common.hpp"
#include "base64.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <chrono>
#include <cmath>
#include <stdexcept>

namespace keel::mw {

namespace json = boost::json;

std::string_view to_string(jwt_alg a) noexcept {
  switch (a) {
    case jwt_alg::hs256: return "HS256";
    case jwt_alg::hs384: return "HS384";
    case jwt_alg::hs512: return "HS512";
  }
  return "HS256";
}

namespace {

EVP_MD const* digest_of(jwt_alg a) {
  switch (a) {
    case jwt_alg::hs384: return EVP_sha384();
    case jwt_alg::hs512: return EVP_sha512();
    case jwt_alg::hs256: break;
  }
  return EVP_sha256();
}

// HMAC of `data`, into `out` (EVP_MAX_MD_SIZE bytes); returns its length, 0 on failure.
unsigned mac(jwt_alg a, std::string_view key, std::string_view data, unsigned char* out) {
  unsigned len = 0;
  // HMAC() refuses a null key pointer even with length 0.
  static char const empty = 0;
  void const* k = key.empty() ? &empty : key.data();
  if (HMAC(digest_of(a), k, static_cast<int>(key.size()), reinterpret_cast<unsigned char const*>(data.data()),
           data.size(), out, &len) == nullptr) {
    return 0;
  }
  return len;
}

// A NumericDate (RFC 7519 §2): any JSON number, seconds since the epoch.
std::optional<double> numeric_date(json::value const& v) {
  if (v.is_int64()) return static_cast<double>(v.get_int64());
  if (v.is_uint64()) return static_cast<double>(v.get_uint64());
  if (v.is_double() && std::isfinite(v.get_double())) return v.get_double();
  return std::nullopt;
}

std::optional<json::object> parse_object(std::string_view text) {
  boost::system::error_code ec;
  // Depth bounded by Boost.JSON's default (32): a nesting bomb is an error, not a crash.
  auto v = json::parse(text, ec);
  if (ec || !v.is_object()) return std::nullopt;
  return std::move(v.as_object());
}

void add_scopes(principal& p, json::object const& claims) {
  if (auto const* s = claims.if_contains("scope"); s && s->is_string()) {
    std::string_view all = s->get_string();
    while (!all.empty()) {
      auto sp = all.find(' ');
      auto one = all.substr(0, sp);
      if (!one.empty()) p.scopes.emplace_back(one);
      if (sp == std::string_view::npos) break;
      all.remove_prefix(sp + 1);
    }
  }
  for (auto const* key : {"scp", "scopes"}) {
    auto const* arr = claims.if_contains(key);
    if (arr == nullptr || !arr->is_array()) continue;
    for (auto const& x : arr->get_array()) {
      if (x.is_string()) p.scopes.emplace_back(x.get_string());
    }
  }
}

class jwt_authenticator final : public authenticator {
 public:
  explicit jwt_authenticator(jwt_options o) : opts_(std::move(o)) {
    if (opts_.secret.empty()) throw std::invalid_argument("keel::mw::jwt: the secret is empty");
  }

  task<auth_result> authenticate(context& ctx) const override { co_return check(ctx); }
  std::string challenge(std::string_view error) const override {
    return detail::bearer_challenge(opts_.realm, error);
  }

 private:
  auth_result check(context& ctx) const {
    std::optional<std::string> from_query;
    auto token = detail::bearer_token(ctx, opts_.allow_query_token, from_query);
    if (!token) return auth_result::absent();
    return verify_jwt(*token, opts_);
  }

  jwt_options opts_;
};

}  // namespace

auth_result verify_jwt(std::string_view token, jwt_options const& o) {
  if (token.empty()) return auth_result::invalid("empty token");
  if (token.size() > o.max_token_size) return auth_result::invalid("token too large");
  auto dot1 = token.find('.');
  auto dot2 = dot1 == std::string_view::npos ? dot1 : token.find('.', dot1 + 1);
  if (dot2 == std::string_view::npos || token.find('.', dot2 + 1) != std::string_view::npos) {
    return auth_result::invalid("malformed token: not three segments");
  }
  auto header_b64 = token.substr(0, dot1);
  auto payload_b64 = token.substr(dot1 + 1, dot2 - dot1 - 1);
  auto signature_b64 = token.substr(dot2 + 1);
  if (header_b64.empty() || payload_b64.empty() || signature_b64.empty()) {
    return auth_result::invalid("malformed token: empty segment");
  }

  auto header_text = detail::b64_decode(header_b64, true);
  if (!header_text) return auth_result::invalid("malformed token: header is not base64url");
  auto header = parse_object(*header_text);
  if (!header) return auth_result::invalid("malformed token: header is not a JSON object");
  // The algorithm is the configuration's, never the token's: `none`, another
  // HMAC size, or an asymmetric algorithm (the RS/HS confusion) are refused
  // before any cryptography runs.
  auto const* alg = header->if_contains("alg");
  if (alg == nullptr || !alg->is_string() || alg->get_string() != to_string(o.alg)) {
    return auth_result::invalid("algorithm not allowed");
  }
  if (header->contains("crit")) return auth_result::invalid("unsupported critical header");

  auto signature = detail::b64_decode(signature_b64, true);
  if (!signature) return auth_result::invalid("malformed token: signature is not base64url");
  unsigned char expected[EVP_MAX_MD_SIZE];
  unsigned len = mac(o.alg, o.secret, token.substr(0, dot2), expected);
  if (len == 0 || signature->size() != len || CRYPTO_memcmp(signature->data(), expected, len) != 0) {
    return auth_result::invalid("bad signature");
  }

  // Only a signed payload is parsed.
  auto payload_text = detail::b64_decode(payload_b64, true);
  if (!payload_text) return auth_result::invalid("malformed token: payload is not base64url");
  auto claims = parse_object(*payload_text);
  if (!claims) return auth_result::invalid("malformed token: payload is not a JSON object");

  double now = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  double leeway = static_cast<double>(o.leeway.count());
  if (auto const* exp = claims->if_contains("exp")) {
    auto t = numeric_date(*exp);
    if (!t) return auth_result::invalid("exp is not a number");
    if (now >= *t + leeway) return auth_result::invalid("token expired");
  } else if (o.require_exp) {
    return auth_result::invalid("missing exp claim");
  }
  if (auto const* nbf = claims->if_contains("nbf")) {
    auto t = numeric_date(*nbf);
    if (!t) return auth_result::invalid("nbf is not a number");
    if (now + leeway < *t) return auth_result::invalid("token not yet valid");
  }
  if (o.issuer) {
    auto const* iss = claims->if_contains("iss");
    if (iss == nullptr || !iss->is_string() || iss->get_string() != *o.issuer) {
      return auth_result::invalid("wrong issuer");
    }
  }
  if (o.audience) {
    auto const* aud = claims->if_contains("aud");
    bool ok = false;
    if (aud != nullptr && aud->is_string()) ok = aud->get_string() == *o.audience;
    if (aud != nullptr && aud->is_array()) {
      for (auto const& a : aud->get_array()) ok = ok || (a.is_string() && a.get_string() == *o.audience);
    }
    if (!ok) return auth_result::invalid("wrong audience");
  }
  principal p;
  if (auto const* sub = claims->if_contains("sub")) {
    if (!sub->is_string()) return auth_result::invalid("sub is not a string");
    p.subject = sub->get_string();
  } else if (o.require_sub) {
    return auth_result::invalid("missing sub claim");
  }
  p.scheme = "Bearer";
  add_scopes(p, *claims);
  p.claims = std::move(*claims);
  return auth_result::valid(std::move(p));
}

std::string sign_jwt(json::object const& claims, std::string_view secret, jwt_alg alg) {
  json::object header{{"alg", to_string(alg)}, {"typ", "JWT"}};
  std::string token;
  detail::b64url_encode(token, json::serialize(header));
  token += '.';
  detail::b64url_encode(token, json::serialize(claims));
  unsigned char sig[EVP_MAX_MD_SIZE];
  unsigned len = mac(alg, secret, token, sig);
  if (len == 0) throw std::runtime_error("keel::mw::sign_jwt: HMAC failed");
  token += '.';
  detail::b64url_encode(token, std::string_view(reinterpret_cast<char const*>(sig), len));
  return token;
}

authenticator_ptr jwt(jwt_options opts) { return std::make_shared<jwt_authenticator const>(std::move(opts)); }

}  // namespace keel::mw
