// {{name}}: reads its configuration (config file < KEEL_* environment < flags),
// prints `listening on http://HOST:PORT` when ready, drains on SIGTERM/SIGINT.
//   ./build/{{name}} --config config/app.json [--listen HOST:PORT] [--threads N] [--help]
#include "routes.hpp"

int main(int argc, char** argv) {
  keel::config cfg("{{name}}");
  {{ident}}::declare_settings(cfg);
  return keel::serve(cfg, argc, argv, {{ident}}::setup);
}
