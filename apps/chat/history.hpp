#pragma once
// One room's history and the limits every room's history obeys (SPEC §2's
// channel_* settings), for the in-process rooms and for the copy an instance
// keeps with --redis. Not thread-safe: the owner's lock guards it.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>

namespace chat {

/// What a room may hold and what one instance may hold of all rooms.
struct limits {
  /// Messages a room keeps for those who join later (SPEC §4: the last 50).
  std::size_t history_size = 50;
  /// Serialized bytes of one room's history (channel_history_bytes), at
  /// most half of ws_send_queue so a `joined` always fits a joiner's queue.
  std::size_t history_bytes = 256 * 1024;
  /// All rooms' history held by this instance (channel_history_memory), as
  /// history::footprint() counts it.
  std::size_t history_memory = 64 * 1024 * 1024;
  /// A message leaves the history this long after it was posted (channel_history_ttl).
  std::chrono::milliseconds history_ttl = std::chrono::minutes(10);
  /// Rooms with members, listeners or history on this instance (channel_max_rooms).
  std::size_t max_rooms = 10000;
  /// Names listed in `joined` (SPEC §4: at most 100), and their serialized
  /// bytes (a quarter of ws_send_queue, so history and names fit together).
  std::size_t listed_members = 100;
  std::size_t listed_bytes = 256 * 1024;
};

class history {
 public:
  using clock = std::chrono::steady_clock;
  struct entry {
    std::uint64_t seq = 0;  ///< the in-process rooms' sequence number (0 with --redis)
    std::string id;
    std::string json;  ///< {"type":"message",...}, serialized once
    clock::time_point at;
  };

  /// Appends a message, then drops the oldest ones beyond the size and byte limits.
  void push(entry e, limits const& l);
  /// Drops the messages posted more than `ttl` ago.
  void expire(clock::time_point now, std::chrono::milliseconds ttl);
  void clear();

  /// Serialized bytes held: each message plus its separator in a JSON array.
  std::size_t bytes() const { return bytes_; }
  /// What the history costs in memory: bytes() and each entry's own size
  /// (small messages would otherwise cost twice what history_memory counts).
  std::size_t footprint() const { return bytes_ + entries_.size() * (sizeof(entry) + 2 * sizeof(void*)); }
  bool empty() const { return entries_.empty(); }
  std::deque<entry> const& entries() const { return entries_; }
  /// The messages as a JSON array, oldest first.
  std::string json_array() const;

 private:
  void pop_front();
  std::deque<entry> entries_;
  std::size_t bytes_ = 0;
};

}  // namespace chat
