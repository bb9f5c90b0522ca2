#pragma once
// The session's side of a streamed request body (keel/body_stream.hpp): the
// parser in streaming mode over the connection's buffer, and what the reads
// so far have seen. Lives in the session's loop for one request.
#include "http/connection.hpp"
#include "http/request_parser.hpp"

#include <cstdint>
#include <optional>
#include <string_view>

namespace keel::detail {

struct body_source {
  body_source(connection& conn, request_parser& p, context& request_ctx)
      : c(conn), parser(p), ctx(request_ctx), started(clock::now()) {}

  connection& c;
  request_parser& parser;
  context& ctx;
  clock::time_point started;
  std::uint64_t consumed = 0;   // bytes off the wire (framing too): body_min_rate's measure
  bool continue_pending = false;
  bool watch_peer_when_done = false;  // the handler runs: arm the peer watch once the body is in
  bool done = false;            // the parser saw the end of the body
  bool timed_out = false;       // body_timeout / body_min_rate passed: 408, connection closed
  unsigned failed = 0;          // 400, 408 or 413 once the body can no longer be read
  std::string_view failed_detail;
};

/// Deadline for the next read of a body: body_timeout, or sooner when the
/// average rate since the body began would fall below body_min_rate (after
/// body_min_rate_grace). For bodies keel reads whole and for streamed ones.
clock::time_point body_read_deadline(options const& o, clock::time_point started, std::uint64_t received);

/// The next piece of the body, nullopt at its end; throws http_error (400,
/// 408, 413) or the system_error of a cancelled or failed read.
task<std::optional<std::string_view>> next_body_piece(body_source& b);

/// After the handler: reads and drops what it left of the body, at most
/// `limit` bytes under the body's deadlines. True when the body ended, so the
/// connection can read the next request.
task<bool> discard_body(body_source& b, std::uint64_t limit);

}  // namespace keel::detail
