#include <keel/offload.hpp>

#include <keel/log.hpp>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/execution/outstanding_work.hpp>
#include <boost/asio/prefer.hpp>
#include <boost/asio/post.hpp>
#include <boost/system/system_error.hpp>

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

namespace keel {
namespace detail {

namespace {

enum class job_status { queued, running, finished };

thread_local bool in_offload_worker = false;

}  // namespace

// One submitted job. The awaiting coroutine is resumed exactly once, by
// whoever takes the job out of `queued` under the pool's mutex: a worker (after
// running it), a cancellation (before it ran) or the pool's destructor.
struct offload_job_state {
  offload_work work;
  executor ex;
  // Emplaced, never assigned: Boost 1.81's any_completion_handler move
  // assignment recurses without end.
  std::optional<asio::any_completion_handler<void(std::exception_ptr)>> handler;
  std::stop_source stop;
  job_status status = job_status::queued;  // under offload_state::mutex
};

struct offload_state {
  std::mutex mutex;
  std::condition_variable wake;
  std::deque<std::shared_ptr<offload_job_state>> queue;
  std::vector<std::thread> threads;  // touched only under `mutex` or by the destructor
  std::size_t queue_limit = 0;
  std::size_t running = 0;
  std::uint64_t completed = 0;
  std::uint64_t rejected = 0;
  std::uint64_t cancelled = 0;
  bool stopping = false;
};

namespace {

// Resumes the awaiting coroutine on its own executor. Never inline: the
// caller may be a cancellation slot handler, which the resumed coroutine
// would destroy while it runs.
//
// The executor is work-tracked while we post: asio's post signals the
// io_context after it unlocks its queue, so without the count the completion
// could run, let the io_context's run() return and the io_context be
// destroyed while this thread still signals it.
void complete(std::shared_ptr<offload_job_state> job, std::exception_ptr e) {
  auto ex = asio::prefer(job->ex, asio::execution::outstanding_work.tracked);
  asio::post(ex, [job = std::move(job), e]() mutable {
    auto h = std::move(*job->handler);
    job->handler.reset();
    std::move(h)(e);
  });
}

std::exception_ptr aborted() {
  return std::make_exception_ptr(boost::system::system_error(asio::error::operation_aborted));
}

void worker_loop(std::shared_ptr<offload_state> st) {
  in_offload_worker = true;
  for (;;) {
    std::shared_ptr<offload_job_state> job;
    {
      std::unique_lock lock(st->mutex);
      st->wake.wait(lock, [&] { return st->stopping || !st->queue.empty(); });
      if (st->stopping) return;
      job = std::move(st->queue.front());
      st->queue.pop_front();
      job->status = job_status::running;
      ++st->running;
    }
    job->work.call(job->work.self, job->stop.get_token());
    {
      std::lock_guard lock(st->mutex);
      job->status = job_status::finished;
      --st->running;
      ++st->completed;
    }
    complete(std::move(job), nullptr);
  }
}

// Installed on the awaiting coroutine's cancellation slot; runs on that
// coroutine's thread. The job outlives it: the slot is cleared when the
// handler runs, and the posted completion holds the job until then.
struct offload_canceller {
  std::shared_ptr<offload_state> st;
  offload_job_state* job;

  void operator()(asio::cancellation_type) const {
    std::shared_ptr<offload_job_state> removed;
    {
      std::lock_guard lock(st->mutex);
      if (job->status == job_status::queued) {
        auto it = std::find_if(st->queue.begin(), st->queue.end(),
                               [&](auto const& j) { return j.get() == job; });
        if (it != st->queue.end()) {
          removed = std::move(*it);
          st->queue.erase(it);
          removed->status = job_status::finished;
          ++st->cancelled;
        }
      } else if (job->status == job_status::running) {
        job->stop.request_stop();
      }
    }
    if (removed) complete(std::move(removed), aborted());
  }
};

template <class Handler>
void submit(std::shared_ptr<offload_state> const& st, offload_work work, Handler&& handler) {
  auto slot = asio::get_associated_cancellation_slot(handler);
  auto job = std::make_shared<offload_job_state>(
      offload_job_state{work, asio::get_associated_executor(handler), {}, {}, job_status::queued});
  job->handler.emplace(std::forward<Handler>(handler));
  std::unique_lock lock(st->mutex);
  if (st->stopping || st->queue.size() >= st->queue_limit + (st->threads.size() - st->running)) {
    // Idle workers take jobs at once: only jobs beyond them count as queued.
    bool stopping = st->stopping;
    ++st->rejected;
    auto limit = st->queue_limit;
    job->status = job_status::finished;
    lock.unlock();
    complete(std::move(job),
             std::make_exception_ptr(offload_rejected(
                 stopping ? std::string("the offload pool is shutting down")
                          : "the offload queue is full (" + std::to_string(limit) + " jobs waiting)")));
    return;
  }
  if (slot.is_connected()) slot.template emplace<offload_canceller>(offload_canceller{st, job.get()});
  st->queue.push_back(std::move(job));
  lock.unlock();
  st->wake.notify_one();
}

}  // namespace
}  // namespace detail

offload_pool::offload_pool(std::size_t threads, std::size_t queue_limit)
    : state_(std::make_shared<detail::offload_state>()) {
  state_->queue_limit = queue_limit;
  grow(std::max<std::size_t>(threads, 1));
}

offload_pool::~offload_pool() {
  std::deque<std::shared_ptr<detail::offload_job_state>> left;
  std::vector<std::thread> threads;
  {
    std::lock_guard lock(state_->mutex);
    state_->stopping = true;
    left.swap(state_->queue);
    for (auto& j : left) j->status = detail::job_status::finished;
    state_->cancelled += left.size();
    threads.swap(state_->threads);
  }
  state_->wake.notify_all();
  for (auto& j : left) detail::complete(std::move(j), detail::aborted());
  for (auto& t : threads) t.join();
}

void offload_pool::grow(std::size_t threads) {
  std::lock_guard lock(state_->mutex);
  while (state_->threads.size() < threads) {
    state_->threads.emplace_back(detail::worker_loop, state_);
  }
}

task<void> offload_pool::execute(detail::offload_work w) {
  auto st = state_;
  // A named closure (g++ 12: a capturing lambda temporary inside co_await is
  // destroyed twice).
  auto init = [st, w](auto handler) { detail::submit(st, w, std::move(handler)); };
  co_await asio::async_initiate<use_task_t const&, void(std::exception_ptr)>(init, use_task);
}

offload_stats offload_pool::stats() const {
  std::lock_guard lock(state_->mutex);
  offload_stats s;
  s.threads = state_->threads.size();
  s.queue_limit = state_->queue_limit;
  s.queued = state_->queue.size();
  s.running = state_->running;
  s.completed = state_->completed;
  s.rejected = state_->rejected;
  s.cancelled = state_->cancelled;
  return s;
}

namespace {

struct global_settings {
  std::mutex mutex;
  std::size_t threads = 4;
  std::size_t queue_limit = 1024;
  offload_pool* pool = nullptr;  // never destroyed: callers may await it until exit
};

global_settings& globals() {
  static global_settings g;
  return g;
}

}  // namespace

offload_pool& offload_pool::global() {
  auto& g = globals();
  std::lock_guard lock(g.mutex);
  if (!g.pool) g.pool = new offload_pool(g.threads, g.queue_limit);
  return *g.pool;
}

void offload_pool::configure(std::size_t threads, std::size_t queue_limit) {
  auto& g = globals();
  std::lock_guard lock(g.mutex);
  g.threads = std::max<std::size_t>(threads, 1);
  g.queue_limit = queue_limit;
  if (!g.pool) return;
  {
    std::lock_guard plock(g.pool->state_->mutex);
    g.pool->state_->queue_limit = queue_limit;
  }
  g.pool->grow(g.threads);
}

bool offload_pool::on_worker_thread() noexcept { return detail::in_offload_worker; }

}  // namespace keel
