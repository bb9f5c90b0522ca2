#include "base/trace_ids.hpp"

#include <array>
#include <cstdint>
#include <cstring>
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

// Two hex digits per byte from a table, into a plain buffer, then one string
// assignment: a push_back per digit cost more than the random numbers, and a
// digit at a time half as much again (callgrind, default middleware stack).
constexpr auto hex_pairs = [] {
  std::array<char, 512> t{};
  constexpr char digits[] = "0123456789abcdef";
  for (int i = 0; i < 256; ++i) {
    t[2 * i] = digits[i >> 4];
    t[2 * i + 1] = digits[i & 0xf];
  }
  return t;
}();

void put_hex(char* out, std::uint64_t v) {
  for (int i = 7; i >= 0; --i, v >>= 8) std::memcpy(out + 2 * i, &hex_pairs[2 * (v & 0xff)], 2);
}

std::uint64_t nonzero_random() {
  for (;;) {
    if (auto v = next_random(); v != 0) return v;
  }
}

}  // namespace

void assign_trace_id(std::string& out) {
  char buf[32];
  put_hex(buf, nonzero_random());
  put_hex(buf + 16, next_random());
  out.assign(buf, sizeof buf);
}

void assign_span_id(std::string& out) {
  char buf[16];
  put_hex(buf, nonzero_random());
  out.assign(buf, sizeof buf);
}

std::string new_trace_id() {
  std::string id;
  assign_trace_id(id);
  return id;
}

std::string new_span_id() {
  std::string id;
  assign_span_id(id);
  return id;
}

}  // namespace keel::detail
