#pragma once
// Loading keel::options (and an app's own settings) from a JSON file, KEEL_*
// environment variables and command-line flags, in that order of precedence.
//
//   keel::config cfg("hello");
//   cfg.add("middleware", "default", "default|none: the middleware stack");
//   cfg.load(argc, argv);                 // throws keel::config_error naming the setting
//   keel::options const& o = cfg.server();
//   std::string mw = cfg.get("middleware");
//
// One name, three spellings: JSON key `header_timeout`, environment
// `KEEL_HEADER_TIMEOUT`, flag `--header-timeout` (also `--header-timeout=10s`).
// Durations carry a unit (`250ms`, `10s`, `2m`, `1h`); sizes are bytes or carry
// `KiB`/`MiB`/`GiB`. Booleans: `true`/`false`/`1`/`0`/`on`/`off`; a boolean flag
// given alone (`--dev-mode`) means true. Lists (`ws_allowed_origins`,
// `trusted_proxies`) are JSON arrays in the file and comma-separated elsewhere.
// `--config FILE` (or KEEL_CONFIG) names the file.
#include <keel/options.hpp>

#include <chrono>
#include <cstddef>
#include <functional>
#include <map>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace keel {

/// Bad configuration. what() names the setting and the value at fault.
class config_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// "250ms", "10s", "2m", "1h" (also "1.5s"), at most 8760h (one year: a deadline
/// must fit steady_clock). Throws std::invalid_argument.
std::chrono::milliseconds parse_duration(std::string_view text);
/// "1024", "64KiB", "1MiB", "1GiB" (also "64KB"/"1MB" as powers of 1024). Throws std::invalid_argument.
std::size_t parse_size(std::string_view text);

class config {
 public:
  /// `program` is used in usage text.
  explicit config(std::string program);

  /// Declares an app setting with a string default; it gets the three spellings too.
  /// `name` is in JSON spelling (`jwt_secret`).
  config& add(std::string name, std::string default_value, std::string help);
  /// Declares an app boolean setting (default false): `--name` alone sets it.
  config& add_flag(std::string name, std::string help);

  /// Reads defaults < file < environment < flags. Throws config_error naming the
  /// setting on an unknown flag, a bad value, or a file that does not load.
  void load(int argc, char** argv);
  /// Same, with explicit arguments (without argv[0]) and environment lookup, for tests.
  void load(std::vector<std::string> const& args,
            std::function<char const*(char const*)> const& getenv);

  options const& server() const { return server_; }
  options& server() { return server_; }
  /// An app setting declared with add()/add_flag(); throws std::out_of_range otherwise.
  std::string const& get(std::string_view name) const;
  bool get_bool(std::string_view name) const;
  /// Arguments that are not flags, in order (e.g. a subcommand).
  std::vector<std::string> const& positional() const { return positional_; }
  /// True when --help was given; usage() has the text to print.
  bool help_requested() const { return help_; }
  std::string usage() const;

 private:
  struct app_setting {
    std::string value;
    std::string help;
    bool is_flag = false;
    std::string default_value;  ///< for usage()
  };
  void set(std::string_view name, std::string_view value, std::string_view source);
  class loader;  ///< load()'s steps (config.cpp)

  std::string program_;
  options server_;
  options defaults_;  ///< server_ as it was before load(), for usage()
  std::map<std::string, app_setting, std::less<>> app_;
  std::vector<std::string> positional_;
  bool help_ = false;
};

}  // namespace keel
