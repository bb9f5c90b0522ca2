#pragma once
// Structured logging: one JSON object per line on stderr.
//
//   keel::log::info("listening", {{"address", addr}, {"threads", 4}});
//   keel::log::write(keel::log::level::warn, "slow", {{"trace_id", ctx.trace_id()}});
//
// Lines are formatted on the calling thread and handed to one writer thread
// through a bounded queue: logging never blocks an I/O thread. When stderr cannot
// take lines in time the queue fills, further lines are dropped and counted
// (dropped(), exported as keel_log_dropped_total). Every field is JSON-escaped.
// Thread-safe.
#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <variant>

namespace keel::log {

enum class level { debug, info, warn, error };

/// One key/value of a line. Keys are emitted as given (they are code, not input).
struct field {
  std::string_view key;
  std::variant<std::string_view, std::int64_t, std::uint64_t, double, bool> value;

  field(std::string_view k, std::string_view v) : key(k), value(v) {}
  field(std::string_view k, char const* v) : key(k), value(std::string_view(v)) {}
  field(std::string_view k, std::string const& v) : key(k), value(std::string_view(v)) {}
  field(std::string_view k, int v) : key(k), value(std::int64_t(v)) {}
  field(std::string_view k, long v) : key(k), value(std::int64_t(v)) {}
  field(std::string_view k, long long v) : key(k), value(std::int64_t(v)) {}
  field(std::string_view k, unsigned v) : key(k), value(std::uint64_t(v)) {}
  field(std::string_view k, unsigned long v) : key(k), value(std::uint64_t(v)) {}
  field(std::string_view k, unsigned long long v) : key(k), value(std::uint64_t(v)) {}
  field(std::string_view k, double v) : key(k), value(v) {}
  field(std::string_view k, bool v) : key(k), value(v) {}
};

/// Lines below this level are skipped before formatting. Default info.
void set_level(level l);
level get_level();
/// Parses "debug", "info", "warn", "error"; throws std::invalid_argument.
level parse_level(std::string_view name);
inline bool enabled(level l) { return static_cast<int>(l) >= static_cast<int>(get_level()); }

/// Formats `{"ts":...,"level":...,"msg":...,<fields>}` and queues it.
void write(level l, std::string_view msg, std::initializer_list<field> fields = {});
/// Queues an already formatted line (a complete JSON object without newline).
void write_raw(std::string line);
/// Queues an already formatted line that ends in '\n', from a buffer the
/// caller keeps and reuses (a thread_local string): nothing is allocated on the
/// caller's side, unlike write_raw(), which takes its string. The access log's path.
void write_line(std::string_view line_with_newline);

inline void debug(std::string_view m, std::initializer_list<field> f = {}) { if (enabled(level::debug)) write(level::debug, m, f); }
inline void info(std::string_view m, std::initializer_list<field> f = {}) { if (enabled(level::info)) write(level::info, m, f); }
inline void warn(std::string_view m, std::initializer_list<field> f = {}) { if (enabled(level::warn)) write(level::warn, m, f); }
inline void error(std::string_view m, std::initializer_list<field> f = {}) { write(level::error, m, f); }

/// Lines dropped because the queue was full, since the process started.
std::uint64_t dropped();
/// Blocks until every queued line has been written (shutdown, tests). Not for I/O threads.
void flush();

/// Appends `s` JSON-escaped (without quotes) to `out`. Shared with the access log.
void append_escaped(std::string& out, std::string_view s);
/// Appends the current UTC time as `2026-11-25T03:15:47.123Z`.
void append_timestamp(std::string& out);

}  // namespace keel::log
