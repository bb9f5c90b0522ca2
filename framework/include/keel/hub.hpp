#pragma once
// Rooms and broadcast for WebSocket sessions.
//
//   keel::local_hub hub;                     // owned by the app, outlives sessions
//   hub.join("lobby", ws.handle());          // left automatically when the session ends
//   hub.publish("lobby", R"({"type":"message","text":"hi"})");
//
// publish() serializes nothing itself: the message is one shared buffer that
// every member's writer sends (no copy per recipient), handed to each I/O
// thread in one post. keel::hub is the interface a second implementation can
// carry between instances (Redis pub/sub) without changing app code.
// Thread-safe.
#include <keel/ws.hpp>

#include <cstddef>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace keel {

class hub {
 public:
  virtual ~hub() = default;
  /// Adds a session to a room (idempotent). It leaves on its own when it ends.
  virtual void join(std::string const& room, ws_handle member) = 0;
  virtual void leave(std::string const& room, ws_handle const& member) = 0;
  /// Sends a text message to every member of the room; returns how many it was queued for.
  virtual std::size_t publish(std::string const& room, std::string message) = 0;
  virtual std::size_t member_count(std::string const& room) const = 0;
  /// Rooms with at least one member, and their member counts.
  virtual std::vector<std::pair<std::string, std::size_t>> rooms() const = 0;
};

/// The in-process hub.
class local_hub final : public hub {
 public:
  local_hub();
  ~local_hub() override;
  void join(std::string const& room, ws_handle member) override;
  void leave(std::string const& room, ws_handle const& member) override;
  std::size_t publish(std::string const& room, std::string message) override;
  std::size_t member_count(std::string const& room) const override;
  std::vector<std::pair<std::string, std::size_t>> rooms() const override;

 private:
  struct impl;
  std::shared_ptr<impl> impl_;
};

}  // namespace keel
