#pragma once
// Routes: method + path pattern -> handler, with middleware per app, group or route.
//
//   keel::router r;
//   r.use(keel::mw::request_id());                 // app-wide, outermost first
//   r.get("/users/{id}", show_user);
//   r.post("/files/{*rest}", upload).max_body(64 << 20).timeout(2min);
//   r.put("/videos/{name}", store_video).stream_body(4ull << 30);  // read as it arrives
//   auto api = r.group("/api", {cors, auth});       // CORS answers preflight before auth
//   api.get("/todos", list_todos);
//
// Patterns: static segments, `{name}` (one segment), a trailing `{*rest}`
// (the remainder). Static beats `{param}` beats `{*rest}`. A duplicate or
// conflicting registration throws std::invalid_argument at startup, naming both.
// HEAD is answered from GET, OPTIONS with Allow, and a known path with the wrong
// method gets 405 with Allow. Register everything before the server starts.
#include <keel/middleware.hpp>
#include <keel/net.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace keel {

namespace detail {
class path_params;
struct route_entry;
struct group_node;
struct router_state;
}  // namespace detail

/// Per-route overrides of the server settings.
struct route_options {
  std::optional<std::size_t> max_body;
  std::optional<std::chrono::milliseconds> handler_timeout;
  /// Set: the handler reads the body as a stream (ctx.body_stream()), up to this many bytes.
  std::optional<std::uint64_t> stream_body;
};

/// Returned by registration calls to refine one route.
class route_ref {
 public:
  explicit route_ref(detail::route_entry& e) : entry_(&e) {}
  /// Adds a middleware to this route only (inside the app's and group's).
  route_ref& use(middleware m);
  /// Largest request body this route accepts (413 beyond it).
  route_ref& max_body(std::size_t bytes);
  /// Handler deadline for this route (504 when it passes).
  route_ref& timeout(std::chrono::milliseconds d);
  /// The handler reads the body itself, as it arrives, through
  /// ctx.body_stream() (keel/body_stream.hpp), up to `max_bytes` (413 beyond);
  /// nothing is buffered in memory and max_body does not apply.
  route_ref& stream_body(std::uint64_t max_bytes);

 private:
  detail::route_entry* entry_;
};

/// A set of routes under a common prefix with middleware of its own.
class route_group {
 public:
  route_ref get(std::string_view pattern, handler h) { return route(verb::get, pattern, std::move(h)); }
  route_ref post(std::string_view pattern, handler h) { return route(verb::post, pattern, std::move(h)); }
  route_ref put(std::string_view pattern, handler h) { return route(verb::put, pattern, std::move(h)); }
  route_ref patch(std::string_view pattern, handler h) { return route(verb::patch, pattern, std::move(h)); }
  route_ref del(std::string_view pattern, handler h) { return route(verb::delete_, pattern, std::move(h)); }
  route_ref route(verb method, std::string_view pattern, handler h);
  /// A nested group; its middleware runs inside this group's.
  route_group group(std::string_view prefix, std::vector<middleware> mws = {});
  /// Adds middleware to every route of the group (registered before or after).
  route_group& use(middleware m);
  /// Overrides for every route of the group (a route's own override wins).
  route_group& max_body(std::size_t bytes);
  route_group& timeout(std::chrono::milliseconds d);
  route_group& stream_body(std::uint64_t max_bytes);

 private:
  friend class router;
  route_group(detail::router_state* s, detail::group_node* g) : state_(s), node_(g) {}
  detail::router_state* state_;
  detail::group_node* node_;
};

/// What the router found for a request.
struct route_match {
  detail::chain const* chain = nullptr;  ///< never null once frozen
  std::string_view pattern = "unmatched";
  route_options const* options = nullptr;  ///< null for unmatched requests
  bool matched = false;                   ///< a route (or automatic HEAD/OPTIONS) will run
};

class router {
 public:
  router();
  ~router();
  router(router&&) noexcept;
  router& operator=(router&&) noexcept;

  route_ref get(std::string_view pattern, handler h) { return root().get(pattern, std::move(h)); }
  route_ref post(std::string_view pattern, handler h) { return root().post(pattern, std::move(h)); }
  route_ref put(std::string_view pattern, handler h) { return root().put(pattern, std::move(h)); }
  route_ref patch(std::string_view pattern, handler h) { return root().patch(pattern, std::move(h)); }
  route_ref del(std::string_view pattern, handler h) { return root().del(pattern, std::move(h)); }
  route_ref route(verb method, std::string_view pattern, handler h) {
    return root().route(method, pattern, std::move(h));
  }
  route_group group(std::string_view prefix, std::vector<middleware> mws = {}) {
    return root().group(prefix, std::move(mws));
  }
  /// App-wide middleware: runs for every request, matched or not (404, 405,
  /// and the framework's own 400/408/413/431 answers), outermost first.
  router& use(middleware m);

  /// Resolves every chain; called by the server before it accepts. Throws
  /// std::invalid_argument for a duplicate route.
  void freeze();
  bool frozen() const;

  /// Finds the chain for a request. `params` receives the path parameters.
  /// Thread-safe after freeze().
  route_match match(verb method, std::string_view method_string, std::string_view path,
                    detail::path_params& params) const;
  /// The app-wide chain around a fixed response (framework rejections).
  detail::chain const& rejection_chain() const;

 private:
  route_group root();
  std::unique_ptr<detail::router_state> state_;
};

}  // namespace keel
