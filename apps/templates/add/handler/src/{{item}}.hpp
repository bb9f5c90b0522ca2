#pragma once
// {{item}}: a route handler (added by `keel add handler {{item}}`).
// Register it in routes.cpp, e.g.  app.get("/{{item}}", {{ident}}::{{item}});
#include <keel/context.hpp>
#include <keel/response.hpp>

namespace {{ident}} {

keel::task<keel::response> {{item}}(keel::context& ctx);

}  // namespace {{ident}}
