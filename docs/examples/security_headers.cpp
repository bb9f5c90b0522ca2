// Security headers on every response, with a Content-Security-Policy that
// allows a page's inline script by its hash instead of 'unsafe-inline'.
// Usage: docs_example_security_headers [--listen HOST:PORT]
//   curl -i localhost:8080/          -> the page, Content-Security-Policy: default-src 'none'; script-src 'sha256-…'; …
//   curl -i localhost:8080/api/time  -> JSON, X-Content-Type-Options: nosniff, X-Frame-Options: DENY, …
#include <keel/app.hpp>
#include <keel/middleware/defaults.hpp>
#include <keel/middleware/security_headers.hpp>

#include <chrono>
#include <string>
#include <string_view>

namespace {

constexpr std::string_view page = R"(<!doctype html>
<title>time</title>
<p id="now">…</p>
<script>
fetch('/api/time').then((r) => r.json()).then((t) => { document.getElementById('now').textContent = t.now_ms; });
</script>
)";

}  // namespace

int main(int argc, char** argv) {
  keel::config cfg("security_headers");
  return keel::serve(cfg, argc, argv, [](keel::app& app, keel::config const&) {
    keel::mw::use_defaults(app);
    // [security-headers]
    // Computed once at startup from the page served: its inline script runs, no other does.
    app.use(keel::mw::security_headers({
        .content_security_policy = "default-src 'none'; script-src " + keel::mw::csp_hashes(page, "script") +
                                   "; connect-src 'self'; base-uri 'none'",
    }));
    // [security-headers]
    app.get("/", [](keel::context&) -> keel::task<keel::response> {
      co_return keel::response::html(std::string(page));
    });
    app.get("/api/time", [](keel::context&) -> keel::task<keel::response> {
      auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch());
      co_return keel::response::json({{"now_ms", ms.count()}});
    });
  });
}
