// Static files: a site directory at /, long-cached fingerprinted assets at /assets.
// Usage: docs_example_static_site [--listen HOST:PORT] --site DIR
//   curl -i localhost:8080/             -> DIR/index.html
//   curl -i -H 'Range: bytes=0-99' localhost:8080/assets/app.3f2a.js   -> 206
#include <keel/app.hpp>
#include <keel/static_files.hpp>

#include <string>

int main(int argc, char** argv) {
  keel::config cfg("static_site");
  cfg.add("site", ".", "the directory to serve");
  return keel::serve(cfg, argc, argv, [](keel::app& app, keel::config const& c) {
    auto site = c.get("site");
    // [mounts]
    keel::static_options pages;
    pages.index = true;  // /guide/ -> guide/index.html
    app.static_files("/", site, pages);

    keel::static_options assets;
    assets.cache_control = "public, max-age=31536000, immutable";  // names carry a hash
    app.static_files("/assets", site + "/assets", assets);
    // [mounts]
  });
}
