#pragma once
// A first-in first-out queue that allocates nothing until its first push.
// libstdc++'s std::deque allocates 576 bytes when it is constructed, which an
// idle WebSocket paid twice (its send queue and its inbox). One vector holds
// the items; the popped prefix is reclaimed when the queue empties or when it
// outweighs the live part, and a large buffer left by a burst is let go once
// the queue is empty again.
#include <cstddef>
#include <utility>
#include <vector>

namespace keel::detail {

template <class T>
class fifo {
 public:
  bool empty() const noexcept { return head_ == items_.size(); }
  std::size_t size() const noexcept { return items_.size() - head_; }
  T& front() noexcept { return items_[head_]; }
  void push_back(T v) { items_.push_back(std::move(v)); }
  void pop_front() {
    items_[head_] = T{};  // what was moved out of it leaves nothing behind
    if (++head_ == items_.size()) {
      clear();
    } else if (head_ >= 32 && head_ * 2 >= items_.size()) {
      items_.erase(items_.begin(), items_.begin() + static_cast<std::ptrdiff_t>(head_));
      head_ = 0;
    }
  }
  void clear() noexcept {
    if (items_.capacity() > keep_capacity) {
      std::vector<T>().swap(items_);
    } else {
      items_.clear();
    }
    head_ = 0;
  }

 private:
  static constexpr std::size_t keep_capacity = 64;
  std::vector<T> items_;
  std::size_t head_ = 0;
};

}  // namespace keel::detail
