// auth: static bearer tokens, API keys, HTTP Basic, JWT (HS256/384/512) and
// require_scope, over real sockets; JWT edge cases also without a server.
#include <catch2/catch.hpp>

#include "test_app.hpp"

#include <keel/context.hpp>
#include <keel/middleware/auth.hpp>

#include <boost/json.hpp>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <chrono>
#include <random>

using namespace keel::test;
using keel::context;
using keel::response;
using keel::task;
namespace kt = keel::testing;
namespace json = boost::json;
namespace mw = keel::mw;

namespace {

constexpr char const* secret = "0123456789abcdef0123456789abcdef";

std::int64_t now_s() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// Who the handler sees.
task<response> whoami(context& ctx) {
  auto const* p = ctx.get<mw::principal>();
  if (p == nullptr) co_return response::text("anonymous");
  std::string scopes;
  for (auto const& s : p->scopes) scopes += (scopes.empty() ? "" : ",") + s;
  co_return response::text(p->scheme + ":" + p->subject + ":" + scopes);
}

std::string b64url(std::string_view in) {
  static constexpr char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  unsigned acc = 0;
  int bits = 0;
  for (unsigned char c : in) {
    acc = (acc << 8) | c;
    bits += 8;
    while (bits >= 6) out.push_back(a[(acc >> (bits -= 6)) & 0x3f]);
  }
  if (bits > 0) out.push_back(a[(acc << (6 - bits)) & 0x3f]);
  return out;
}

// A token from raw header and payload text, signed with HMAC-SHA(bits).
std::string raw_token(std::string_view header, std::string_view payload, std::string_view key = secret,
                      int bits = 256) {
  std::string t = b64url(header) + "." + b64url(payload);
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned len = 0;
  auto const* md = bits == 512 ? EVP_sha512() : bits == 384 ? EVP_sha384() : EVP_sha256();
  HMAC(md, key.data(), int(key.size()), reinterpret_cast<unsigned char const*>(t.data()), t.size(), mac, &len);
  return t + "." + b64url(std::string_view(reinterpret_cast<char const*>(mac), len));
}

json::object claims(std::int64_t exp_in = 3600) {
  return {{"sub", "alice"}, {"exp", now_s() + exp_in}, {"scope", "read write"}};
}

mw::jwt_options jwt_opts(mw::jwt_alg alg = mw::jwt_alg::hs256) {
  mw::jwt_options o;
  o.secret = secret;
  o.alg = alg;
  return o;
}

std::string why(mw::auth_result const& r) { return r.what == mw::auth_result::outcome::valid ? "valid" : r.error; }

std::vector<std::string> challenges(kt::http_response const& r) {
  std::vector<std::string> out;
  for (auto const& [k, v] : r.headers) {
    if (k == "WWW-Authenticate" || k == "www-authenticate") out.push_back(v);
  }
  return out;
}

kt::header_list bearer(std::string const& token) { return {{"Authorization", "Bearer " + token}}; }

}  // namespace

// --- static tokens, API keys, Basic ------------------------------------------

TEST_CASE("a static bearer token lets the request through with its principal", "[auth]") {
  keel::app app(test_options());
  app.use(mw::authenticate(mw::bearer_tokens({{"tok-1", {.subject = "ci", .scopes = {"deploy"}}},
                                              {"tok-2", {.subject = "bot"}}})));
  app.get("/me", whoami);
  kt::running_app run(app);
  CHECK(run.get("/me", bearer("tok-1")).body == "Bearer:ci:deploy");
  CHECK(run.get("/me", bearer("tok-2")).body == "Bearer:bot:");
  CHECK(run.get("/me", {{"Authorization", "bearer   tok-2  "}}).body == "Bearer:bot:");
}

TEST_CASE("a missing or wrong bearer token is a 401 with WWW-Authenticate", "[auth]") {
  keel::app app(test_options());
  app.use(mw::authenticate(mw::bearer_tokens({{"tok-1", {.subject = "ci"}}}, {.realm = "api"})));
  app.get("/me", whoami);
  kt::running_app run(app);
  auto missing = run.get("/me");
  CHECK(missing.status == 401);
  CHECK(missing.header("Content-Type") == "application/problem+json");
  CHECK(challenges(missing) == std::vector<std::string>{"Bearer realm=\"api\""});
  auto wrong = run.get("/me", bearer("tok-2"));
  CHECK(wrong.status == 401);
  CHECK(challenges(wrong) ==
        std::vector<std::string>{R"(Bearer realm="api", error="invalid_token", error_description="unknown token")"});
  CHECK(wrong.body.find("tok-2") == std::string::npos);  // never echoed
  CHECK(run.get("/me", bearer("tok-1x")).status == 401);
  CHECK(run.get("/me", bearer("tok-")).status == 401);
  CHECK(run.get("/me", {{"Authorization", "Bearer"}}).status == 401);
  CHECK(run.get("/me", {{"Authorization", "Basic dG9rLTE="}}).status == 401);
  CHECK(run.get("/me?access_token=tok-1").status == 401);  // not allowed by default
}

TEST_CASE("?access_token= is accepted only when allowed", "[auth]") {
  keel::app app(test_options());
  app.use(mw::authenticate(mw::bearer_tokens({{"tok 1", {.subject = "ws"}}}, {.allow_query_token = true})));
  app.get("/me", whoami);
  kt::running_app run(app);
  CHECK(run.get("/me?access_token=tok%201").body == "Bearer:ws:");
  CHECK(run.get("/me?access_token=nope").status == 401);
}

TEST_CASE("API keys are read from their header", "[auth]") {
  keel::app app(test_options());
  app.use(mw::authenticate(mw::api_keys({{"k-123", {.subject = "svc"}}}, "X-Api-Key")));
  app.get("/me", whoami);
  kt::running_app run(app);
  CHECK(run.get("/me", {{"X-API-KEY", "k-123"}}).body == "ApiKey:svc:");
  auto r = run.get("/me", {{"X-Api-Key", "k-124"}});
  CHECK(r.status == 401);
  CHECK(r.header("WWW-Authenticate") == "ApiKey header=\"X-Api-Key\"");
  CHECK(run.get("/me").status == 401);
}

TEST_CASE("HTTP Basic hands user and password to the verifier", "[auth]") {
  keel::app app(test_options());
  app.use(mw::authenticate(mw::basic_auth(
      [](std::string_view user, std::string_view pass) -> std::optional<mw::principal> {
        if (user == "alice" && pass == "pa:ss") return mw::principal{.scopes = {"admin"}};
        return std::nullopt;
      },
      "ops")));
  app.get("/me", whoami);
  kt::running_app run(app);
  CHECK(run.get("/me", {{"Authorization", "Basic YWxpY2U6cGE6c3M="}}).body == "Basic:alice:admin");  // alice:pa:ss
  auto wrong = run.get("/me", {{"Authorization", "Basic YWxpY2U6cGFzcw=="}});                        // alice:pass
  CHECK(wrong.status == 401);
  CHECK(wrong.header("WWW-Authenticate") == "Basic realm=\"ops\", charset=\"UTF-8\"");
  CHECK(run.get("/me", {{"Authorization", "Basic !!!"}}).status == 401);
  CHECK(run.get("/me", {{"Authorization", "Basic YWxpY2U="}}).status == 401);  // no colon
  CHECK(run.get("/me", {{"Authorization", "Basic " + std::string(5000, 'A')}}).status == 401);
}

// --- JWT over the wire ---------------------------------------------------------

TEST_CASE("a valid JWT sets the principal from sub and scope, for each pinned HMAC size", "[auth][jwt]") {
  auto [alg, bits] = GENERATE(std::pair{mw::jwt_alg::hs256, 256}, std::pair{mw::jwt_alg::hs384, 384},
                              std::pair{mw::jwt_alg::hs512, 512});
  keel::app app(test_options());
  app.use(mw::authenticate(mw::jwt(jwt_opts(alg))));
  app.get("/me", whoami);
  kt::running_app run(app);
  auto token = mw::sign_jwt(claims(), secret, alg);
  CHECK(run.get("/me", bearer(token)).body == "Bearer:alice:read,write");
  // The same claims hand-signed agree with sign_jwt's.
  auto header = std::string(R"({"alg":")") + std::string(mw::to_string(alg)) + R"(","typ":"JWT"})";
  CHECK(run.get("/me", bearer(raw_token(header, json::serialize(claims()), secret, bits))).status == 200);
}

TEST_CASE("bad JWTs get 401 with invalid_token and the reason", "[auth][jwt]") {
  keel::app app(test_options());
  app.use(mw::authenticate(mw::jwt(jwt_opts())));
  app.get("/me", whoami);
  kt::running_app run(app);
  auto check = [&](std::string const& token, std::string const& reason) {
    INFO("token: " << token.substr(0, 120));
    auto r = run.get("/me", bearer(token));
    CHECK(r.status == 401);
    CHECK(r.header("WWW-Authenticate") ==
          "Bearer realm=\"keel\", error=\"invalid_token\", error_description=\"" + reason + "\"");
    CHECK(r.body.find("alice") == std::string::npos);
  };
  auto good = mw::sign_jwt(claims(), secret);
  check(mw::sign_jwt(claims(-120), secret), "token expired");
  check(mw::sign_jwt({{"sub", "alice"}, {"exp", now_s() + 3600}, {"nbf", now_s() + 600}}, secret),
        "token not yet valid");
  check(mw::sign_jwt(claims(), "another secret"), "bad signature");
  check(raw_token(R"({"alg":"none","typ":"JWT"})", json::serialize(claims())), "algorithm not allowed");
  check(good.substr(0, good.rfind('.') + 1), "malformed token: empty segment");  // alg none style, no signature
  check(mw::sign_jwt(claims(), secret, mw::jwt_alg::hs512), "algorithm not allowed");
  check(raw_token(R"({"alg":"RS256"})", json::serialize(claims())), "algorithm not allowed");
  check(raw_token(R"({"alg":"hs256"})", json::serialize(claims())), "algorithm not allowed");
  check(raw_token(R"({"typ":"JWT"})", json::serialize(claims())), "algorithm not allowed");
  check(good.substr(0, good.rfind('.')), "malformed token: not three segments");  // truncated
  check(good.substr(0, good.rfind('.') + 41), "bad signature");  // 30 of 32 bytes
  check(good + ".x", "malformed token: not three segments");
  check(good.substr(0, good.size() - 1) + "*", "malformed token: signature is not base64url");
  check(good + "=", "malformed token: signature is not base64url");
  check("a+b." + good.substr(good.find('.') + 1), "malformed token: header is not base64url");
  check(b64url("not json") + good.substr(good.find('.')), "malformed token: header is not a JSON object");
  check(std::string(10'000, 'A'), "token too large");
  check(mw::sign_jwt({{"sub", "alice"}}, secret), "missing exp claim");
  check(mw::sign_jwt({{"exp", now_s() + 60}}, secret), "missing sub claim");
  check(mw::sign_jwt({{"sub", "alice"}, {"exp", "tomorrow"}}, secret), "exp is not a number");
  check(mw::sign_jwt({{"sub", 7}, {"exp", now_s() + 60}}, secret), "sub is not a string");
  check(raw_token(R"({"alg":"HS256"})", "[1,2,3]"), "malformed token: payload is not a JSON object");
  check(raw_token(R"({"alg":"HS256","crit":["exp"]})", json::serialize(claims())), "unsupported critical header");
}

TEST_CASE("a huge Authorization header is refused before auth sees it", "[auth][jwt]") {
  keel::app app(test_options());
  app.use(mw::authenticate(mw::jwt(jwt_opts())));
  app.get("/me", whoami);
  kt::running_app run(app);
  CHECK(run.get("/me", bearer(std::string(20'000, 'A'))).status == 431);  // > max_head
  CHECK(run.get("/me", bearer(mw::sign_jwt(claims(), secret))).status == 200);
}

// --- JWT without a server ------------------------------------------------------

TEST_CASE("exp and nbf allow the configured leeway", "[auth][jwt]") {
  auto o = jwt_opts();
  o.leeway = std::chrono::seconds(30);
  CHECK(why(mw::verify_jwt(mw::sign_jwt(claims(-10), secret), o)) == "valid");
  CHECK(why(mw::verify_jwt(mw::sign_jwt(claims(-40), secret), o)) == "token expired");
  auto nbf = [&](std::int64_t in) {
    return mw::sign_jwt({{"sub", "a"}, {"exp", now_s() + 3600}, {"nbf", now_s() + in}}, secret);
  };
  CHECK(why(mw::verify_jwt(nbf(10), o)) == "valid");
  CHECK(why(mw::verify_jwt(nbf(60), o)) == "token not yet valid");
  o.leeway = std::chrono::seconds(0);
  CHECK(why(mw::verify_jwt(mw::sign_jwt(claims(-1), secret), o)) == "token expired");
  CHECK(why(mw::verify_jwt(mw::sign_jwt({{"sub", "a"}, {"exp", double(now_s()) + 60.5}}, secret), o)) == "valid");
}

TEST_CASE("iss and aud are checked when configured, and exp and sub can be optional", "[auth][jwt]") {
  auto o = jwt_opts();
  o.issuer = "https://issuer";
  o.audience = "todo";
  auto with = [&](json::object extra) {
    auto c = claims();
    for (auto& kv : extra) c[kv.key()] = kv.value();
    return why(mw::verify_jwt(mw::sign_jwt(c, secret), o));
  };
  CHECK(with({{"iss", "https://issuer"}, {"aud", "todo"}}) == "valid");
  CHECK(with({{"iss", "https://issuer"}, {"aud", json::array{"other", "todo"}}}) == "valid");
  CHECK(with({{"iss", "https://evil"}, {"aud", "todo"}}) == "wrong issuer");
  CHECK(with({{"aud", "todo"}}) == "wrong issuer");
  CHECK(with({{"iss", "https://issuer"}, {"aud", "other"}}) == "wrong audience");
  CHECK(with({{"iss", "https://issuer"}}) == "wrong audience");
  CHECK(with({{"iss", "https://issuer"}, {"aud", json::array{1, 2}}}) == "wrong audience");
  auto lax = jwt_opts();
  lax.require_exp = false;
  lax.require_sub = false;
  CHECK(why(mw::verify_jwt(mw::sign_jwt({{"scp", json::array{"a", "b"}}}, secret), lax)) == "valid");
  auto r = mw::verify_jwt(mw::sign_jwt({{"scp", json::array{"a", "b"}}, {"scopes", json::array{"c"}}}, secret), lax);
  CHECK(r.who.scopes == std::vector<std::string>{"a", "b", "c"});
  CHECK(r.who.claims.contains("scp"));
}

TEST_CASE("malformed, deeply nested and huge tokens are refused without a crash", "[auth][jwt]") {
  auto o = jwt_opts();
  CHECK(why(mw::verify_jwt("", o)) == "empty token");
  CHECK(why(mw::verify_jwt("..", o)) == "malformed token: empty segment");
  CHECK(why(mw::verify_jwt("a.b", o)) == "malformed token: not three segments");
  CHECK(why(mw::verify_jwt("a", o)) == "malformed token: not three segments");
  CHECK(why(mw::verify_jwt(std::string(1 << 20, '.'), o)) == "token too large");
  CHECK(why(mw::verify_jwt(std::string(1 << 20, 'x'), o)) == "token too large");
  CHECK(why(mw::verify_jwt("\xff\xfe.\x01.\x80", o)) == "malformed token: header is not base64url");
  CHECK(why(mw::verify_jwt("A.B.C", o)) == "malformed token: header is not base64url");  // length 1 cannot be
  std::string bomb(2000, '[');
  CHECK(why(mw::verify_jwt(raw_token(R"({"alg":"HS256"})", bomb), o)) ==
        "malformed token: payload is not a JSON object");
  CHECK(why(mw::verify_jwt(raw_token(bomb, "{}"), o)) == "malformed token: header is not a JSON object");
  // Every single-byte change of a valid token is refused, never accepted or crashing.
  auto good = mw::sign_jwt(claims(), secret);
  REQUIRE(why(mw::verify_jwt(good, o)) == "valid");
  std::mt19937 rng(42);
  int accepted = 0;
  for (int i = 0; i < 3000; ++i) {
    auto t = good;
    auto pos = rng() % t.size();
    auto c = static_cast<char>(rng() % 256);
    if (t[pos] == c) continue;
    t[pos] = c;
    if (rng() % 4 == 0) t.resize(rng() % t.size());
    accepted += mw::verify_jwt(t, o).what == mw::auth_result::outcome::valid;
  }
  // A base64url character whose low bits are unused can change without
  // changing the bytes: strict decoding refuses those too.
  CHECK(accepted == 0);
}

TEST_CASE("a JWT authenticator needs a secret", "[auth][jwt]") {
  CHECK_THROWS_AS(mw::jwt({}), std::invalid_argument);
}

// --- composition, scopes, ordering, attachment ---------------------------------

TEST_CASE("several authenticators: the first that accepts wins, all challenge on a 401", "[auth]") {
  keel::app app(test_options());
  app.use(mw::authenticate(
      {.authenticators = {mw::jwt(jwt_opts()), mw::bearer_tokens({{"static-tok", {.subject = "ci"}}})}}));
  app.get("/me", whoami);
  kt::running_app run(app);
  CHECK(run.get("/me", bearer("static-tok")).body == "Bearer:ci:");
  CHECK(run.get("/me", bearer(mw::sign_jwt(claims(), secret))).body == "Bearer:alice:read,write");
  auto missing = run.get("/me");
  CHECK(missing.status == 401);
  CHECK(challenges(missing).size() == 2);
  auto bad = run.get("/me", bearer("neither"));
  auto c = challenges(bad);
  REQUIRE(c.size() == 2);
  CHECK(c[0].find("error_description=\"malformed token: not three segments\"") != std::string::npos);
  CHECK(c[1] == "Bearer realm=\"keel\"");
}

TEST_CASE("optional auth lets anonymous requests through but not bad credentials", "[auth]") {
  keel::app app(test_options());
  app.use(mw::authenticate({.authenticators = {mw::jwt(jwt_opts())}, .optional = true}));
  app.get("/me", whoami);
  kt::running_app run(app);
  CHECK(run.get("/me").body == "anonymous");
  CHECK(run.get("/me", bearer(mw::sign_jwt(claims(), secret))).body == "Bearer:alice:read,write");
  CHECK(run.get("/me", bearer("junk")).status == 401);
}

TEST_CASE("require_scope answers 403 without the scope and 401 without a principal", "[auth][scope]") {
  keel::app app(test_options());
  auto api = app.group("/api", {mw::authenticate(mw::jwt(jwt_opts()))});
  api.get("/read", whoami).use(mw::require_scope("read"));
  api.get("/admin", whoami).use(mw::require_scope({"read", "admin"}));
  app.get("/open", whoami).use(mw::require_scope("read"));
  kt::running_app run(app);
  auto token = mw::sign_jwt(claims(), secret);
  CHECK(run.get("/api/read", bearer(token)).status == 200);
  auto denied = run.get("/api/admin", bearer(token));
  CHECK(denied.status == 403);
  CHECK(denied.header("WWW-Authenticate") == R"(Bearer error="insufficient_scope", scope="read admin")");
  CHECK(denied.body.find("admin") != std::string::npos);
  auto none = run.get("/open");
  CHECK(none.status == 401);
  CHECK(none.header("WWW-Authenticate") == "Bearer");
}

TEST_CASE("a 401 short-circuits: the handler never runs and outer layers see the 401", "[auth][order]") {
  keel::app app(test_options());
  unsigned outer_saw = 0;
  app.use([&](context&, keel::next next) -> task<response> {
    auto res = co_await next();
    outer_saw = res.status;
    co_return res;
  });
  bool ran = false;
  app.get("/secret", [&](context&) -> task<response> {
       ran = true;
       co_return response::text("secret");
     })
      .use(mw::authenticate(mw::bearer_tokens({{"t", {.subject = "x"}}})));
  app.get("/public", whoami);
  kt::running_app run(app);
  CHECK(run.get("/secret").status == 401);
  CHECK_FALSE(ran);
  CHECK(outer_saw == 401);
  CHECK(run.get("/public").body == "anonymous");  // per-route: other routes untouched
  CHECK(run.get("/secret", bearer("t")).status == 200);
  CHECK(ran);
}

TEST_CASE("auth attached to a group guards only the group", "[auth][attach]") {
  keel::app app(test_options());
  auto g = app.group("/private", {mw::authenticate(mw::api_keys({{"k", {.subject = "s"}}}))});
  g.get("/x", whoami);
  app.get("/x", whoami);
  kt::running_app run(app);
  CHECK(run.get("/private/x").status == 401);
  CHECK(run.get("/private/x", {{"X-API-Key", "k"}}).body == "ApiKey:s:");
  CHECK(run.get("/x").body == "anonymous");
}
