#pragma once
// keel::detail::event: a condition variable for coroutines that share one
// executor. A waiter looks at its condition, and when it does not hold yet,
// `co_await ev.async_wait(...)`; whoever changes the condition calls
// notify_all() (or notify_one()). Nothing is remembered: a notify with nobody
// waiting does nothing, which is what a waiter that checks its condition
// before each wait needs, and the lost-wakeup race of threads cannot happen
// because the check and the wait run without a suspension between them.
//
// One executor, no locks: every call is made on the executor the event was
// built with (a caller on another thread posts there first). Completions are
// posted, never run inside notify, so a notifier is never re-entered by the
// coroutine it wakes. A waiting coroutine counts as outstanding work, as a
// pending timer does, so its io_context does not run out while it waits.
//
// A wait honours the awaiting coroutine's cancellation slot: any cancellation
// (keel's watchdog emits terminal) ends the wait with operation_aborted.
// Destroying the event ends pending waits with operation_aborted, as a
// destroyed timer does.
//
// Why not asio::experimental::channel<void(error_code)>, which can do the same
// with try_send/async_receive: docs/architecture.md ("Waiting for an event")
// has the measurement. In short, this is a list of waiters with one
// recycled allocation per wait; the channel's service and operation state
// cost more per wake-up, and its notify_all is a loop of try_send.
#include <keel/net.hpp>

#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/cancellation_type.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/execution/outstanding_work.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/prefer.hpp>
#include <boost/asio/recycling_allocator.hpp>
#include <boost/system/error_code.hpp>

#include <cstddef>
#include <memory>
#include <utility>

namespace keel::detail {

class event {
 public:
  explicit event(executor ex) : ex_(std::move(ex)) {}
  ~event() {
    while (head_) finish(head_, asio::error::operation_aborted, true);
  }
  event(event const&) = delete;
  event& operator=(event const&) = delete;

  /// Wakes every coroutine waiting now; each resumes with no error.
  void notify_all() noexcept {
    // Completions are posted, so nobody can start a new wait inside this loop.
    while (head_) finish(head_, {}, true);
  }

  /// Wakes the longest waiting coroutine, if any.
  void notify_one() noexcept {
    if (head_) finish(head_, {}, true);
  }

  /// Whether a coroutine is waiting.
  bool waiting() const noexcept { return head_ != nullptr; }

  executor const& get_executor() const noexcept { return ex_; }

  /// Completes with `void(error_code)`: no error when notified,
  /// operation_aborted when cancelled through the token's slot or destroyed.
  template <class Token = use_task_t>
  auto async_wait(Token&& token = {}) {
    return asio::async_initiate<Token, void(boost::system::error_code)>(initiate_wait{this}, token);
  }

 private:
  struct waiter {
    waiter* prev = nullptr;
    waiter* next = nullptr;
    // Unlinked already; `clear_slot` is false when called from the slot itself.
    void (*complete)(waiter*, boost::system::error_code, bool clear_slot) = nullptr;
  };

  // Installed on the waiter's cancellation slot. Clearing the slot destroys
  // it, which a normal completion does; after a cancellation it stays in the
  // slot until the coroutine's next operation replaces it, so it forgets its
  // waiter and a second emit finds nothing.
  struct canceller {
    event* ev;
    waiter* w;
    void operator()(asio::cancellation_type type) {
      if (type == asio::cancellation_type::none) return;
      if (auto* target = std::exchange(w, nullptr)) ev->finish(target, asio::error::operation_aborted, false);
    }
  };

  template <class Handler, class Work>
  struct wait_op : waiter {
    using allocator = typename std::allocator_traits<asio::recycling_allocator<void>>::template rebind_alloc<wait_op>;

    wait_op(Handler&& h, Work&& w) : handler(std::move(h)), work(std::move(w)) { complete = &do_complete; }

    static void do_complete(waiter* base, boost::system::error_code ec, bool clear_slot) {
      auto* self = static_cast<wait_op*>(base);
      if (clear_slot) {
        auto slot = asio::get_associated_cancellation_slot(self->handler);
        if (slot.is_connected()) slot.clear();
      }
      // The memory goes back before the handler runs, so the next wait reuses it.
      Handler h(std::move(self->handler));
      Work work(std::move(self->work));
      allocator a;
      self->~wait_op();
      std::allocator_traits<allocator>::deallocate(a, self, 1);
      asio::post(work, [h = std::move(h), ec]() mutable { std::move(h)(ec); });
    }

    Handler handler;
    Work work;  // the handler's executor, keeping it from running out of work
  };

  struct initiate_wait {
    event* self;
    template <class Handler>
    void operator()(Handler&& handler) const {
      self->start(std::forward<Handler>(handler));
    }
  };

  template <class Handler>
  void start(Handler handler) {
    auto work = asio::prefer(asio::get_associated_executor(handler, ex_), asio::execution::outstanding_work.tracked);
    using op = wait_op<Handler, decltype(work)>;
    typename op::allocator a;
    auto* mem = std::allocator_traits<typename op::allocator>::allocate(a, 1);
    op* w = nullptr;
    try {
      w = ::new (static_cast<void*>(mem)) op(std::move(handler), std::move(work));
    } catch (...) {
      std::allocator_traits<typename op::allocator>::deallocate(a, mem, 1);
      throw;
    }
    link(w);
    auto slot = asio::get_associated_cancellation_slot(w->handler);
    if (slot.is_connected()) slot.template emplace<canceller>(canceller{this, w});
  }

  void link(waiter* w) noexcept {
    w->prev = tail_;
    w->next = nullptr;
    if (tail_) tail_->next = w;
    else head_ = w;
    tail_ = w;
  }

  void unlink(waiter* w) noexcept {
    if (w->prev) w->prev->next = w->next;
    else head_ = w->next;
    if (w->next) w->next->prev = w->prev;
    else tail_ = w->prev;
    w->prev = w->next = nullptr;
  }

  void finish(waiter* w, boost::system::error_code ec, bool clear_slot) noexcept {
    unlink(w);
    w->complete(w, ec, clear_slot);
  }

  executor ex_;
  waiter* head_ = nullptr;
  waiter* tail_ = nullptr;
};

}  // namespace keel::detail
