#include "api_version.hpp"

#include <keel/context.hpp>

namespace {{ident}} {

keel::middleware api_version(std::string version) {
  // The closure lives as long as the app, so the coroutine may use `version`.
  return [version = std::move(version)](keel::context& ctx, keel::next next) -> keel::task<keel::response> {
    auto wanted = ctx.header("Accept-Version");
    if (wanted && *wanted != version) {
      auto res = ctx.problem(406, "this service speaks API version " + version);
      res.set_header("API-Version", version);
      co_return res;
    }
    auto res = co_await next();
    res.set_header("API-Version", version);
    co_return res;
  };
}

}  // namespace {{ident}}
