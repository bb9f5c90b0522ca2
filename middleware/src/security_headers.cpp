#include <keel/middleware/security_headers.hpp>

#include <keel/context.hpp>

#include <openssl/evp.h>

#include <array>
#include <memory>

namespace keel::mw {

namespace {

struct header {
  std::string_view name;
  std::string value;
};

// Every header value is rendered once, here; a request then costs one lookup
// and, when absent, one append per header.
struct state {
  std::vector<header> always;  // every response
  std::string hsts;            // responses over TLS only; empty: none
};

char lower(char c) noexcept { return c >= 'A' && c <= 'Z' ? char(c - 'A' + 'a') : c; }

bool icontains(std::string_view hay, std::string_view needle) noexcept {
  if (needle.size() > hay.size()) return false;
  for (std::size_t i = 0; i + needle.size() <= hay.size(); ++i) {
    std::size_t k = 0;
    while (k < needle.size() && lower(hay[i + k]) == needle[k]) ++k;
    if (k == needle.size()) return true;
  }
  return false;
}

std::string with_frame_ancestors(std::string csp, frame_policy f) {
  // A policy that names frame-ancestors itself knows better than the default.
  if (f == frame_policy::allow || icontains(csp, "frame-ancestors")) return csp;
  while (!csp.empty() && (csp.back() == ' ' || csp.back() == ';')) csp.pop_back();
  if (!csp.empty()) csp += "; ";
  csp += f == frame_policy::deny ? "frame-ancestors 'none'" : "frame-ancestors 'self'";
  return csp;
}

task<response> run(context& ctx, next n, state const& s) {
  auto res = co_await n();
  if (res.status == 101) co_return res;
  for (auto const& h : s.always) {
    if (!res.header(h.name)) res.set_header(h.name, h.value);
  }
  if (!s.hsts.empty() && ctx.tls() && !res.header("Strict-Transport-Security")) {
    res.set_header("Strict-Transport-Security", s.hsts);
  }
  co_return res;
}

std::string sha256_base64(std::string_view text) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
  unsigned len = 0;
  EVP_Digest(text.data(), text.size(), digest.data(), &len, EVP_sha256(), nullptr);
  std::array<unsigned char, 4 * ((EVP_MAX_MD_SIZE + 2) / 3) + 1> out{};
  int n = EVP_EncodeBlock(out.data(), digest.data(), static_cast<int>(len));
  return std::string(reinterpret_cast<char const*>(out.data()), static_cast<std::size_t>(n));
}

// The byte after `<tag` must end the name, or `<scripts>` would count.
bool name_ends(std::string_view html, std::size_t at) {
  if (at >= html.size()) return false;
  char c = html[at];
  return c == '>' || c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '/';
}

// Finds `<tag` (ASCII case-insensitive) from `from`; npos when none.
std::size_t find_tag(std::string_view html, std::string_view open, std::size_t from) {
  for (std::size_t i = html.find('<', from); i != std::string_view::npos; i = html.find('<', i + 1)) {
    std::size_t k = 0;
    while (k < open.size() && i + 1 + k < html.size() && lower(html[i + 1 + k]) == open[k]) ++k;
    if (k == open.size() && name_ends(html, i + 1 + k)) return i;
  }
  return std::string_view::npos;
}

bool has_src_attribute(std::string_view start_tag) {
  for (std::size_t i = 0; i + 4 <= start_tag.size(); ++i) {
    char before = i == 0 ? ' ' : start_tag[i - 1];
    bool boundary = before == ' ' || before == '\t' || before == '\n' || before == '\r' || before == '\f';
    if (boundary && lower(start_tag[i]) == 's' && lower(start_tag[i + 1]) == 'r' && lower(start_tag[i + 2]) == 'c') {
      std::size_t j = i + 3;
      while (j < start_tag.size() && (start_tag[j] == ' ' || start_tag[j] == '\t')) ++j;
      if (j < start_tag.size() && start_tag[j] == '=') return true;
    }
  }
  return false;
}

}  // namespace

middleware security_headers(security_headers_options const& o) {
  auto s = std::make_shared<state>();
  if (o.nosniff) s->always.push_back({"X-Content-Type-Options", "nosniff"});
  if (!o.referrer_policy.empty()) s->always.push_back({"Referrer-Policy", o.referrer_policy});
  if (o.frames == frame_policy::deny) s->always.push_back({"X-Frame-Options", "DENY"});
  if (o.frames == frame_policy::same_origin) s->always.push_back({"X-Frame-Options", "SAMEORIGIN"});
  if (!o.content_security_policy.empty()) {
    s->always.push_back({o.csp_report_only ? "Content-Security-Policy-Report-Only" : "Content-Security-Policy",
                         with_frame_ancestors(o.content_security_policy, o.frames)});
  }
  if (o.hsts_max_age.count() > 0) {
    s->hsts = "max-age=" + std::to_string(o.hsts_max_age.count());
    if (o.hsts_include_subdomains) s->hsts += "; includeSubDomains";
    if (o.hsts_preload) s->hsts += "; preload";
  }
  std::shared_ptr<state const> cs = std::move(s);
  return [cs](context& ctx, next n) { return run(ctx, n, *cs); };
}

std::string csp_hashes(std::string_view html, std::string_view tag) {
  std::string open;
  for (char c : tag) open.push_back(lower(c));
  std::string close = "/" + open;
  std::string out;
  std::size_t at = 0;
  while ((at = find_tag(html, open, at)) != std::string_view::npos) {
    auto gt = html.find('>', at);
    if (gt == std::string_view::npos) break;
    auto start_tag = html.substr(at + 1 + open.size(), gt - at - 1 - open.size());
    // The element's text ends at the first `</tag` (HTML's raw-text rule).
    auto end = find_tag(html, close, gt + 1);
    if (end == std::string_view::npos) break;
    if (!has_src_attribute(start_tag)) {
      if (!out.empty()) out += ' ';
      out += "'sha256-" + sha256_base64(html.substr(gt + 1, end - gt - 1)) + "'";
    }
    at = end + 1 + close.size();
  }
  return out;
}

}  // namespace keel::mw
