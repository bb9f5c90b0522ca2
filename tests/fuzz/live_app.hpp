#pragma once
// One keel app, in this process, for the fuzz targets that go through the
// real server: started on first use (127.0.0.1:0, one I/O thread, the default
// middleware stack, compression, an echo WebSocket) and drained at exit.
// Each input is one fresh TCP connection, so a target sees exactly what a
// stranger on the network would: keel's accept loop, session, parser, router,
// middleware, handlers and WebSocket code, not a copy of them.
//
// Routes: GET / (text), any method on /echo (the body back), GET
// /users/{id} (the parameter back), GET /files/{*path}, GET /trace (the trace
// ids back), WS /ws (echo, text and binary).
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
exchange_result exchange(std::string_view input, std::size_t piece = 0);

/// The bytes of a WebSocket upgrade request for /ws (RFC 6455 §1.3's key).
std::string_view ws_upgrade_request();

}  // namespace keel_fuzz
