#pragma once
// The chat's rooms: members, the last 50 messages (within the limits of
// history.hpp), and the SSE listeners of each room. Fan-out to WebSocket members goes through a keel::hub (one
// serialized buffer shared by every recipient).
//
// Every change to a room (join, leave, message) happens under that room's
// mutex, publishes included, so each member sees one order: its `joined`
// (whose history and members are a snapshot) first, then exactly the events
// after that snapshot, none twice and none lost. Thread-safe.
//
// Bounded (limits): a join or listen that would create a room beyond
// max_rooms is refused; a room with no members, listeners or history is
// forgotten; history expires after history_ttl; when all rooms' history
// exceeds history_memory, whole histories go, the room idle longest without
// members first.
#include "client_message.hpp"
#include "history.hpp"

#include <keel/hub.hpp>
#include <keel/sse.hpp>
#include <keel/ws.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace chat {

/// `{"type":"presence","event":…,"name":…}` (SPEC §4), for either rooms.
std::string presence(std::string_view event, std::string_view name);
/// Milliseconds since the epoch: a message's `ts`.
std::int64_t now_ms();
/// `{"type":"joined","room","name","members","member_count","history"}` (SPEC
/// §4). `names` are the newest members, oldest first; the last of them that
/// fit l.listed_members and l.listed_bytes are listed. `history` is a JSON array.
std::string joined_message(std::string_view room, std::string_view name, std::vector<std::string_view> const& names,
                           std::size_t member_count, std::string_view history, limits const& l);
/// The error a join gets when it would create a room beyond max_rooms.
std::string too_many_rooms();

class rooms {
 public:
  rooms(keel::hub& hub, limits l) : hub_(hub), limits_(l) {}

  /// Announces `name` to the room's members, sends the joiner its `joined`
  /// (members including itself, history) and makes it a member. False (and
  /// a too_many_rooms error sent) when the room would be one too many.
  bool join(std::string const& room, std::string const& name, keel::ws_handle const& ws);
  /// Removes the member and announces it to those who remain.
  void leave(std::string const& room, keel::ws_handle const& ws);
  /// Stores the message (id unique in the room, ts in ms since the epoch) and
  /// sends it to every member, the sender included, and every SSE listener.
  void post(std::string const& room, std::string const& from, std::string const& text);

  /// Rooms with at least one member and their member counts, by name.
  std::vector<std::pair<std::string, std::size_t>> list() const;

  /// Queues the stored messages after `last_event_id` (all of them when it is
  /// empty or unknown) to an SSE stream and adds it as a listener; both under
  /// the room's lock, so nothing is missed or sent twice in between. False
  /// when the room would be one too many.
  bool listen(std::string const& room, std::string_view last_event_id, keel::sse_handle const& h);
  void unlisten(std::string const& room, keel::sse_handle const& h);

 private:
  struct member {
    keel::ws_handle ws;
    std::string name;
  };
  struct room_state {
    std::mutex mutex;
    std::vector<member> members;
    history hist;
    std::uint64_t next_seq = 1;
    std::vector<keel::sse_handle> listeners;
    bool dead = false;  ///< removed from the map: look the room up again
    // Written under the room's lock, read by evict() under the map's alone.
    std::atomic<std::size_t> held{0};        ///< hist.footprint()
    std::atomic<bool> occupied{false};       ///< has members
    std::atomic<std::int64_t> active{0};     ///< steady ms of the last join, leave or post
  };

  /// The room, locked; created when missing if `create` and within
  /// max_rooms. Null if absent or refused.
  std::shared_ptr<room_state> lock(std::string const& room, bool create, std::unique_lock<std::mutex>& lk);
  /// Forgets a room that holds nothing (no members, listeners or history), so
  /// probing room names costs no memory.
  void reap(std::string const& room);
  /// With the map locked: forgets every room left empty by expired history,
  /// and sets when the next one can be (so refused creations stay O(1)).
  void forget_expired();
  /// Drops the expired messages of a locked room and keeps the accounts.
  void expire(room_state& r);
  /// Records a locked room's change of history size.
  void account(room_state& r, std::size_t before);
  /// Drops whole histories, other than `keep`'s, until all rooms' history
  /// fits history_memory: rooms without members first, idle longest first.
  void evict(std::string const& keep);

  keel::hub& hub_;
  limits const limits_;
  std::atomic<std::size_t> total_{0};  ///< all rooms' history footprints
  /// Steady ms before which no room's history has expired, so a sweep can
  /// forget nothing: at the cap, a creation sweeps only after it. Lowered by
  /// every post (its message expires history_ttl later).
  std::atomic<std::int64_t> next_sweep_{0};
  // Guards rooms_ (the map, not the rooms). Lock order: this, then a room's.
  mutable std::mutex mutex_;
  std::map<std::string, std::shared_ptr<room_state>, std::less<>> rooms_;
};

}  // namespace chat
