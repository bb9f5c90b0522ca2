#include "rooms.hpp"

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/string.hpp>

#include <algorithm>
#include <charconv>
#include <limits>
#include <chrono>
#include <tuple>

namespace chat {

namespace json = boost::json;

namespace {

std::int64_t steady_ms(history::clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

void lower_to(std::atomic<std::int64_t>& at, std::int64_t t) {
  for (auto due = at.load(); t < due && !at.compare_exchange_weak(due, t);) {
  }
}

}  // namespace

std::string presence(std::string_view event, std::string_view name) {
  json::object o;
  o["type"] = "presence";
  o["event"] = event;
  o["name"] = name;
  return json::serialize(o);
}

std::int64_t now_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

std::string joined_message(std::string_view room, std::string_view name, std::vector<std::string_view> const& names,
                           std::size_t member_count, std::string_view history, limits const& l) {
  // The newest names that fit, so 10 000 members of 128-byte names cannot
  // make a welcome larger than the joiner's send queue.
  std::size_t first = names.size();
  std::size_t bytes = 0;
  while (first > 0 && names.size() - first < l.listed_members) {
    auto size = json::serialize(json::string(names[first - 1])).size() + 1;
    if (bytes + size > l.listed_bytes) break;
    bytes += size;
    --first;
  }
  json::object joined;
  joined["type"] = "joined";
  joined["room"] = room;
  joined["name"] = name;
  json::array listed;
  for (auto i = first; i < names.size(); ++i) listed.emplace_back(names[i]);
  joined["members"] = std::move(listed);
  joined["member_count"] = member_count;
  // History entries are stored serialized; splice them in as text.
  std::string text = json::serialize(joined);
  text.pop_back();  // the closing brace
  text += ",\"history\":";
  text += history;
  text += '}';
  return text;
}

std::string too_many_rooms() { return error_message("too_many_rooms", "this server holds as many rooms as it may"); }

std::shared_ptr<rooms::room_state> rooms::lock(std::string const& room, bool create,
                                               std::unique_lock<std::mutex>& lk) {
  for (;;) {
    std::shared_ptr<room_state> r;
    {
      std::lock_guard map_lock(mutex_);
      auto it = rooms_.find(room);
      if (it != rooms_.end()) {
        r = it->second;
      } else if (create) {
        if (rooms_.size() >= limits_.max_rooms && steady_ms(history::clock::now()) >= next_sweep_.load()) {
          forget_expired();
        }
        if (rooms_.size() >= limits_.max_rooms) return nullptr;
        r = rooms_.emplace(room, std::make_shared<room_state>()).first->second;
      } else {
        return nullptr;
      }
    }
    lk = std::unique_lock(r->mutex);
    if (!r->dead) return r;
    lk.unlock();  // reaped in between: look it up again
  }
}

void rooms::account(room_state& r, std::size_t before) {
  auto after = r.hist.footprint();
  if (after > before) total_.fetch_add(after - before);
  else total_.fetch_sub(before - after);
  r.held = after;
}

void rooms::expire(room_state& r) {
  auto before = r.hist.footprint();
  r.hist.expire(history::clock::now(), limits_.history_ttl);
  account(r, before);
}

void rooms::forget_expired() {
  // Reset first, lowered at the end: a post during the walk lowers it too.
  auto next = std::numeric_limits<std::int64_t>::max();
  next_sweep_ = next;
  for (auto it = rooms_.begin(); it != rooms_.end();) {
    auto& r = *it->second;
    std::lock_guard lk(r.mutex);
    expire(r);
    if (r.members.empty() && r.listeners.empty() && r.hist.empty()) {
      r.dead = true;
      it = rooms_.erase(it);
    } else {
      // Rooms without history are forgotten when their last member leaves.
      if (!r.hist.empty()) next = std::min(next, steady_ms(r.hist.entries().back().at + limits_.history_ttl));
      ++it;
    }
  }
  lower_to(next_sweep_, next);
}

void rooms::evict(std::string const& keep) {
  std::lock_guard map_lock(mutex_);
  while (total_.load() > limits_.history_memory) {
    auto victim = rooms_.end();
    std::tuple<bool, std::int64_t> oldest{};
    for (auto it = rooms_.begin(); it != rooms_.end(); ++it) {
      auto const& r = *it->second;
      if (it->first == keep || r.held.load() == 0) continue;
      std::tuple<bool, std::int64_t> key{r.occupied.load(), r.active.load()};
      if (victim == rooms_.end() || key < oldest) {
        victim = it;
        oldest = key;
      }
    }
    if (victim == rooms_.end()) return;
    auto& r = *victim->second;
    std::lock_guard lk(r.mutex);
    auto before = r.hist.footprint();
    r.hist.clear();
    account(r, before);
    if (r.members.empty() && r.listeners.empty()) {
      r.dead = true;
      rooms_.erase(victim);
    }
  }
}

void rooms::reap(std::string const& room) {
  std::lock_guard map_lock(mutex_);
  auto it = rooms_.find(room);
  if (it == rooms_.end()) return;
  auto& r = *it->second;
  std::lock_guard lk(r.mutex);
  // A room with history stays until its history expires or is evicted.
  if (r.members.empty() && r.listeners.empty() && r.hist.empty()) {
    r.dead = true;
    rooms_.erase(it);
  }
}

bool rooms::join(std::string const& room, std::string const& name, keel::ws_handle const& ws) {
  std::unique_lock<std::mutex> lk;
  auto r = lock(room, true, lk);
  if (!r) {
    ws.send(too_many_rooms());
    return false;
  }
  expire(*r);
  // The others hear of the joiner before it becomes a hub member: it does not
  // get its own presence event.
  hub_.publish(room, presence("join", name));
  r->members.push_back({ws, name});
  r->occupied = true;
  r->active = steady_ms(history::clock::now());

  std::vector<std::string_view> names;
  auto first = r->members.size() - std::min(r->members.size(), limits_.listed_members);
  for (auto i = first; i < r->members.size(); ++i) names.push_back(r->members[i].name);
  ws.send(joined_message(room, name, names, r->members.size(), r->hist.json_array(), limits_));
  hub_.join(room, ws);
  return true;
}

void rooms::leave(std::string const& room, keel::ws_handle const& ws) {
  {
    std::unique_lock<std::mutex> lk;
    auto r = lock(room, false, lk);
    if (!r) return;
    auto it = std::find_if(r->members.begin(), r->members.end(), [&](member const& m) { return m.ws == ws; });
    if (it == r->members.end()) return;
    auto name = std::move(it->name);
    r->members.erase(it);
    r->occupied = !r->members.empty();
    r->active = steady_ms(history::clock::now());
    hub_.leave(room, ws);
    hub_.publish(room, presence("leave", name));
    expire(*r);
  }
  reap(room);
}

void rooms::post(std::string const& room, std::string const& from, std::string const& text) {
  {
    std::unique_lock<std::mutex> lk;
    // A member's room exists; a post never creates one.
    auto r = lock(room, false, lk);
    if (!r) return;
    auto seq = r->next_seq++;
    auto id = std::to_string(seq);
    json::object o;
    o["type"] = "message";
    o["id"] = id;
    o["room"] = room;
    o["from"] = from;
    o["text"] = text;
    o["ts"] = now_ms();
    auto serialized = json::serialize(o);

    // SSE listeners get the same object, with the message id as the event id.
    if (!r->listeners.empty()) {
      auto frame = keel::format_sse_event("message", serialized, id);
      std::erase_if(r->listeners, [&](keel::sse_handle const& h) { return !h.push_formatted(frame); });
    }
    auto now = history::clock::now();
    auto before = r->hist.footprint();
    r->hist.expire(now, limits_.history_ttl);
    r->hist.push({seq, id, serialized, now}, limits_);
    lower_to(next_sweep_, steady_ms(now + limits_.history_ttl));
    account(*r, before);
    r->active = steady_ms(now);
    hub_.publish(room, std::move(serialized));
  }
  if (total_.load() > limits_.history_memory) evict(room);
}

std::vector<std::pair<std::string, std::size_t>> rooms::list() const {
  std::vector<std::pair<std::string, std::shared_ptr<room_state>>> all;
  {
    std::lock_guard lock(mutex_);
    all.assign(rooms_.begin(), rooms_.end());
  }
  std::vector<std::pair<std::string, std::size_t>> out;
  for (auto& [name, r] : all) {
    std::lock_guard lock(r->mutex);
    if (!r->members.empty()) out.emplace_back(name, r->members.size());
  }
  return out;
}

bool rooms::listen(std::string const& room, std::string_view last_event_id, keel::sse_handle const& h) {
  std::unique_lock<std::mutex> lk;
  auto r = lock(room, true, lk);
  if (!r) return false;
  expire(*r);
  // Ids are the room's sequence numbers: resume after a known one; an empty,
  // foreign or future id (from before a restart) gets the whole history.
  std::uint64_t after = 0;
  std::uint64_t parsed = 0;
  auto [p, ec] = std::from_chars(last_event_id.data(), last_event_id.data() + last_event_id.size(), parsed);
  if (ec == std::errc() && p == last_event_id.data() + last_event_id.size() && parsed < r->next_seq) {
    after = parsed;
  }
  for (auto const& m : r->hist.entries()) {
    if (m.seq > after) h.push_formatted(keel::format_sse_event("message", m.json, m.id));
  }
  r->listeners.push_back(h);
  return true;
}

void rooms::unlisten(std::string const& room, keel::sse_handle const& h) {
  {
    std::unique_lock<std::mutex> lk;
    auto r = lock(room, false, lk);
    if (!r) return;
    std::erase(r->listeners, h);
  }
  reap(room);
}

}  // namespace chat
