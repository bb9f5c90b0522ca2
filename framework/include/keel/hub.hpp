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
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace keel {

/// A callback's subscription to a room (hub::observe); dropping it unsubscribes.
class hub_subscription {
 public:
  hub_subscription() = default;
  explicit hub_subscription(std::function<void()> cancel) : cancel_(std::move(cancel)) {}
  hub_subscription(hub_subscription&& o) noexcept : cancel_(std::exchange(o.cancel_, {})) {}
  hub_subscription& operator=(hub_subscription&& o) noexcept {
    if (this != &o) {
      reset();
      cancel_ = std::exchange(o.cancel_, {});
    }
    return *this;
  }
  ~hub_subscription() { reset(); }
  void reset() {
    if (auto c = std::exchange(cancel_, {})) c();
  }
  explicit operator bool() const { return static_cast<bool>(cancel_); }

 private:
  std::function<void()> cancel_;
};

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
  /// Calls `fn` with every message published in `room` from now on, here or
  /// (for a hub that spans instances) on another instance: for consumers that
  /// are not WebSocket sessions, such as Server-Sent Events streams. `fn` runs
  /// on the publishing thread or the hub's own, possibly concurrently with
  /// itself and once more while the subscription is being dropped: keep it
  /// short, non-blocking, and holding only what stays valid (weak_ptr).
  virtual hub_subscription observe(std::string const& room, std::function<void(std::string_view)> fn) = 0;
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
  hub_subscription observe(std::string const& room, std::function<void(std::string_view)> fn) override;
  /// Rooms with at least one observer.
  std::vector<std::string> observed_rooms() const;

 private:
  struct impl;
  std::shared_ptr<impl> impl_;
};

}  // namespace keel
