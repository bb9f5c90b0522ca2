// Arbitrary flags, environment values and config files through keel::config:
// a bad input is a config_error naming it, nothing else. The input is split
// at NUL bytes: the first part is the config file, the rest are arguments
// and KEEL_* values.
#include <keel/config.hpp>

#include <cstddef>
#include <cstdint>
#include <fstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unistd.h>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* data, std::size_t size) {
  std::string_view in(reinterpret_cast<char const*>(data), size);
  std::vector<std::string> parts;
  while (true) {
    auto nul = in.find('\0');
    parts.emplace_back(in.substr(0, nul));
    if (nul == std::string_view::npos) break;
    in.remove_prefix(nul + 1);
  }
  static std::string const file = "/tmp/keel-fuzz-config-" + std::to_string(::getpid()) + ".json";
  std::ofstream(file, std::ios::trunc) << parts[0];
  std::vector<std::string> args = {"--config", file};
  std::string env_value;
  for (std::size_t i = 1; i < parts.size(); ++i) {
    if (i == 1) env_value = parts[i];  // the first becomes KEEL_MAX_BODY's value
    else args.push_back(parts[i]);
  }
  keel::config cfg("fuzz");
  cfg.add("greeting", "hello", "an app setting");
  cfg.add_flag("verbose", "an app flag");
  try {
    cfg.load(args, [&](char const* name) -> char const* {
      return std::string_view(name) == "KEEL_MAX_BODY" && !env_value.empty() ? env_value.c_str() : nullptr;
    });
    (void)cfg.usage();
  } catch (keel::config_error const&) {
  }
  return 0;
}
