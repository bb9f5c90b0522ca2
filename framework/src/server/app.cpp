#include <keel/app.hpp>
#include <keel/context.hpp>
#include <keel/log.hpp>
#include <keel/offload.hpp>

#include <cstdio>
#include <iostream>

namespace keel {

namespace {
// The main server's drain decides, also when /readyz is on the admin listener.
task<response> readyz(context& ctx, keel::server const* main, std::vector<std::function<std::string()>> const* checks) {
  if (main->draining()) co_return ctx.problem(503, "draining");
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
  auto& r = admin_routes();
  r.get("/healthz", [](context&) -> task<response> { co_return response::text("ok\n"); });
  auto const* checks = &readiness_;  // the app outlives its routes' requests
  auto const* main = &server();
  r.get("/readyz", [main, checks](context& ctx) { return readyz(ctx, main, checks); });
}

router& app::admin_routes() {
  if (opts_.admin_listen.empty()) return *this;
  if (!admin_routes_) admin_routes_ = std::make_unique<router>();
  return *admin_routes_;
}

std::uint16_t app::admin_port() const { return admin_server_ ? admin_server_->port() : 0; }

namespace {

// A side listener: plain HTTP, one I/O thread, the main settings otherwise.
std::unique_ptr<keel::server> side_server(options const& main, std::string const& listen, router& routes) {
  options o = main;
  o.listen = listen;
  o.threads = 1;
  o.tls_cert.clear();
  o.tls_key.clear();
  o.https_redirect.clear();
  auto s = std::make_unique<keel::server>(o, routes);
  s->listen(listen);
  return s;
}

// https://<Host without its port>[:<https port>]<target>. The host is the one
// the client asked for, as nginx's `return 308 https://$host$request_uri`.
task<response> to_https(context& ctx, keel::server const* https) {
  auto host = ctx.header("Host").value_or("");
  if (host.starts_with('[')) {
    host = host.substr(0, host.find(']') + 1);  // [v6]:port
  } else if (auto colon = host.find(':'); colon != std::string_view::npos) {
    host = host.substr(0, colon);
  }
  if (host.empty()) co_return ctx.problem(400, "a Host header is needed to redirect to https");
  std::string location = "https://";
  location += host;
  if (auto port = https->port(); port != 443) {
    // Two appends, not ":" + to_string(): g++ 12 at -O3 sees a bogus
    // overflow in the inlined operator+ (-Wstringop-overflow) and -Werror stops the build.
    location += ':';
    location += std::to_string(port);
  }
  location += ctx.req().target();
  response r(308);
  r.set_header("Location", location);
  co_return r;
}

}  // namespace

std::uint16_t app::redirect_port() const { return redirect_server_ ? redirect_server_->port() : 0; }

// Side listeners go up first (probes answer as soon as anything does) and
// down last (probes and scrapes answer through the main server's drain).
void app::start_side_listeners() {
  if (!opts_.admin_listen.empty() && !admin_server_) {
    admin_server_ = side_server(opts_, opts_.admin_listen, admin_routes());
    admin_server_->start();
    log::info("admin endpoints listening", {{"url", admin_server_->url()}});
  }
  if (!opts_.https_redirect.empty() && !redirect_server_ && server().tls()) {
    if (server().port() == 0) server().listen(opts_.listen);  // the port to redirect to
    redirect_routes_ = std::make_unique<router>();
    auto const* https = &server();
    redirect_routes_->use([https](context& ctx, next) { return to_https(ctx, https); });
    redirect_server_ = side_server(opts_, opts_.https_redirect, *redirect_routes_);
    redirect_server_->start();
    log::info("redirecting to https", {{"from", redirect_server_->url()}, {"to", server().url()}});
  }
}

void app::stop_side_listeners() {
  for (auto* s : {redirect_server_.get(), admin_server_.get()}) {
    if (!s) continue;
    s->stop();
    s->wait();
  }
}

void app::listen(std::string_view host_port) { server().listen(host_port); }

void app::start() {
  add_builtin_routes();
  offload_pool::configure(opts_.offload_threads, opts_.offload_queue);
  start_side_listeners();
  server().start();
}

void app::stop() { server().stop(); }

void app::wait() {
  server().wait();
  stop_side_listeners();
  run_stopped();
}

int app::run() {
  add_builtin_routes();
  offload_pool::configure(opts_.offload_threads, opts_.offload_queue);
  start_side_listeners();
  server().run_until_signal([this] {
    std::printf("listening on %s\n", url().c_str());
    std::fflush(stdout);
    log::info("listening", {{"url", url()}, {"threads", static_cast<unsigned long>(server().thread_count())}});
  });
  stop_side_listeners();
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
