#pragma once
// The chat's rooms when several instances serve them (--redis): members and
// history live in Redis, fan-out goes through a keel::redis_hub, so
// `joined.members`, presence, /api/rooms and the last 50 messages agree
// whichever instance a client reaches.
//
// Redis keys (all under `chat:`), none kept for a room nobody uses:
//   members:<room>      sorted set of "<instance>:<ws id>:<name>", scored by join time
//   history:<room>      list of serialized messages, trimmed to the last 50 and to
//                       history_bytes with each append; expires history_ttl after the last
//   seq:<room>          counter: message ids unique in the room across instances;
//                       expires history_ttl after the room's last member left
//   rooms               sorted set of the rooms with members or history (at most
//                       max_rooms), scored by last use; every member_ttl / 3 the
//                       rooms unused for history_ttl with neither are removed
//   counts              hash room -> member count, for /api/rooms in one command
//   instances           set of instance ids that have had members
//   inst-rooms:<inst>   rooms where an instance has members
//   alive:<inst>        heartbeat, refreshed every member_ttl / 3, expiring after member_ttl
// Changes that must agree (a member and the counts, a message and the trims)
// are Lua scripts, atomic whichever instances run them.
// Every member_ttl / 3 each instance also sweeps: an instance whose alive key
// has expired (it crashed) loses its members, and whoever removes a member
// (ZREM answered 1, so exactly one instance) publishes its presence leave.
// A crashed instance's members are gone within member_ttl + member_ttl / 3.
//
// Operations run in order on one worker coroutine on a thread of its own (no
// I/O thread waits for Redis). While Redis is unreachable the chat keeps
// working on this instance's knowledge: its own members, its own recent
// messages (ids "<instance>-<n>"), and the hub's local delivery; on
// reconnect this instance's members are written back. Thread-safe.
#include "history.hpp"

#include <keel/backoff.hpp>
#include <keel/hub.hpp>
#include <keel/net.hpp>
#include <keel/redis.hpp>
#include <keel/sse.hpp>
#include <keel/ws.hpp>

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace chat {

struct shared_options {
  keel::redis_url url;
  std::string instance_id;  ///< required: the hub's
  std::chrono::milliseconds member_ttl{std::chrono::seconds(15)};
  std::chrono::milliseconds connect_timeout{std::chrono::seconds(2)};
  std::chrono::milliseconds command_timeout{std::chrono::seconds(2)};
  keel::backoff_options reconnect{};
  chat::limits limits{};
};

class shared_rooms {
 public:
  shared_rooms(keel::hub& hub, shared_options o);
  ~shared_rooms();

  /// As chat::rooms: presence to the others, `joined` to the joiner,
  /// membership; false (a too_many_rooms error sent) beyond max_rooms, here
  /// or in Redis. Resumes once the worker has done it.
  keel::task<bool> join(std::string room, std::string name, keel::ws_handle ws);
  void leave(std::string const& room, keel::ws_handle const& ws);
  /// False, the message not taken, while max_pending_posts wait for Redis:
  /// one client flooding must not queue without bound ahead of every room's joins.
  bool post(std::string const& room, std::string const& from, std::string const& text);
  static constexpr std::size_t max_pending_posts = 1024;
  /// Rooms with members on any live instance, by name; from any coroutine.
  keel::task<std::vector<std::pair<std::string, std::size_t>>> list();
  /// SSE: the stored messages after `last_event_id`, then the room's new ones;
  /// beyond max_rooms an `error` event and the end of the stream. unlisten()
  /// undoes it, even when called before the queued listen has run.
  void listen(std::string const& room, std::string_view last_event_id, keel::sse_handle const& h);
  void unlisten(std::string const& room, keel::sse_handle const& h);

  /// True while the Redis connection is up.
  bool connected() const;
  /// Runs what is queued (leaves of drained sessions), joins the worker and
  /// drops every session handle. Call it after the server's drain and before
  /// the server is destroyed (app::on_stopped): a handle must not outlive it.
  void stop();

 private:
  struct impl;
  std::shared_ptr<impl> impl_;
};

}  // namespace chat
