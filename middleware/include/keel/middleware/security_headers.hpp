#pragma once
// Browser security headers on every response. Off by default; one line to add:
//
//   app.use(keel::mw::security_headers());
//   app.use(keel::mw::security_headers({.content_security_policy = "default-src 'self'"}));
//
// What a response gets (each can be turned off, see the options):
//
// - `X-Content-Type-Options: nosniff`: the browser trusts Content-Type and
//   never runs a text/plain or JSON answer as a script or a page.
// - `Referrer-Policy: no-referrer` (**decision**: rather than
//   strict-origin-when-cross-origin, which browsers already apply when the
//   header is absent; URLs of keel apps may carry `access_token`, and
//   no-referrer never sends them on).
// - Frame policy, against clickjacking: `X-Frame-Options: DENY` (or
//   `SAMEORIGIN`), and, when a Content-Security-Policy is configured that says
//   nothing about `frame-ancestors`, `frame-ancestors 'none'` (or `'self'`)
//   appended to it: CSP's form wins in browsers that know it, X-Frame-Options
//   covers the rest.
// - `Strict-Transport-Security: max-age=31536000` only on a response to a
//   request that arrived over TLS (`ctx.tls()`): RFC 6797 §7.2 says a host
//   must not send it over plain HTTP. A TLS-terminating proxy in front of a
//   plain keel adds it itself.
// - `Content-Security-Policy` when `content_security_policy` is set (or
//   `Content-Security-Policy-Report-Only` with `csp_report_only`). A page
//   with inline `<script>`/`<style>` allows exactly those with
//   csp_hashes(page, "script") instead of 'unsafe-inline' (apps/chat does).
//
// A header the handler (or an inner middleware) already set is left as it is,
// so one route can relax or tighten its own policy. A 101 upgrade answer gets
// nothing: no browser reads these headers on it. Install it anywhere in the
// chain; outside use_defaults() it also covers keel's own 400/404/408 answers.
#include <keel/middleware.hpp>

#include <chrono>
#include <string>
#include <string_view>

namespace keel::mw {

namespace name {
inline constexpr std::string_view security_headers = "security_headers";
}

/// Who may show the app's pages in a frame.
enum class frame_policy {
  deny,         ///< nobody: X-Frame-Options DENY, frame-ancestors 'none'
  same_origin,  ///< the app's own pages: SAMEORIGIN, frame-ancestors 'self'
  allow,        ///< anyone: no header
};

struct security_headers_options {
  /// X-Content-Type-Options: nosniff.
  bool nosniff = true;
  /// The Referrer-Policy value; empty sends none.
  std::string referrer_policy = "no-referrer";
  frame_policy frames = frame_policy::deny;
  /// The Content-Security-Policy, e.g. "default-src 'self'"; empty sends none.
  std::string content_security_policy;
  /// Send the policy as Content-Security-Policy-Report-Only (trying one out).
  bool csp_report_only = false;
  /// Strict-Transport-Security max-age on TLS connections; zero sends none.
  std::chrono::seconds hsts_max_age{31'536'000};
  /// Adds `includeSubDomains` (only if every subdomain serves https).
  bool hsts_include_subdomains = false;
  /// Adds `preload` (see hstspreload.org before turning it on).
  bool hsts_preload = false;
};

middleware security_headers(security_headers_options const& opts = {});

/// The CSP source expressions ('sha256-…', space-separated) allowing each
/// inline `<tag>` element of `html` ("script" or "style"): the base64 SHA-256
/// of the exact text between its start and end tags, as browsers hash it.
/// A `<script src=…>` is skipped (its URL needs a source, not a hash). Empty
/// when there is none. Compute it once, at startup, from the page you serve.
std::string csp_hashes(std::string_view html, std::string_view tag);

}  // namespace keel::mw
