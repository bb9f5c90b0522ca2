#include "scaffold.hpp"

#include "names.hpp"
#include "template_files.hpp"

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <map>
#include <random>
#include <sstream>

namespace keel::cli {

namespace fs = std::filesystem;

namespace {

constexpr std::string_view version = KEEL_VERSION;
constexpr std::string_view sources_marker = "  # keel:sources";
constexpr std::string_view tests_marker = "  # keel:tests";

using placeholders = std::map<std::string, std::string>;

std::string render(std::string_view text, placeholders const& values) {
  std::string out(text);
  for (auto const& [key, value] : values) {
    auto const token = "{{" + key + "}}";
    for (auto at = out.find(token); at != std::string::npos; at = out.find(token, at + value.size())) {
      out.replace(at, token.size(), value);
    }
  }
  return out;
}

// The files under `prefix/` (e.g. "minimal/"), keyed by their path below it.
std::map<std::string, std::string_view> files_under(std::string_view prefix) {
  std::map<std::string, std::string_view> out;
  for (auto const& f : embedded_templates()) {
    if (f.path.starts_with(prefix)) out.emplace(std::string(f.path.substr(prefix.size())), f.content);
  }
  return out;
}

std::string first_line(std::string_view text) {
  auto end = text.find('\n');
  return std::string(text.substr(0, end));
}

void write_file(fs::path const& path, std::string const& content) {
  fs::create_directories(path.parent_path());
  std::ofstream out(path, std::ios::binary);
  out << content;
  out.close();
  if (!out) throw std::runtime_error("cannot write " + path.string());
}

std::string read_file(fs::path const& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw cli_error("cannot read " + path.string());
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// "  src/a.cpp\n  src/b.cpp" for the .cpp files under `folder`, `first` leading.
// A template whose code includes keel's Redis headers links keel::redis (and
// only then needs hiredis).
bool uses_redis(std::map<std::string, std::string_view> const& files) {
  return std::any_of(files.begin(), files.end(),
                     [](auto const& f) { return f.second.find("#include <keel/redis") != std::string_view::npos; });
}

std::string cmake_list(std::map<std::string, std::string_view> const& files, std::string_view folder,
                       std::string_view first, std::string_view skip) {
  std::vector<std::string> paths;
  for (auto const& [path, content] : files) {
    if (path.starts_with(folder) && path.ends_with(".cpp") && path != skip && path != first) paths.push_back(path);
  }
  if (files.count(std::string(first))) paths.insert(paths.begin(), std::string(first));
  std::string out;
  for (auto const& p : paths) out += (out.empty() ? "  " : "\n  ") + p;
  return out;
}

fs::path unique_temp_dir(fs::path const& parent, std::string const& name) {
  std::random_device rd;
  for (int i = 0; i < 100; ++i) {
    auto p = parent / ("." + name + ".keel-new-" + std::to_string(rd() % 1000000));
    if (fs::create_directory(p)) return p;
  }
  throw std::runtime_error("cannot create a temporary directory in " + parent.string());
}

// The nearest directory at or above `from` that holds a .keel-project.
fs::path find_project(fs::path from) {
  from = fs::absolute(from);
  for (auto p = from; ; p = p.parent_path()) {
    if (fs::exists(p / ".keel-project")) return p;
    if (p == p.root_path() || p.parent_path() == p) break;
  }
  throw cli_error("keel add runs inside a project made by `keel new` (no .keel-project in " + from.string() +
                  " or above)");
}

std::string project_setting(std::string const& manifest, std::string_view key) {
  std::istringstream in(manifest);
  for (std::string line; std::getline(in, line);) {
    if (line.starts_with(std::string(key) + "=")) return line.substr(key.size() + 1);
  }
  return {};
}

}  // namespace

std::vector<template_info> list_templates() {
  std::map<std::string, std::string> found;
  for (auto const& f : embedded_templates()) {
    auto slash = f.path.find('/');
    auto name = std::string(f.path.substr(0, slash));
    if (f.path.substr(slash + 1) == "TEMPLATE.txt") found[name] = first_line(f.content);
  }
  std::vector<template_info> out;
  for (auto& [name, summary] : found) out.push_back({name, summary});
  return out;
}

fs::path new_project(std::string const& name, std::string const& tmpl, fs::path const& dir) {
  if (auto why = project_name_problem(name); !why.empty()) throw cli_error("invalid project name \"" + name + "\": " + why);
  auto templates = list_templates();
  if (std::none_of(templates.begin(), templates.end(), [&](auto const& t) { return t.name == tmpl; })) {
    std::string known;
    for (auto const& t : templates) known += (known.empty() ? "" : ", ") + t.name;
    throw cli_error("unknown template \"" + tmpl + "\"; the templates are: " + known);
  }
  auto target = fs::weakly_canonical(fs::absolute(dir)) / name;
  std::error_code ec;
  if (fs::exists(target, ec)) {
    if (!fs::is_directory(target) || !fs::is_empty(target)) {
      throw cli_error(target.string() + " already exists and is not an empty directory");
    }
  }
  if (!fs::is_directory(target.parent_path(), ec)) {
    throw cli_error("the directory " + target.parent_path().string() + " does not exist");
  }

  // The template's own files win over the common ones.
  auto files = files_under("common/");
  for (auto const& [path, content] : files_under(tmpl + "/")) files[path] = content;
  files.erase("TEMPLATE.txt");
  placeholders values{{"name", name},
                      {"ident", identifier(name)},
                      {"template", tmpl},
                      {"keel_version", std::string(version)},
                      {"keel_components", uses_redis(files) ? " COMPONENTS redis" : ""},
                      {"keel_libs", uses_redis(files) ? "keel::framework keel::middleware keel::redis"
                                                      : "keel::framework keel::middleware"},
                      {"sources", cmake_list(files, "src/", "src/routes.cpp", "src/main.cpp")},
                      {"tests", cmake_list(files, "tests/", "tests/main.cpp", "")}};

  auto temp = unique_temp_dir(target.parent_path(), name);
  try {
    for (auto const& [path, content] : files) write_file(temp / render(path, values), render(content, values));
    if (fs::exists(target)) fs::remove(target);  // an empty directory, checked above
    fs::rename(temp, target);
  } catch (...) {
    fs::remove_all(temp, ec);
    throw;
  }
  return target;
}

std::vector<std::string> add_item(std::string const& kind, std::string const& name, fs::path const& where) {
  if (kind != "middleware" && kind != "handler") {
    throw cli_error("keel add makes a middleware or a handler, not \"" + kind + "\"");
  }
  if (auto why = item_name_problem(name); !why.empty()) throw cli_error("invalid " + kind + " name \"" + name + "\": " + why);
  auto project = find_project(where);
  auto manifest = read_file(project / ".keel-project");
  auto project_name = project_setting(manifest, "name");
  if (!project_name_problem(project_name).empty()) throw cli_error((project / ".keel-project").string() + " names no valid project");

  placeholders values{{"item", name}, {"ident", identifier(project_name)}, {"name", project_name}};
  std::vector<std::pair<fs::path, std::string>> writes;
  for (auto const& [path, content] : files_under("add/" + kind + "/")) {
    auto rel = render(path, values);
    if (fs::exists(project / rel)) throw cli_error(rel + " already exists in " + project.string());
    writes.emplace_back(rel, render(content, values));
  }

  auto cmake_path = project / "CMakeLists.txt";
  auto cmake = read_file(cmake_path);
  auto sources_at = cmake.find(std::string(sources_marker) + "\n");
  auto tests_at = cmake.find(std::string(tests_marker) + "\n");
  if (sources_at == std::string::npos || tests_at == std::string::npos) {
    throw cli_error("CMakeLists.txt has lost the `# keel:sources` or `# keel:tests` marker line; "
                    "put them back where keel add should list new files");
  }
  // Later position first, so the earlier one stays valid.
  auto insert = [&](std::size_t at, std::string const& line) { cmake.insert(at, "  " + line + "\n"); };
  std::string src = "src/" + name + ".cpp", test = "tests/" + name + "_test.cpp";
  if (tests_at > sources_at) {
    insert(tests_at, test);
    insert(sources_at, src);
  } else {
    insert(sources_at, src);
    insert(tests_at, test);
  }

  std::vector<std::string> changed;
  std::vector<fs::path> written;
  try {
    for (auto const& [rel, content] : writes) {
      write_file(project / rel, content);
      written.push_back(project / rel);
      changed.push_back("created " + rel.string());
    }
    auto tmp = cmake_path;
    tmp += ".keel-tmp";
    write_file(tmp, cmake);
    fs::rename(tmp, cmake_path);
    changed.push_back("updated CMakeLists.txt: " + src + " and " + test + " added to the build");
  } catch (...) {
    std::error_code ec;
    for (auto const& p : written) fs::remove(p, ec);
    throw;
  }
  return changed;
}

}  // namespace keel::cli
