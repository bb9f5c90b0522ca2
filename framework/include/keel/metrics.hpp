#pragma once
// Process-wide metrics, rendered in the Prometheus text format 0.0.4.
//
//   auto& reg = keel::metrics::global();
//   auto& jobs = reg.add_counter("myapp_jobs_total", "Jobs run.");
//   jobs.inc();                                         // one relaxed atomic add
//
//   auto by_kind = reg.add_counter_family("myapp_events_total", "Events, by kind.", {"kind"});
//   by_kind.labels({"login"}).inc();                    // per-thread cache, then an atomic add
//
//   auto& lat = reg.add_histogram("myapp_query_seconds", "Query time.", {0.001, 0.01, 0.1, 1});
//   lat.observe(0.004);
//
//   auto src = reg.add_callback("myapp_queue_depth", "Jobs waiting.", keel::metrics::type::gauge,
//                               [&q] { return double(q.size()); });   // read at scrape time
//
// Cost model: a counter, gauge or histogram reference obtained once is a
// relaxed atomic operation per update: no lock, no allocation. labels() on a
// family looks the label values up in a per-thread cache first (no lock, no
// allocation once warm); only the first use of a label set on a process takes
// the family's mutex to create its series. Label values must come from a
// bounded set (a route *pattern*, never a raw path); where a value goes out of
// use for good (an http_client origin it forgot), remove_series() drops its
// series.
//
// Naming: `[a-zA-Z_:][a-zA-Z0-9_:]*`; counters end in `_total` (promtool's
// lint); label names `[a-zA-Z_][a-zA-Z0-9_]*`, not `le` on histograms. Adding a
// metric that exists with the same type and labels returns the existing one;
// a clash (other type, other labels, other buckets) throws std::invalid_argument.
//
// The series keel itself feeds (SPEC §3) are declared in global() from the
// start, so they always appear, at 0 until something happens:
//   keel_ws_messages_total{direction="in"|"out"}     ws_message_in(), ws_message_out()
//   keel_ws_dropped_total{reason=...}                ws_dropped(reason): connections the server closed
//   keel_ws_messages_dropped_total                   ws_message_dropped(): accepted, never written
//   keel_handler_exceptions_total                    handler_exception(): exceptions a handler let escape
// The HTTP series (keel_http_requests_total, keel_http_request_duration_seconds)
// belong to keel::mw::metrics(); the connection and log gauges are callbacks
// that keel::mw::expose_metrics() registers (keel/middleware/metrics.hpp).
//
// Thread safety: everything here is safe to call from any thread.
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace keel::metrics {

/// The Content-Type of render()'s output.
inline constexpr std::string_view content_type = "text/plain; version=0.0.4; charset=utf-8";

enum class type { counter, gauge, histogram };

namespace detail {
struct family;
}

/// A count that only goes up. Aligned to a cache line so that two hot
/// counters never share one.
class alignas(64) counter {
 public:
  counter() = default;
  counter(counter const&) = delete;
  counter& operator=(counter const&) = delete;

  void inc(std::uint64_t n = 1) noexcept { value_.fetch_add(n, std::memory_order_relaxed); }
  std::uint64_t value() const noexcept { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::uint64_t> value_{0};
};

/// A value that goes up and down.
class alignas(64) gauge {
 public:
  gauge() = default;
  gauge(gauge const&) = delete;
  gauge& operator=(gauge const&) = delete;

  void set(double v) noexcept { value_.store(v, std::memory_order_relaxed); }
  void add(double d) noexcept { value_.fetch_add(d, std::memory_order_relaxed); }
  void inc() noexcept { add(1); }
  void dec() noexcept { add(-1); }
  double value() const noexcept { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

/// Observations counted into fixed buckets (upper bounds, ascending; `+Inf`
/// is implicit), with their sum and count.
class histogram {
 public:
  histogram(histogram const&) = delete;
  histogram& operator=(histogram const&) = delete;
  ~histogram();

  /// Counts `v` into the first bucket whose bound is >= v. NaN is ignored.
  void observe(double v) noexcept;

  /// Upper bounds, without +Inf.
  std::vector<double> const& bounds() const noexcept { return *bounds_; }
  /// Observations in bucket i alone (not cumulative); i == bounds().size() is +Inf.
  std::uint64_t bucket(std::size_t i) const noexcept;
  std::uint64_t count() const noexcept;
  double sum() const noexcept { return sum_.load(std::memory_order_relaxed); }

 private:
  friend struct detail::family;
  explicit histogram(std::vector<double> const& bounds);
  std::vector<double> const* bounds_;
  std::unique_ptr<std::atomic<std::uint64_t>[]> buckets_;
  std::atomic<double> sum_{0};
};

/// A labelled counter: one counter per distinct set of label values.
class counter_family {
 public:
  /// The series for these label values, one per label name, in order.
  /// The reference stays valid for the registry's life. Throws
  /// std::invalid_argument when the number of values is wrong.
  counter& labels(std::initializer_list<std::string_view> values) const;

 private:
  friend class registry;
  explicit counter_family(detail::family* f) : f_(f) {}
  detail::family* f_;
};

class gauge_family {
 public:
  gauge& labels(std::initializer_list<std::string_view> values) const;

 private:
  friend class registry;
  explicit gauge_family(detail::family* f) : f_(f) {}
  detail::family* f_;
};

class histogram_family {
 public:
  histogram& labels(std::initializer_list<std::string_view> values) const;

 private:
  friend class registry;
  explicit histogram_family(detail::family* f) : f_(f) {}
  detail::family* f_;
};

class registry;

/// Keeps a callback source registered; removes it when destroyed. Move-only.
class callback_handle {
 public:
  callback_handle() = default;
  callback_handle(callback_handle&& o) noexcept : reg_(o.reg_), id_(o.id_) { o.reg_ = nullptr; }
  callback_handle& operator=(callback_handle&& o) noexcept;
  callback_handle(callback_handle const&) = delete;
  callback_handle& operator=(callback_handle const&) = delete;
  ~callback_handle() { reset(); }
  /// Removes the source now.
  void reset();

 private:
  friend class registry;
  callback_handle(registry* r, std::uint64_t id) : reg_(r), id_(id) {}
  registry* reg_ = nullptr;
  std::uint64_t id_ = 0;
};

/// A set of metric families. Most code uses the process-wide global().
class registry {
 public:
  registry();
  ~registry();
  registry(registry const&) = delete;
  registry& operator=(registry const&) = delete;

  counter& add_counter(std::string_view name, std::string_view help);
  counter_family add_counter_family(std::string_view name, std::string_view help,
                                    std::initializer_list<std::string_view> label_names);
  gauge& add_gauge(std::string_view name, std::string_view help);
  gauge_family add_gauge_family(std::string_view name, std::string_view help,
                                std::initializer_list<std::string_view> label_names);
  histogram& add_histogram(std::string_view name, std::string_view help, std::vector<double> bounds);
  histogram_family add_histogram_family(std::string_view name, std::string_view help,
                                        std::vector<double> bounds,
                                        std::initializer_list<std::string_view> label_names);

  /// A counter or gauge without labels whose value `read` returns at scrape
  /// time (it runs on the scraping thread, under the registry's lock: keep it
  /// short and never call back into the registry). Several sources under one
  /// name are summed (two servers in one process), and the family stays
  /// declared, at 0, once its last source is gone.
  [[nodiscard]] callback_handle add_callback(std::string_view name, std::string_view help, type t,
                                             std::function<double()> read);

  /// Removes every series of the family `name` whose first label values are
  /// `leading` (at least one), and returns how many went. The caller
  /// guarantees that no thread is updating them or still holds a reference
  /// to one; a later labels() with those values starts a new series at 0.
  /// Every thread's label cache is dropped, so this is for rare clean-ups.
  std::size_t remove_series(std::string_view name, std::initializer_list<std::string_view> leading);

  /// Every family, sorted by name, in the text format 0.0.4.
  std::string render() const;
  void render(std::string& out) const;

 private:
  friend class callback_handle;
  detail::family& declare(std::string_view name, std::string_view help, type t,
                          std::initializer_list<std::string_view> label_names,
                          std::vector<double> bounds, bool callback);
  void remove_callback(std::uint64_t id) noexcept;
  struct impl;
  std::unique_ptr<impl> impl_;
};

/// The process-wide registry that /metrics renders. Never destroyed.
registry& global();

// --- Series the framework feeds (declared in global() from the start) -------

/// keel_ws_messages_total{direction="in"}: a message read from a WebSocket.
void ws_message_in(std::uint64_t n = 1) noexcept;
/// keel_ws_messages_total{direction="out"}: a message written to a WebSocket.
void ws_message_out(std::uint64_t n = 1) noexcept;

/// Why the server closed a WebSocket (SPEC §3), the `reason` label.
enum class ws_drop_reason { slow_consumer, no_pong, too_big, bad_utf8, protocol };
/// keel_ws_dropped_total{reason}: a WebSocket connection the server closed.
void ws_dropped(ws_drop_reason reason) noexcept;
/// keel_ws_messages_dropped_total: accepted messages that could not be written.
void ws_message_dropped(std::uint64_t n = 1) noexcept;
/// keel_handler_exceptions_total: an exception escaped a handler (counted by
/// keel::mw::exception_capture, not for http_error answers).
void handler_exception() noexcept;

}  // namespace keel::metrics
