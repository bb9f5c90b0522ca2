#pragma once
// The project templates (apps/templates), compiled into the keel binary.
#include <span>
#include <string_view>

namespace keel::cli {

struct template_file {
  std::string_view path;     ///< "minimal/src/routes.cpp", "common/CMakeLists.txt", "add/handler/..."
  std::string_view content;  ///< with {{placeholders}}
};

std::span<template_file const> embedded_templates();

}  // namespace keel::cli
