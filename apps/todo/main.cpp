// todo: the REST JSON API of SPEC §4 on SQLite, behind HS256 JWT auth.
// Usage: todo --jwt-secret S [--db todo.db] [--listen HOST:PORT] [--threads N] [--config app.json]
//        todo token --sub NAME [--jwt-secret S]     prints a token valid for an hour
// The secret may also come from KEEL_JWT_SECRET or "jwt_secret" in the config file.
#include "api.hpp"
#include "store.hpp"

#include <keel/app.hpp>
#include <keel/config.hpp>
#include <keel/middleware/defaults.hpp>
#include <keel/offload.hpp>

#include <iostream>
#include <memory>

namespace {

constexpr char const* missing_secret =
    "jwt_secret is required: pass --jwt-secret, set KEEL_JWT_SECRET, or put \"jwt_secret\" in the "
    "config file";

int print_token(keel::config const& cfg) {
  auto const& sub = cfg.get("sub");
  if (sub.empty()) {
    std::cerr << "todo token: --sub is required (the user the token is for)\n";
    return 2;
  }
  auto const& secret = cfg.get("jwt_secret");
  if (secret.empty()) {
    std::cerr << "todo token: " << missing_secret << "\n";
    return 2;
  }
  std::cout << todo::issue_token(sub, secret) << "\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  keel::config cfg("todo");
  cfg.add("db", "todo.db", "the SQLite database file (created and migrated at startup)");
  cfg.add("jwt_secret", "", "HMAC secret of the HS256 tokens (required)");
  cfg.add("sub", "", "todo token: the user the printed token is for");

  // The subcommand and the required secret are settled before any server starts.
  try {
    cfg.load(argc, argv);
  } catch (keel::config_error const& e) {
    std::cerr << "todo: " << e.what() << "\n";
    return 2;
  }
  if (!cfg.help_requested()) {
    auto const& args = cfg.positional();
    if (!args.empty() && args[0] == "token") return print_token(cfg);
    if (!args.empty()) {
      std::cerr << "todo: unknown command " << args[0] << " (the only command is token)\n";
      return 2;
    }
    if (cfg.get("jwt_secret").empty()) {
      std::cerr << "todo: " << missing_secret << "\n";
      return 2;
    }
  }

  return keel::serve(cfg, argc, argv, [](keel::app& app, keel::config const& c) {
    auto const& o = c.server();
    keel::offload_pool::configure(o.offload_threads, o.offload_queue);
    keel::mw::use_defaults(app);
    // One connection per offload worker: more could only wait for a worker.
    auto db = std::make_shared<todo::store>(todo::store::settings{
        .path = c.get("db"),
        .connections = o.offload_threads,
    });
    todo::add_routes(app, std::move(db), c.get("jwt_secret"));
  });
}
