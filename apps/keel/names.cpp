#include "names.hpp"

#include <algorithm>
#include <iterator>

namespace keel::cli {

namespace {

// Names that would not compile as a namespace or function, or would collide
// with what the generated code already uses.
constexpr std::string_view reserved[] = {
    "alignas", "alignof", "and", "and_eq", "asm", "auto", "bitand", "bitor", "bool", "break", "case", "catch",
    "char", "char8_t", "char16_t", "char32_t", "class", "compl", "concept", "const", "consteval", "constexpr",
    "constinit", "const_cast", "continue", "co_await", "co_return", "co_yield", "decltype", "default", "delete",
    "do", "double", "dynamic_cast", "else", "enum", "explicit", "export", "extern", "false", "float", "for",
    "friend", "goto", "if", "inline", "int", "long", "mutable", "namespace", "new", "noexcept", "not", "not_eq",
    "nullptr", "operator", "or", "or_eq", "private", "protected", "public", "register", "reinterpret_cast",
    "requires", "return", "short", "signed", "sizeof", "static", "static_assert", "static_cast", "struct",
    "switch", "template", "this", "thread_local", "throw", "true", "try", "typedef", "typeid", "typename",
    "union", "unsigned", "using", "virtual", "void", "volatile", "wchar_t", "while", "xor", "xor_eq",
    "keel", "std", "boost", "main", "routes", "pages", "setup", "declare_settings"};

bool is_reserved(std::string_view n) { return std::find(std::begin(reserved), std::end(reserved), n) != std::end(reserved); }
bool lower(char c) { return c >= 'a' && c <= 'z'; }
bool digit(char c) { return c >= '0' && c <= '9'; }

}  // namespace

std::string project_name_problem(std::string_view name) {
  constexpr auto rule = "a project name is 1 to 64 characters: lowercase letters a-z, digits 0-9, '-' and '_', "
                        "starting with a letter";
  if (name.empty() || name.size() > 64 || !lower(name.front())) return rule;
  for (char c : name) {
    if (!lower(c) && !digit(c) && c != '-' && c != '_') return rule;
  }
  if (name.back() == '-' || name.back() == '_') return "a project name must not end with '-' or '_'";
  if (is_reserved(identifier(name))) return "\"" + std::string(name) + "\" is reserved (a C++ keyword or a name keel uses)";
  return {};
}

std::string item_name_problem(std::string_view name) {
  constexpr auto rule = "a name is 1 to 64 characters: lowercase letters a-z, digits 0-9 and '_', starting with a "
                        "letter (it becomes a C++ function and file name)";
  if (name.empty() || name.size() > 64 || !lower(name.front())) return rule;
  for (char c : name) {
    if (!lower(c) && !digit(c) && c != '_') return rule;
  }
  if (is_reserved(name)) return "\"" + std::string(name) + "\" is reserved (a C++ keyword or a name keel uses)";
  return {};
}

std::string identifier(std::string_view project_name) {
  std::string id(project_name);
  std::replace(id.begin(), id.end(), '-', '_');
  return id;
}

}  // namespace keel::cli
