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

// Into a plain buffer, then one string construction: a push_back per digit
// cost more than the random numbers (callgrind, default middleware stack).
void put_hex(char* out, std::uint64_t v) {
  static constexpr char digits[] = "0123456789abcdef";
  for (int i = 15; i >= 0; --i, v >>= 4) out[i] = digits[v & 0xf];
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
