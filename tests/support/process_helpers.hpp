#pragma once
// Small helpers the integration tests share: run a real client (curl, openssl)
// and take its output, read this process's memory figures, a temporary file
// removed at scope exit, and a byte hash to compare bodies without keeping them.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
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

/// Writes `size` pseudo-random bytes (every byte value, CR/LF included) from `seed`
/// to `p`, with `marker` copied to offset 100 of every 64 KiB block when given
/// (boundary-like runs for multipart); returns the file's fnv1a hash.
inline std::uint64_t write_random_file(std::filesystem::path const& p, std::size_t size, std::uint64_t seed,
                                       std::string_view marker = {}) {
  std::mt19937_64 rng(seed);
  std::ofstream out(p, std::ios::binary);
  std::string block(64 * 1024, '\0');
  std::uint64_t h = fnv_offset;
  for (std::size_t done = 0; done < size;) {
    for (std::size_t i = 0; i < block.size(); i += 8) {
      auto v = rng();
      std::memcpy(&block[i], &v, 8);
    }
    if (!marker.empty()) std::memcpy(&block[100], marker.data(), marker.size());
    auto n = std::min(block.size(), size - done);
    out.write(block.data(), static_cast<std::streamsize>(n));
    h = fnv1a(h, std::string_view(block.data(), n));
    done += n;
  }
  return h;
}

}  // namespace keel::test
