#include "item_store.hpp"

namespace {{ident}} {

std::vector<item> memory_store::list() const {
  std::lock_guard lock(mutex_);
  std::vector<item> out;
  for (auto const& [id, it] : items_) out.push_back(it);
  return out;
}

std::optional<item> memory_store::find(std::int64_t id) const {
  std::lock_guard lock(mutex_);
  auto it = items_.find(id);
  if (it == items_.end()) return std::nullopt;
  return it->second;
}

item memory_store::create(std::string name, std::int64_t quantity) {
  std::lock_guard lock(mutex_);
  item it{next_id_++, std::move(name), quantity};
  items_.emplace(it.id, it);
  return it;
}

std::optional<item> memory_store::update(std::int64_t id, item_fields const& f) {
  std::lock_guard lock(mutex_);
  auto it = items_.find(id);
  if (it == items_.end()) return std::nullopt;
  if (f.name) it->second.name = *f.name;
  if (f.quantity) it->second.quantity = *f.quantity;
  return it->second;
}

bool memory_store::remove(std::int64_t id) {
  std::lock_guard lock(mutex_);
  return items_.erase(id) > 0;
}

}  // namespace {{ident}}
