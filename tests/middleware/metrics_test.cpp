// metrics: the registry's text format, the HTTP metrics middleware, /metrics,
// promtool's linter and a real Prometheus scrape.
#include <catch2/catch.hpp>

#include "test_app.hpp"

#include <keel/context.hpp>
#include <keel/metrics.hpp>
#include <keel/middleware/exception_capture.hpp>
#include <keel/middleware/metrics.hpp>

#include <boost/json.hpp>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

using namespace keel::test;
using keel::context;
using keel::response;
using keel::task;
namespace kt = keel::testing;
namespace km = keel::metrics;
namespace mw = keel::mw;
namespace fs = std::filesystem;

namespace {

task<response> ok(context&) { co_return response::text("ok"); }

task<response> boom(context&) {
  throw std::runtime_error("boom");
  co_return response::text("unreachable");
}

// The value of one sample line ("name{labels} value"), or -1 when absent.
double sample(std::string const& text, std::string const& series) {
  auto key = "\n" + series + " ";
  auto at = ("\n" + text).find(key);
  if (at == std::string::npos) return -1;
  return std::strtod(text.c_str() + at + key.size() - 1, nullptr);
}

std::string requests(std::string const& method, std::string const& route, unsigned status) {
  return "keel_http_requests_total{method=\"" + method + "\",route=\"" + route + "\",status=\"" +
         std::to_string(status) + "\"}";
}

std::string temp_dir() {
  char name[] = "/tmp/keel_metrics_test_XXXXXX";
  return ::mkdtemp(name);
}

int run_command(std::string const& cmd) {
  int rc = std::system(cmd.c_str());
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

// A child process, killed (SIGTERM, then waited for) when the object goes.
class child {
 public:
  explicit child(std::vector<std::string> argv, std::string const& log) {
    pid_ = ::fork();
    if (pid_ == 0) {
      std::FILE* f = std::fopen(log.c_str(), "w");
      if (f) {
        ::dup2(::fileno(f), 1);
        ::dup2(::fileno(f), 2);
      }
      std::vector<char*> args;
      for (auto& a : argv) args.push_back(a.data());
      args.push_back(nullptr);
      ::execv(args[0], args.data());
      ::_exit(127);
    }
  }
  ~child() {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      int status = 0;
      ::waitpid(pid_, &status, 0);
    }
  }

 private:
  pid_t pid_ = -1;
};

std::uint16_t free_port() {
  // Bind port 0, read the port, let it go: good enough for a test's child.
  boost::asio::io_context io;
  boost::asio::ip::tcp::acceptor a(io, {boost::asio::ip::make_address("127.0.0.1"), 0});
  return a.local_endpoint().port();
}

}  // namespace

// --- the registry --------------------------------------------------------------

TEST_CASE("a registry renders counters, gauges and histograms in the text format 0.0.4", "[metrics][registry]") {
  km::registry reg;
  reg.add_counter("app_jobs_total", "Jobs run.").inc(3);
  auto& g = reg.add_gauge("app_queue", "Jobs\\waiting\nnow.");
  g.set(2.5);
  g.dec();
  auto fam = reg.add_counter_family("app_events_total", "Events.", {"kind", "path"});
  fam.labels({"a\"b", "c\\d\ne"}).inc();
  fam.labels({"login", "/"}).inc(2);
  auto& h = reg.add_histogram("app_seconds", "Latency.", {0.0005, 0.1, 1});
  h.observe(0.0001);
  h.observe(0.05);
  h.observe(0.1);
  h.observe(7);
  h.observe(std::nan(""));
  CHECK(reg.render() ==
        "# HELP app_events_total Events.\n"
        "# TYPE app_events_total counter\n"
        "app_events_total{kind=\"a\\\"b\",path=\"c\\\\d\\ne\"} 1\n"
        "app_events_total{kind=\"login\",path=\"/\"} 2\n"
        "# HELP app_jobs_total Jobs run.\n"
        "# TYPE app_jobs_total counter\n"
        "app_jobs_total 3\n"
        "# HELP app_queue Jobs\\\\waiting\\nnow.\n"
        "# TYPE app_queue gauge\n"
        "app_queue 1.5\n"
        "# HELP app_seconds Latency.\n"
        "# TYPE app_seconds histogram\n"
        "app_seconds_bucket{le=\"0.0005\"} 1\n"
        "app_seconds_bucket{le=\"0.1\"} 3\n"
        "app_seconds_bucket{le=\"1\"} 3\n"
        "app_seconds_bucket{le=\"+Inf\"} 4\n"
        "app_seconds_sum 7.1501\n"
        "app_seconds_count 4\n");
  CHECK(h.count() == 4);
}

TEST_CASE("adding a metric again returns it; a clash or a bad name throws", "[metrics][registry]") {
  km::registry reg;
  auto& a = reg.add_counter("x_total", "X.");
  CHECK(&reg.add_counter("x_total", "X.") == &a);
  auto f = reg.add_counter_family("y_total", "Y.", {"k"});
  CHECK(&f.labels({"v"}) == &reg.add_counter_family("y_total", "Y.", {"k"}).labels({"v"}));
  CHECK_THROWS_AS(reg.add_gauge("x_total", "X."), std::invalid_argument);
  CHECK_THROWS_AS(reg.add_counter_family("x_total", "X.", {"k"}), std::invalid_argument);
  CHECK_THROWS_AS(reg.add_histogram("h", "H.", {1, 0.5}), std::invalid_argument);
  CHECK_THROWS_AS(reg.add_counter("bad-name", "."), std::invalid_argument);
  CHECK_THROWS_AS(reg.add_counter("9lives", "."), std::invalid_argument);
  CHECK_THROWS_AS(reg.add_counter_family("z_total", ".", {"__reserved"}), std::invalid_argument);
  CHECK_THROWS_AS(reg.add_histogram_family("h2", ".", {1}, {"le"}), std::invalid_argument);
  CHECK_THROWS_AS(f.labels({"a", "b"}), std::invalid_argument);
}

TEST_CASE("callback metrics are read at scrape time, summed, and leave with their handle", "[metrics][registry]") {
  km::registry reg;
  double depth = 4;
  auto h1 = reg.add_callback("q_depth", "Depth.", km::type::gauge, [&] { return depth; });
  {
    auto h2 = reg.add_callback("q_depth", "Depth.", km::type::gauge, [] { return 10.0; });
    CHECK(reg.render().find("q_depth 14\n") != std::string::npos);
  }
  depth = 5;
  CHECK(reg.render().find("q_depth 5\n") != std::string::npos);
  h1.reset();
  CHECK(reg.render().find("q_depth 0\n") != std::string::npos);  // still declared
  CHECK_THROWS_AS(reg.add_callback("q_hist", ".", km::type::histogram, [] { return 1.0; }), std::invalid_argument);
}

TEST_CASE("labelled updates from many threads add up exactly", "[metrics][registry][concurrency]") {
  km::registry reg;
  auto fam = reg.add_counter_family("hits_total", "Hits.", {"route", "status"});
  auto hist = reg.add_histogram_family("lat_seconds", "Latency.", {0.5}, {"route"});
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 20'000; ++i) {
        fam.labels({i % 2 ? "/a" : "/b", "200"}).inc();
        hist.labels({"/a"}).observe(t % 2 ? 0.25 : 1.0);
      }
    });
  }
  for (auto& t : threads) t.join();
  CHECK(fam.labels({"/a", "200"}).value() == 40'000);
  CHECK(fam.labels({"/b", "200"}).value() == 40'000);
  CHECK(hist.labels({"/a"}).count() == 80'000);
  CHECK(hist.labels({"/a"}).bucket(0) == 40'000);
  CHECK(hist.labels({"/a"}).sum() == Approx(40'000 * 1.25));
}

TEST_CASE("the WebSocket and exception series exist from the start and count", "[metrics][registry]") {
  auto text = km::global().render();
  for (auto s : {"keel_ws_messages_total{direction=\"in\"}", "keel_ws_messages_total{direction=\"out\"}",
                 "keel_ws_dropped_total{reason=\"slow_consumer\"}", "keel_ws_dropped_total{reason=\"no_pong\"}",
                 "keel_ws_dropped_total{reason=\"too_big\"}", "keel_ws_dropped_total{reason=\"bad_utf8\"}",
                 "keel_ws_dropped_total{reason=\"protocol\"}", "keel_ws_messages_dropped_total",
                 "keel_handler_exceptions_total"}) {
    INFO(s);
    CHECK(sample(text, s) >= 0);
  }
  auto in = sample(text, "keel_ws_messages_total{direction=\"in\"}");
  auto pong = sample(text, "keel_ws_dropped_total{reason=\"no_pong\"}");
  km::ws_message_in(3);
  km::ws_dropped(km::ws_drop_reason::no_pong);
  text = km::global().render();
  CHECK(sample(text, "keel_ws_messages_total{direction=\"in\"}") == in + 3);
  CHECK(sample(text, "keel_ws_dropped_total{reason=\"no_pong\"}") == pong + 1);
}

// --- the middleware and /metrics --------------------------------------------------

TEST_CASE("requests are counted by method, route pattern and exact status", "[metrics]") {
  keel::app app(test_options());
  app.use(mw::metrics());
  mw::expose_metrics(app);
  app.get("/m1/users/{id}", ok);
  app.get("/m1/boom", boom);
  kt::running_app run(app);
  auto before = run.get("/metrics").body;
  for (int i = 0; i < 5; ++i) CHECK(run.get("/m1/users/" + std::to_string(i)).status == 200);
  CHECK(run.request("POST", "/m1/users/1").status == 405);
  CHECK(run.request("PROPFIND", "/m1/users/1").status == 405);
  CHECK(run.request("BREW", "/m1/users/1").status == 405);
  CHECK(run.get("/m1/nothing/here/at/all").status == 404);
  CHECK(run.get("/m1/boom").status == 500);
  auto r = run.get("/metrics");
  CHECK(r.status == 200);
  CHECK(r.header("Content-Type") == "text/plain; version=0.0.4; charset=utf-8");
  auto const& text = r.body;
  CHECK(sample(text, requests("GET", "/m1/users/{id}", 200)) == 5);
  CHECK(sample(text, requests("POST", "/m1/users/{id}", 405)) == 1);
  CHECK(sample(text, requests("other", "/m1/users/{id}", 405)) == 2);
  CHECK(sample(text, requests("GET", "/m1/boom", 500)) == 1);  // an escaped exception, as answered
  auto unmatched_before = std::max(0.0, sample(before, requests("GET", "unmatched", 404)));
  CHECK(sample(text, requests("GET", "unmatched", 404)) == unmatched_before + 1);
  // No raw path ever becomes a label.
  CHECK(text.find("/m1/users/3") == std::string::npos);
  CHECK(text.find("nothing/here") == std::string::npos);
  CHECK(sample(text, "keel_http_request_duration_seconds_count{route=\"/m1/users/{id}\"}") == 8);
  CHECK(sample(text, "keel_http_request_duration_seconds_bucket{route=\"/m1/users/{id}\",le=\"+Inf\"}") == 8);
  CHECK(sample(text, "keel_http_request_duration_seconds_bucket{route=\"/m1/users/{id}\",le=\"10\"}") == 8);
  CHECK(sample(text, "keel_http_request_duration_seconds_sum{route=\"/m1/users/{id}\"}") >= 0);
  // The scrapes count too: the first one is in this one.
  CHECK(sample(text, requests("GET", "/metrics", 200)) >= 1);
}

TEST_CASE("/metrics reads the server's connection counts and the log's drops", "[metrics]") {
  auto o = test_options();
  o.max_connections = 2;
  keel::app app(o);
  mw::expose_metrics(app);
  kt::running_app run(app);
  {
    kt::client held(run.port());
    CHECK(held.get("/healthz").status == 200);
    auto text = run.get("/metrics").body;
    CHECK(sample(text, "keel_http_connections_active") == 2);  // held + the scrape's
    CHECK(sample(text, "keel_ws_connections_active") == 0);
    CHECK(sample(text, "keel_log_dropped_total") >= 0);
    auto rejected = sample(text, "keel_connections_rejected_total");
    CHECK(rejected == 0);
    // A third connection while two are open is refused and counted (once the
    // server has let the scrape's connection go).
    REQUIRE(kt::eventually([&] { return app.server().stats().connections_active == 1; }));
    kt::client held2(run.port());
    CHECK(held2.get("/healthz").status == 200);
    kt::client refused(run.port());
    CHECK(refused.closed_by_server(std::chrono::seconds(5)));
  }
  // A scrape may itself be refused while the server still holds the closed
  // connections: try again until one gets through.
  CHECK(kt::eventually([&] {
    try {
      return sample(run.get("/metrics").body, "keel_connections_rejected_total") >= 1;
    } catch (std::exception const&) {
      return false;
    }
  }));
}

TEST_CASE("promtool accepts the /metrics output", "[metrics][promtool]") {
  if (!fs::exists("/usr/bin/promtool")) {
    WARN("promtool is not installed (Debian package prometheus): skipping the lint of /metrics");
    return;
  }
  keel::app app(test_options());
  app.use(mw::metrics());
  app.use(mw::exception_capture());
  mw::expose_metrics(app);
  app.get("/p/items/{id}", ok);
  app.get("/p/boom", boom);
  kt::running_app run(app);
  run.get("/p/items/1");
  run.get("/p/boom");
  run.get("/p/none");
  run.request("BREW", "/p/items/1");
  auto dir = temp_dir();
  auto file = dir + "/metrics.txt";
  std::ofstream(file) << run.get("/metrics").body;
  auto out = dir + "/promtool.out";
  int rc = run_command("/usr/bin/promtool check metrics < " + file + " > " + out + " 2>&1");
  std::ifstream in(out);
  std::string report((std::istreambuf_iterator<char>(in)), {});
  INFO("promtool says: " << report);
  CHECK(rc == 0);
  CHECK(report.empty());
  fs::remove_all(dir);
}

TEST_CASE("a real Prometheus server scrapes /metrics and sees the requests", "[metrics][prometheus]") {
  if (!fs::exists("/usr/bin/prometheus")) {
    WARN("prometheus is not installed (Debian package prometheus): skipping the real scrape");
    return;
  }
  keel::app app(test_options());
  app.use(mw::metrics());
  mw::expose_metrics(app);
  app.get("/scraped", ok);
  kt::running_app run(app);
  for (int i = 0; i < 3; ++i) run.get("/scraped");
  auto dir = temp_dir();
  auto prom_port = free_port();
  std::ofstream(dir + "/prometheus.yml")
      << "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
      << "scrape_configs:\n  - job_name: keel\n    static_configs:\n      - targets: ['127.0.0.1:"
      << run.port() << "']\n";
  child prom({"/usr/bin/prometheus", "--config.file=" + dir + "/prometheus.yml",
              "--storage.tsdb.path=" + dir + "/data", "--web.listen-address=127.0.0.1:" + std::to_string(prom_port)},
             dir + "/prometheus.log");
  std::string last;
  auto scraped = kt::eventually(
      [&] {
        try {
          auto r = kt::request(prom_port, "GET",
                               "/api/v1/query?query=keel_http_requests_total%7Broute%3D%22%2Fscraped%22%7D");
          last = r.body;
          if (r.status != 200) return false;
          auto v = boost::json::parse(r.body);
          auto const& result = v.at("data").at("result").as_array();
          return !result.empty() && result[0].at("value").as_array()[1].as_string() == "3";
        } catch (std::exception const&) {
          return false;
        }
      },
      std::chrono::seconds(30));
  INFO("last answer: " << last);
  CHECK(scraped);
  auto targets = kt::request(prom_port, "GET", "/api/v1/targets").body;
  INFO(targets);
  CHECK(targets.find("\"health\":\"up\"") != std::string::npos);
  CHECK(targets.find("\"lastError\":\"\"") != std::string::npos);
  fs::remove_all(dir);
}

TEST_CASE("the metrics layer counts what comes back from inside, short-circuits included", "[metrics][order]") {
  keel::app app(test_options());
  unsigned outer_saw = 0;
  app.use([&](context&, keel::next next) -> task<response> {
    auto res = co_await next();
    outer_saw = res.status;
    co_return res;
  });
  app.use(mw::metrics());
  mw::expose_metrics(app);
  bool ran = false;
  app.get("/o/guarded", [&](context&) -> task<response> {
       ran = true;
       co_return response::text("no");
     })
      .use([](context& ctx, keel::next) -> task<response> { co_return ctx.problem(403, "no"); });
  kt::running_app run(app);
  CHECK(run.get("/o/guarded").status == 403);
  CHECK_FALSE(ran);
  CHECK(outer_saw == 403);
  CHECK(sample(run.get("/metrics").body, requests("GET", "/o/guarded", 403)) == 1);
}

TEST_CASE("metrics attached to a group or a route count only those routes", "[metrics][attach]") {
  keel::app app(test_options());
  mw::expose_metrics(app);
  app.group("/a1", {mw::metrics()}).get("/in-group", ok);
  app.get("/a1-route", ok).use(mw::metrics());
  app.get("/a1-none", ok);
  kt::running_app run(app);
  run.get("/a1/in-group");
  run.get("/a1-route");
  run.get("/a1-none");
  auto text = run.get("/metrics").body;
  CHECK(sample(text, requests("GET", "/a1/in-group", 200)) == 1);
  CHECK(sample(text, requests("GET", "/a1-route", 200)) == 1);
  CHECK(sample(text, requests("GET", "/a1-none", 200)) == -1);
}

TEST_CASE("method labels are the standard methods or other", "[metrics]") {
  CHECK(mw::method_label(keel::verb::get) == "GET");
  CHECK(mw::method_label(keel::verb::delete_) == "DELETE");
  CHECK(mw::method_label(keel::verb::patch) == "PATCH");
  CHECK(mw::method_label(keel::verb::propfind) == "other");
  CHECK(mw::method_label(keel::verb::unknown) == "other");
}
