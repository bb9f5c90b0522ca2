// Compressed responses and decompressed uploads with keel::mw::compression.
// Usage: docs_example_compression [--listen HOST:PORT]
//   curl -s --compressed localhost:8080/report | head -c 80      -> the report, sent as br or gzip
//   curl -si -H 'Accept-Encoding: gzip' localhost:8080/report    -> Content-Encoding: gzip
//   gzip -c data.json | curl -s --data-binary @- -H 'Content-Encoding: gzip' localhost:8080/count
#include <keel/app.hpp>
#include <keel/config.hpp>
#include <keel/context.hpp>
#include <keel/middleware/compression.hpp>
#include <keel/middleware/defaults.hpp>

#include <string>

int main(int argc, char** argv) {
  keel::config cfg("compression");
  return keel::serve(cfg, argc, argv, [](keel::app& app, keel::config const&) {
    // [use]
    keel::mw::use_defaults(app);  // outside: the access log shows the bytes before compression
    keel::mw::compression_options opts;
    opts.min_size = 512;                  // smaller bodies are not worth a coding
    opts.max_decompressed = 4u << 20;     // an upload may expand to 4 MiB, not more
    app.use(keel::mw::compression(opts));
    // [use]
    app.get("/report", [](keel::context&) -> keel::task<keel::response> {
      std::string rows;
      for (int i = 0; i < 1000; ++i) rows += "row " + std::to_string(i) + ": all well\n";
      co_return keel::response::text(rows);
    });
    app.post("/count", [](keel::context& ctx) -> keel::task<keel::response> {
      co_return keel::response::text(std::to_string(ctx.body().size()) + " bytes\n");  // decoded already
    });
  });
}
