#pragma once
// Small helpers the integration tests share: run a real client (curl, openssl)
// and take its output, read this process's memory figures, a temporary file
// removed at scope exit, and a byte hash to compare bodies without keeping them.
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <system_error>

#include <unistd.h>

namespace keel::test {

/// Runs `cmd` through the shell; its standard output.
inline std::string run_command(std::string const& cmd) {
  std::string out;
  if (auto* p = ::popen(cmd.c_str(), "r")) {
    char buf[65536];
    std::size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
    ::pclose(p);
  }
  return out;
}

/// A /proc/self/status figure in KiB ("VmRSS:", "VmHWM:"); 0 if absent.
inline std::size_t vm_kib(char const* field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(field, 0) == 0) return std::stoul(line.substr(std::string(field).size()));
  }
  return 0;
}

/// Sets VmHWM back to the current RSS, so a later VmHWM is the peak since now.
inline void reset_peak_rss() { std::ofstream("/proc/self/clear_refs") << "5"; }

/// A path in the temporary directory, unique to this process, removed at scope exit.
struct temp_file {
  std::filesystem::path path;
  explicit temp_file(std::string const& name)
      : path(std::filesystem::temp_directory_path() / (name + "-" + std::to_string(::getpid()))) {}
  ~temp_file() {
    std::error_code ec;
    std::filesystem::remove(path, ec);
  }
  temp_file(temp_file const&) = delete;
  temp_file& operator=(temp_file const&) = delete;
};

/// FNV-1a, 64 bits: fed piece by piece it gives the hash of the whole.
inline constexpr std::uint64_t fnv_offset = 14695981039346656037ull;
inline std::uint64_t fnv1a(std::uint64_t h, std::string_view bytes) {
  for (unsigned char ch : bytes) h = (h ^ ch) * 1099511628211ull;
  return h;
}

}  // namespace keel::test
