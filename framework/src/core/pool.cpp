#include <keel/pool.hpp>
#include <keel/task_scope.hpp>

#include <keel/log.hpp>
#include <keel/metrics.hpp>

#include "core/event.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/execution/outstanding_work.hpp>
#include <boost/asio/prefer.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/system/system_error.hpp>

#include <algorithm>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

namespace keel::detail {

namespace {

using std::chrono::milliseconds;

enum class wait_result { pending, granted, create, retry, timeout, cancelled, closed };

double seconds_between(clock::time_point a, clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

// The process-wide housekeeping thread: its own io_context, so pools never
// keep a server's I/O threads from finishing. Never destroyed (pools may be
// destroyed during static destruction).
struct housekeeper {
  asio::io_context ioc{1};
  asio::executor_work_guard<executor> guard{ioc.get_executor()};
  std::thread thread{[this] {
    for (;;) {
      try {
        ioc.run();
        return;
      } catch (std::exception const& e) {
        log::error("pool housekeeping failed", {{"error", e.what()}});
      }
    }
  }};
};

executor housekeeping_executor() {
  static housekeeper* h = new housekeeper;
  return h->ioc.get_executor();
}

struct pool_metrics {
  metrics::gauge* idle = nullptr;
  metrics::gauge* in_use = nullptr;
  metrics::gauge* waiters = nullptr;
  metrics::counter* timeouts = nullptr;
  metrics::counter* created = nullptr;
  metrics::counter* destroyed = nullptr;
  metrics::histogram* wait = nullptr;
};

}  // namespace

// An acquire waiting in the queue. Its outcome is decided under the core's
// mutex on whichever thread frees a resource, and `decided` is notified on the
// waiter's own executor (posted there).
struct pool_waiter {
  explicit pool_waiter(executor const& e) : ex(e), decided(e), timer(e) {}
  executor ex;
  event decided;       // on ex only
  steady_timer timer;  // on ex only: when it looks again by itself (backoff end, deadline)
  // Under the core's mutex:
  wait_result result = wait_result::pending;
  pool_entry* entry = nullptr;  // with granted
};

class pool_core : public std::enable_shared_from_this<pool_core> {
 public:
  pool_core(pool_limits l, std::unique_ptr<pool_hooks> h) : lim(std::move(l)), hooks(std::move(h)) {
    if (lim.max_size == 0) throw std::invalid_argument("keel::pool: max_size must be at least 1");
    if (lim.min_idle > lim.max_size)
      throw std::invalid_argument("keel::pool: min_idle must not exceed max_size");
    if (!lim.metrics_name.empty()) {
      auto& reg = metrics::global();
      auto const& n = lim.metrics_name;
      auto res = reg.add_gauge_family("keel_pool_resources", "Pooled resources, by state.", {"pool", "state"});
      met.idle = &res.labels({n, "idle"});
      met.in_use = &res.labels({n, "in_use"});
      met.waiters = &reg.add_gauge_family("keel_pool_waiters", "Acquires waiting for a resource.", {"pool"})
                         .labels({n});
      met.timeouts = &reg.add_counter_family("keel_pool_timeouts_total",
                                             "Acquires that hit the acquire timeout.", {"pool"})
                          .labels({n});
      met.created = &reg.add_counter_family("keel_pool_created_total", "Resources created.", {"pool"})
                         .labels({n});
      met.destroyed =
          &reg.add_counter_family("keel_pool_destroyed_total", "Resources destroyed.", {"pool"}).labels({n});
      met.wait = &reg.add_histogram_family("keel_pool_acquire_wait_seconds",
                                           "Time from acquire to lease.",
                                           {0.0001, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5}, {"pool"})
                      .labels({n});
    }
  }

  ~pool_core() {
    for (auto* e : idle) destroy_now(e);
  }

  pool_limits const lim;
  std::unique_ptr<pool_hooks> const hooks;

  mutable std::mutex m;
  std::vector<pool_entry*> idle;  // back: most recently returned
  std::deque<std::shared_ptr<pool_waiter>> waiters;
  std::size_t in_use = 0;
  std::size_t creating = 0;
  std::uint64_t acquired = 0, timeouts = 0, cancelled = 0, created = 0, destroyed = 0;
  std::uint64_t create_failures = 0, health_failures = 0;
  double wait_sum = 0, wait_max = 0;
  unsigned failures = 0;  // consecutive factory failures
  clock::time_point next_attempt{};
  std::string last_error;
  bool closed = false;
  bool housekeeping = false;
  pool_metrics met;
  // The housekeeping loop, owned here: the pool's end cancels it.
  task_scope tasks;
  // pool_shutdown's waiters, told (a notify posted to their executors) when,
  // after close(), the last lease or creation ends.
  std::vector<std::shared_ptr<pool_waiter>> drain_waiters;

  // Completions decided under the lock, posted after it.
  using wake_list = std::vector<std::shared_ptr<pool_waiter>>;
  using doomed_list = std::vector<pool_entry*>;

  std::size_t size() const { return idle.size() + in_use + creating; }

  bool expired(pool_entry const* e, clock::time_point now) const {
    if (lim.max_lifetime.count() > 0 && now - e->created >= lim.max_lifetime) return true;
    if (lim.max_idle_time.count() > 0 && now - e->last_used >= lim.max_idle_time) return true;
    return false;
  }
  bool too_old(pool_entry const* e, clock::time_point now) const {
    return lim.max_lifetime.count() > 0 && now - e->created >= lim.max_lifetime;
  }
  bool in_backoff(clock::time_point now) const { return now < next_attempt; }

  void publish() {
    if (!met.idle) return;
    met.idle->set(static_cast<double>(idle.size()));
    met.in_use->set(static_cast<double>(in_use));
    met.waiters->set(static_cast<double>(waiters.size()));
  }

  void destroy_now(pool_entry* e) noexcept {
    hooks->destroy(e->object);
    delete e;
  }

  void destroy_all(doomed_list& doomed) noexcept {
    for (auto* e : doomed) destroy_now(e);
    doomed.clear();
  }

  // Under the lock: `n` resources leave the pool for good.
  void count_destroyed(std::size_t n) {
    destroyed += n;
    if (met.destroyed) met.destroyed->inc(n);
  }

  // Under the lock: decides `w`'s outcome and takes it off the queue.
  void decide(std::shared_ptr<pool_waiter> const& w, wait_result r, wake_list& wake, pool_entry* e = nullptr) {
    w->result = r;
    w->entry = e;
    if (r == wait_result::create) ++creating;
    wake.push_back(w);
  }

  // Under the lock: something changed (a resource came back, a slot freed, a
  // backoff ended): serve the oldest waiter if we can.
  void serve_waiters(clock::time_point now, wake_list& wake) {
    while (!waiters.empty()) {
      if (closed) {
        auto w = std::move(waiters.front());
        waiters.pop_front();
        decide(w, wait_result::closed, wake);
        continue;
      }
      if (!idle.empty()) {
        auto* e = idle.back();
        idle.pop_back();
        ++in_use;
        auto w = std::move(waiters.front());
        waiters.pop_front();
        decide(w, wait_result::granted, wake, e);
        continue;
      }
      if (size() < lim.max_size && !in_backoff(now)) {
        auto w = std::move(waiters.front());
        waiters.pop_front();
        decide(w, wait_result::create, wake);
        continue;
      }
      break;
    }
    note_drained(wake);
    publish();
  }

  // Under the lock: a lease or creation may have ended (any thread). Once the
  // pool is closed and none is left, pool_shutdown's waiters are told.
  void note_drained(wake_list& wake) {
    if (!closed || in_use + creating != 0 || drain_waiters.empty()) return;
    for (auto& w : drain_waiters) wake.push_back(std::move(w));
    drain_waiters.clear();
  }

  // Tells the waiters on their executors that their outcome is decided. A
  // waiter not waiting yet misses nothing: it looks at its outcome under the
  // lock before it waits, on that same executor. Work-tracked while posting,
  // as in offload.cpp: the io_context must not finish while this thread signals it.
  static void post_completions(wake_list& wake) {
    for (auto& w : wake) {
      auto ex = asio::prefer(w->ex, asio::execution::outstanding_work.tracked);
      asio::post(ex, [w = std::move(w)] { w->decided.notify_all(); });
    }
    wake.clear();
  }

  // Gives a resource back (or destroys it). Any thread.
  void release(pool_entry* e, bool reuse, bool touch) noexcept {
    wake_list wake;
    doomed_list doomed;
    {
      std::lock_guard lock(m);
      auto now = clock::now();
      --in_use;
      if (touch) e->last_used = now;
      if (!reuse || closed || too_old(e, now)) {
        doomed.push_back(e);
        count_destroyed(1);
      } else {
        idle.push_back(e);
      }
      serve_waiters(now, wake);
    }
    destroy_all(doomed);
    post_completions(wake);
  }

  // A factory call reserved with ++creating ended with `e` (or failed: null).
  // Returns false when the pool closed meanwhile (e is then destroyed).
  bool created_one(pool_entry* e, std::exception_ptr const& err, bool for_caller) {
    wake_list wake;
    doomed_list doomed;
    bool kept = true;
    std::string why;
    unsigned failed_times = 0;
    if (!e) {
      try {
        if (err) std::rethrow_exception(err);
        why = "the factory returned nothing";
      } catch (std::exception const& x) {
        why = x.what();
      } catch (...) {
        why = "unknown exception";
      }
    }
    {
      std::lock_guard lock(m);
      auto now = clock::now();
      --creating;
      if (e) {
        ++created;
        if (met.created) met.created->inc();
        failures = 0;
        next_attempt = {};
        if (closed) {
          doomed.push_back(e);
          count_destroyed(1);
          kept = false;
        } else if (for_caller) {
          ++in_use;
        } else {
          idle.push_back(e);
        }
      } else {
        ++create_failures;
        ++failures;
        failed_times = failures;
        auto shift = std::min(failures - 1, 20u);
        auto backoff = std::min<milliseconds>(lim.backoff_cap, lim.backoff_base * (1LL << shift));
        next_attempt = now + backoff;
        last_error = why;
      }
      serve_waiters(now, wake);
    }
    if (!e) {
      log::warn("pool factory failed", {{"pool", lim.metrics_name}, {"error", why}, {"failures", failed_times}});
    }
    destroy_all(doomed);
    post_completions(wake);
    return kept;
  }

  // A reserved factory call that will not happen.
  void unreserve() {
    wake_list wake;
    {
      std::lock_guard lock(m);
      --creating;
      serve_waiters(clock::now(), wake);
    }
    post_completions(wake);
  }

  // A checked resource failed its health check.
  void health_failed(pool_entry* e) {
    {
      std::lock_guard lock(m);
      ++health_failures;
    }
    release(e, false, false);
  }

  // Counts a timeout and says why it happened.
  std::string timed_out() {
    wake_list wake;
    std::string detail;
    {
      std::lock_guard lock(m);
      ++timeouts;
      if (met.timeouts) met.timeouts->inc();
      detail = "no pooled resource within " + std::to_string(lim.acquire_timeout.count()) + " ms (" +
               std::to_string(in_use) + " in use of " + std::to_string(lim.max_size) + ")";
      if (failures > 0 && !last_error.empty()) detail += "; last factory error: " + last_error;
      serve_waiters(clock::now(), wake);
    }
    post_completions(wake);
    return detail;
  }

  // A waiter whose coroutine failed before it could look at its outcome.
  void abandon(std::shared_ptr<pool_waiter> const& w) noexcept {
    wake_list wake;
    pool_entry* back = nullptr;
    {
      std::lock_guard lock(m);
      switch (w->result) {
        case wait_result::pending: {
          auto it = std::find(waiters.begin(), waiters.end(), w);
          if (it != waiters.end()) waiters.erase(it);
          w->result = wait_result::cancelled;
          ++cancelled;
          break;
        }
        case wait_result::granted:
          back = std::exchange(w->entry, nullptr);
          break;
        case wait_result::create:
          --creating;
          break;
        default:
          break;
      }
      serve_waiters(clock::now(), wake);
    }
    if (back) release(back, true, false);
    post_completions(wake);
  }

  void record_acquired(clock::time_point t0) {
    auto waited = seconds_between(t0, clock::now());
    std::lock_guard lock(m);
    ++acquired;
    wait_sum += waited;
    wait_max = std::max(wait_max, waited);
    if (met.wait) met.wait->observe(waited);
  }

  void close() noexcept {
    wake_list wake;
    doomed_list doomed;
    {
      std::lock_guard lock(m);
      if (closed) return;
      closed = true;
      doomed.swap(idle);
      count_destroyed(doomed.size());
      serve_waiters(clock::now(), wake);
    }
    destroy_all(doomed);
    post_completions(wake);
  }

  void start_housekeeping();
};

namespace {


// What an acquire does next, as one look at the pool (or its turn in the
// queue) decided.
struct turn {
  enum class step { take, granted, create, wait, look_again } what = step::look_again;
  pool_entry* entry = nullptr;          // take, granted
  std::shared_ptr<pool_waiter> waiter;  // wait
  clock::time_point wake_at;            // wait: when it looks again by itself
};

// One look under the lock: the most recently returned idle resource that has
// not expired (the expired ones go), else a creation reserved (++creating)
// when there is room and nobody queued before us, else a place in the queue.
turn look(pool_core& c, executor const& ex, bool first_in_line, clock::time_point deadline) {
  turn t;
  pool_core::doomed_list doomed;
  {
    std::lock_guard lock(c.m);
    if (c.closed) throw pool_closed("the pool is shutting down");
    auto now = clock::now();
    while (!c.idle.empty() && !t.entry) {
      auto* cand = c.idle.back();
      c.idle.pop_back();
      if (c.expired(cand, now)) doomed.push_back(cand);
      else t.entry = cand;
    }
    c.count_destroyed(doomed.size());
    if (t.entry) {
      ++c.in_use;
      t.what = turn::step::take;
    } else if (c.size() < c.lim.max_size && !c.in_backoff(now) && (c.waiters.empty() || first_in_line)) {
      ++c.creating;
      t.what = turn::step::create;
    } else {
      t.what = turn::step::wait;
      t.waiter = std::make_shared<pool_waiter>(ex);
      if (first_in_line) c.waiters.push_front(t.waiter);
      else c.waiters.push_back(t.waiter);
      // Nobody wakes a waiter when a backoff ends: it looks again by itself.
      t.wake_at = deadline;
      if (c.size() < c.lim.max_size && c.in_backoff(now)) t.wake_at = std::min(deadline, c.next_attempt);
    }
    c.publish();
  }
  c.destroy_all(doomed);
  return t;
}

// The waiter's own deadline passed while it was still queued: it leaves the
// queue to look again (or to time out: the caller tells which by its deadline).
void wake_up_by_itself(std::shared_ptr<pool_core> const& core, std::shared_ptr<pool_waiter> const& w) {
  pool_core::wake_list wake;
  {
    std::lock_guard lock(core->m);
    if (w->result != wait_result::pending) return;
    auto it = std::find(core->waiters.begin(), core->waiters.end(), w);
    if (it != core->waiters.end()) core->waiters.erase(it);
    core->decide(w, wait_result::retry, wake);
    core->publish();
  }
  pool_core::post_completions(wake);
}

// The waiting acquire was cancelled: it leaves the queue unless its outcome
// was decided first (then it takes that outcome, as if woken a moment sooner).
void give_up(pool_core& c, std::shared_ptr<pool_waiter> const& w) {
  std::lock_guard lock(c.m);
  if (w->result != wait_result::pending) return;
  auto it = std::find(c.waiters.begin(), c.waiters.end(), w);
  if (it != c.waiters.end()) c.waiters.erase(it);
  w->result = wait_result::cancelled;
  ++c.cancelled;
  c.publish();
}

wait_result outcome(pool_core& c, pool_waiter const& w) {
  std::lock_guard lock(c.m);
  return w.result;
}

// Waits, queued, until its outcome is decided. The look at the outcome and the
// start of the wait have no suspension between them, and the notification is
// posted to this executor, so it cannot come before the wait.
task<wait_result> wait_decided(std::shared_ptr<pool_core> core, std::shared_ptr<pool_waiter> w,
                               clock::time_point wake_at) {
  struct stop_timer {
    steady_timer& t;
    ~stop_timer() { t.cancel(); }
  } stop{w->timer};
  if (wake_at != clock::time_point::max()) {
    w->timer.expires_at(wake_at);
    w->timer.async_wait([core, w](boost::system::error_code ec) {
      if (!ec) wake_up_by_itself(core, w);
    });
  }
  for (;;) {
    auto r = outcome(*core, *w);
    if (r != wait_result::pending) co_return r;
    auto [ec] = co_await w->decided.async_wait(tuple_task);
    if (ec) give_up(*core, w);
  }
}

// A queued acquire's turn: what to do next, or the reason it ends (thrown).
task<turn> wait_turn(std::shared_ptr<pool_core> core, std::shared_ptr<pool_waiter> w, clock::time_point wake_at,
                     clock::time_point deadline) {
  auto& c = *core;
  std::exception_ptr failed;
  wait_result r = wait_result::pending;
  try {
    r = co_await wait_decided(core, w, wake_at);
  } catch (...) {
    // Cancelled before the wait began: leave the queue (or undo its outcome).
    failed = std::current_exception();
  }
  if (failed) {
    c.abandon(w);
    std::rethrow_exception(failed);
  }
  turn next;
  switch (r) {
    case wait_result::granted:
      next.what = turn::step::granted;
      next.entry = std::exchange(w->entry, nullptr);
      co_return next;
    case wait_result::create:
      next.what = turn::step::create;
      co_return next;
    case wait_result::retry:
      if (clock::now() < deadline) co_return next;  // look_again
      throw pool_timeout(c.timed_out());
    case wait_result::cancelled:
      throw boost::system::system_error(asio::error::operation_aborted);
    case wait_result::closed:
      throw pool_closed("the pool is shutting down");
    default:
      throw std::logic_error("keel::pool: waiter resumed without an outcome");
  }
}

bool cancelled_now(asio::cancellation_state const& st) {
  return st.cancelled() != asio::cancellation_type::none;
}

// An idle resource taken: checked first when it sat idle long enough. False
// when it failed the check (it is destroyed then).
task<bool> passes_health_check(std::shared_ptr<pool_core> core, pool_entry* e) {
  auto& c = *core;
  if (!c.hooks->has_health_check() || clock::now() - e->last_used < c.lim.health_check_after) co_return true;
  bool ok = false;
  try {
    ok = co_await c.hooks->healthy(e->object);
  } catch (...) {
    ok = false;
  }
  auto st = co_await asio::this_coro::cancellation_state;
  if (cancelled_now(st)) {
    // Our caller gave up: the check's verdict may be the cancellation's.
    c.release(e, true, false);
    throw boost::system::system_error(asio::error::operation_aborted);
  }
  if (!ok) {
    c.health_failed(e);
    co_return false;
  }
  e->last_checked = clock::now();
  co_return true;
}

// Runs the factory for a creation reserved for this caller (++creating): the
// new resource, or null when the factory failed (a backoff has begun).
task<pool_entry*> create_for_caller(std::shared_ptr<pool_core> core) {
  auto& c = *core;
  pool_entry* made = nullptr;
  std::exception_ptr err;
  try {
    void* obj = co_await c.hooks->create();
    auto now = clock::now();
    made = new pool_entry{obj, now, now, now};
  } catch (...) {
    err = std::current_exception();
  }
  auto st = co_await asio::this_coro::cancellation_state;
  if (!made && cancelled_now(st)) {
    // Our caller gave up; that is no reason to back off.
    c.unreserve();
    std::rethrow_exception(err);
  }
  if (!c.created_one(made, err, true)) throw pool_closed("the pool is shutting down");
  co_return made;
}

}  // namespace

std::shared_ptr<pool_core> make_pool_core(pool_limits limits, std::unique_ptr<pool_hooks> hooks) {
  auto core = std::make_shared<pool_core>(std::move(limits), std::move(hooks));
  core->start_housekeeping();
  return core;
}

task<pool_entry*> pool_acquire(std::shared_ptr<pool_core> core) {
  auto& c = *core;
  auto const ex = co_await asio::this_coro::executor;
  auto const t0 = clock::now();
  auto const deadline = c.lim.acquire_timeout.count() > 0 ? t0 + c.lim.acquire_timeout
                                                          : clock::time_point::max();
  bool first_in_line = false;  // served before: a retry keeps its place
  for (;;) {
    auto next = look(c, ex, first_in_line, deadline);
    if (next.what == turn::step::wait) next = co_await wait_turn(core, next.waiter, next.wake_at, deadline);
    switch (next.what) {
      case turn::step::granted:  // handed over by a release: it was just in use
        c.record_acquired(t0);
        co_return next.entry;
      case turn::step::take:
        if (co_await passes_health_check(core, next.entry)) {
          c.record_acquired(t0);
          co_return next.entry;
        }
        break;  // that one is gone: look again
      case turn::step::create:
        if (auto* made = co_await create_for_caller(core)) {
          c.record_acquired(t0);
          co_return made;
        }
        first_in_line = true;  // the factory failed: wait at the front for the backoff
        break;
      default:  // its own deadline woke it before the acquire timeout
        first_in_line = true;
        break;
    }
  }
}

void pool_release(pool_core& core, pool_entry* entry, bool reuse) noexcept {
  core.release(entry, reuse, true);
}

pool_stats pool_get_stats(pool_core const& c) {
  std::lock_guard lock(c.m);
  pool_stats s;
  s.size = c.size();
  s.idle = c.idle.size();
  s.in_use = c.in_use;
  s.creating = c.creating;
  s.waiters = c.waiters.size();
  s.acquired = c.acquired;
  s.timeouts = c.timeouts;
  s.cancelled = c.cancelled;
  s.created = c.created;
  s.destroyed = c.destroyed;
  s.create_failures = c.create_failures;
  s.health_check_failures = c.health_failures;
  s.wait_seconds_sum = c.wait_sum;
  s.wait_seconds_max = c.wait_max;
  return s;
}

void pool_close(pool_core& core) noexcept { core.close(); }

// Waits for the last lease to end, not by looking every few milliseconds: the
// release (on any thread) that leaves none out posts a notify to this
// executor (note_drained). The grace period's end notifies the same event.
task<std::size_t> pool_shutdown(std::shared_ptr<pool_core> core, std::chrono::milliseconds grace) {
  core->close();
  auto w = std::make_shared<pool_waiter>(co_await asio::this_coro::executor);
  auto until = clock::now() + grace;
  struct leave {
    pool_core& c;
    std::shared_ptr<pool_waiter> const& w;
    ~leave() {
      w->timer.cancel();
      std::lock_guard lock(c.m);
      std::erase(c.drain_waiters, w);
    }
  } done{*core, w};
  w->timer.expires_at(until);
  w->timer.async_wait([w](boost::system::error_code ec) {
    if (!ec) w->decided.notify_all();
  });
  for (;;) {
    std::size_t out;
    {
      std::lock_guard lock(core->m);
      out = core->in_use + core->creating;
      if (out != 0 && std::find(core->drain_waiters.begin(), core->drain_waiters.end(), w) ==
                          core->drain_waiters.end())
        core->drain_waiters.push_back(w);
    }
    if (out == 0 || clock::now() >= until) co_return out;
    auto [ec] = co_await w->decided.async_wait(tuple_task);
    if (ec) throw boost::system::system_error(ec);
  }
}

namespace {

// One look at the pool: evict, check, top up, serve waiters after a backoff.
task<void> housekeep_once(std::shared_ptr<pool_core> core) {
  auto& c = *core;
  pool_core::doomed_list doomed;
  std::vector<pool_entry*> to_check;
  std::size_t to_create = 0;
  pool_core::wake_list wake;
  auto now = clock::now();
  {
    std::lock_guard lock(c.m);
    if (c.closed) co_return;
    std::vector<pool_entry*> keep;
    for (auto* e : c.idle) {
      if (c.expired(e, now)) {
        doomed.push_back(e);
      } else if (c.hooks->has_health_check() && c.lim.health_check_interval.count() > 0 &&
                 now - e->last_checked >= c.lim.health_check_interval) {
        to_check.push_back(e);
      } else {
        keep.push_back(e);
      }
    }
    c.idle.swap(keep);
    c.count_destroyed(doomed.size());
    c.in_use += to_check.size();  // out of reach while checked
    if (!c.in_backoff(now)) {
      auto ready = c.idle.size() + c.creating;
      auto room = c.lim.max_size - std::min(c.lim.max_size, c.size());
      if (ready < c.lim.min_idle) to_create = std::min(c.lim.min_idle - ready, room);
      c.creating += to_create;
    }
    c.serve_waiters(now, wake);
  }
  c.destroy_all(doomed);
  pool_core::post_completions(wake);

  for (auto* e : to_check) {
    bool ok = false;
    try {
      ok = co_await c.hooks->healthy(e->object);
    } catch (...) {
      ok = false;
    }
    if (ok) {
      e->last_checked = clock::now();
    } else {
      std::lock_guard lock(c.m);
      ++c.health_failures;
    }
    c.release(e, ok, false);
  }
  for (std::size_t i = 0; i < to_create; ++i) {
    pool_entry* made = nullptr;
    std::exception_ptr err;
    try {
      void* obj = co_await c.hooks->create();
      auto t = clock::now();
      made = new pool_entry{obj, t, t, t};
    } catch (...) {
      err = std::current_exception();
    }
    c.created_one(made, err, false);
    if (!made) {
      // The failure set a backoff: the rest waits for the next look.
      pool_core::wake_list wake;
      {
        std::lock_guard lock(c.m);
        c.creating -= to_create - i - 1;
        c.note_drained(wake);
      }
      pool_core::post_completions(wake);
      break;
    }
  }
}

task<void> housekeeping_loop(std::weak_ptr<pool_core> weak, std::chrono::milliseconds every) {
  steady_timer timer(co_await asio::this_coro::executor);
  for (;;) {
    {
      auto core = weak.lock();
      if (!core) co_return;
      {
        std::lock_guard lock(core->m);
        if (core->closed) co_return;
      }
      co_await housekeep_once(core);
    }
    timer.expires_after(every);
    co_await timer.async_wait(use_task);
  }
}

}  // namespace

void pool_core::start_housekeeping() {
  // Always on: besides eviction and min_idle it serves waiters once a
  // factory backoff ends, which nothing else would.
  if (housekeeping) return;
  housekeeping = true;
  auto every = std::max(lim.housekeeping_interval, std::chrono::milliseconds(1));
  tasks.spawn(housekeeping_executor(), housekeeping_loop(weak_from_this(), every), "pool housekeeping");
}

}  // namespace keel::detail
