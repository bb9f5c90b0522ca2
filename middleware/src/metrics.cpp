#include <keel/middleware/metrics.hpp>

#include <keel/context.hpp>
#include <keel/log.hpp>
#include <keel/metrics.hpp>
#include <keel/server.hpp>

#include "steps.hpp"

#include <array>
#include <atomic>
#include <charconv>
#include <exception>
#include <memory>

namespace keel::mw {

namespace {

struct http_families {
  metrics::counter_family requests;
  metrics::histogram_family duration;
};

http_families const& families() {
  static http_families const f{
      metrics::global().add_counter_family(
          "keel_http_requests_total", "HTTP requests answered, by method, route pattern and status.",
          {"method", "route", "status"}),
      metrics::global().add_histogram_family(
          "keel_http_request_duration_seconds",
          "Time from the metrics layer's entry to the response, by route pattern.",
          {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}, {"route"}),
  };
  return f;
}

struct cells {
  metrics::counter* requests;
  metrics::histogram* duration;
};

// A per-thread cache in front of the registry's: the route pattern's address
// (stable while its router lives) picks a slot, and the slot keeps a copy of
// the pattern to confirm it, so a router freed and another allocated at the
// same address can never be confused. A miss costs two registry lookups.
cells const& cells_for(std::string_view method, std::string_view route, unsigned status) {
  struct slot {
    char const* data = nullptr;
    std::string route;
    std::string_view method;
    unsigned status = 0;
    cells c{};
  };
  constexpr std::size_t slots = 64;
  thread_local std::array<slot, slots> cache;
  auto h = reinterpret_cast<std::uintptr_t>(route.data()) * 31 + status * 7 + method.size() + method.front();
  auto& s = cache[(h ^ (h >> 7)) % slots];
  if (s.data == route.data() && s.status == status && s.method.data() == method.data() && s.route == route) {
    return s.c;
  }
  auto const& f = families();
  char code[12];
  auto end = std::to_chars(code, code + sizeof code, status).ptr;
  s.c.requests = &f.requests.labels({method, route, std::string_view(code, std::size_t(end - code))});
  s.c.duration = &f.duration.labels({route});
  s.data = route.data();
  s.route.assign(route);
  s.method = method;  // a literal from method_label(): its address identifies it
  s.status = status;
  return s.c;
}

void record(context& ctx, unsigned status, clock::time_point started) {
  steps::record_request(ctx, status, clock::now() - started);
}

response recorded(context& ctx, response res, clock::time_point started) {
  record(ctx, res.status, started);
  return res;
}

task<response> run(context& ctx, next n) {
  auto started = clock::now();
  std::exception_ptr failure;
  try {
    auto res = co_await n();
    record(ctx, res.status, started);
    co_return res;
  } catch (...) {
    failure = std::current_exception();
  }
  co_return recorded(ctx, response_for_exception(ctx, failure), started);
}

task<response> scrape(context&) {
  // The text's size is stable from one scrape to the next: one allocation.
  static std::atomic<std::size_t> last_size{4096};
  response r(200);
  r.body.reserve(last_size.load(std::memory_order_relaxed) + 1024);
  metrics::global().render(r.body);
  last_size.store(r.body.size(), std::memory_order_relaxed);
  r.set_header("Content-Type", std::string(metrics::content_type));
  co_return r;
}

}  // namespace

namespace steps {

void declare_http_metrics() { families(); }

void record_request(context& ctx, unsigned status, clock::duration elapsed) {
  auto const& c = cells_for(method_label(ctx.method()), ctx.route(), status);
  c.requests->inc();
  c.duration->observe(std::chrono::duration<double>(elapsed).count());
}

}  // namespace steps

std::string_view method_label(verb method) noexcept {
  switch (method) {
    case verb::get: return "GET";
    case verb::head: return "HEAD";
    case verb::post: return "POST";
    case verb::put: return "PUT";
    case verb::delete_: return "DELETE";
    case verb::connect: return "CONNECT";
    case verb::options: return "OPTIONS";
    case verb::trace: return "TRACE";
    case verb::patch: return "PATCH";
    default: return "other";
  }
}

middleware metrics() {
  families();  // declared now, so they show before the first request
  return [](context& ctx, next n) { return run(ctx, n); };
}

namespace {

// What one expose_metrics() call keeps: the server to read, once known, and
// the callback sources reading it.
struct exposed {
  std::atomic<keel::server*> srv{nullptr};
  std::vector<metrics::callback_handle> handles;  // destroyed first: no source outlives srv's reader
};

double read_stat(exposed const* e, std::uint64_t server_stats::*field) {
  auto* s = e->srv.load(std::memory_order_acquire);
  return s != nullptr ? static_cast<double>(s->stats().*field) : 0.0;
}

}  // namespace

void expose_metrics(keel::app& app, std::string_view path) {
  families();
  auto& reg = metrics::global();
  auto e = std::make_shared<exposed>();
  exposed* raw = e.get();
  // The server is learnt at this app's first scrape rather than now: app.server()
  // would create it before its listeners exist. Until then this app adds 0.
  e->handles.push_back(reg.add_callback("keel_http_connections_active", "HTTP connections open now.",
                                        metrics::type::gauge,
                                        [raw] { return read_stat(raw, &server_stats::connections_active); }));
  e->handles.push_back(reg.add_callback("keel_ws_connections_active", "WebSocket connections open now.",
                                        metrics::type::gauge,
                                        [raw] { return read_stat(raw, &server_stats::ws_connections_active); }));
  e->handles.push_back(reg.add_callback(
      "keel_connections_rejected_total",
      "Connections refused at max_connections, max_connections_per_client or for lack of file descriptors.",
      metrics::type::counter, [raw] { return read_stat(raw, &server_stats::connections_rejected); }));
  e->handles.push_back(reg.add_callback(
      "keel_connections_rejected_per_client_total",
      "Connections refused at max_connections_per_client (also in keel_connections_rejected_total).",
      metrics::type::counter, [raw] { return read_stat(raw, &server_stats::connections_rejected_per_client); }));
  // Process-wide, so registered once whatever the number of apps.
  static metrics::callback_handle const log_dropped =
      reg.add_callback("keel_log_dropped_total", "Log lines dropped because stderr was too slow.",
                       metrics::type::counter, [] { return double(log::dropped()); });
  // The sources read the server, so they must be gone before it is, also
  // while another app in the process is being scraped. An app destroys its
  // server clears its stop hooks before the rest of it goes: a hook owns them.
  app.on_stop([e] {});
  keel::app* a = &app;
  app.admin_routes().get(path, [raw, a](context& ctx) {
    if (raw->srv.load(std::memory_order_relaxed) == nullptr) raw->srv.store(&a->server(), std::memory_order_release);
    return scrape(ctx);
  });
}

}  // namespace keel::mw
