#pragma once
// UTF-8 validation: the one validator behind the access log's escaping, the
// context's decoded parameters, WebSocket text frames and problem bodies.
//
//   if (!keel::is_valid_utf8(name)) co_return ctx.problem(400, "name is not UTF-8");
//   auto shown = keel::to_valid_utf8(bytes);  // each bad sequence becomes U+FFFD
//
// Well-formed means RFC 3629: no overlong forms, no surrogates, nothing above
// U+10FFFF. Functions are pure and thread-safe.
#include <cstddef>
#include <string>
#include <string_view>

namespace keel {

/// True when every byte of s belongs to a well-formed UTF-8 sequence.
bool is_valid_utf8(std::string_view s) noexcept;

/// s with each maximal ill-formed subsequence replaced by U+FFFD, as Unicode
/// recommends (a truncated character shows as one replacement, not several).
std::string to_valid_utf8(std::string_view s);

/// The length of the well-formed sequence that starts s (1 to 4), or 0 when s
/// starts with an ill-formed one, whose maximal prefix length (at least 1) goes
/// to *bad. s must not be empty.
std::size_t utf8_sequence_length(std::string_view s, std::size_t* bad) noexcept;

}  // namespace keel
