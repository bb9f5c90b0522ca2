#include <keel/middleware.hpp>

namespace keel {

// Each layer costs its own coroutine frame and nothing else: `next` is three
// pointers passed by value, and the chain is resolved once at startup.
task<response> next::operator()() const {
  if (index_ < chain_->layers.size()) {
    return (*chain_->layers[index_])(*ctx_, next(*chain_, index_ + 1, *ctx_));
  }
  return (*chain_->terminal)(*ctx_);
}

task<response> run_chain(detail::chain const& c, context& ctx) {
  return next(c, 0, ctx)();
}

}  // namespace keel
