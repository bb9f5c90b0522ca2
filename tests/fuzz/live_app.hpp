#pragma once
// One keel app, in this process, for the fuzz targets that go through the
// real server: started on first use (127.0.0.1:0, one I/O thread, the default
// middleware stack, compression, an echo WebSocket) and drained at exit.
// Each input is one fresh TCP connection, so a target sees exactly what a
// stranger on the network would: keel's accept loop, session, parser, router,
// middleware, handlers and WebSocket code, not a copy of them.
//
// Its limits are low (max_head 1 KiB, 16 header fields, bodies of 2 KiB,
// streamed bodies of 3 KiB, WebSocket messages of 2 KiB) so that inputs within
// libFuzzer's -max_len of 4 KiB reach every one of them.
//
// Routes, each reading everything a handler can read after the body (method,
// target, ctx.path(), every path parameter, the query, every header, the body
// size) and copying it into the response, so that ASan sees any view that the
// body's arrival left dangling:
//   GET /                      text
//   any /echo                  the body back
//   any /users/{id}            whole body, then everything (the trailer-after-route case)
//   GET|POST /files/{*path}    the same with a wildcard
//   GET /trace                 the request id
//   POST|PUT /upload[/{id}]    stream_body: views of the head taken before the
//                              body, read after it; the headers must not change
//   GET /pipe/{id}             whole body, answered with a streamed response
//                              (keel/stream.hpp) that reads everything while it writes
//   POST|PUT /pipe/{id}        stream_body, reads ?read=N bytes (0: none, default;
//                              all: all) then answers with that streamed response
//   GET /events/{id}           whole body, then an SSE stream of one event with everything
//   POST /events/{id}          stream_body, ?read=N, then the SSE stream
//   POST /form                 stream_body multipart
//   WS /ws                     echo, text and binary
//
// Oracles that abort the process (__builtin_trap, a libFuzzer crash):
//   - on every stream_body route, the header section after the body is the one
//     before it (a trailer is never a header: issue 21 #2);
//   - on a connection whose every head the live_framing harness built
//     (exchange(..., framed = true)), every request routed carries an X-Seq
//     greater than the last one routed (a request parsed out of another's
//     body has none: #3), and no handler or middleware sees X-Trailer-Only,
//     which the harness sends only as a trailer field (#2).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace keel_fuzz {

/// The port the live app listens on (starts it the first time).
std::uint16_t live_port();

struct exchange_result {
  std::string received;     ///< every byte the server sent, up to its close
  bool timed_out = false;   ///< the 5 s cap passed before the server closed
};

/// Sends `input` over a new connection in pieces of `piece` bytes (0: all at
/// once; each piece is its own write with TCP_NODELAY), then shutdown(SHUT_WR)
/// and reads until the server closes, at most 5 s. Reads while writing, so a
/// server that answers pipelined requests early never deadlocks the client.
/// `framed`: the harness built every request head of `input` itself (see the
/// X-Seq and X-Trailer-Only oracles above).
exchange_result exchange(std::string_view input, std::size_t piece = 0, bool framed = false);

/// The bytes of a WebSocket upgrade request for /ws (RFC 6455 §1.3's key).
std::string_view ws_upgrade_request();

}  // namespace keel_fuzz
