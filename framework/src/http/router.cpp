#include <keel/router.hpp>

#include "http/router_state.hpp"

#include <boost/beast/http/verb.hpp>

#include <stdexcept>

namespace keel {

using detail::group_node;
using detail::route_entry;
using detail::router_state;

namespace {

void require_not_frozen(router_state const& s) {
  if (s.frozen) throw std::logic_error("keel::router: routes must be registered before the server starts");
}

std::string join(std::string_view prefix, std::string_view pattern) {
  if (!prefix.empty() && prefix.back() == '/' && !pattern.empty() && pattern.front() == '/') {
    prefix.remove_suffix(1);
  }
  if (prefix.empty() && pattern.empty()) return std::string(1, '/');
  std::string out;
  out.reserve(prefix.size() + pattern.size());
  out.append(prefix).append(pattern);
  return out;
}

void append_group_chain(group_node const* g, std::vector<middleware const*>& out) {
  if (g == nullptr) return;
  append_group_chain(g->parent, out);
  for (auto const& m : g->mws) out.push_back(&m);
}

route_options merge(route_options own, group_node const* g) {
  for (; g != nullptr; g = g->parent) {
    if (!own.max_body) own.max_body = g->options.max_body;
    if (!own.handler_timeout) own.handler_timeout = g->options.handler_timeout;
    if (!own.stream_body) own.stream_body = g->options.stream_body;
  }
  return own;
}

}  // namespace

route_ref& route_ref::use(middleware m) {
  entry_->mws.push_back(std::move(m));
  return *this;
}
route_ref& route_ref::max_body(std::size_t bytes) {
  entry_->own.max_body = bytes;
  return *this;
}
route_ref& route_ref::timeout(std::chrono::milliseconds d) {
  entry_->own.handler_timeout = d;
  return *this;
}
route_ref& route_ref::stream_body(std::uint64_t max_bytes) {
  entry_->own.stream_body = max_bytes;
  return *this;
}

route_ref route_group::route(verb method, std::string_view pattern, handler h) {
  require_not_frozen(*state_);
  if (!h) throw std::invalid_argument("keel::router: empty handler for " + std::string(pattern));
  auto& e = state_->routes.emplace_back();
  e.method = method;
  e.pattern = join(node_->prefix, pattern);
  e.h = std::move(h);
  e.group = node_;
  // Validates the pattern now so the error points at the registration.
  auto index = state_->tree.insert(e.pattern);
  if (index == state_->leaves.size()) state_->leaves.emplace_back().pattern = e.pattern;
  auto& lf = state_->leaves[index];
  for (auto* other : lf.routes) {
    if (other->method == method) {
      std::string m(boost::beast::http::to_string(method));
      std::string message = "keel::router: duplicate route ";
      message.append(m).append(" ").append(e.pattern).append(" (already registered as ");
      message.append(m).append(" ").append(other->pattern).append(")");
      throw std::invalid_argument(message);
    }
  }
  lf.routes.push_back(&e);
  return route_ref(e);
}

route_group route_group::group(std::string_view prefix, std::vector<middleware> mws) {
  require_not_frozen(*state_);
  if (prefix.empty() || prefix.front() != '/') {
    throw std::invalid_argument("keel::router: a group prefix starts with '/': " + std::string(prefix));
  }
  auto& g = state_->groups.emplace_back();
  g.prefix = join(node_->prefix, prefix);
  if (g.prefix.size() > 1 && g.prefix.back() == '/') g.prefix.pop_back();
  g.parent = node_;
  g.mws = std::move(mws);
  return route_group(state_, &g);
}

route_group& route_group::use(middleware m) {
  require_not_frozen(*state_);
  node_->mws.push_back(std::move(m));
  return *this;
}
route_group& route_group::max_body(std::size_t bytes) {
  node_->options.max_body = bytes;
  return *this;
}
route_group& route_group::timeout(std::chrono::milliseconds d) {
  node_->options.handler_timeout = d;
  return *this;
}
route_group& route_group::stream_body(std::uint64_t max_bytes) {
  node_->options.stream_body = max_bytes;
  return *this;
}

router::router() : state_(std::make_unique<router_state>()) {
  state_->groups.emplace_back();  // the root: empty prefix, app-wide options
}
router::~router() = default;
router::router(router&&) noexcept = default;
router& router::operator=(router&&) noexcept = default;

route_group router::root() { return route_group(state_.get(), &state_->groups.front()); }

router& router::use(middleware m) {
  require_not_frozen(*state_);
  state_->app_mws.push_back(std::move(m));
  return *this;
}

bool router::frozen() const { return state_->frozen; }

void router::freeze() {
  auto& s = *state_;
  if (s.frozen) return;
  auto app_chain = [&](handler const* terminal) {
    detail::chain c;
    for (auto const& m : s.app_mws) c.layers.push_back(&m);
    c.terminal = terminal;
    return c;
  };
  for (auto& e : s.routes) {
    e.effective = merge(e.own, e.group);
    e.resolved = app_chain(&e.h);
    append_group_chain(e.group, e.resolved.layers);
    for (auto const& m : e.mws) e.resolved.layers.push_back(&m);
  }
  for (auto& lf : s.leaves) {
    bool has_get = false, has_head = false, has_options = false;
    std::string allow;
    for (auto* r : lf.routes) {
      has_get |= r->method == verb::get;
      has_head |= r->method == verb::head;
      has_options |= r->method == verb::options;
      if (!allow.empty()) allow += ", ";
      allow += boost::beast::http::to_string(r->method);
      if (r->method == verb::get && !has_head) lf.head_fallback = r;
    }
    if (has_head) lf.head_fallback = nullptr;
    if (has_get && !has_head) allow += ", HEAD";
    if (!has_options) allow += ", OPTIONS";
    lf.allow = allow;
    lf.options_handler = [allow](context&) -> task<response> {
      response r(204);
      r.set_header("Allow", allow);
      co_return r;
    };
    // The automatic OPTIONS runs through the first route's chain, so a CORS
    // middleware on the route or its group answers a preflight.
    lf.options_chain = lf.routes.front()->resolved;
    lf.options_chain.terminal = &lf.options_handler;
    lf.not_allowed_handler = [allow](context& ctx) -> task<response> {
      auto r = ctx.problem(405, "method not allowed for this resource");
      r.set_header("Allow", allow);
      co_return r;
    };
    lf.not_allowed_chain = app_chain(&lf.not_allowed_handler);
  }
  s.not_found_handler = [](context& ctx) -> task<response> {
    co_return ctx.problem(404, "no route matches this path");
  };
  s.not_found_chain = app_chain(&s.not_found_handler);
  s.rejection_handler = [](context& ctx) -> task<response> {
    auto const* r = ctx.get<detail::pending_rejection>();
    co_return ctx.problem(r ? r->status : 400, r ? r->detail : "bad request");
  };
  s.rejection = app_chain(&s.rejection_handler);
  s.frozen = true;
}

route_match router::match(verb method, std::string_view, std::string_view path,
                          detail::path_params& params) const {
  auto const& s = *state_;
  route_match m;
  auto index = s.tree.match(path, params);
  if (index == detail::route_tree::npos) {
    m.chain = &s.not_found_chain;
    return m;
  }
  auto const& lf = s.leaves[index];
  m.pattern = lf.pattern;
  for (auto* r : lf.routes) {
    if (r->method == method) {
      m.chain = &r->resolved;
      m.options = &r->effective;
      m.matched = true;
      return m;
    }
  }
  if (method == verb::head && lf.head_fallback != nullptr) {
    m.chain = &lf.head_fallback->resolved;
    m.options = &lf.head_fallback->effective;
    m.matched = true;
    return m;
  }
  if (method == verb::options) {
    m.chain = &lf.options_chain;
    m.options = &lf.routes.front()->effective;
    m.matched = true;
    return m;
  }
  m.chain = &lf.not_allowed_chain;
  return m;
}

detail::chain const& router::rejection_chain() const { return state_->rejection; }

}  // namespace keel
