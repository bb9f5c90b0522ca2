#include <keel/middleware/auth.hpp>

#include <keel/context.hpp>

#include "auth_common.hpp"
#include "base64.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <algorithm>
#include <array>
#include <stdexcept>

namespace keel::mw {

bool principal::has_scope(std::string_view s) const noexcept {
  return std::find(scopes.begin(), scopes.end(), s) != scopes.end();
}

namespace {

using digest = std::array<unsigned char, 32>;

digest sha256(std::string_view s) {
  digest d{};
  unsigned len = 0;
  EVP_Digest(s.data(), s.size(), d.data(), &len, EVP_sha256(), nullptr);
  return d;
}

// Secrets are kept as SHA-256 digests: comparing digests of equal length with
// CRYPTO_memcmp, against every entry without stopping early, shows neither a
// secret's length nor which entry matched in the timing.
class token_set {
 public:
  token_set(std::vector<static_token> tokens, std::string_view scheme) {
    for (auto& t : tokens) {
      if (t.token.empty()) throw std::invalid_argument("keel::mw: an empty static token");
      t.who.scheme = scheme;
      entries_.push_back({sha256(t.token), std::move(t.who)});
    }
  }
  principal const* find(std::string_view presented) const {
    auto d = sha256(presented);
    principal const* found = nullptr;
    for (auto const& e : entries_) {
      bool same = CRYPTO_memcmp(e.first.data(), d.data(), d.size()) == 0;
      if (same && found == nullptr) found = &e.second;
    }
    return found;
  }

 private:
  std::vector<std::pair<digest, principal>> entries_;
};

class bearer_authenticator final : public authenticator {
 public:
  bearer_authenticator(std::vector<static_token> tokens, bearer_options o)
      : tokens_(std::move(tokens), "Bearer"), opts_(std::move(o)) {}

  task<auth_result> authenticate(context& ctx) const override { co_return check(ctx); }
  std::string challenge(std::string_view error) const override {
    return detail::bearer_challenge(opts_.realm, error);
  }

 private:
  auth_result check(context& ctx) const {
    std::optional<std::string> from_query;
    auto token = detail::bearer_token(ctx, opts_.allow_query_token, from_query);
    if (!token) return auth_result::absent();
    if (token->empty()) return auth_result::invalid("empty token");
    if (auto const* p = tokens_.find(*token)) return auth_result::valid(*p);
    return auth_result::invalid("unknown token");
  }

  token_set tokens_;
  bearer_options opts_;
};

class api_key_authenticator final : public authenticator {
 public:
  api_key_authenticator(std::vector<static_token> keys, std::string header)
      : keys_(std::move(keys), "ApiKey"), header_(std::move(header)) {}

  task<auth_result> authenticate(context& ctx) const override { co_return check(ctx); }
  std::string challenge(std::string_view) const override { return "ApiKey header=" + detail::quoted(header_); }

 private:
  auth_result check(context& ctx) const {
    auto key = ctx.header(header_);
    if (!key) return auth_result::absent();
    if (key->empty()) return auth_result::invalid("empty API key");
    if (auto const* p = keys_.find(*key)) return auth_result::valid(*p);
    return auth_result::invalid("unknown API key");
  }

  token_set keys_;
  std::string header_;
};

class basic_authenticator final : public authenticator {
 public:
  basic_authenticator(basic_verifier v, std::string realm) : verify_(std::move(v)), realm_(std::move(realm)) {
    if (!verify_) throw std::invalid_argument("keel::mw::basic_auth: no verifier");
  }

  task<auth_result> authenticate(context& ctx) const override { co_return check(ctx); }
  std::string challenge(std::string_view) const override {
    return "Basic realm=" + detail::quoted(realm_) + ", charset=\"UTF-8\"";
  }

 private:
  auth_result check(context& ctx) const {
    auto cred = detail::authorization(ctx, "Basic");
    if (!cred) return auth_result::absent();
    // user-pass of RFC 7617 is at most a few KiB in practice; more is abuse.
    if (cred->size() > 4096) return auth_result::invalid("credentials too large");
    auto decoded = detail::b64_decode(*cred, false);
    if (!decoded) return auth_result::invalid("malformed Basic credentials");
    auto colon = decoded->find(':');
    if (colon == std::string::npos) return auth_result::invalid("malformed Basic credentials");
    std::string_view user(decoded->data(), colon);
    std::string_view password(decoded->data() + colon + 1, decoded->size() - colon - 1);
    auto who = verify_(user, password);
    if (!who) return auth_result::invalid("wrong user name or password");
    if (who->subject.empty()) who->subject = user;
    who->scheme = "Basic";
    return auth_result::valid(std::move(*who));
  }

  basic_verifier verify_;
  std::string realm_;
};

struct auth_state {
  auth_options opts;
};

task<response> run_auth(context& ctx, next n, auth_state const& s) {
  // A request keel refused (431, 400...) is answered as such, not with a 401
  // for credentials it may not even have finished sending.
  if (ctx.rejected_status() != 0) co_return co_await n();
  // The first valid answer wins; otherwise the first refusal explains the 401
  // (a JWT and a static-token authenticator both read `Bearer`).
  std::size_t refused = s.opts.authenticators.size();
  std::string why;
  for (std::size_t i = 0; i < s.opts.authenticators.size(); ++i) {
    auto const& a = *s.opts.authenticators[i];
    auto r = co_await a.authenticate(ctx);
    if (r.what == auth_result::outcome::valid) {
      ctx.set<principal>(std::move(r.who));
      co_return co_await n();
    }
    if (r.what == auth_result::outcome::invalid && refused == s.opts.authenticators.size()) {
      refused = i;
      why = std::move(r.error);
    }
  }
  bool none_found = refused == s.opts.authenticators.size();
  if (none_found && s.opts.optional) co_return co_await n();
  auto res = ctx.problem(401, none_found ? std::string("credentials are required")
                                         : "invalid credentials: " + why);
  // A 401 always carries WWW-Authenticate (SPEC §3): one challenge per scheme.
  for (std::size_t i = 0; i < s.opts.authenticators.size(); ++i) {
    res.add_header("WWW-Authenticate", s.opts.authenticators[i]->challenge(i == refused ? why : ""));
  }
  if (s.opts.authenticators.empty()) res.add_header("WWW-Authenticate", "Bearer");
  co_return res;
}

task<response> run_require_scope(context& ctx, next n, std::vector<std::string> const& need) {
  if (ctx.rejected_status() != 0) co_return co_await n();
  auto const* who = ctx.get<principal>();
  if (who == nullptr) {
    auto res = ctx.problem(401, "credentials are required");
    res.set_header("WWW-Authenticate", "Bearer");
    co_return res;
  }
  for (auto const& s : need) {
    if (who->has_scope(s)) continue;
    auto res = ctx.problem(403, "this needs the scope \"" + s + "\"");
    if (who->scheme == "Bearer") {
      std::string all;
      for (auto const& x : need) all += (all.empty() ? "" : " ") + x;
      res.set_header("WWW-Authenticate", "Bearer error=\"insufficient_scope\", scope=" + detail::quoted(all));
    }
    co_return res;
  }
  co_return co_await n();
}

}  // namespace

middleware authenticate(auth_options opts) {
  for (auto const& a : opts.authenticators) {
    if (!a) throw std::invalid_argument("keel::mw::authenticate: a null authenticator");
  }
  auto s = std::make_shared<auth_state const>(auth_state{std::move(opts)});
  return [s](context& ctx, next n) { return run_auth(ctx, n, *s); };
}

middleware authenticate(authenticator_ptr a) {
  auth_options o;
  o.authenticators.push_back(std::move(a));
  return authenticate(std::move(o));
}

middleware require_scope(std::initializer_list<std::string_view> scopes) {
  auto need = std::make_shared<std::vector<std::string> const>(scopes.begin(), scopes.end());
  return [need](context& ctx, next n) { return run_require_scope(ctx, n, *need); };
}

middleware require_scope(std::string_view scope) { return require_scope({scope}); }

authenticator_ptr bearer_tokens(std::vector<static_token> tokens, bearer_options opts) {
  return std::make_shared<bearer_authenticator const>(std::move(tokens), std::move(opts));
}

authenticator_ptr api_keys(std::vector<static_token> keys, std::string header) {
  return std::make_shared<api_key_authenticator const>(std::move(keys), std::move(header));
}

authenticator_ptr basic_auth(basic_verifier verify, std::string realm) {
  return std::make_shared<basic_authenticator const>(std::move(verify), std::move(realm));
}

}  // namespace keel::mw
