#pragma once
// The default middleware stack (SPEC §3): what keel's apps run with.
//
//   keel::mw::use_defaults(app);     // app.use(default_stack()), then expose_metrics(app)
//
// It does what request_id(), access_log(), metrics() and exception_capture()
// do, in that order outermost first (the reason for each is in defaults.cpp
// and docs/middleware.md), with their default options, in one layer: each
// coroutine layer costs about 400 instructions per request just for being
// one. For other options, app.use() the four yourself in that order.
#include <keel/app.hpp>
#include <keel/middleware.hpp>

#include <vector>

namespace keel::mw {

/// The default stack, outermost first (today one layer doing all four).
std::vector<middleware> default_stack();

/// app.use() every layer of default_stack(), then expose_metrics(app).
void use_defaults(keel::app& app);

}  // namespace keel::mw
