// keel: scaffold services and add code to them.
//   keel new NAME [--template minimal|rest|websocket] [--dir PATH]    keel new --list
//   keel add middleware NAME      keel add handler NAME
//   keel --version                keel help [COMMAND]
// Exit status: 0 done, 1 the file system failed us, 2 bad input (nothing written).
#include "scaffold.hpp"

#include <iostream>
#include <string>
#include <vector>

namespace {

using keel::cli::cli_error;
namespace fs = std::filesystem;

constexpr char const* usage_main =
    "usage: keel <command> [options]\n"
    "\n"
    "commands:\n"
    "  new NAME     write a new keel service from a template\n"
    "  add KIND NAME  add a middleware or a handler (with its test) to this project\n"
    "  help [COMMAND] show help\n"
    "\n"
    "options: --version, --help (also after any command)\n";

constexpr char const* usage_new =
    "usage: keel new NAME [--template minimal|rest|websocket] [--dir PATH]\n"
    "       keel new --list\n"
    "\n"
    "Writes a keel service into PATH/NAME (default ./NAME): routes, the default\n"
    "middleware stack, /healthz, /readyz, /metrics, tests, config, a README and a\n"
    "Dockerfile. NAME: lowercase letters, digits, '-' and '_', starting with a letter.\n"
    "\n"
    "  --template T   the template (default minimal); --list shows them\n"
    "  --dir PATH     where to create the project (default: the current directory)\n"
    "  --list         list the templates, one per line\n";

constexpr char const* usage_add =
    "usage: keel add middleware NAME\n"
    "       keel add handler NAME\n"
    "\n"
    "Run inside a project made by `keel new`: writes src/NAME.hpp, src/NAME.cpp and\n"
    "tests/NAME_test.cpp and lists them in CMakeLists.txt. NAME: lowercase letters,\n"
    "digits and '_', starting with a letter.\n";

bool wants_help(std::vector<std::string> const& args) {
  for (auto const& a : args) {
    if (a == "--help" || a == "-h") return true;
  }
  return false;
}

int cmd_new(std::vector<std::string> const& args) {
  if (wants_help(args)) {
    std::cout << usage_new;
    return 0;
  }
  std::string name, tmpl = "minimal";
  fs::path dir = ".";
  bool list = false;
  for (std::size_t i = 0; i < args.size(); ++i) {
    auto const& a = args[i];
    auto value = [&](char const* flag) {
      if (i + 1 >= args.size()) throw cli_error(std::string(flag) + " needs a value");
      return args[++i];
    };
    if (a == "--template" || a == "-t") tmpl = value("--template");
    else if (a.starts_with("--template=")) tmpl = a.substr(11);
    else if (a == "--dir") dir = value("--dir");
    else if (a.starts_with("--dir=")) dir = a.substr(6);
    else if (a == "--list") list = true;
    else if (a.starts_with("-")) throw cli_error("keel new: unknown option " + a + " (see keel new --help)");
    else if (name.empty()) name = a;
    else throw cli_error("keel new: one project name, got \"" + name + "\" and \"" + a + "\"");
  }
  if (list) {
    for (auto const& t : keel::cli::list_templates()) std::cout << t.name << "\t" << t.summary << "\n";
    return 0;
  }
  if (name.empty()) throw cli_error("keel new: a project name is required (see keel new --help)");
  auto path = keel::cli::new_project(name, tmpl, dir);
  std::cout << "created " << path.string() << " from the " << tmpl << " template\n\n"
            << "  cd " << (dir == "." ? fs::path(name) : path).string() << "\n"
            << "  cmake --preset default && cmake --build --preset default && ./build/" << name
            << " --config config/app.json\n"
            << "  cmake --workflow --preset default    # build and test\n";
  return 0;
}

int cmd_add(std::vector<std::string> const& args) {
  if (wants_help(args)) {
    std::cout << usage_add;
    return 0;
  }
  if (args.size() != 2) throw cli_error("keel add: expected KIND NAME (see keel add --help)");
  for (auto const& line : keel::cli::add_item(args[0], args[1], fs::current_path())) std::cout << line << "\n";
  return 0;
}

int run(std::vector<std::string> args) {
  if (args.empty()) {
    std::cerr << usage_main;
    return 2;
  }
  auto cmd = args.front();
  args.erase(args.begin());
  if (cmd == "--version" || cmd == "version") {
    std::cout << "keel " << KEEL_VERSION << "\n";
    return 0;
  }
  if (cmd == "--help" || cmd == "-h") {
    std::cout << usage_main;
    return 0;
  }
  if (cmd == "help") {
    std::string topic = args.empty() ? "" : args.front();
    std::cout << (topic == "new" ? usage_new : topic == "add" ? usage_add : usage_main);
    return topic.empty() || topic == "new" || topic == "add" ? 0 : 2;
  }
  if (cmd == "new") return cmd_new(args);
  if (cmd == "add") return cmd_add(args);
  throw cli_error("unknown command \"" + cmd + "\" (see keel --help)");
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(std::vector<std::string>(argv + 1, argv + argc));
  } catch (cli_error const& e) {
    std::cerr << "keel: " << e.what() << "\n";
    return 2;
  } catch (std::exception const& e) {
    std::cerr << "keel: " << e.what() << "\n";
    return 1;
  }
}
