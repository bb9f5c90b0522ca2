#pragma once
// The chat's rooms: members, the last 50 messages, and the SSE listeners of
// each room. Fan-out to WebSocket members goes through a keel::hub (one
// serialized buffer shared by every recipient).
//
// Every change to a room (join, leave, message) happens under that room's
// mutex, publishes included, so each member sees one order: its `joined`
// (whose history and members are a snapshot) first, then exactly the events
// after that snapshot, none twice and none lost. Thread-safe.
#include "client_message.hpp"

#include <keel/hub.hpp>
#include <keel/sse.hpp>
#include <keel/ws.hpp>

#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace chat {

/// Messages a room keeps for those who join later (SPEC §4).
inline constexpr std::size_t history_size = 50;

/// `{"type":"presence","event":…,"name":…}` (SPEC §4), for either rooms.
std::string presence(std::string_view event, std::string_view name);
/// Milliseconds since the epoch: a message's `ts`.
std::int64_t now_ms();

class rooms {
 public:
  explicit rooms(keel::hub& hub) : hub_(hub) {}

  /// Announces `name` to the room's members, sends the joiner its `joined`
  /// (members including itself, history) and makes it a member.
  void join(std::string const& room, std::string const& name, keel::ws_handle const& ws);
  /// Removes the member and announces it to those who remain.
  void leave(std::string const& room, keel::ws_handle const& ws);
  /// Stores the message (id unique in the room, ts in ms since the epoch) and
  /// sends it to every member, the sender included, and every SSE listener.
  void post(std::string const& room, std::string const& from, std::string const& text);

  /// Rooms with at least one member and their member counts, by name.
  std::vector<std::pair<std::string, std::size_t>> list() const;

  /// Queues the stored messages after `last_event_id` (all of them when it is
  /// empty or unknown) to an SSE stream and adds it as a listener; both under
  /// the room's lock, so nothing is missed or sent twice in between.
  void listen(std::string const& room, std::string_view last_event_id, keel::sse_handle const& h);
  void unlisten(std::string const& room, keel::sse_handle const& h);

 private:
  struct message {
    std::uint64_t seq;
    std::string id;
    std::string json;  ///< {"type":"message",...}, serialized once
  };
  struct member {
    keel::ws_handle ws;
    std::string name;
  };
  struct room_state {
    std::mutex mutex;
    std::vector<member> members;
    std::deque<message> history;
    std::uint64_t next_seq = 1;
    std::vector<keel::sse_handle> listeners;
    bool dead = false;  ///< removed from the map: look the room up again
  };

  /// The room, locked; created when missing if `create`. Null if absent.
  std::shared_ptr<room_state> lock(std::string const& room, bool create, std::unique_lock<std::mutex>& lk);
  /// Forgets a room that holds nothing (no members, listeners or history), so
  /// probing room names costs no memory.
  void reap(std::string const& room);

  keel::hub& hub_;
  // Guards rooms_ (the map, not the rooms). Lock order: this, then a room's.
  mutable std::mutex mutex_;
  std::map<std::string, std::shared_ptr<room_state>, std::less<>> rooms_;
};

}  // namespace chat
