#pragma once
// The default middleware stack (SPEC §3): what keel's apps run with.
//
//   keel::mw::use_defaults(app);     // app.use() each of default_stack(), then expose_metrics(app)
//
// Order, outermost first (the reason for each is in defaults.cpp and
// docs/middleware.md): request_id, access_log, metrics, exception_capture.
#include <keel/app.hpp>
#include <keel/middleware.hpp>

#include <vector>

namespace keel::mw {

/// request_id, access_log, metrics, exception_capture, outermost first.
std::vector<middleware> default_stack();

/// app.use() every layer of default_stack(), then expose_metrics(app).
void use_defaults(keel::app& app);

}  // namespace keel::mw
