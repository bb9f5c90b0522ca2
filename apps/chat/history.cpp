#include "history.hpp"

namespace chat {

void history::push(entry e, limits const& l) {
  bytes_ += e.json.size() + 1;
  entries_.push_back(std::move(e));
  while (!entries_.empty() && (entries_.size() > l.history_size || bytes_ > l.history_bytes)) pop_front();
}

void history::expire(clock::time_point now, std::chrono::milliseconds ttl) {
  while (!entries_.empty() && now - entries_.front().at >= ttl) pop_front();
}

void history::clear() {
  entries_.clear();
  bytes_ = 0;
}

std::string history::json_array() const {
  std::string out;
  out.reserve(bytes_ + 2);
  out += '[';
  for (auto const& m : entries_) {
    if (out.size() > 1) out += ',';
    out += m.json;
  }
  out += ']';
  return out;
}

void history::pop_front() {
  bytes_ -= entries_.front().json.size() + 1;
  entries_.pop_front();
}

}  // namespace chat
