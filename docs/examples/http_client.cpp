// A handler that calls an upstream service with keel::http_client.
// Usage: docs_example_http_client [--listen HOST:PORT] (upstream: UPSTREAM_URL, default httpbin.org)
//   curl localhost:8080/proxy/get    -> the upstream's JSON, or a 502/504 problem
#include <keel/app.hpp>
#include <keel/config.hpp>
#include <keel/context.hpp>
#include <keel/http_client.hpp>

#include <boost/json/object.hpp>

#include <chrono>
#include <cstdlib>
#include <memory>
#include <string>

namespace example {

// [make-client]
std::shared_ptr<keel::http_client> make_client() {
  keel::http_client_options o;
  o.max_connections_per_origin = 16;          // more callers wait for a pooled connection
  o.connect_timeout = std::chrono::seconds(2);
  o.retries = 2;                              // idempotent calls only, full-jitter backoff
  o.name = "upstream";                        // the `client` label of its metrics
  return std::make_shared<keel::http_client>(o);  // one per process, shared by every thread
}
// [make-client]

// [proxy]
keel::task<keel::response> proxy(keel::http_client& upstream, std::string const& base, keel::context& ctx) {
  keel::request_options o;
  o.ctx = &ctx;                                   // deadline, cancellation, traceparent, X-Request-Id
  o.timeout = std::chrono::milliseconds(1500);    // or less, when the request has less left
  auto r = co_await upstream.request(keel::verb::get, base + "/" + ctx.param("path"), {}, {}, o);
  // An upstream that cannot be reached throws http_client_error: a 502 (504 on timeout).
  if (r.status >= 500) co_return ctx.problem(502, "the upstream answered " + std::to_string(r.status));
  co_return keel::response::json(boost::json::object{{"status", r.status}, {"body", r.body}});
}
// [proxy]

}  // namespace example

int main(int argc, char** argv) {
  char const* env = std::getenv("UPSTREAM_URL");
  std::string base = env ? env : "https://httpbin.org";
  keel::config cfg("docs_example_http_client");
  return keel::serve(cfg, argc, argv, [base](keel::app& app, keel::config const&) {
    auto upstream = example::make_client();
    app.get("/proxy/{path}", [upstream, base](keel::context& ctx) { return example::proxy(*upstream, base, ctx); });
  });
}
