#include "shared_rooms.hpp"

#include "rooms.hpp"  // presence, joined_message

#include <keel/log.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <thread>
#include <tuple>

namespace chat {

namespace json = boost::json;
namespace asio = boost::asio;
using keel::redis_command;
using keel::redis_reply;

namespace {

constexpr auto as_tuple_task = asio::as_tuple(keel::use_task);

/// "<instance>:<ws id>:<name>" → name (names may hold ':').
std::string_view name_of(std::string_view key) {
  auto a = key.find(':');
  auto b = a == std::string_view::npos ? a : key.find(':', a + 1);
  return b == std::string_view::npos ? key : key.substr(b + 1);
}

std::string k_members(std::string_view room) { return "chat:members:" + std::string(room); }
std::string k_history(std::string_view room) { return "chat:history:" + std::string(room); }
std::string k_seq(std::string_view room) { return "chat:seq:" + std::string(room); }
std::string k_inst_rooms(std::string_view inst) { return "chat:inst-rooms:" + std::string(inst); }
std::string k_alive(std::string_view inst) { return "chat:alive:" + std::string(inst); }
constexpr char const* k_rooms = "chat:rooms";
constexpr char const* k_counts = "chat:counts";
constexpr char const* k_history_bytes = "chat:history-bytes";
constexpr char const* k_history_lru = "chat:history-lru";
constexpr char const* k_history_total = "chat:history-total";

// Scripts, so that each change and what depends on it are one atomic step
// whichever instances run them at once.

// A member joins. KEYS: members, rooms, counts, inst-rooms, seq. ARGV: room,
// member key, now (ms), max rooms (0: no cap). -1 when the room would be one
// too many in chat:rooms; else the room's member count, kept in chat:counts
// (so /api/rooms is one HGETALL). The room's ids live as long as it has members.
constexpr char const* join_script = R"lua(
if tonumber(ARGV[4]) > 0 and redis.call('ZSCORE', KEYS[2], ARGV[1]) == false
   and redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[4]) then return -1 end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
redis.call('SADD', KEYS[4], ARGV[1])
redis.call('PERSIST', KEYS[5])
local n = redis.call('ZCARD', KEYS[1])
redis.call('HSET', KEYS[3], ARGV[1], n)
return n
)lua";

// A member leaves. KEYS: members, rooms, counts, history, seq, inst-rooms.
// ARGV: room, member key, now (ms), history ttl (ms), "1" when the instance
// has no member left there. 1 when this call removed it (so exactly one
// instance announces it). An empty room without history leaves chat:rooms.
constexpr char const* leave_script = R"lua(
local removed = redis.call('ZREM', KEYS[1], ARGV[2])
local n = redis.call('ZCARD', KEYS[1])
if n > 0 then
  redis.call('HSET', KEYS[3], ARGV[1], n)
else
  redis.call('HDEL', KEYS[3], ARGV[1])
  redis.call('PEXPIRE', KEYS[5], ARGV[4])
  if redis.call('EXISTS', KEYS[4]) == 1 then redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
  else redis.call('ZREM', KEYS[2], ARGV[1]) end
end
if ARGV[5] == '1' then redis.call('SREM', KEYS[6], ARGV[1]) end
return removed
)lua";

// A message is stored. KEYS: history, rooms, history bytes, history lru,
// history total. ARGV: message, max messages, max bytes (each message plus a
// separator), ttl (ms), room, now (ms), max bytes of all rooms. The list is
// trimmed to both limits, with the append, and expires ttl after the last
// message (older ones are filtered out by their ts when read). Then all
// rooms' history is kept within the last limit (channel_history_memory, so
// max_rooms × history_bytes cannot add up to gigabytes in Redis either):
// whole histories go, least recently posted to first, never the poster's.
// Per room its bytes (a hash) and its last post (a sorted set), with the
// sum in a counter; a history that expired on its own is taken out of them
// by forget_script.
constexpr char const* post_script = R"lua(
redis.call('RPUSH', KEYS[1], ARGV[1])
redis.call('LTRIM', KEYS[1], -tonumber(ARGV[2]), -1)
local items = redis.call('LRANGE', KEYS[1], 0, -1)
local kept = 0
for i = #items, 1, -1 do
  local size = #items[i] + 1
  if kept + size > tonumber(ARGV[3]) then
    redis.call('LTRIM', KEYS[1], i, -1)
    break
  end
  kept = kept + size
end
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('ZADD', KEYS[2], ARGV[6], ARGV[5])
local before = tonumber(redis.call('HGET', KEYS[3], ARGV[5]) or 0)
redis.call('HSET', KEYS[3], ARGV[5], kept)
redis.call('ZADD', KEYS[4], ARGV[6], ARGV[5])
local total = redis.call('INCRBY', KEYS[5], kept - before)
while total > tonumber(ARGV[7]) do
  local oldest = redis.call('ZRANGE', KEYS[4], 0, 1)
  local victim = oldest[1]
  if victim == ARGV[5] then victim = oldest[2] end
  if not victim then break end
  local bytes = tonumber(redis.call('HGET', KEYS[3], victim) or 0)
  redis.call('DEL', 'chat:history:' .. victim)
  redis.call('HDEL', KEYS[3], victim)
  redis.call('ZREM', KEYS[4], victim)
  total = redis.call('INCRBY', KEYS[5], -bytes)
end
return 1
)lua";

// Rooms untouched for a ttl with neither members nor history leave
// chat:rooms and chat:counts; the others are looked at again a ttl later.
// Histories last posted to before the cutoff whose key has expired leave the
// accounts post_script keeps (one still there, posted by an instance whose
// clock or ttl differs, is looked at again a ttl later). KEYS: rooms, counts, history bytes, history
// lru, history total. ARGV: cutoff (ms), now (ms). Reads room keys by name
// (a single Redis, not a cluster).
constexpr char const* forget_script = R"lua(
for _, room in ipairs(redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', ARGV[1], 'LIMIT', 0, 1000)) do
  if redis.call('EXISTS', 'chat:history:' .. room) == 0 then
    redis.call('DECRBY', KEYS[5], tonumber(redis.call('HGET', KEYS[3], room) or 0))
    redis.call('HDEL', KEYS[3], room)
    redis.call('ZREM', KEYS[4], room)
  else
    redis.call('ZADD', KEYS[4], ARGV[2], room)
  end
end
local gone = 0
for _, room in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, 1000)) do
  if redis.call('EXISTS', 'chat:members:' .. room) == 0 and redis.call('EXISTS', 'chat:history:' .. room) == 0 then
    redis.call('ZREM', KEYS[1], room)
    redis.call('HDEL', KEYS[2], room)
    gone = gone + 1
  else
    redis.call('ZADD', KEYS[1], ARGV[2], room)
  end
end
return gone
)lua";

/// The `ts` of a stored message, 0 when it has none.
std::int64_t ts_of(std::string_view msg) {
  boost::system::error_code ec;
  auto v = json::parse(msg, ec);
  auto const* o = ec ? nullptr : v.if_object();
  auto const* ts = o ? o->if_contains("ts") : nullptr;
  return ts && ts->is_int64() ? ts->get_int64() : 0;
}

/// A numeric message id, or 0 (ids of messages stored while Redis was down).
std::uint64_t numeric_id(std::string_view id) {
  std::uint64_t v = 0;
  auto [p, ec] = std::from_chars(id.data(), id.data() + id.size(), v);
  return ec == std::errc() && p == id.data() + id.size() ? v : 0;
}

}  // namespace

struct shared_rooms::impl : std::enable_shared_from_this<shared_rooms::impl> {
  impl(keel::hub& h, shared_options o)
      : hub(h), opts(std::move(o)), wake(ioc.get_executor()), beat(ioc.get_executor()), conn(ioc.get_executor()) {}

  keel::hub& hub;
  shared_options opts;
  asio::io_context ioc{1};
  std::thread thread;
  std::mutex join_mutex;

  struct member {
    keel::ws_handle ws;
    std::string name;
    std::string key;  ///< in chat:members:<room>
  };
  struct local_room {
    std::vector<member> members;
    history hist;  ///< this instance's posts, for when Redis is down
    std::vector<keel::sse_handle> listeners;
    /// While there are listeners: the room's messages from every instance.
    keel::hub_subscription feed;
    history::clock::time_point active;  ///< the last join, leave or post here
    bool empty() const { return members.empty() && listeners.empty() && hist.empty(); }
  };

  // Shared with callers' threads.
  mutable std::mutex mutex;
  std::map<std::string, local_room, std::less<>> rooms;
  std::size_t held = 0;  ///< every local_room's hist.footprint()
  /// Before this no local history expires, so a sweep forgets nothing: at
  /// max_rooms a refused creation costs O(1), not a walk of every room.
  history::clock::time_point next_sweep{};
  std::deque<std::function<keel::task<void>()>> jobs;
  bool stopping = false;
  bool wake_posted = false;
  std::atomic<bool> up{false};
  std::atomic<std::size_t> pending_posts{0};  ///< posts queued, not yet taken by the worker

  // Worker thread only.
  keel::steady_timer wake;
  keel::steady_timer beat;
  keel::redis_connection conn;
  std::optional<keel::backoff> retry;
  keel::clock::time_point next_attempt{};
  std::uint64_t local_seq = 0;
  bool worker_done = false;

  void start() {
    retry.emplace(opts.reconnect);
    asio::co_spawn(ioc, worker(), [](std::exception_ptr e) { report(e, "worker"); });
    asio::co_spawn(ioc, heartbeat(), [](std::exception_ptr e) { report(e, "heartbeat"); });
    thread = std::thread([this] { ioc.run(); });
  }

  static void report(std::exception_ptr e, char const* what) {
    if (!e) return;
    try {
      std::rethrow_exception(e);
    } catch (std::exception const& x) {
      keel::log::error("chat: shared rooms coroutine failed", {{"coroutine", what}, {"error", x.what()}});
    }
  }

  void stop() {
    {
      std::lock_guard lock(mutex);
      stopping = true;
    }
    asio::post(ioc, [this] {
      wake.cancel();
      beat.cancel();
    });
    std::lock_guard lock(join_mutex);
    if (thread.joinable()) thread.join();
    // Session handles go now, on the caller's thread, while their server
    // still exists (a ws_state must not outlive its I/O context).
    std::lock_guard l(mutex);
    jobs.clear();
    rooms.clear();
  }

  /// Runs `fn` on the worker, in order with the rest, and resumes the caller
  /// on its own executor with the result; nothing when the worker has ended
  /// or the caller was cancelled (the job still runs).
  template <class T, class F>
  keel::task<std::optional<T>> call(F fn) {
    struct waiter {
      explicit waiter(keel::executor ex) : timer(ex) {}
      keel::steady_timer timer;
      std::optional<T> result;
    };
    auto w = std::make_shared<waiter>(co_await asio::this_coro::executor);
    bool queued = submit([fn = std::move(fn), w]() -> keel::task<void> {
      auto r = co_await fn();
      asio::post(w->timer.get_executor(), [w, r = std::move(r)]() mutable {
        w->result = std::move(r);
        w->timer.cancel();
      });
    });
    while (queued && !w->result) {
      w->timer.expires_at(keel::clock::time_point::max());
      auto [ec] = co_await w->timer.async_wait(as_tuple_task);
      if (ec && !w->result) co_return std::nullopt;  // the caller was cancelled
    }
    co_return std::move(w->result);
  }

  /// False once the worker has ended (the job is not run).
  bool submit(std::function<keel::task<void>()> job) {
    std::lock_guard lock(mutex);
    if (worker_done) return false;
    jobs.push_back(std::move(job));
    if (!wake_posted) {
      wake_posted = true;
      asio::post(ioc, [this] {
        {
          std::lock_guard l(mutex);
          wake_posted = false;
        }
        wake.cancel();
      });
    }
    return true;
  }

  keel::task<void> worker() {
    for (;;) {
      std::function<keel::task<void>()> job;
      {
        std::lock_guard lock(mutex);
        if (!jobs.empty()) {
          job = std::move(jobs.front());
          jobs.pop_front();
        } else if (stopping) {
          worker_done = true;
          break;
        }
      }
      if (job) {
        co_await job();
        continue;
      }
      wake.expires_at(keel::clock::time_point::max());
      co_await wake.async_wait(as_tuple_task);
    }
    if (conn.is_open()) {
      std::vector<redis_command> bye{{"DEL", k_alive(opts.instance_id)}};
      co_await conn.pipeline(bye, opts.command_timeout);
    }
    conn.close();
    up = false;
  }

  keel::task<void> heartbeat() {
    auto every = std::max(opts.member_ttl / 3, std::chrono::milliseconds(1));
    for (;;) {
      {
        std::lock_guard lock(mutex);
        if (stopping) co_return;
      }
      submit([this] { return beat_and_sweep(); });
      beat.expires_after(every);
      co_await beat.async_wait(as_tuple_task);
    }
  }

  // --- Redis, with reconnects --------------------------------------------------

  /// The replies, or nothing when Redis cannot be reached now.
  keel::task<std::optional<std::vector<redis_reply>>> redis(std::vector<redis_command> const& cmds) {
    if (!conn.is_open()) {
      if (keel::clock::now() < next_attempt) co_return std::nullopt;
      auto ec = co_await conn.connect(opts.url, opts.connect_timeout);
      if (ec) {
        auto delay = retry->next();
        next_attempt = keel::clock::now() + delay;
        if (retry->attempts() == 1) {
          keel::log::warn("chat: Redis unreachable, serving from this instance's state",
                          {{"url", opts.url.str()}, {"error", ec.message()}});
        }
        co_return std::nullopt;
      }
      retry->reset();
      up = true;
      keel::log::info("chat: connected to Redis, writing back this instance's members", {{"url", opts.url.str()}});
      co_await resync();
      if (!conn.is_open()) co_return std::nullopt;
    }
    auto [ec, replies] = co_await conn.pipeline(cmds, opts.command_timeout);
    if (ec) {
      up = false;
      next_attempt = keel::clock::now() + retry->next();
      keel::log::warn("chat: Redis connection lost", {{"url", opts.url.str()}, {"error", ec.message()}});
      co_return std::nullopt;
    }
    co_return replies;
  }

  /// After a (re)connect: Redis may have lost everything (a restart without
  /// persistence): this instance's members and heartbeat go back in.
  keel::task<void> resync() {
    std::vector<redis_command> cmds = alive_commands();
    {
      std::lock_guard lock(mutex);
      auto score = std::to_string(now_ms());
      for (auto const& [room, r] : rooms) {
        for (auto const& m : r.members) cmds.push_back(join_command(room, m.key, score, 0));
      }
    }
    auto [ec, replies] = co_await conn.pipeline(cmds, opts.command_timeout);
    if (ec) {
      up = false;
      co_return;
    }
    co_await remove_ghosts();
  }

  /// Members of this instance that left while Redis was unreachable are still
  /// listed there: remove them. No presence is published for them: this
  /// instance's members had the leave already, and the hub cannot send to
  /// the other instances alone (other instances' pages keep the name until
  /// they rejoin; joined.members and /api/rooms are right at once).
  keel::task<void> remove_ghosts() {
    std::vector<redis_command> q{{"SMEMBERS", k_inst_rooms(opts.instance_id)}};
    auto [ec, r] = co_await conn.pipeline(q, opts.command_timeout);
    if (ec || r.empty()) co_return;
    auto prefix = opts.instance_id + ":";
    for (auto const& room_reply : r[0].elements) {
      auto const& room = room_reply.str;
      std::vector<redis_command> range{{"ZRANGE", k_members(room), "0", "-1"}};
      auto [rec, members] = co_await conn.pipeline(range, opts.command_timeout);
      if (rec || members.empty()) co_return;
      std::vector<std::string> ghosts;
      {
        std::lock_guard lock(mutex);
        auto it = rooms.find(room);
        for (auto const& m : members[0].elements) {
          if (m.str.compare(0, prefix.size(), prefix) != 0) continue;
          bool here = it != rooms.end() && std::any_of(it->second.members.begin(), it->second.members.end(),
                                                       [&](member const& x) { return x.key == m.str; });
          if (!here) ghosts.push_back(m.str);
        }
      }
      if (ghosts.empty()) continue;
      std::vector<redis_command> rem;
      for (auto const& g : ghosts) rem.push_back(leave_command(room, g, false));
      auto [dec, done] = co_await conn.pipeline(rem, opts.command_timeout);
      if (dec) co_return;
    }
  }

  // --- this instance's copy (under `mutex`) ------------------------------------

  /// Drops a room's expired messages and keeps `held`.
  void expire(local_room& r, history::clock::time_point now) {
    held -= r.hist.footprint();
    r.hist.expire(now, opts.limits.history_ttl);
    held += r.hist.footprint();
  }

  /// Forgets the rooms left with nothing but expired history.
  void forget_expired() {
    auto now = history::clock::now();
    next_sweep = history::clock::time_point::max();
    for (auto it = rooms.begin(); it != rooms.end();) {
      expire(it->second, now);
      if (it->second.empty()) {
        it = rooms.erase(it);
        continue;
      }
      // Rooms without history are forgotten when their last member leaves.
      if (!it->second.hist.empty()) {
        next_sweep = std::min(next_sweep, it->second.hist.entries().back().at + opts.limits.history_ttl);
      }
      ++it;
    }
  }

  /// True when `room` is here or may be created within max_rooms.
  bool may_hold(std::string const& room) {
    if (rooms.size() < opts.limits.max_rooms || rooms.count(room)) return true;
    if (history::clock::now() < next_sweep) return false;
    forget_expired();
    return rooms.size() < opts.limits.max_rooms;
  }

  /// Drops whole histories other than `keep`'s until they fit
  /// history_memory: rooms without members first, idle longest first.
  void evict(std::string const& keep) {
    while (held > opts.limits.history_memory) {
      auto victim = rooms.end();
      for (auto it = rooms.begin(); it != rooms.end(); ++it) {
        if (it->first == keep || it->second.hist.empty()) continue;
        auto key = std::tuple(!it->second.members.empty(), it->second.active);
        if (victim == rooms.end() || key < std::tuple(!victim->second.members.empty(), victim->second.active)) {
          victim = it;
        }
      }
      if (victim == rooms.end()) return;
      held -= victim->second.hist.footprint();
      victim->second.hist.clear();
      if (victim->second.empty()) rooms.erase(victim);
    }
  }

  /// The stored messages (oldest first) still within history_ttl, the newest
  /// that fit history_bytes: a `joined` always fits the joiner's queue.
  std::vector<std::string const*> live_history(std::vector<redis_reply> const& items) const {
    auto cutoff = now_ms() - opts.limits.history_ttl.count();
    std::vector<std::string const*> out;
    std::size_t bytes = 0;
    for (auto it = items.rbegin(); it != items.rend(); ++it) {
      bytes += it->str.size() + 1;
      if (bytes > opts.limits.history_bytes || ts_of(it->str) <= cutoff) break;
      out.push_back(&it->str);
    }
    std::reverse(out.begin(), out.end());
    return out;
  }

  redis_command join_command(std::string const& room, std::string const& key, std::string const& now,
                             std::size_t max_rooms) const {
    return {"EVAL", join_script, "5", k_members(room), k_rooms, k_counts, k_inst_rooms(opts.instance_id),
            k_seq(room), room, key, now, std::to_string(max_rooms)};
  }

  redis_command leave_command(std::string const& room, std::string const& key, bool last_here) const {
    return {"EVAL", leave_script, "6", k_members(room), k_rooms, k_counts, k_history(room), k_seq(room),
            k_inst_rooms(opts.instance_id), room, key, std::to_string(now_ms()),
            std::to_string(opts.limits.history_ttl.count()), last_here ? "1" : "0"};
  }

  std::vector<redis_command> alive_commands() const {
    return {{"SET", k_alive(opts.instance_id), "1", "PX", std::to_string(opts.member_ttl.count())},
            {"SADD", "chat:instances", opts.instance_id}};
  }

  keel::task<void> beat_and_sweep() {
    {
      std::lock_guard lock(mutex);
      forget_expired();
    }
    auto now = now_ms();
    auto cmds = alive_commands();
    cmds.push_back({"SMEMBERS", "chat:instances"});
    cmds.push_back({"EVAL", forget_script, "5", k_rooms, k_counts, k_history_bytes, k_history_lru, k_history_total,
                    std::to_string(now - opts.limits.history_ttl.count()), std::to_string(now)});
    auto r = co_await redis(cmds);
    if (!r || r->size() != 4) co_return;
    std::vector<std::string> others;
    for (auto const& e : (*r)[2].elements) {
      if (e.str != opts.instance_id) others.push_back(e.str);
    }
    if (others.empty()) co_return;
    std::vector<redis_command> exists;
    for (auto const& o : others) exists.push_back({"EXISTS", k_alive(o)});
    auto alive = co_await redis(exists);
    if (!alive || alive->size() != others.size()) co_return;
    for (std::size_t i = 0; i < others.size(); ++i) {
      if ((*alive)[i].integer == 0) co_await sweep(others[i]);
    }
  }

  /// Removes the members of an instance whose heartbeat expired.
  keel::task<void> sweep(std::string dead) {
    std::vector<redis_command> q{{"SMEMBERS", k_inst_rooms(dead)}};
    auto r = co_await redis(q);
    if (!r || r->empty()) co_return;
    std::size_t removed = 0;
    for (auto const& room_reply : (*r)[0].elements) {
      auto const& room = room_reply.str;
      std::vector<redis_command> range{{"ZRANGE", k_members(room), "0", "-1"}};
      auto members = co_await redis(range);
      if (!members || members->empty()) co_return;
      std::vector<std::string> keys;
      for (auto const& m : (*members)[0].elements) {
        if (m.str.size() > dead.size() && m.str.compare(0, dead.size(), dead) == 0 && m.str[dead.size()] == ':') {
          keys.push_back(m.str);
        }
      }
      if (keys.empty()) continue;
      std::vector<redis_command> rem;
      for (auto const& k : keys) rem.push_back(leave_command(room, k, false));
      auto done = co_await redis(rem);
      if (!done || done->size() != keys.size()) co_return;
      for (std::size_t i = 0; i < keys.size(); ++i) {
        if ((*done)[i].integer == 1) {  // removed here, so announced once
          hub.publish(room, presence("leave", name_of(keys[i])));
          ++removed;
        }
      }
    }
    std::vector<redis_command> forget{{"DEL", k_inst_rooms(dead)}, {"SREM", "chat:instances", dead}};
    co_await redis(forget);
    keel::log::info("chat: removed the members of an instance whose heartbeat expired",
                    {{"instance", dead}, {"members", static_cast<std::uint64_t>(removed)}});
  }

  // --- the operations -------------------------------------------------------------

  keel::task<bool> do_join(std::string room, std::string name, keel::ws_handle ws) {
    auto key = opts.instance_id + ":" + std::to_string(ws.id()) + ":" + name;
    {
      std::lock_guard lock(mutex);
      if (!may_hold(room)) {
        ws.send(too_many_rooms());
        co_return false;
      }
      auto& lr = rooms[room];
      lr.members.push_back({ws, name, key});
      lr.active = history::clock::now();
    }
    auto const listed = std::to_string(-static_cast<long>(opts.limits.listed_members));
    std::vector<redis_command> cmds{
        join_command(room, key, std::to_string(now_ms()), opts.limits.max_rooms),
        {"ZRANGE", k_members(room), listed, "-1"},
        {"LRANGE", k_history(room), std::to_string(-static_cast<long>(opts.limits.history_size)), "-1"}};
    auto r = co_await redis(cmds);
    std::vector<std::string> owned;  // the names `names` points into
    std::vector<std::string_view> names;
    std::size_t count = 0;
    std::string history = "[";
    if (r && r->size() == cmds.size() && (*r)[0].type == redis_reply::kind::integer) {
      if ((*r)[0].integer < 0) {  // one room too many in Redis
        {
          std::lock_guard lock(mutex);
          auto it = rooms.find(room);
          if (it != rooms.end()) {
            std::erase_if(it->second.members, [&](member const& m) { return m.ws == ws; });
            if (it->second.empty()) rooms.erase(it);
          }
        }
        ws.send(too_many_rooms());
        co_return false;
      }
      count = static_cast<std::size_t>((*r)[0].integer);
      for (auto const& m : (*r)[1].elements) names.push_back(name_of(m.str));
      for (auto const* h : live_history((*r)[2].elements)) {
        if (history.size() > 1) history += ',';
        history += *h;
      }
      history += ']';
    } else {
      std::lock_guard lock(mutex);
      auto& lr = rooms[room];
      expire(lr, history::clock::now());
      count = lr.members.size();
      auto first = count - std::min(count, opts.limits.listed_members);
      for (auto i = first; i < count; ++i) owned.push_back(lr.members[i].name);
      history = lr.hist.json_array();
    }
    for (auto const& n : owned) names.push_back(n);
    // The others hear of the joiner before it becomes a hub member.
    hub.publish(room, presence("join", name));
    ws.send(joined_message(room, name, names, count, history, opts.limits));
    hub.join(room, ws);
    co_return true;
  }

  keel::task<void> do_leave(std::string room, keel::ws_handle ws) {
    hub.leave(room, ws);  // again: a join that ran after leave() had it join
    std::string key, name;
    bool last_here = false;
    {
      std::lock_guard lock(mutex);
      auto it = rooms.find(room);
      if (it == rooms.end()) co_return;
      auto& v = it->second.members;
      auto m = std::find_if(v.begin(), v.end(), [&](member const& x) { return x.ws == ws; });
      if (m == v.end()) co_return;
      key = std::move(m->key);
      name = std::move(m->name);
      v.erase(m);
      last_here = v.empty();
      it->second.active = history::clock::now();
      expire(it->second, it->second.active);
      if (it->second.empty()) rooms.erase(it);
    }
    std::vector<redis_command> cmds{leave_command(room, key, last_here)};
    co_await redis(cmds);
    hub.publish(room, presence("leave", name));
  }

  keel::task<void> do_post(std::string room, std::string from, std::string text) {
    std::vector<redis_command> incr{{"INCR", k_seq(room)}};
    auto r = co_await redis(incr);
    bool stored = r && r->size() == 1 && (*r)[0].type == redis_reply::kind::integer;
    std::string id = stored ? std::to_string((*r)[0].integer)
                            : opts.instance_id + "-" + std::to_string(++local_seq);
    json::object o;
    o["type"] = "message";
    o["id"] = id;
    o["room"] = room;
    o["from"] = from;
    o["text"] = text;
    auto ts = now_ms();
    o["ts"] = ts;
    auto serialized = json::serialize(o);
    if (stored) {
      std::vector<redis_command> keep{{"EVAL", post_script, "5", k_history(room), k_rooms, k_history_bytes,
                                       k_history_lru, k_history_total, serialized,
                                       std::to_string(opts.limits.history_size),
                                       std::to_string(opts.limits.history_bytes),
                                       std::to_string(opts.limits.history_ttl.count()), room, std::to_string(ts),
                                       std::to_string(opts.limits.history_memory)}};
      co_await redis(keep);
    }
    {
      std::lock_guard lock(mutex);
      // A member's room is here; a post never creates one.
      if (auto it = rooms.find(room); it != rooms.end()) {
        auto& lr = it->second;
        auto now = history::clock::now();
        expire(lr, now);
        held -= lr.hist.footprint();
        lr.hist.push({0, id, serialized, now}, opts.limits);
        next_sweep = std::min(next_sweep, now + opts.limits.history_ttl);
        held += lr.hist.footprint();
        lr.active = now;
        evict(room);
      }
    }
    hub.publish(room, std::move(serialized));  // SSE listeners get it through their feed
  }

  keel::task<std::vector<std::pair<std::string, std::size_t>>> do_list() {
    std::vector<std::pair<std::string, std::size_t>> out;
    std::vector<redis_command> q{{"HGETALL", k_counts}};
    auto r = co_await redis(q);
    if (r && r->size() == 1 && (*r)[0].type == redis_reply::kind::array) {
      auto const& e = (*r)[0].elements;
      for (std::size_t i = 0; i + 1 < e.size(); i += 2) {
        auto n = numeric_id(e[i + 1].str);
        if (n > 0) out.emplace_back(e[i].str, static_cast<std::size_t>(n));
      }
      std::sort(out.begin(), out.end());
      co_return out;
    }
    std::lock_guard lock(mutex);
    for (auto const& [name, lr] : rooms) {
      if (!lr.members.empty()) out.emplace_back(name, lr.members.size());
    }
    co_return out;
  }

  keel::task<void> do_listen(std::string room, std::string last_event_id, keel::sse_handle h) {
    {
      std::lock_guard lock(mutex);
      if (!may_hold(room)) {
        h.push("error", too_many_rooms());
        h.close();
        co_return;
      }
    }
    std::vector<redis_command> q{
        {"LRANGE", k_history(room), std::to_string(-static_cast<long>(opts.limits.history_size)), "-1"}};
    auto r = co_await redis(q);
    auto after = numeric_id(last_event_id);
    std::lock_guard lock(mutex);
    auto& lr = rooms[room];
    // As rooms.cpp: an id past the newest stored one (from before Redis lost
    // its data, or made up) is unknown and gets the whole history.
    std::vector<std::pair<std::string, std::string const*>> stored;
    if (r && r->size() == 1) {
      for (auto const* e : live_history((*r)[0].elements)) {
        boost::system::error_code ec;
        auto v = json::parse(*e, ec);
        auto const* o = ec ? nullptr : v.if_object();
        auto const* id = o ? o->if_contains("id") : nullptr;
        if (id && id->is_string()) stored.emplace_back(std::string(id->get_string()), e);
      }
    } else {
      expire(lr, history::clock::now());
      for (auto const& m : lr.hist.entries()) stored.emplace_back(m.id, &m.json);
    }
    std::uint64_t newest = 0;
    for (auto const& [id, msg] : stored) newest = std::max(newest, numeric_id(id));
    if (after > newest) after = 0;
    for (auto const& [id, msg] : stored) {
      auto n = numeric_id(id);
      if (after == 0 || n == 0 || n > after) h.push_formatted(keel::format_sse_event("message", *msg, id));
    }
    lr.listeners.push_back(h);
    if (!lr.feed) lr.feed = hub.observe(room, feed(room));
  }

  /// Runs after the do_listen it undoes, whatever the order their callers ran in.
  keel::task<void> do_unlisten(std::string room, keel::sse_handle h) {
    keel::hub_subscription gone;  // unsubscribed after the lock is released
    {
      std::lock_guard lock(mutex);
      auto it = rooms.find(room);
      if (it == rooms.end()) co_return;
      std::erase(it->second.listeners, h);
      if (it->second.listeners.empty()) gone = std::move(it->second.feed);
      if (it->second.empty()) rooms.erase(it);
    }
    co_return;
  }

  /// What a room's SSE listeners see: the `message` objects the hub carries,
  /// published here or on another instance (presence events are not for them).
  std::function<void(std::string_view)> feed(std::string room) {
    return [weak = weak_from_this(), room = std::move(room)](std::string_view published) {
      auto self = weak.lock();
      if (!self) return;
      boost::system::error_code ec;
      auto v = json::parse(published, ec);
      auto const* o = ec ? nullptr : v.if_object();
      auto const* type = o ? o->if_contains("type") : nullptr;
      auto const* id = o ? o->if_contains("id") : nullptr;
      if (!type || *type != "message" || !id || !id->is_string()) return;
      auto frame = keel::format_sse_event("message", published, id->get_string());
      std::lock_guard lock(self->mutex);
      auto it = self->rooms.find(room);
      if (it == self->rooms.end()) return;
      std::erase_if(it->second.listeners, [&](keel::sse_handle const& h) { return !h.push_formatted(frame); });
    };
  }
};

shared_rooms::shared_rooms(keel::hub& hub, shared_options o) : impl_(std::make_shared<impl>(hub, std::move(o))) {
  impl_->start();
}

shared_rooms::~shared_rooms() { stop(); }

void shared_rooms::stop() { impl_->stop(); }

keel::task<bool> shared_rooms::join(std::string room, std::string name, keel::ws_handle ws) {
  auto* s = impl_.get();
  auto job = [s, room = std::move(room), name = std::move(name), ws = std::move(ws)]() {
    return s->do_join(room, name, ws);
  };
  auto joined = s->call<bool>(std::move(job));  // (no temporaries inside co_await: g++ 12)
  co_return (co_await std::move(joined)).value_or(false);
}

void shared_rooms::leave(std::string const& room, keel::ws_handle const& ws) {
  impl_->hub.leave(room, ws);  // no more deliveries from now on
  auto* s = impl_.get();
  s->submit([s, room, ws]() { return s->do_leave(room, ws); });
}

bool shared_rooms::post(std::string const& room, std::string const& from, std::string const& text) {
  auto* s = impl_.get();
  if (s->pending_posts.fetch_add(1, std::memory_order_relaxed) >= max_pending_posts) {
    s->pending_posts.fetch_sub(1, std::memory_order_relaxed);
    return false;
  }
  bool queued = s->submit([s, room, from, text]() {
    s->pending_posts.fetch_sub(1, std::memory_order_relaxed);  // taken by the worker
    return s->do_post(room, from, text);
  });
  if (!queued) s->pending_posts.fetch_sub(1, std::memory_order_relaxed);
  return queued;
}

keel::task<std::vector<std::pair<std::string, std::size_t>>> shared_rooms::list() {
  auto* s = impl_.get();
  auto job = [s]() { return s->do_list(); };
  auto listed = s->call<std::vector<std::pair<std::string, std::size_t>>>(std::move(job));
  auto r = co_await std::move(listed);
  co_return r ? std::move(*r) : std::vector<std::pair<std::string, std::size_t>>{};
}

void shared_rooms::listen(std::string const& room, std::string_view last_event_id, keel::sse_handle const& h) {
  auto* s = impl_.get();
  s->submit([s, room, id = std::string(last_event_id), h]() { return s->do_listen(room, id, h); });
}

void shared_rooms::unlisten(std::string const& room, keel::sse_handle const& h) {
  // Queued like listen, so it runs after it even when the stream ended first.
  auto* s = impl_.get();
  s->submit([s, room, h]() { return s->do_unlisten(room, h); });
}

bool shared_rooms::connected() const { return impl_->up.load(); }

}  // namespace chat
