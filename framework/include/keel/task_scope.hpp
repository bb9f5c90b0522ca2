#pragma once
// Owns spawned coroutines and joins them: the one way keel spawns work.
//
//   keel::task_scope scope;
//   scope.spawn(ex, worker(), "worker", ctx.trace_id());
//   scope.cancel();                      // every child, on its own executor
//   co_await scope.join();               // until no child runs
//
// A child's exception is logged once ("<what> failed", with the trace id),
// never dropped; a child that ends by cancellation (operation_aborted) has not
// failed. Thread-safe: spawn, cancel and join from any thread; each child runs
// on the executor it was given. join() is cancellable, so a bounded wait is
// `co_await (scope.join() || timer.async_wait(use_task))`. Destroying a scope
// cancels what still runs; those children finish on their own and are still
// logged (the scope's state lives until the last of them).
#include <keel/net.hpp>

#include <boost/asio/cancellation_signal.hpp>

#include <cstddef>
#include <memory>
#include <string_view>

namespace keel {

namespace detail {
struct task_scope_state;
}

class task_scope {
 public:
  task_scope();
  ~task_scope();
  task_scope(task_scope const&) = delete;
  task_scope& operator=(task_scope const&) = delete;

  /// Runs `t` on `ex`, owned by this scope. A child given a cancellation
  /// slot of its own (a connection's watchdog, say) is cancelled through it,
  /// not by cancel().
  void spawn(executor const& ex, task<void> t, std::string_view what, std::string_view trace_id = {},
             asio::cancellation_slot own_slot = {});
  /// Emits terminal cancellation to every running child, each on its executor.
  void cancel();
  /// Completes once no child runs: true, or false when the wait itself was cancelled.
  task<bool> join();
  /// Children still running.
  std::size_t active() const;

 private:
  std::shared_ptr<detail::task_scope_state> state_;
};

}  // namespace keel
