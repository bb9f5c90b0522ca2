#pragma once
// What the keel command accepts as a project or item name, and why not.
#include <optional>
#include <string>
#include <string_view>

namespace keel::cli {

/// Empty when `name` can name a project, else why it cannot.
std::string project_name_problem(std::string_view name);
/// Empty when `name` can name a middleware or handler, else why it cannot.
std::string item_name_problem(std::string_view name);
/// The project name as a C++ identifier: '-' becomes '_'.
std::string identifier(std::string_view project_name);

}  // namespace keel::cli
