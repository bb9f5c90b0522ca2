// hello: the benchmark app of SPEC §4.
//   GET /plaintext -> Hello, World!     GET /json -> {"message":"Hello, World!"}
// Usage: hello [--listen HOST:PORT] [--threads N] [--middleware default|none] [--config app.json]
#include <keel/app.hpp>
#include <keel/response.hpp>

#include <boost/json/value.hpp>

namespace {

keel::task<keel::response> plaintext(keel::context&) {
  co_return keel::response::text("Hello, World!");
}

keel::task<keel::response> json(keel::context&) {
  co_return keel::response::json_text(R"({"message":"Hello, World!"})");
}

}  // namespace

int main(int argc, char** argv) {
  keel::config cfg("hello");
  cfg.add("middleware", "default", "default|none: the built-in middleware stack");
  return keel::serve(cfg, argc, argv, [](keel::app& app, keel::config const& c) {
    auto const& stack = c.get("middleware");
    if (stack != "default" && stack != "none") {
      throw keel::config_error("--middleware: must be default or none, got \"" + stack + "\"");
    }
    app.get("/plaintext", plaintext);
    app.get("/json", json);
  });
}
