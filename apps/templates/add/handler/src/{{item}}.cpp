#include "{{item}}.hpp"

#include <boost/json/object.hpp>

namespace {{ident}} {

keel::task<keel::response> {{item}}(keel::context& ctx) {
  // ctx has the path parameters, query, headers, body (ctx.json<T>()), the
  // trace id and the deadline. Throw keel::http_error(404, "...") for a problem.
  co_return keel::response::json({{"handler", "{{item}}"}, {"trace_id", std::string(ctx.trace_id())}});
}

}  // namespace {{ident}}
