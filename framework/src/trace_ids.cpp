#include "trace_ids.hpp"

#include <cstdint>
#include <random>

namespace keel::detail {

namespace {

std::uint64_t next_random() {
  // splitmix64 over a per-thread seed: fast, and ids need uniqueness, not secrecy.
  thread_local std::uint64_t state = [] {
    std::random_device rd;
    return (std::uint64_t(rd()) << 32) ^ rd();
  }();
  std::uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

void append_hex(std::string& out, std::uint64_t v) {
  static constexpr char digits[] = "0123456789abcdef";
  for (int shift = 60; shift >= 0; shift -= 4) out.push_back(digits[(v >> shift) & 0xf]);
}

std::uint64_t nonzero_random() {
  for (;;) {
    if (auto v = next_random(); v != 0) return v;
  }
}

}  // namespace

std::string new_trace_id() {
  std::string out;
  out.reserve(32);
  append_hex(out, nonzero_random());
  append_hex(out, next_random());
  return out;
}

std::string new_span_id() {
  std::string out;
  out.reserve(16);
  append_hex(out, nonzero_random());
  return out;
}

}  // namespace keel::detail
