#pragma once
// keel::testing::ws_client: a blocking WebSocket client (Beast underneath, not
// keel's session code) for tests of an app's WebSocket routes.
//
//   keel::testing::running_app running(app);
//   keel::testing::ws_client alice(running.port(), "/ws?room=lobby");
//   alice.send("hi");
//   REQUIRE(alice.read() == "hi");
//
// Every read waits at most `timeout` (10 s by default) and then throws, so a
// broken server fails the test instead of hanging it. Not thread-safe: one
// client per test thread.
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace keel::testing {

class ws_client {
 public:
  /// Connects to 127.0.0.1:port and upgrades `target`; throws when the
  /// handshake fails (the status of a refused upgrade is in the message).
  ws_client(std::uint16_t port, std::string const& target,
            std::vector<std::pair<std::string, std::string>> headers = {},
            std::chrono::milliseconds timeout = std::chrono::seconds(10));
  ~ws_client();
  ws_client(ws_client&&) noexcept;

  void send(std::string const& data, bool binary = false);
  /// The next message; throws std::runtime_error when the session ended or
  /// nothing arrived in time.
  std::string read();
  /// True when the last message read was binary.
  bool last_was_binary() const;
  /// Closes with `code`, waiting for the server's close frame.
  void close(std::uint16_t code = 1000);
  /// Reads until the server closes; its close code (1006 when none came).
  std::uint16_t read_until_closed();

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace keel::testing
