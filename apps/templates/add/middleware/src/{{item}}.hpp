#pragma once
// {{item}}: a middleware (added by `keel add middleware {{item}}`).
// Install it app-wide, on a group or on one route:
//   app.use({{ident}}::{{item}}());
//   app.group("/api", {{{ident}}::{{item}}()});
//   app.get("/x", handler).use({{ident}}::{{item}}());
#include <keel/middleware.hpp>

namespace {{ident}} {

keel::middleware {{item}}();

}  // namespace {{ident}}
