#include "shared_rooms.hpp"

#include "rooms.hpp"  // history_size

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
  struct message {
    std::string id;
    std::string json;
  };
  struct local_room {
    std::vector<member> members;
    std::deque<message> history;  ///< this instance's posts, for when Redis is down
    std::vector<keel::sse_handle> listeners;
    /// While there are listeners: the room's messages from every instance.
    keel::hub_subscription feed;
  };

  // Shared with callers' threads.
  mutable std::mutex mutex;
  std::map<std::string, local_room, std::less<>> rooms;
  std::deque<std::function<keel::task<void>()>> jobs;
  bool stopping = false;
  bool wake_posted = false;
  std::atomic<bool> up{false};

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
        for (auto const& m : r.members) {
          cmds.push_back({"ZADD", k_members(room), score, m.key});
          cmds.push_back({"SADD", "chat:rooms", room});
          cmds.push_back({"SADD", k_inst_rooms(opts.instance_id), room});
        }
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
      for (auto const& g : ghosts) rem.push_back({"ZREM", k_members(room), g});
      auto [dec, done] = co_await conn.pipeline(rem, opts.command_timeout);
      if (dec) co_return;
    }
  }

  std::vector<redis_command> alive_commands() const {
    return {{"SET", k_alive(opts.instance_id), "1", "PX", std::to_string(opts.member_ttl.count())},
            {"SADD", "chat:instances", opts.instance_id}};
  }

  keel::task<void> beat_and_sweep() {
    auto cmds = alive_commands();
    cmds.push_back({"SMEMBERS", "chat:instances"});
    auto r = co_await redis(cmds);
    if (!r || r->size() != 3) co_return;
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
      for (auto const& k : keys) rem.push_back({"ZREM", k_members(room), k});
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

  keel::task<void> do_join(std::string room, std::string name, keel::ws_handle ws) {
    auto key = opts.instance_id + ":" + std::to_string(ws.id()) + ":" + name;
    {
      std::lock_guard lock(mutex);
      rooms[room].members.push_back({ws, name, key});
    }
    std::vector<redis_command> cmds{{"ZADD", k_members(room), std::to_string(now_ms()), key},
                                    {"SADD", "chat:rooms", room},
                                    {"SADD", k_inst_rooms(opts.instance_id), room},
                                    {"ZRANGE", k_members(room), "0", "-1"},
                                    {"LRANGE", k_history(room), std::to_string(-static_cast<long>(history_size)), "-1"}};
    auto r = co_await redis(cmds);
    json::array names;
    std::string history = "[";
    if (r && r->size() == cmds.size()) {
      for (auto const& m : (*r)[3].elements) names.emplace_back(name_of(m.str));
      for (auto const& h : (*r)[4].elements) {
        if (history.size() > 1) history += ',';
        history += h.str;
      }
    } else {
      std::lock_guard lock(mutex);
      auto& lr = rooms[room];
      for (auto const& m : lr.members) names.emplace_back(m.name);
      for (auto const& h : lr.history) {
        if (history.size() > 1) history += ',';
        history += h.json;
      }
    }
    history += ']';
    // The others hear of the joiner before it becomes a hub member.
    hub.publish(room, presence("join", name));
    json::object joined;
    joined["type"] = "joined";
    joined["room"] = room;
    joined["name"] = name;
    joined["members"] = std::move(names);
    std::string text = json::serialize(joined);
    text.pop_back();
    text += ",\"history\":" + history + "}";
    ws.send(std::move(text));
    hub.join(room, ws);
  }

  keel::task<void> do_leave(std::string room, keel::ws_handle ws) {
    std::string key, name;
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
      if (v.empty() && it->second.listeners.empty() && it->second.history.empty()) rooms.erase(it);
    }
    std::vector<redis_command> cmds{{"ZREM", k_members(room), key}};
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
    o["ts"] = now_ms();
    auto serialized = json::serialize(o);
    if (stored) {
      std::vector<redis_command> keep{{"RPUSH", k_history(room), serialized},
                                      {"LTRIM", k_history(room), std::to_string(-static_cast<long>(history_size)), "-1"}};
      co_await redis(keep);
    }
    {
      std::lock_guard lock(mutex);
      auto& lr = rooms[room];
      lr.history.push_back({id, serialized});
      if (lr.history.size() > history_size) lr.history.pop_front();
    }
    hub.publish(room, std::move(serialized));  // SSE listeners get it through their feed
  }

  keel::task<std::vector<std::pair<std::string, std::size_t>>> do_list() {
    std::vector<std::pair<std::string, std::size_t>> out;
    std::vector<redis_command> q{{"SMEMBERS", "chat:rooms"}};
    auto r = co_await redis(q);
    if (r && r->size() == 1) {
      std::vector<redis_command> counts;
      std::vector<std::string> names;
      for (auto const& e : (*r)[0].elements) {
        names.push_back(e.str);
        counts.push_back({"ZCARD", k_members(e.str)});
      }
      // (No co_await inside ?: — g++ 12 miscompiles it.)
      std::optional<std::vector<redis_reply>> c = std::vector<redis_reply>{};
      if (!counts.empty()) c = co_await redis(counts);
      if (c && c->size() == names.size()) {
        for (std::size_t i = 0; i < names.size(); ++i) {
          if ((*c)[i].integer > 0) out.emplace_back(names[i], static_cast<std::size_t>((*c)[i].integer));
        }
        std::sort(out.begin(), out.end());
        co_return out;
      }
    }
    std::lock_guard lock(mutex);
    for (auto const& [name, lr] : rooms) {
      if (!lr.members.empty()) out.emplace_back(name, lr.members.size());
    }
    co_return out;
  }

  keel::task<void> do_listen(std::string room, std::string last_event_id, keel::sse_handle h) {
    std::vector<redis_command> q{{"LRANGE", k_history(room), std::to_string(-static_cast<long>(history_size)), "-1"}};
    auto r = co_await redis(q);
    auto after = numeric_id(last_event_id);
    std::lock_guard lock(mutex);
    auto& lr = rooms[room];
    auto push = [&](std::string const& id, std::string const& msg) {
      auto n = numeric_id(id);
      if (after == 0 || n == 0 || n > after) h.push_formatted(keel::format_sse_event("message", msg, id));
    };
    if (r && r->size() == 1) {
      for (auto const& e : (*r)[0].elements) {
        boost::system::error_code ec;
        auto v = json::parse(e.str, ec);
        auto const* o = ec ? nullptr : v.if_object();
        auto const* id = o ? o->if_contains("id") : nullptr;
        if (id && id->is_string()) push(std::string(id->get_string()), e.str);
      }
    } else {
      for (auto const& m : lr.history) push(m.id, m.json);
    }
    lr.listeners.push_back(h);
    if (!lr.feed) lr.feed = hub.observe(room, feed(room));
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

void shared_rooms::join(std::string const& room, std::string const& name, keel::ws_handle const& ws) {
  auto* s = impl_.get();
  s->submit([s, room, name, ws]() { return s->do_join(room, name, ws); });
}

void shared_rooms::leave(std::string const& room, keel::ws_handle const& ws) {
  impl_->hub.leave(room, ws);  // no more deliveries from now on
  auto* s = impl_.get();
  s->submit([s, room, ws]() { return s->do_leave(room, ws); });
}

void shared_rooms::post(std::string const& room, std::string const& from, std::string const& text) {
  auto* s = impl_.get();
  s->submit([s, room, from, text]() { return s->do_post(room, from, text); });
}

keel::task<std::vector<std::pair<std::string, std::size_t>>> shared_rooms::list() {
  // Run on the worker, in order with the rest; resume the caller on its own
  // executor when the answer is there.
  struct waiter {
    explicit waiter(keel::executor ex) : timer(ex) {}
    keel::steady_timer timer;
    std::vector<std::pair<std::string, std::size_t>> result;
    bool done = false;
  };
  auto w = std::make_shared<waiter>(co_await asio::this_coro::executor);
  auto* s = impl_.get();
  bool queued = s->submit([s, w]() -> keel::task<void> {
    auto r = co_await s->do_list();
    asio::post(w->timer.get_executor(), [w, r = std::move(r)]() mutable {
      w->result = std::move(r);
      w->done = true;
      w->timer.cancel();
    });
  });
  while (queued && !w->done) {
    w->timer.expires_at(keel::clock::time_point::max());
    auto [ec] = co_await w->timer.async_wait(as_tuple_task);
    if (ec && !w->done) co_return std::vector<std::pair<std::string, std::size_t>>{};  // the request was cancelled
  }
  co_return std::move(w->result);
}

void shared_rooms::listen(std::string const& room, std::string_view last_event_id, keel::sse_handle const& h) {
  auto* s = impl_.get();
  s->submit([s, room, id = std::string(last_event_id), h]() { return s->do_listen(room, id, h); });
}

void shared_rooms::unlisten(std::string const& room, keel::sse_handle const& h) {
  std::lock_guard lock(impl_->mutex);
  auto it = impl_->rooms.find(room);
  if (it == impl_->rooms.end()) return;
  std::erase(it->second.listeners, h);
  if (it->second.listeners.empty()) it->second.feed.reset();
}

bool shared_rooms::connected() const { return impl_->up.load(); }

}  // namespace chat
