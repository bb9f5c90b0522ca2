#pragma once
// Authentication and authorization: who is calling (401) and may they (403).
//
//   auto tokens = keel::mw::bearer_tokens({{"s3cret", {.subject = "ci", .scopes = {"deploy"}}}});
//   auto jwt = keel::mw::jwt({.secret = secret, .alg = keel::mw::jwt_alg::hs256});
//   auto api = app.group("/api", {keel::mw::authenticate({.authenticators = {jwt, tokens}})});
//   api.post("/deploy", deploy).use(keel::mw::require_scope("deploy"));
//
//   keel::task<keel::response> deploy(keel::context& ctx) {
//     auto const& who = *ctx.get<keel::mw::principal>();   // set by authenticate()
//     ...
//   }
//
// authenticate() asks its authenticators in order and the first that accepts
// the request's credentials wins: the principal is set on the context
// (ctx.set<keel::mw::principal>) and the chain continues. When none accepts
// them (several may read `Bearer`: a JWT and a static-token authenticator),
// or no credentials are present (unless `optional`): 401 problem with one
// `WWW-Authenticate` challenge per authenticator, the first that refused
// carrying `error="invalid_token"` and why. The handler never runs.
//
// Built-in authenticators (all compare secrets in constant time, and none
// logs or echoes a presented secret):
//  - bearer_tokens: `Authorization: Bearer <token>` (and `?access_token=` when
//    allowed) against a fixed set. Tokens are kept as SHA-256 digests and a
//    presented one is compared with every digest (CRYPTO_memcmp), so neither
//    the match nor its position shows in the timing.
//  - api_keys: the same against a header of your choice (`X-API-Key`).
//  - basic_auth: `Authorization: Basic` decoded (strict base64) and handed to
//    your verifier; compare passwords there in constant time (or check a hash).
//  - jwt: compact JWS signed with HMAC (HS256/HS384/HS512, OpenSSL). The
//    algorithm is pinned by configuration: a header naming any other one,
//    `none` included, is rejected, as is a `crit` header. Checked: three
//    base64url segments without padding, JSON object header and payload, the
//    signature, `exp` (required by default) and `nbf` with `leeway`, `iss` and
//    `aud` when configured, `sub` (required by default), a size limit
//    (`max_token_size`, 8 KiB). A malformed token is a 401, never a crash.
//    Scopes come from the `scope` claim (space-separated) or `scp`/`scopes`
//    (array of strings).
// Thread safety: authenticators are shared by every I/O thread and must be
// safe to call concurrently (the built-ins are immutable).
#include <keel/middleware.hpp>

#include <boost/json/object.hpp>

#include <chrono>
#include <functional>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace keel::mw {

namespace name {
inline constexpr std::string_view auth = "auth";
inline constexpr std::string_view require_scope = "require_scope";
}

/// Who a request comes from. Set on the context by authenticate().
struct principal {
  std::string subject;              ///< user id: JWT `sub`, Basic user name, token's name
  std::vector<std::string> scopes;  ///< scopes or roles, checked by require_scope()
  std::string scheme;               ///< "Bearer", "Basic" or "ApiKey"
  boost::json::object claims;       ///< a JWT's payload; empty for other schemes

  bool has_scope(std::string_view s) const noexcept;
};

/// What one authenticator concluded about one request.
struct auth_result {
  enum class outcome {
    absent,   ///< no credentials this authenticator understands: ask the next one
    valid,    ///< `who` is the caller
    invalid,  ///< credentials present but wrong: 401, `error` says why
  };
  outcome what = outcome::absent;
  principal who;
  std::string error;

  static auth_result absent() { return {}; }
  static auth_result valid(principal p) { return {outcome::valid, std::move(p), {}}; }
  static auth_result invalid(std::string why) { return {outcome::invalid, {}, std::move(why)}; }
};

/// The pluggable part: implement it for sessions, mTLS, an external service...
class authenticator {
 public:
  virtual ~authenticator() = default;
  /// Examines the request's credentials. May await (a database lookup); runs
  /// on the request's I/O thread, concurrently with other requests.
  virtual task<auth_result> authenticate(context& ctx) const = 0;
  /// The WWW-Authenticate challenge for a 401: `error` is empty when no
  /// credentials were found, else why they were refused.
  virtual std::string challenge(std::string_view error) const = 0;
};

using authenticator_ptr = std::shared_ptr<authenticator const>;

struct auth_options {
  /// Asked in order; the first that accepts the credentials wins.
  std::vector<authenticator_ptr> authenticators;
  /// No credentials at all: continue without a principal (bad ones are still a 401).
  bool optional = false;
};

middleware authenticate(auth_options opts);
middleware authenticate(authenticator_ptr a);

/// 403 unless the principal has every one of `scopes` (401 when there is no
/// principal: install authenticate() outside it). Use per route or group.
middleware require_scope(std::initializer_list<std::string_view> scopes);
middleware require_scope(std::string_view scope);

// --- built-in authenticators -------------------------------------------------

struct static_token {
  std::string token;  ///< the secret
  principal who;      ///< who presents it (scheme is filled in)
};

struct bearer_options {
  std::string realm = "keel";
  /// Also accept `?access_token=` (WebSocket upgrades from browsers, which
  /// cannot set headers). Redact it from logs: the access log does by default.
  bool allow_query_token = false;
};

authenticator_ptr bearer_tokens(std::vector<static_token> tokens, bearer_options opts = {});
authenticator_ptr api_keys(std::vector<static_token> keys, std::string header = "X-API-Key");

/// Returns the principal for a user name and password, or nullopt.
using basic_verifier =
    std::function<std::optional<principal>(std::string_view user, std::string_view password)>;
authenticator_ptr basic_auth(basic_verifier verify, std::string realm = "keel");

enum class jwt_alg { hs256, hs384, hs512 };
/// "HS256", "HS384", "HS512".
std::string_view to_string(jwt_alg a) noexcept;

struct jwt_options {
  std::string secret;               ///< HMAC key; required (empty throws at construction)
  jwt_alg alg = jwt_alg::hs256;     ///< the one algorithm accepted
  std::chrono::seconds leeway{30};  ///< clock skew allowed on exp and nbf
  std::optional<std::string> issuer;    ///< when set, `iss` must equal it
  std::optional<std::string> audience;  ///< when set, `aud` (string or array) must contain it
  bool require_exp = true;
  bool require_sub = true;
  std::size_t max_token_size = 8192;
  std::string realm = "keel";
  bool allow_query_token = false;  ///< also accept `?access_token=`
};

authenticator_ptr jwt(jwt_options opts);

/// Checks a compact JWS as the jwt authenticator does: valid with the
/// principal, or invalid with the reason. Never throws for bad input.
auth_result verify_jwt(std::string_view token, jwt_options const& opts);
/// Signs `claims` (tests, and apps that issue tokens: `todo token`).
std::string sign_jwt(boost::json::object const& claims, std::string_view secret,
                     jwt_alg alg = jwt_alg::hs256);

}  // namespace keel::mw
