#include "rooms.hpp"

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <algorithm>
#include <charconv>
#include <chrono>

namespace chat {

namespace json = boost::json;

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

std::shared_ptr<rooms::room_state> rooms::lock(std::string const& room, bool create,
                                               std::unique_lock<std::mutex>& lk) {
  for (;;) {
    std::shared_ptr<room_state> r;
    {
      std::lock_guard map_lock(mutex_);
      auto it = rooms_.find(room);
      if (it != rooms_.end()) r = it->second;
      else if (create) r = rooms_.emplace(room, std::make_shared<room_state>()).first->second;
      else return nullptr;
    }
    lk = std::unique_lock(r->mutex);
    if (!r->dead) return r;
    lk.unlock();  // reaped in between: look it up again
  }
}

void rooms::reap(std::string const& room) {
  std::lock_guard map_lock(mutex_);
  auto it = rooms_.find(room);
  if (it == rooms_.end()) return;
  auto& r = *it->second;
  std::lock_guard lk(r.mutex);
  // A room with history stays: its history outlives its members.
  if (r.members.empty() && r.listeners.empty() && r.history.empty()) {
    r.dead = true;
    rooms_.erase(it);
  }
}

void rooms::join(std::string const& room, std::string const& name, keel::ws_handle const& ws) {
  std::unique_lock<std::mutex> lk;
  auto r = lock(room, true, lk);
  // The others hear of the joiner before it becomes a hub member: it does not
  // get its own presence event.
  hub_.publish(room, presence("join", name));
  r->members.push_back({ws, name});

  json::object joined;
  joined["type"] = "joined";
  joined["room"] = room;
  joined["name"] = name;
  json::array names;
  for (auto const& m : r->members) names.emplace_back(m.name);
  joined["members"] = std::move(names);
  // History entries are stored serialized; splice them in as text.
  std::string text = json::serialize(joined);
  std::string history = "[";
  for (auto const& m : r->history) {
    if (history.size() > 1) history += ',';
    history += m.json;
  }
  history += ']';
  text.pop_back();  // the closing brace
  text += ",\"history\":" + history + "}";
  ws.send(std::move(text));
  hub_.join(room, ws);
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
    hub_.leave(room, ws);
    hub_.publish(room, presence("leave", name));
  }
  reap(room);
}

void rooms::post(std::string const& room, std::string const& from, std::string const& text) {
  std::unique_lock<std::mutex> lk;
  auto r = lock(room, true, lk);
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
  r->history.push_back({seq, id, serialized});
  if (r->history.size() > history_size) r->history.pop_front();
  hub_.publish(room, std::move(serialized));
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

void rooms::listen(std::string const& room, std::string_view last_event_id, keel::sse_handle const& h) {
  std::unique_lock<std::mutex> lk;
  auto r = lock(room, true, lk);
  // Ids are the room's sequence numbers: resume after a known one; an empty,
  // foreign or future id (from before a restart) gets the whole history.
  std::uint64_t after = 0;
  std::uint64_t parsed = 0;
  auto [p, ec] = std::from_chars(last_event_id.data(), last_event_id.data() + last_event_id.size(), parsed);
  if (ec == std::errc() && p == last_event_id.data() + last_event_id.size() && parsed < r->next_seq) {
    after = parsed;
  }
  for (auto const& m : r->history) {
    if (m.seq > after) h.push_formatted(keel::format_sse_event("message", m.json, m.id));
  }
  r->listeners.push_back(h);
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
