// Background work a handler starts and the app owns: keel::task_scope.
// Usage: docs_example_background_jobs [--listen HOST:PORT]
//   curl -X POST localhost:8080/jobs      -> 202, the job runs on after the answer
//   curl localhost:8080/jobs              -> {"running":1,"finished":0}
// On SIGTERM the app cancels the jobs as it starts to drain.
#include <keel/app.hpp>
#include <keel/config.hpp>
#include <keel/context.hpp>
#include <keel/task_scope.hpp>

#include <boost/asio/this_coro.hpp>
#include <boost/json/object.hpp>

#include <atomic>
#include <chrono>
#include <memory>

namespace example {

struct jobs {
  keel::task_scope scope;
  std::atomic<int> finished{0};
};

// [job]
keel::task<void> slow_job(std::shared_ptr<jobs> j) {
  keel::steady_timer t(co_await boost::asio::this_coro::executor);
  t.expires_after(std::chrono::seconds(5));
  co_await t.async_wait(keel::use_task);  // cancelled by scope.cancel(): ends here
  ++j->finished;
}

keel::task<keel::response> start_job(keel::context& ctx, std::shared_ptr<jobs> j) {
  // Owned by the scope, not by the request: it outlives the answer, and an
  // exception it throws is logged with this request's trace id.
  j->scope.spawn(co_await boost::asio::this_coro::executor, slow_job(j), "slow job", ctx.trace_id());
  co_return keel::response(202);
}
// [job]

}  // namespace example

int main(int argc, char** argv) {
  keel::config cfg("docs_example_background_jobs");
  return keel::serve(cfg, argc, argv, [](keel::app& app, keel::config const&) {
    auto j = std::make_shared<example::jobs>();
    app.post("/jobs", [j](keel::context& ctx) { return example::start_job(ctx, j); });
    app.get("/jobs", [j](keel::context&) -> keel::task<keel::response> {
      boost::json::object o;
      o["running"] = j->scope.active();
      o["finished"] = j->finished.load();
      co_return keel::response::json(o);
    });
    // Stopping cancels the jobs; each ends at its next wait.
    app.server().on_stop([j] { j->scope.cancel(); });
  });
}
