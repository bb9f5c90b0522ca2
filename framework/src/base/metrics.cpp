#include <keel/metrics.hpp>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>
#include <map>
#include <mutex>
#include <stdexcept>
#include <unordered_map>

namespace keel::metrics {

namespace detail {

struct series {
  std::vector<std::string> values;
  std::unique_ptr<counter> c;
  std::unique_ptr<gauge> g;
  std::unique_ptr<histogram> h;
};

struct source {
  std::uint64_t id;
  std::function<double()> read;
};

struct family {
  std::uint64_t id = 0;
  std::string name;
  std::string help;
  type kind = type::counter;
  std::vector<std::string> label_names;
  std::vector<double> bounds;
  bool callback = false;

  std::mutex m;  // guards the two containers below
  std::unordered_map<std::string, series*> index;  // encoded values -> series
  std::vector<std::unique_ptr<series>> all;        // creation order
  std::vector<source> sources;                     // guarded by the registry's mutex

  // Called on a per-thread cache miss: the only place that takes a lock.
  void* find_or_create(std::string_view key, std::initializer_list<std::string_view> values) {
    std::lock_guard lk(m);
    if (auto it = index.find(std::string(key)); it != index.end()) return cell(*it->second);
    auto s = std::make_unique<series>();
    s->values.assign(values.begin(), values.end());
    switch (kind) {
      case type::counter: s->c = std::make_unique<counter>(); break;
      case type::gauge: s->g = std::make_unique<gauge>(); break;
      case type::histogram: s->h.reset(new histogram(bounds)); break;
    }
    auto* raw = s.get();
    all.push_back(std::move(s));
    index.emplace(std::string(key), raw);
    return cell(*raw);
  }

  static void* cell(series& s) {
    if (s.c) return s.c.get();
    if (s.g) return s.g.get();
    return s.h.get();
  }
};

}  // namespace detail

namespace {

std::atomic<std::uint64_t> next_family_id{1};
// Bumped by remove_series(): every thread's label cache may point at a freed
// series and is dropped at its next lookup.
std::atomic<std::uint64_t> removals{0};

// Length-prefixed, so that no choice of values can make two label sets
// encode alike.
void encode(std::string& key, std::initializer_list<std::string_view> values) {
  for (auto v : values) {
    auto n = static_cast<std::uint32_t>(v.size());
    char len[sizeof n];
    std::memcpy(len, &n, sizeof n);
    key.append(len, sizeof n);
    key.append(v);
  }
}

// The hot path of a labelled update: one hash lookup in a cache owned by the
// calling thread, no lock, no allocation once the thread has seen the label
// set. Keys start with the family's process-unique id, so a destroyed
// registry's entries can never be hit again (they only cost their memory).
void* lookup(detail::family& f, std::initializer_list<std::string_view> values) {
  if (values.size() != f.label_names.size()) {
    throw std::invalid_argument("keel::metrics: " + f.name + " takes " +
                                std::to_string(f.label_names.size()) + " label values, got " +
                                std::to_string(values.size()));
  }
  thread_local std::string key;
  thread_local std::unordered_map<std::string, void*> cache;
  thread_local std::uint64_t seen_removals = 0;
  if (auto r = removals.load(std::memory_order_acquire); r != seen_removals) {
    cache.clear();
    seen_removals = r;
  }
  key.clear();
  char id[sizeof f.id];
  std::memcpy(id, &f.id, sizeof f.id);
  key.append(id, sizeof id);
  encode(key, values);
  if (auto it = cache.find(key); it != cache.end()) return it->second;
  void* c = f.find_or_create(std::string_view(key).substr(sizeof id), values);
  cache.emplace(key, c);
  return c;
}

bool valid_metric_name(std::string_view n) {
  if (n.empty()) return false;
  for (std::size_t i = 0; i < n.size(); ++i) {
    char c = n[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
              (i > 0 && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

bool valid_label_name(std::string_view n) {
  if (n.empty() || n.substr(0, 2) == "__") return false;
  for (std::size_t i = 0; i < n.size(); ++i) {
    char c = n[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (i > 0 && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

void append_uint(std::string& out, std::uint64_t v) {
  char buf[24];
  out.append(buf, std::to_chars(buf, buf + sizeof buf, v).ptr);
}

// Go's ParseFloat (what Prometheus uses) reads every form written here.
void append_double(std::string& out, double v) {
  if (std::isnan(v)) {
    out += "NaN";
  } else if (std::isinf(v)) {
    out += v > 0 ? "+Inf" : "-Inf";
  } else {
    // Plain notation where people read numbers (le="0.0005", not "5e-04").
    char buf[400];
    double a = std::fabs(v);
    auto fmt = (a == 0 || (a >= 1e-6 && a < 1e15)) ? std::chars_format::fixed : std::chars_format::general;
    out.append(buf, std::to_chars(buf, buf + sizeof buf, v, fmt).ptr);
  }
}

void append_help(std::string& out, std::string_view s) {
  for (char c : s) {
    if (c == '\\') out += "\\\\";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
}

void append_label_value(std::string& out, std::string_view s) {
  for (char c : s) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
}

// `{a="x",b="y"` plus `extra` (already formatted, e.g. le="0.5"), then `}`;
// nothing at all when there is no label.
void append_labels(std::string& out, detail::family const& f, detail::series const& s,
                   std::string_view extra = {}) {
  if (f.label_names.empty() && extra.empty()) return;
  out += '{';
  for (std::size_t i = 0; i < f.label_names.size(); ++i) {
    if (i) out += ',';
    out += f.label_names[i];
    out += "=\"";
    append_label_value(out, s.values[i]);
    out += '"';
  }
  if (!extra.empty()) {
    if (!f.label_names.empty()) out += ',';
    out += extra;
  }
  out += '}';
}

char const* type_name(type t) {
  switch (t) {
    case type::counter: return "counter";
    case type::gauge: return "gauge";
    case type::histogram: return "histogram";
  }
  return "untyped";
}

}  // namespace

// --- histogram ---------------------------------------------------------------

histogram::histogram(std::vector<double> const& bounds)
    : bounds_(&bounds), buckets_(new std::atomic<std::uint64_t>[bounds.size() + 1]) {
  for (std::size_t i = 0; i <= bounds.size(); ++i) buckets_[i].store(0, std::memory_order_relaxed);
}

histogram::~histogram() = default;

void histogram::observe(double v) noexcept {
  if (std::isnan(v)) return;
  auto const& b = *bounds_;
  // Buckets hold their own observations only; render() accumulates them, so
  // an observation is one increment whatever its bucket.
  auto i = static_cast<std::size_t>(std::lower_bound(b.begin(), b.end(), v) - b.begin());
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(v, std::memory_order_relaxed);
}

std::uint64_t histogram::bucket(std::size_t i) const noexcept {
  return i <= bounds_->size() ? buckets_[i].load(std::memory_order_relaxed) : 0;
}

std::uint64_t histogram::count() const noexcept {
  std::uint64_t n = 0;
  for (std::size_t i = 0; i <= bounds_->size(); ++i) n += buckets_[i].load(std::memory_order_relaxed);
  return n;
}

// --- families ----------------------------------------------------------------

counter& counter_family::labels(std::initializer_list<std::string_view> values) const {
  return *static_cast<counter*>(lookup(*f_, values));
}
gauge& gauge_family::labels(std::initializer_list<std::string_view> values) const {
  return *static_cast<gauge*>(lookup(*f_, values));
}
histogram& histogram_family::labels(std::initializer_list<std::string_view> values) const {
  return *static_cast<histogram*>(lookup(*f_, values));
}

// --- callback_handle -----------------------------------------------------------

callback_handle& callback_handle::operator=(callback_handle&& o) noexcept {
  if (this != &o) {
    reset();
    reg_ = o.reg_;
    id_ = o.id_;
    o.reg_ = nullptr;
  }
  return *this;
}

void callback_handle::reset() {
  if (reg_ != nullptr) reg_->remove_callback(id_);
  reg_ = nullptr;
}

// --- registry ------------------------------------------------------------------

struct registry::impl {
  mutable std::mutex m;  // families and callback sources
  std::map<std::string, std::unique_ptr<detail::family>, std::less<>> families;
  std::uint64_t next_source = 1;
};

registry::registry() : impl_(std::make_unique<impl>()) {}
registry::~registry() = default;

detail::family& registry::declare(std::string_view name, std::string_view help, type t,
                                  std::initializer_list<std::string_view> label_names,
                                  std::vector<double> bounds, bool callback) {
  if (!valid_metric_name(name)) {
    throw std::invalid_argument("keel::metrics: invalid metric name \"" + std::string(name) + "\"");
  }
  for (auto l : label_names) {
    if (!valid_label_name(l) || (t == type::histogram && l == "le")) {
      throw std::invalid_argument("keel::metrics: invalid label name \"" + std::string(l) + "\" on " +
                                  std::string(name));
    }
  }
  for (std::size_t i = 0; i < bounds.size(); ++i) {
    if (!std::isfinite(bounds[i]) || (i > 0 && bounds[i] <= bounds[i - 1])) {
      throw std::invalid_argument("keel::metrics: bucket bounds of " + std::string(name) +
                                  " must be finite and strictly ascending");
    }
  }
  std::lock_guard lk(impl_->m);
  if (auto it = impl_->families.find(name); it != impl_->families.end()) {
    auto& f = *it->second;
    bool same = f.kind == t && f.callback == callback && f.bounds == bounds &&
                f.label_names.size() == label_names.size() &&
                std::equal(label_names.begin(), label_names.end(), f.label_names.begin());
    if (!same) {
      throw std::invalid_argument("keel::metrics: " + std::string(name) +
                                  " is already registered with another type, labels or buckets");
    }
    return f;
  }
  auto f = std::make_unique<detail::family>();
  f->id = next_family_id.fetch_add(1, std::memory_order_relaxed);
  f->name = name;
  f->help = help;
  f->kind = t;
  f->label_names.assign(label_names.begin(), label_names.end());
  f->bounds = std::move(bounds);
  f->callback = callback;
  auto& ref = *f;
  impl_->families.emplace(std::string(name), std::move(f));
  return ref;
}

counter& registry::add_counter(std::string_view name, std::string_view help) {
  return add_counter_family(name, help, {}).labels({});
}
counter_family registry::add_counter_family(std::string_view name, std::string_view help,
                                            std::initializer_list<std::string_view> label_names) {
  return counter_family(&declare(name, help, type::counter, label_names, {}, false));
}
gauge& registry::add_gauge(std::string_view name, std::string_view help) {
  return add_gauge_family(name, help, {}).labels({});
}
gauge_family registry::add_gauge_family(std::string_view name, std::string_view help,
                                        std::initializer_list<std::string_view> label_names) {
  return gauge_family(&declare(name, help, type::gauge, label_names, {}, false));
}
histogram& registry::add_histogram(std::string_view name, std::string_view help, std::vector<double> bounds) {
  return add_histogram_family(name, help, std::move(bounds), {}).labels({});
}
histogram_family registry::add_histogram_family(std::string_view name, std::string_view help,
                                                std::vector<double> bounds,
                                                std::initializer_list<std::string_view> label_names) {
  return histogram_family(&declare(name, help, type::histogram, label_names, std::move(bounds), false));
}

callback_handle registry::add_callback(std::string_view name, std::string_view help, type t,
                                       std::function<double()> read) {
  if (t == type::histogram) throw std::invalid_argument("keel::metrics: a callback is a counter or a gauge");
  auto& f = declare(name, help, t, {}, {}, true);
  std::lock_guard lk(impl_->m);
  auto id = impl_->next_source++;
  f.sources.push_back({id, std::move(read)});
  return callback_handle(this, id);
}

void registry::remove_callback(std::uint64_t id) noexcept {
  std::lock_guard lk(impl_->m);
  for (auto& [name, f] : impl_->families) {
    auto& s = f->sources;
    auto it = std::find_if(s.begin(), s.end(), [id](detail::source const& x) { return x.id == id; });
    if (it != s.end()) {
      s.erase(it);
      return;
    }
  }
}

std::size_t registry::remove_series(std::string_view name, std::initializer_list<std::string_view> leading) {
  if (leading.size() == 0) throw std::invalid_argument("keel::metrics::remove_series: no label value given");
  std::size_t removed = 0;
  {
    // The registry's lock too: render() reads series after letting go of the family's.
    std::lock_guard lk(impl_->m);
    auto it = impl_->families.find(name);
    if (it == impl_->families.end() || it->second->callback) return 0;
    auto& f = *it->second;
    if (leading.size() > f.label_names.size()) {
      throw std::invalid_argument("keel::metrics::remove_series: " + f.name + " has " +
                                  std::to_string(f.label_names.size()) + " labels");
    }
    std::lock_guard flk(f.m);
    auto matches = [&](detail::series const& s) { return std::equal(leading.begin(), leading.end(), s.values.begin()); };
    for (auto i = f.index.begin(); i != f.index.end();) {
      i = matches(*i->second) ? f.index.erase(i) : std::next(i);
    }
    auto keep = std::remove_if(f.all.begin(), f.all.end(), [&](auto const& s) { return matches(*s); });
    removed = static_cast<std::size_t>(f.all.end() - keep);
    f.all.erase(keep, f.all.end());
  }
  if (removed > 0) removals.fetch_add(1, std::memory_order_acq_rel);
  return removed;
}

std::string registry::render() const {
  std::string out;
  render(out);
  return out;
}

void registry::render(std::string& out) const {
  std::lock_guard lk(impl_->m);
  out.reserve(out.size() + impl_->families.size() * 256);
  std::vector<detail::series const*> list;
  std::string le;
  for (auto const& [name, fp] : impl_->families) {
    auto& f = *fp;
    out += "# HELP ";
    out += name;
    out += ' ';
    append_help(out, f.help);
    out += "\n# TYPE ";
    out += name;
    out += ' ';
    out += type_name(f.kind);
    out += '\n';
    if (f.callback) {
      double total = 0;
      for (auto const& s : f.sources) total += s.read();
      out += name;
      out += ' ';
      append_double(out, total);
      out += '\n';
      continue;
    }
    list.clear();
    {
      std::lock_guard flk(f.m);
      for (auto const& s : f.all) list.push_back(s.get());
    }
    std::sort(list.begin(), list.end(), [](auto* a, auto* b) { return a->values < b->values; });
    for (auto const* s : list) {
      if (s->c) {
        out += name;
        append_labels(out, f, *s);
        out += ' ';
        append_uint(out, s->c->value());
        out += '\n';
      } else if (s->g) {
        out += name;
        append_labels(out, f, *s);
        out += ' ';
        append_double(out, s->g->value());
        out += '\n';
      } else {
        auto const& h = *s->h;
        std::uint64_t cumulative = 0;
        for (std::size_t i = 0; i <= f.bounds.size(); ++i) {
          cumulative += h.bucket(i);
          le = "le=\"";
          if (i < f.bounds.size()) append_double(le, f.bounds[i]);
          else le += "+Inf";
          le += '"';
          out += name;
          out += "_bucket";
          append_labels(out, f, *s, le);
          out += ' ';
          append_uint(out, cumulative);
          out += '\n';
        }
        out += name;
        out += "_sum";
        append_labels(out, f, *s);
        out += ' ';
        append_double(out, h.sum());
        out += '\n';
        // The +Inf bucket and _count must agree (Prometheus checks); both
        // come from the same snapshot of the buckets.
        out += name;
        out += "_count";
        append_labels(out, f, *s);
        out += ' ';
        append_uint(out, cumulative);
        out += '\n';
      }
    }
  }
}

// --- the process-wide registry and the series keel feeds ----------------------

namespace {

struct builtin_cells {
  counter* ws_in = nullptr;
  counter* ws_out = nullptr;
  counter* ws_drop[5] = {};
  counter* ws_messages_dropped = nullptr;
  counter* handler_exceptions = nullptr;
};

builtin_cells* builtins = nullptr;

registry* make_global() {
  // Leaked on purpose: connections still counting while static objects are
  // destroyed at exit must find it alive.
  auto* r = new registry;
  auto* b = new builtin_cells;
  auto messages = r->add_counter_family(
      "keel_ws_messages_total", "WebSocket messages read from peers (in) and written to them (out).",
      {"direction"});
  b->ws_in = &messages.labels({"in"});
  b->ws_out = &messages.labels({"out"});
  auto dropped = r->add_counter_family(
      "keel_ws_dropped_total", "WebSocket connections the server closed, by reason.", {"reason"});
  // Indexed like ws_drop_reason.
  static constexpr std::string_view reasons[] = {"slow_consumer", "no_pong", "too_big", "bad_utf8", "protocol"};
  for (std::size_t i = 0; i < 5; ++i) b->ws_drop[i] = &dropped.labels({reasons[i]});
  b->ws_messages_dropped = &r->add_counter(
      "keel_ws_messages_dropped_total", "WebSocket messages accepted for sending that could not be written.");
  b->handler_exceptions = &r->add_counter(
      "keel_handler_exceptions_total", "Exceptions that escaped a handler (http_error answers excluded).");
  builtins = b;
  return r;
}

builtin_cells& cells() {
  global();
  return *builtins;
}

}  // namespace

registry& global() {
  static registry* r = make_global();
  return *r;
}

void ws_message_in(std::uint64_t n) noexcept { cells().ws_in->inc(n); }
void ws_message_out(std::uint64_t n) noexcept { cells().ws_out->inc(n); }
void ws_dropped(ws_drop_reason reason) noexcept {
  auto i = static_cast<std::size_t>(reason);
  if (i < 5) cells().ws_drop[i]->inc();
}
void ws_message_dropped(std::uint64_t n) noexcept { cells().ws_messages_dropped->inc(n); }
void handler_exception() noexcept { cells().handler_exceptions->inc(); }

}  // namespace keel::metrics
