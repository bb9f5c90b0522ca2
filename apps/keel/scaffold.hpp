#pragma once
// What `keel new` and `keel add` do to the file system. Each either writes
// everything or nothing: a cli_error leaves no file behind.
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

namespace keel::cli {

/// A refusal with the message for the user (exit status 2: bad input).
class cli_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct template_info {
  std::string name;
  std::string summary;  ///< the first line of its TEMPLATE.txt
};

/// The templates `keel new --template` accepts, sorted by name.
std::vector<template_info> list_templates();

/// Writes project `name` from template `tmpl` into `dir / name`, through a
/// temporary directory renamed into place. Returns the project's path.
std::filesystem::path new_project(std::string const& name, std::string const& tmpl, std::filesystem::path const& dir);

/// `keel add middleware|handler NAME` inside the project that holds `where`:
/// writes the source/header pair and its test, lists them in CMakeLists.txt.
/// Returns what changed, one line each, relative to the project.
std::vector<std::string> add_item(std::string const& kind, std::string const& name, std::filesystem::path const& where);

}  // namespace keel::cli
