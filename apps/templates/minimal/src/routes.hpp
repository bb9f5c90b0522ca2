#pragma once
// The routes of {{name}}: main.cpp and the tests both call setup(), so the
// tests exercise exactly what the service serves.
#include <keel/app.hpp>
#include <keel/config.hpp>

namespace {{ident}} {

/// Declares this service's own settings; each gets the three spellings of
/// keel's (`greeting` in config/app.json, KEEL_GREETING, --greeting).
void declare_settings(keel::config& cfg);

/// The middleware and routes, with the settings in `cfg`.
void setup(keel::app& app, keel::config const& cfg);

}  // namespace {{ident}}
