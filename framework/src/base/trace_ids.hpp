#pragma once
// Random W3C trace and span ids, from a per-thread generator (no locks, no syscalls).
#include <string>

namespace keel::detail {

/// 32 lowercase hex digits, never all zero.
std::string new_trace_id();
/// 16 lowercase hex digits, never all zero.
std::string new_span_id();
/// The same into an existing string, reusing its storage.
void assign_trace_id(std::string& out);
void assign_span_id(std::string& out);

}  // namespace keel::detail
