#pragma once
// The one interception concept: a middleware is a coroutine that gets the
// request context and `next`, the rest of the chain (onion model).
//
//   keel::middleware timing = [](keel::context& ctx, keel::next next)
//       -> keel::task<keel::response> {
//     auto t0 = keel::clock::now();
//     auto res = co_await next();          // the inner chain and the handler
//     res.set_header("Server-Timing", ...);
//     co_return res;
//   };
//
// It may act before and after next(), answer by itself without calling next()
// (short-circuit), or catch what the inner chain throws. Middleware applies per
// app, per group or per route, outermost first in registration order.
#include <keel/context.hpp>
#include <keel/net.hpp>
#include <keel/response.hpp>

#include <functional>
#include <vector>

namespace keel {

class next;

/// A route handler.
using handler = std::function<task<response>(context&)>;
/// A middleware layer.
using middleware = std::function<task<response>(context&, next)>;

namespace detail {
/// The resolved chain of one route: its layers outermost first, then the handler.
struct chain {
  std::vector<middleware const*> layers;
  handler const* terminal = nullptr;
};
}  // namespace detail

/// The rest of the chain. Call at most once.
class next {
 public:
  next(detail::chain const& c, std::size_t index, context& ctx)
      : chain_(&c), index_(index), ctx_(&ctx) {}
  task<response> operator()() const;

 private:
  detail::chain const* chain_;
  std::size_t index_;
  context* ctx_;
};

/// Runs a whole chain for a context.
task<response> run_chain(detail::chain const& c, context& ctx);

}  // namespace keel
