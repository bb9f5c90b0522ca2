#include <keel/middleware/defaults.hpp>

#include <keel/middleware/access_log.hpp>
#include <keel/middleware/exception_capture.hpp>
#include <keel/middleware/metrics.hpp>
#include <keel/middleware/request_id.hpp>

namespace keel::mw {

std::vector<middleware> default_stack() {
  // docs/middleware.md quotes the list between these markers.
  // [default-stack]
  return {
      // Outermost: every layer and log line inside sees the trace id, and every
      // response, whoever made it, leaves with X-Request-Id and traceresponse.
      request_id(),
      // Outside the layers that may fail, so it logs the final status and bytes.
      access_log(),
      // Counts the same final status the access line shows.
      metrics(),
      // Innermost: turns what group/route middleware and handlers throw into a
      // problem response before the layers above look at it.
      exception_capture(),
  };
  // [default-stack]
}

void use_defaults(keel::app& app) {
  for (auto& m : default_stack()) app.use(std::move(m));
  expose_metrics(app);
}

}  // namespace keel::mw
