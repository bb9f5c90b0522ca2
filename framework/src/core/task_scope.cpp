#include <keel/task_scope.hpp>

#include <keel/log.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/channel.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/system/system_error.hpp>

#include <algorithm>
#include <list>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace keel {

namespace detail {

using error_code = boost::system::error_code;
// One per join(): capacity 1, so the wake-up is kept until the joiner reads it.
using join_channel = asio::experimental::channel<executor, void(error_code)>;

struct task_scope_child {
  explicit task_scope_child(executor e) : ex(std::move(e)) {}
  executor ex;
  asio::cancellation_signal signal;  // emitted on ex only
  bool own_slot = false;
  bool done = false;  // on ex only
};

struct task_scope_state {
  struct waiter {
    std::uint64_t id;
    executor ex;  // the joiner's: its channel lives there
    std::shared_ptr<join_channel> wake;
  };

  mutable std::mutex m;
  std::list<std::shared_ptr<task_scope_child>> children;
  std::vector<waiter> waiters;
  std::uint64_t next_waiter = 0;

  void finished(std::list<std::shared_ptr<task_scope_child>>::iterator it) {
    std::vector<waiter> wake;
    {
      std::lock_guard lock(m);
      children.erase(it);
      if (children.empty()) wake.swap(waiters);
    }
    for (auto& w : wake) {
      asio::post(w.ex, [ch = std::move(w.wake)] { ch->try_send(error_code{}); });
    }
  }

  void forget_waiter(std::uint64_t id) {
    std::lock_guard lock(m);
    std::erase_if(waiters, [id](waiter const& w) { return w.id == id; });
  }
};

namespace {

void log_failure(std::exception_ptr const& e, std::string const& what, std::string const& trace_id) {
  if (!e) return;
  try {
    std::rethrow_exception(e);
  } catch (boost::system::system_error const& x) {
    if (x.code() == asio::error::operation_aborted) return;  // cancelled: the normal way out
    log::error(what + " failed", {{"trace_id", trace_id}, {"error", x.what()}});
  } catch (std::exception const& x) {
    log::error(what + " failed", {{"trace_id", trace_id}, {"error", x.what()}});
  } catch (...) {
    log::error(what + " failed", {{"trace_id", trace_id}, {"error", "an exception not derived from std::exception"}});
  }
}

}  // namespace
}  // namespace detail

task_scope::task_scope() : state_(std::make_shared<detail::task_scope_state>()) {}

task_scope::~task_scope() { cancel(); }

void task_scope::spawn(executor const& ex, task<void> t, std::string_view what, std::string_view trace_id,
                       asio::cancellation_slot own_slot) {
  auto child = std::make_shared<detail::task_scope_child>(ex);
  child->own_slot = own_slot.is_connected();
  std::list<std::shared_ptr<detail::task_scope_child>>::iterator it;
  {
    std::lock_guard lock(state_->m);
    it = state_->children.insert(state_->children.end(), child);
  }
  auto slot = child->own_slot ? own_slot : child->signal.slot();
  asio::co_spawn(ex, std::move(t),
                 asio::bind_cancellation_slot(
                     slot, [st = state_, child, it, what = std::string(what),
                            trace = std::string(trace_id)](std::exception_ptr const& e) {
                       child->done = true;
                       detail::log_failure(e, what, trace);
                       st->finished(it);
                     }));
}

void task_scope::cancel() {
  std::vector<std::shared_ptr<detail::task_scope_child>> now;
  {
    std::lock_guard lock(state_->m);
    now.assign(state_->children.begin(), state_->children.end());
  }
  for (auto& c : now) {
    if (c->own_slot) continue;
    asio::post(c->ex, [c] {
      if (!c->done) c->signal.emit(asio::cancellation_type::terminal);
    });
  }
}

task<bool> task_scope::join() {
  auto ex = co_await asio::this_coro::executor;
  auto wake = std::make_shared<detail::join_channel>(ex, 1);
  std::uint64_t id = 0;
  {
    std::lock_guard lock(state_->m);
    if (state_->children.empty()) co_return true;
    id = ++state_->next_waiter;
    state_->waiters.push_back({id, ex, wake});
  }
  auto [ec] = co_await wake->async_receive(asio::as_tuple(use_task));
  if (!ec) co_return true;
  state_->forget_waiter(id);  // the wait was cancelled; the children run on
  co_return false;
}

std::size_t task_scope::active() const {
  std::lock_guard lock(state_->m);
  return state_->children.size();
}

}  // namespace keel
