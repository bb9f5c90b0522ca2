#include <keel/hub.hpp>

#include <algorithm>
#include <unordered_map>

namespace keel {

struct local_hub::impl : std::enable_shared_from_this<impl> {
  using observer = std::shared_ptr<std::function<void(std::string_view)> const>;
  mutable std::mutex mutex;
  std::unordered_map<std::string, std::vector<ws_handle>> rooms;
  std::unordered_map<std::string, std::vector<std::pair<std::uint64_t, observer>>> observers;
  std::uint64_t next_observer = 0;

  void unobserve(std::string const& room, std::uint64_t id) {
    std::lock_guard lock(mutex);
    auto it = observers.find(room);
    if (it == observers.end()) return;
    std::erase_if(it->second, [&](auto const& o) { return o.first == id; });
    if (it->second.empty()) observers.erase(it);
  }

  void remove(std::string const& room, ws_handle const& member) {
    std::lock_guard lock(mutex);
    auto it = rooms.find(room);
    if (it == rooms.end()) return;
    auto& v = it->second;
    v.erase(std::remove(v.begin(), v.end(), member), v.end());
    if (v.empty()) rooms.erase(it);
  }
};

local_hub::local_hub() : impl_(std::make_shared<impl>()) {}
local_hub::~local_hub() = default;

void local_hub::join(std::string const& room, ws_handle member) {
  if (!member || !member.is_open()) return;
  {
    std::lock_guard lock(impl_->mutex);
    auto& v = impl_->rooms[room];
    if (std::find(v.begin(), v.end(), member) != v.end()) return;
    v.push_back(member);
  }
  // The leave runs on the session's own thread when it ends; the hub may be
  // gone by then, hence the weak reference.
  std::weak_ptr<impl> weak = impl_;
  member.on_end([weak, room, member] {
    if (auto h = weak.lock()) h->remove(room, member);
  });
}

void local_hub::leave(std::string const& room, ws_handle const& member) { impl_->remove(room, member); }

std::size_t local_hub::publish(std::string const& room, std::string message) {
  std::vector<ws_handle> members;
  std::vector<impl::observer> observers;
  {
    std::lock_guard lock(impl_->mutex);
    if (auto o = impl_->observers.find(room); o != impl_->observers.end()) {
      for (auto const& [id, fn] : o->second) observers.push_back(fn);
    }
    auto it = impl_->rooms.find(room);
    if (it != impl_->rooms.end()) members = it->second;
  }
  for (auto const& fn : observers) (*fn)(message);
  if (members.empty()) return 0;
  // One buffer for every recipient.
  auto shared = std::make_shared<std::string const>(std::move(message));
  std::size_t sent = 0;
  for (auto const& m : members) sent += m.send_shared(shared) ? 1 : 0;
  return sent;
}

std::size_t local_hub::member_count(std::string const& room) const {
  std::lock_guard lock(impl_->mutex);
  auto it = impl_->rooms.find(room);
  return it == impl_->rooms.end() ? 0 : it->second.size();
}

std::vector<std::pair<std::string, std::size_t>> local_hub::rooms() const {
  std::lock_guard lock(impl_->mutex);
  std::vector<std::pair<std::string, std::size_t>> out;
  for (auto const& [name, v] : impl_->rooms) out.emplace_back(name, v.size());
  std::sort(out.begin(), out.end());
  return out;
}

hub_subscription local_hub::observe(std::string const& room, std::function<void(std::string_view)> fn) {
  std::uint64_t id;
  {
    std::lock_guard lock(impl_->mutex);
    id = ++impl_->next_observer;
    impl_->observers[room].emplace_back(id, std::make_shared<std::function<void(std::string_view)> const>(std::move(fn)));
  }
  std::weak_ptr<impl> weak = impl_;
  return hub_subscription([weak, room, id] {
    if (auto h = weak.lock()) h->unobserve(room, id);
  });
}

std::vector<std::string> local_hub::observed_rooms() const {
  std::lock_guard lock(impl_->mutex);
  std::vector<std::string> out;
  for (auto const& [name, v] : impl_->observers) out.push_back(name);
  return out;
}

}  // namespace keel
