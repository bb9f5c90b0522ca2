#pragma once
// Pieces the built-in authenticators share. Private to keel_middleware.
#include <keel/context.hpp>

#include <boost/beast/core/string.hpp>

#include <optional>
#include <string>
#include <string_view>

namespace keel::mw::detail {

/// The credentials of `Authorization: <scheme> <credentials>` when the scheme
/// matches (case-insensitively, RFC 9110 §11.1), trimmed; nullopt otherwise.
inline std::optional<std::string_view> authorization(context const& ctx, std::string_view scheme) {
  auto h = ctx.header("Authorization");
  if (!h) return std::nullopt;
  auto v = *h;
  if (v.size() < scheme.size() || !boost::beast::iequals(v.substr(0, scheme.size()), scheme)) return std::nullopt;
  v.remove_prefix(scheme.size());
  if (!v.empty() && v.front() != ' ' && v.front() != '\t') return std::nullopt;  // "Bearerx"
  while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
  while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
  return v;
}

/// The token of `Authorization: Bearer <token>` (RFC 6750 §2.1), else, when
/// `allow_query`, of `?access_token=` (§2.3), decoded into `query_storage`,
/// which the result then points into; nullopt when the request carries neither.
inline std::optional<std::string_view> bearer_token(context const& ctx, bool allow_query,
                                                    std::optional<std::string>& query_storage) {
  if (auto token = authorization(ctx, "Bearer")) return token;
  if (allow_query && (query_storage = ctx.query("access_token"))) return std::string_view(*query_storage);
  return std::nullopt;
}

/// `"text"` as an HTTP quoted-string.
inline std::string quoted(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    if (static_cast<unsigned char>(c) >= 0x20 && c != 0x7f) out += c;
  }
  out += '"';
  return out;
}

/// RFC 6750 §3: `Bearer realm="r"`, with error and description when refused.
inline std::string bearer_challenge(std::string_view realm, std::string_view error) {
  std::string c = "Bearer realm=" + quoted(realm);
  if (!error.empty()) c += ", error=\"invalid_token\", error_description=" + quoted(error);
  return c;
}

}  // namespace keel::mw::detail
