#include "routes.hpp"

#include <keel/context.hpp>
#include <keel/middleware/defaults.hpp>
#include <keel/response.hpp>

#include <boost/json/object.hpp>

namespace {{ident}} {

void declare_settings(keel::config& cfg) {
  cfg.add("greeting", "Hello", "the word GET /hello/{name} greets with");
}

void setup(keel::app& app, keel::config const& cfg) {
  // Request ids and traceparent, the JSON access log, metrics at /metrics,
  // and exceptions turned into 500 problems. /healthz and /readyz are keel's.
  keel::mw::use_defaults(app);

  app.get("/hello/{name}", [greeting = cfg.get("greeting")](keel::context& ctx) -> keel::task<keel::response> {
    co_return keel::response::json({{"message", greeting + ", " + ctx.param("name") + "!"}});
  });
}

}  // namespace {{ident}}
