#include <keel/middleware/cors.hpp>

#include <keel/context.hpp>

#include <boost/beast/core/string.hpp>

#include <algorithm>
#include <memory>

namespace keel::mw {

namespace {

using boost::beast::iequals;

std::string join(std::vector<std::string> const& v) {
  std::string out;
  for (auto const& s : v) {
    if (!out.empty()) out += ", ";
    out += s;
  }
  return out;
}

struct state {
  cors_options o;
  bool any_origin = false;
  bool any_header = false;
  std::string methods;         // joined once
  std::string headers;
  std::string expose;
  std::string max_age;
};

bool origin_allowed(state const& s, std::string_view origin) {
  if (s.any_origin) return true;
  // Origins are compared exactly (scheme, host and port as serialized by the
  // browser); a predicate handles patterns.
  for (auto const& o : s.o.origins) {
    if (o == origin) return true;
  }
  return s.o.allow_origin && s.o.allow_origin(origin);
}

bool method_allowed(state const& s, std::string_view m) {
  // Methods are case-sensitive (RFC 9110 §9.1).
  return std::find(s.o.methods.begin(), s.o.methods.end(), m) != s.o.methods.end();
}

// Every name in a comma-separated Access-Control-Request-Headers is allowed.
bool headers_allowed(state const& s, std::string_view requested) {
  if (s.any_header) return true;
  while (!requested.empty()) {
    auto comma = requested.find(',');
    auto name = requested.substr(0, comma);
    while (!name.empty() && (name.front() == ' ' || name.front() == '\t')) name.remove_prefix(1);
    while (!name.empty() && (name.back() == ' ' || name.back() == '\t')) name.remove_suffix(1);
    if (!name.empty()) {
      bool ok = false;
      for (auto const& h : s.o.headers) ok = ok || iequals(h, name);
      if (!ok) return false;
    }
    if (comma == std::string_view::npos) break;
    requested.remove_prefix(comma + 1);
  }
  return true;
}

void allow_origin(response& r, state const& s, std::string_view origin) {
  // `*` cannot go with credentials: then the origin itself is echoed.
  r.set_header("Access-Control-Allow-Origin",
               s.any_origin && !s.o.credentials ? std::string("*") : std::string(origin));
  if (s.o.credentials) r.set_header("Access-Control-Allow-Credentials", "true");
}

void add_vary(response& r, std::string_view what) {
  if (auto v = r.header("Vary")) {
    if (v->find(what) != std::string_view::npos || *v == "*") return;
    r.set_header("Vary", std::string(*v) + ", " + std::string(what));
  } else {
    r.set_header("Vary", std::string(what));
  }
}

task<response> run(context& ctx, next n, state const& s) {
  auto origin = ctx.header("Origin");
  if (!origin) {
    auto res = co_await n();
    add_vary(res, "Origin");
    co_return res;
  }
  auto requested_method = ctx.header("Access-Control-Request-Method");
  if (ctx.method() == verb::options && requested_method && ctx.rejected_status() == 0) {
    // A preflight: answered here, never by the handler.
    auto requested_headers = ctx.header("Access-Control-Request-Headers").value_or("");
    response res;
    if (!origin_allowed(s, *origin)) {
      res = ctx.problem(403, "CORS preflight refused: origin not allowed");
    } else if (!method_allowed(s, *requested_method)) {
      res = ctx.problem(403, "CORS preflight refused: method not allowed");
    } else if (!headers_allowed(s, requested_headers)) {
      res = ctx.problem(403, "CORS preflight refused: header not allowed");
    } else {
      res = response(204);
      allow_origin(res, s, *origin);
      res.set_header("Access-Control-Allow-Methods", s.methods);
      if (s.any_header) {
        if (!requested_headers.empty()) res.set_header("Access-Control-Allow-Headers", std::string(requested_headers));
      } else if (!s.headers.empty()) {
        res.set_header("Access-Control-Allow-Headers", s.headers);
      }
      res.set_header("Access-Control-Max-Age", s.max_age);
    }
    add_vary(res, "Origin");
    add_vary(res, "Access-Control-Request-Method");
    add_vary(res, "Access-Control-Request-Headers");
    co_return res;
  }
  auto res = co_await n();
  if (origin_allowed(s, *origin)) {
    allow_origin(res, s, *origin);
    if (!s.expose.empty()) res.set_header("Access-Control-Expose-Headers", s.expose);
  }
  add_vary(res, "Origin");
  co_return res;
}

}  // namespace

middleware cors(cors_options opts) {
  auto s = std::make_shared<state>();
  s->any_origin = std::find(opts.origins.begin(), opts.origins.end(), "*") != opts.origins.end();
  s->any_header = std::find(opts.headers.begin(), opts.headers.end(), "*") != opts.headers.end();
  s->methods = join(opts.methods);
  s->headers = join(opts.headers);
  s->expose = join(opts.expose_headers);
  s->max_age = std::to_string(opts.max_age.count());
  s->o = std::move(opts);
  std::shared_ptr<state const> cs = std::move(s);
  return [cs](context& ctx, next n) { return run(ctx, n, *cs); };
}

}  // namespace keel::mw
