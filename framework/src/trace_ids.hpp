#pragma once
// Random W3C trace and span ids, from a per-thread generator (no locks, no syscalls).
#include <string>

namespace keel::detail {

/// 32 lowercase hex digits, never all zero.
std::string new_trace_id();
/// 16 lowercase hex digits, never all zero.
std::string new_span_id();

}  // namespace keel::detail
