#pragma once
// keel::offload: run blocking work (a database call, a file, a CPU-heavy
// computation) on a bounded thread pool, away from the I/O threads.
//
//   keel::task<keel::response> report(keel::context& ctx) {
//     auto query = [&db] { return db.monthly_report(); };   // name the closure first
//     auto rows = co_await keel::offload(query);            // resumes on this executor
//     co_return keel::response::json(rows);
//   }
//
// Name the closure in its own statement: with g++ 12 a capturing lambda
// written inside the co_await expression itself is destroyed twice.
//
// What happens:
//  - `fn` runs on a worker of the pool; the awaiting coroutine resumes on its
//    own executor with fn's result, or fn's exception rethrown.
//  - Cancellation (the request's deadline, its client going away: any
//    cancellation emitted on the awaiting coroutine's slot) removes work that
//    has not started yet: it never runs, and the await throws
//    boost::system::system_error(operation_aborted). Work already running
//    cannot be interrupted: the caller waits for it to finish (so whatever fn
//    borrowed, a pooled connection for instance, is not used after the caller
//    moved on) and gets its result. A fn that takes a std::stop_token is
//    asked to stop at that moment and may return early.
//  - A full queue throws keel::offload_rejected, an http_error 503 with
//    Retry-After: a handler that lets it escape answers 503.
//
// The process-wide pool behind keel::offload() has `offload_threads` workers
// and queues at most `offload_queue` jobs (SPEC §2 settings, default 4 and
// 1024); offload_pool::configure() sets them, keel apps call it from their
// options. Build an offload_pool of your own to keep one kind of work from
// starving another.
//
// Thread safety: offload() and every offload_pool member may be called from
// any thread; the awaiting coroutine must run on a keel executor.
#include <keel/error.hpp>
#include <keel/net.hpp>

#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <optional>
#include <stop_token>
#include <string>
#include <type_traits>
#include <utility>

namespace keel {

/// The offload queue was full (or the pool is shutting down): 503, Retry-After: 1.
class offload_rejected : public http_error {
 public:
  explicit offload_rejected(std::string const& detail) : http_error(503, detail) {
    with_header("Retry-After", "1");
  }
};

/// Counters of one offload pool.
struct offload_stats {
  std::size_t threads = 0;
  std::size_t queue_limit = 0;
  std::size_t queued = 0;        ///< waiting for a worker now
  std::size_t running = 0;       ///< on a worker now
  std::uint64_t completed = 0;   ///< ran to the end (with a result or an exception)
  std::uint64_t rejected = 0;    ///< refused: queue full or pool stopping
  std::uint64_t cancelled = 0;   ///< removed from the queue before they started
};

namespace detail {

struct offload_state;

// The work as the pool sees it: a function pointer and the object it runs on,
// which lives in the awaiting coroutine's frame (the frame outlives the work).
struct offload_work {
  void (*call)(void* self, std::stop_token const& stop) noexcept;
  void* self;
};

template <class F>
struct offload_result {
  using type = typename std::conditional_t<std::is_invocable_v<F&, std::stop_token>,
                                           std::invoke_result<F&, std::stop_token>,
                                           std::invoke_result<F&>>::type;
};
template <class F>
using offload_result_t = std::remove_cvref_t<typename offload_result<F>::type>;

template <class F, class R>
struct offload_job {
  F& fn;
  std::optional<R> value;
  std::exception_ptr error;

  static void call(void* self, std::stop_token const& stop) noexcept {
    auto& j = *static_cast<offload_job*>(self);
    try {
      if constexpr (std::is_invocable_v<F&, std::stop_token>) j.value.emplace(j.fn(stop));
      else j.value.emplace(j.fn());
    } catch (...) {
      j.error = std::current_exception();
    }
  }
  R take() {
    if (error) std::rethrow_exception(error);
    return std::move(*value);
  }
};

template <class F>
struct offload_job<F, void> {
  F& fn;
  std::exception_ptr error;

  static void call(void* self, std::stop_token const& stop) noexcept {
    auto& j = *static_cast<offload_job*>(self);
    try {
      if constexpr (std::is_invocable_v<F&, std::stop_token>) j.fn(stop);
      else j.fn();
    } catch (...) {
      j.error = std::current_exception();
    }
  }
  void take() {
    if (error) std::rethrow_exception(error);
  }
};

}  // namespace detail

class offload_pool {
 public:
  /// Starts `threads` workers (at least 1) that take jobs from a queue of at
  /// most `queue_limit` waiting jobs (0: every job must find an idle worker).
  offload_pool(std::size_t threads, std::size_t queue_limit);
  /// Refuses new work, fails queued jobs with operation_aborted (their
  /// callers resume on their executors), waits for running jobs, joins.
  /// Destroy it while the callers' io_contexts still exist.
  ~offload_pool();
  offload_pool(offload_pool const&) = delete;
  offload_pool& operator=(offload_pool const&) = delete;

  /// Runs `fn()` (or `fn(stop_token)`) on a worker; see the top of this file.
  template <class F>
  task<detail::offload_result_t<F>> run(F fn);

  offload_stats stats() const;

  /// The process-wide pool keel::offload() uses, created on first use.
  static offload_pool& global();
  /// Sets the process-wide pool's size and queue limit. Before its first use
  /// both apply; afterwards the queue limit applies at once and the thread
  /// count only grows (workers are never stopped under running work).
  static void configure(std::size_t threads, std::size_t queue_limit);
  /// True on a worker thread of any offload_pool (tests assert with it that
  /// blocking work left the I/O threads).
  static bool on_worker_thread() noexcept;

 private:
  task<void> execute(detail::offload_work w);
  void grow(std::size_t threads);

  std::shared_ptr<detail::offload_state> state_;
};

template <class F>
task<detail::offload_result_t<F>> offload_pool::run(F fn) {
  using R = detail::offload_result_t<F>;
  detail::offload_job<F, R> job{fn};
  detail::offload_work work{&detail::offload_job<F, R>::call, &job};
  co_await execute(work);
  co_return job.take();
}

/// Runs `fn` on the process-wide offload pool. Takes `fn` by value: pass a
/// named closure (`co_await keel::offload(query);`), never a lambda written
/// inside the co_await (g++ 12 destroys that temporary twice).
template <class F>
task<detail::offload_result_t<F>> offload(F fn) {
  return offload_pool::global().run(std::move(fn));
}

}  // namespace keel
