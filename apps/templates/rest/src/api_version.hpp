#pragma once
// A middleware of this service's own: every /api response says which API
// version answered it, and a client that asks for another one
// (`Accept-Version: 2`) gets a 406 problem before any handler runs.
#include <keel/middleware.hpp>

#include <string>

namespace {{ident}} {

keel::middleware api_version(std::string version);

}  // namespace {{ident}}
