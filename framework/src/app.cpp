#include <keel/app.hpp>
#include <keel/context.hpp>
#include <keel/log.hpp>
#include <keel/offload.hpp>

#include <cstdio>
#include <iostream>

namespace keel {

namespace {
task<response> readyz(context& ctx, std::vector<std::function<std::string()>> const* checks) {
  if (ctx.draining()) co_return ctx.problem(503, "draining");
  for (auto const& check : *checks) {
    if (auto why = check(); !why.empty()) co_return ctx.problem(503, why);
  }
  co_return response::text("ready\n");
}
}  // namespace

app::app(options opts) : opts_(std::move(opts)) {}
app::~app() { run_stopped(); }

void app::run_stopped() {
  // Once, in order; the server (and its I/O contexts) still exists here.
  auto hooks = std::move(stopped_);
  stopped_.clear();
  for (auto& f : hooks) f();
}

keel::server& app::server() {
  if (!server_) server_ = std::make_unique<keel::server>(opts_, *this);
  return *server_;
}

void app::add_builtin_routes() {
  if (builtins_) return;
  builtins_ = true;
  // Liveness and readiness are the framework's: only it knows the drain state.
  get("/healthz", [](context&) -> task<response> { co_return response::text("ok\n"); });
  auto const* checks = &readiness_;  // the app outlives its routes' requests
  get("/readyz", [checks](context& ctx) { return readyz(ctx, checks); });
}

void app::listen(std::string_view host_port) { server().listen(host_port); }

void app::start() {
  add_builtin_routes();
  offload_pool::configure(opts_.offload_threads, opts_.offload_queue);
  server().start();
}

void app::stop() { server().stop(); }

void app::wait() {
  server().wait();
  run_stopped();
}

int app::run() {
  add_builtin_routes();
  offload_pool::configure(opts_.offload_threads, opts_.offload_queue);
  server().run_until_signal([this] {
    std::printf("listening on %s\n", url().c_str());
    std::fflush(stdout);
    log::info("listening", {{"url", url()}, {"threads", static_cast<unsigned long>(server().thread_count())}});
  });
  run_stopped();
  log::info("stopped");
  log::flush();
  return 0;
}

std::uint16_t app::port() const { return server_ ? server_->port() : 0; }
std::string app::url() const { return server_ ? server_->url() : std::string{}; }

int serve(config& cfg, int argc, char** argv, std::function<void(app&, config const&)> const& setup) {
  try {
    cfg.load(argc, argv);
  } catch (config_error const& e) {
    std::cerr << (argc > 0 ? argv[0] : "keel") << ": " << e.what() << "\n";
    return 2;
  }
  if (cfg.help_requested()) {
    std::cout << cfg.usage();
    return 0;
  }
  try {
    log::set_level(log::parse_level(cfg.server().log_level));
    app a(cfg.server());
    setup(a, cfg);
    a.listen(cfg.server().listen);
    return a.run();
  } catch (config_error const& e) {
    // Found once the server loads what the settings name (a TLS certificate
    // that does not load): as bad a configuration as a bad value.
    std::cerr << (argc > 0 ? argv[0] : "keel") << ": " << e.what() << "\n";
    log::error("startup failed", {{"error", e.what()}});
    log::flush();
    return 2;
  } catch (std::exception const& e) {
    std::cerr << (argc > 0 ? argv[0] : "keel") << ": " << e.what() << "\n";
    log::error("startup failed", {{"error", e.what()}});
    log::flush();
    return 1;
  }
}

}  // namespace keel
