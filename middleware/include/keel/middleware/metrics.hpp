#pragma once
// The HTTP metrics of SPEC §3 and the /metrics endpoint.
//
//   app.use(keel::mw::metrics());           // counts every request it sees
//   keel::mw::expose_metrics(app);          // GET /metrics
//
// metrics() records, for each request:
//   keel_http_requests_total{method,route,status}   method: GET, HEAD, POST, PUT,
//       DELETE, CONNECT, OPTIONS, TRACE, PATCH or `other`; route: the pattern
//       (`/users/{id}`) or `unmatched`, never the raw path; status: the exact code
//   keel_http_request_duration_seconds{route}       histogram, buckets 0.0005, 0.001,
//       0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10 s, timed
//       from this layer's entry to the inner chain's return
// Like the access log it sees an escaped exception as the response keel would
// send for it. As app-wide middleware it also counts 404, 405 and keel's own
// rejections (400, 408, 413, 414, 431).
// Cost: two lookups in per-thread caches and three relaxed atomic adds; no
// lock and no allocation once a thread has seen the label set.
//
// expose_metrics(app) registers `GET /metrics` on app.admin_routes() (the main
// listener, or the admin_listen one when set; text format 0.0.4, Content-Type
// keel::metrics::content_type) rendering keel::metrics::global(), and reads
// these from the app's server at scrape time:
//   keel_http_connections_active   gauge   HTTP connections open now
//   keel_ws_connections_active     gauge   upgraded (WebSocket) connections open now
//   keel_connections_rejected_total counter refused at max_connections, max_connections_per_client or for lack of fds
//   keel_connections_rejected_per_client_total counter  of those, refused at max_connections_per_client
//   keel_log_dropped_total         counter log lines stderr could not take
// Call it once per app, before the server starts. The app's server is read
// from this app's first scrape on; with several apps in one process their
// values are summed (an app not scraped yet adds 0).
#include <keel/app.hpp>
#include <keel/middleware.hpp>

#include <string_view>

namespace keel::mw {

namespace name {
inline constexpr std::string_view metrics = "metrics";
}

middleware metrics();

void expose_metrics(keel::app& app, std::string_view path = "/metrics");

/// The `method` label for a request: the standard method's name or "other".
std::string_view method_label(verb method) noexcept;

}  // namespace keel::mw
