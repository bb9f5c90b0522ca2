#pragma once
// keel::pool<T>: a generic asynchronous pool of resources (database
// connections, upstream sessions) shared by coroutines on any thread.
//
//   keel::pool_options<db_conn> o;
//   o.max_size = 8;
//   o.factory = keel::offloaded([path] { return db_conn::open(path); });  // blocking open
//   o.health_check = [](db_conn& c) -> keel::task<bool> { co_return c.ping(); };
//   keel::pool<db_conn> dbs(std::move(o));
//
//   keel::task<keel::response> show(keel::context& ctx) {
//     auto conn = co_await dbs.acquire();          // a lease: RAII, move-only
//     auto read = [&] { return conn->find(ctx.param("id")); };
//     auto row = co_await keel::offload(read);    // name the closure first (g++ 12)
//     ...                                         // the lease gives it back on every path
//   }
//
// Behaviour:
//  - acquire() hands out an idle resource (the most recently returned one),
//    else creates one while fewer than max_size exist, else waits. Waiters are
//    served first come, first served: a returned resource goes to the oldest
//    waiter. A waiter whose coroutine is cancelled (the request's deadline, its
//    client gone: cancellation on the awaiting coroutine's slot) leaves the
//    queue at once and the await throws system_error(operation_aborted).
//  - A wait longer than acquire_timeout throws keel::pool_timeout (a 503
//    http_error) and is counted in stats().timeouts.
//  - The lease gives the resource back when it is destroyed, on every path:
//    return, exception, cancellation. lease.invalidate() marks it broken: it
//    is destroyed instead of reused, and its slot frees for a new one.
//  - Resources older than max_lifetime are destroyed when they come back or
//    are found idle; resources idle longer than max_idle_time are destroyed;
//    then min_idle resources are created ahead. Before handing out one that
//    has been idle at least health_check_after, and every
//    health_check_interval for idle ones, health_check runs; a resource that
//    fails it (false or an exception) is destroyed.
//  - The factory is a coroutine. A failure (an exception) backs off:
//    backoff_base, doubled per consecutive failure up to backoff_cap, before
//    anyone calls it again; waiters keep waiting (up to their timeout, whose
//    error then carries the factory's last message). Blocking constructors go
//    through keel::offloaded(fn), which runs fn on the offload pool.
//  - Housekeeping (eviction, min_idle, periodic health checks, retries after
//    a backoff) runs on one process-wide housekeeping thread, so a pool never
//    keeps a server's I/O threads alive; the factory and health check may run
//    there too.
//  - The destructor refuses new acquires (keel::pool_closed), fails the
//    waiters with pool_closed and destroys idle resources; leases still out
//    stay valid and destroy their resource when they end. shutdown() does the
//    same and first waits a bounded time for the leases to come back.
//
// Thread safety: every member of pool and the leases may be used from any
// thread and any executor; waiters are resumed on their own executor. T itself
// is used by one lease holder at a time. Resources are destroyed on the thread
// that gives them back or finds them expired (an I/O thread, the housekeeping
// thread): keep ~T short, or close blocking handles through offload first.
#include <keel/error.hpp>
#include <keel/net.hpp>
#include <keel/offload.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>

namespace keel {

/// acquire() waited acquire_timeout: 503 with Retry-After: 1.
class pool_timeout : public http_error {
 public:
  explicit pool_timeout(std::string const& detail) : http_error(503, detail) {
    with_header("Retry-After", "1");
  }
};

/// acquire() on a pool that is shutting down: 503.
class pool_closed : public http_error {
 public:
  explicit pool_closed(std::string const& detail) : http_error(503, detail) {}
};

/// A snapshot of a pool's counters.
struct pool_stats {
  std::size_t size = 0;      ///< resources that exist: idle + in_use + creating
  std::size_t idle = 0;      ///< ready to hand out
  std::size_t in_use = 0;    ///< leased (or being health-checked)
  std::size_t creating = 0;  ///< factory calls running
  std::size_t waiters = 0;   ///< acquires waiting now
  std::uint64_t acquired = 0;         ///< leases handed out
  std::uint64_t timeouts = 0;         ///< acquires that hit acquire_timeout
  std::uint64_t cancelled = 0;        ///< waiting acquires cancelled
  std::uint64_t created = 0;          ///< factory successes
  std::uint64_t destroyed = 0;        ///< resources destroyed, for any reason
  std::uint64_t create_failures = 0;  ///< factory exceptions
  std::uint64_t health_check_failures = 0;
  double wait_seconds_sum = 0;        ///< time acquires spent before getting a lease
  double wait_seconds_max = 0;
};

/// The settings of a pool that do not depend on T.
struct pool_limits {
  std::size_t max_size = 10;
  std::size_t min_idle = 0;  ///< created ahead by housekeeping
  std::chrono::milliseconds max_idle_time{std::chrono::minutes(10)};  ///< 0: never evicted
  std::chrono::milliseconds max_lifetime{std::chrono::minutes(30)};   ///< 0: unlimited
  std::chrono::milliseconds acquire_timeout{std::chrono::seconds(5)};  ///< 0: wait forever
  /// Check a resource idle at least this long before handing it out (0: always).
  std::chrono::milliseconds health_check_after{std::chrono::seconds(30)};
  /// Check idle resources this often in housekeeping (0: never).
  std::chrono::milliseconds health_check_interval{std::chrono::seconds(60)};
  std::chrono::milliseconds backoff_base{100};
  std::chrono::milliseconds backoff_cap{std::chrono::seconds(10)};
  /// How often housekeeping looks at the pool.
  std::chrono::milliseconds housekeeping_interval{std::chrono::seconds(1)};
  /// When set, the pool feeds keel::metrics::global() with pool="<name>":
  /// keel_pool_resources{state="idle"|"in_use"}, keel_pool_waiters,
  /// keel_pool_timeouts_total, keel_pool_created_total,
  /// keel_pool_destroyed_total and keel_pool_acquire_wait_seconds.
  std::string metrics_name;
};

template <class T>
struct pool_options : pool_limits {
  /// Creates a resource; required. Throws to fail (backed off).
  std::function<task<T>()> factory;
  /// True when the resource is still usable; optional.
  std::function<task<bool>(T&)> health_check;
};

/// A factory that runs a blocking constructor `make()` on the offload pool.
template <class F>
std::function<task<detail::offload_result_t<F>>()> offloaded(F make) {
  using R = detail::offload_result_t<F>;
  return [make = std::move(make)]() -> task<R> {
    auto copy = make;
    co_return co_await offload(std::move(copy));
  };
}

namespace detail {

struct pool_entry {
  void* object = nullptr;
  clock::time_point created;
  clock::time_point last_used;
  clock::time_point last_checked;
};

// What pool<T> tells the type-erased core about T.
class pool_hooks {
 public:
  virtual ~pool_hooks() = default;
  virtual task<void*> create() = 0;
  virtual task<bool> healthy(void* object) = 0;
  virtual bool has_health_check() const noexcept = 0;
  virtual void destroy(void* object) noexcept = 0;
};

class pool_core;

std::shared_ptr<pool_core> make_pool_core(pool_limits limits, std::unique_ptr<pool_hooks> hooks);
task<pool_entry*> pool_acquire(std::shared_ptr<pool_core> core);
void pool_release(pool_core& core, pool_entry* entry, bool reuse) noexcept;
pool_stats pool_get_stats(pool_core const& core);
void pool_close(pool_core& core) noexcept;
task<std::size_t> pool_shutdown(std::shared_ptr<pool_core> core, std::chrono::milliseconds grace);

}  // namespace detail

template <class T>
class pool;

/// A resource on loan from a pool. Move-only; gives it back when destroyed.
template <class T>
class lease {
 public:
  lease() noexcept = default;
  lease(lease&& o) noexcept
      : core_(std::move(o.core_)), entry_(std::exchange(o.entry_, nullptr)), reuse_(o.reuse_) {}
  lease& operator=(lease&& o) noexcept {
    if (this != &o) {
      release();
      core_ = std::move(o.core_);
      entry_ = std::exchange(o.entry_, nullptr);
      reuse_ = o.reuse_;
    }
    return *this;
  }
  lease(lease const&) = delete;
  lease& operator=(lease const&) = delete;
  ~lease() { release(); }

  T& operator*() const noexcept { return *get(); }
  T* operator->() const noexcept { return get(); }
  T* get() const noexcept { return entry_ ? static_cast<T*>(entry_->object) : nullptr; }
  explicit operator bool() const noexcept { return entry_ != nullptr; }

  /// The resource is broken: destroy it instead of reusing it.
  void invalidate() noexcept { reuse_ = false; }
  /// Gives the resource back now (or destroys it when invalidated).
  void release() noexcept {
    if (entry_) detail::pool_release(*core_, std::exchange(entry_, nullptr), reuse_);
    core_.reset();
  }

 private:
  friend class pool<T>;
  lease(std::shared_ptr<detail::pool_core> core, detail::pool_entry* e) noexcept
      : core_(std::move(core)), entry_(e) {}

  std::shared_ptr<detail::pool_core> core_;
  detail::pool_entry* entry_ = nullptr;
  bool reuse_ = true;
};

template <class T>
class pool {
 public:
  /// Throws std::invalid_argument without a factory, with max_size 0 or
  /// min_idle above max_size.
  explicit pool(pool_options<T> opts) {
    if (!opts.factory) throw std::invalid_argument("keel::pool: a factory is required");
    pool_limits limits = opts;
    core_ = detail::make_pool_core(std::move(limits), std::make_unique<hooks>(std::move(opts)));
  }
  ~pool() {
    if (core_) detail::pool_close(*core_);
  }
  pool(pool const&) = delete;
  pool& operator=(pool const&) = delete;

  /// A lease on a resource; see the top of this file for waiting, timeout and
  /// cancellation.
  task<lease<T>> acquire() {
    auto core = core_;
    auto* e = co_await detail::pool_acquire(core);
    co_return lease<T>(std::move(core), e);
  }

  pool_stats stats() const { return detail::pool_get_stats(*core_); }

  /// Refuses new acquires, fails waiters, destroys idle resources, then waits
  /// up to `grace` for the leases still out. Returns how many were still out
  /// (they are destroyed when they come back).
  task<std::size_t> shutdown(std::chrono::milliseconds grace) {
    return detail::pool_shutdown(core_, grace);
  }

 private:
  struct hooks final : detail::pool_hooks {
    explicit hooks(pool_options<T> o) : opts(std::move(o)) {}
    task<void*> create() override {
      T made = co_await opts.factory();
      co_return new T(std::move(made));
    }
    task<bool> healthy(void* object) override {
      co_return co_await opts.health_check(*static_cast<T*>(object));
    }
    bool has_health_check() const noexcept override { return static_cast<bool>(opts.health_check); }
    void destroy(void* object) noexcept override { delete static_cast<T*>(object); }
    pool_options<T> opts;
  };

  std::shared_ptr<detail::pool_core> core_;
};

}  // namespace keel
