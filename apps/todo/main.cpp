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
#include <string>

namespace {

constexpr char const* missing_secret =
    "jwt_secret is required: pass --jwt-secret, set KEEL_JWT_SECRET, or put \"jwt_secret\" in the "
    "config file";

// RFC 7518 §3.2: an HS256 key has at least as many bits as the hash (256).
constexpr std::size_t min_secret_bytes = 32;

// The reason the secret cannot be used, or empty when it can.
std::string secret_problem(std::string const& secret) {
  if (secret.empty()) return missing_secret;
  if (secret.size() < min_secret_bytes)
    return "jwt_secret is too short: " + std::to_string(secret.size()) + " bytes, HS256 needs at least " +
           std::to_string(min_secret_bytes) + " (RFC 7518 §3.2); pass a longer --jwt-secret or KEEL_JWT_SECRET";
  return {};
}

int print_token(keel::config const& cfg) {
  auto const& sub = cfg.get("sub");
  if (sub.empty()) {
    std::cerr << "todo token: --sub is required (the user the token is for)\n";
    return 2;
  }
  auto const& secret = cfg.get("jwt_secret");
  if (auto why = secret_problem(secret); !why.empty()) {
    std::cerr << "todo token: " << why << "\n";
    return 2;
  }
  std::cout << todo::issue_token(sub, secret) << "\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  keel::config cfg("todo");
  cfg.add("db", "todo.db", "the SQLite database file (created and migrated at startup)");
  cfg.add("jwt_secret", "", "HMAC secret of the HS256 tokens, at least 32 bytes (required)");
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
    if (auto why = secret_problem(cfg.get("jwt_secret")); !why.empty()) {
      std::cerr << "todo: " << why << "\n";
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
