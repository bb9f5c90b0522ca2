#include "{{item}}.hpp"

#include <keel/context.hpp>

namespace {{ident}} {

keel::middleware {{item}}() {
  return [](keel::context& ctx, keel::next next) -> keel::task<keel::response> {
    // Before the rest of the chain: inspect ctx, or answer here and skip it
    // (co_return ctx.problem(403, "...")).
    (void)ctx;
    auto res = co_await next();
    // After: the inner chain's response, to change or to measure.
    res.set_header("X-{{item}}", "seen");
    co_return res;
  };
}

}  // namespace {{ident}}
