#pragma once
// Static files: a directory served under a path prefix.
//
//   app.static_files("/assets", "/srv/www/assets");            // or keel::add_static_files(app, ...)
//   keel::static_options o;
//   o.cache_control = "public, max-age=31536000, immutable";
//   o.index = true;                                           // /docs/ -> /docs/index.html
//   app.static_files("/docs", "/srv/www/docs", o);
//
// A mount answers GET and HEAD (other methods get 405 with Allow) with the
// content type of the file's extension, ETag and Last-Modified (304 on a
// matching If-None-Match, or an If-Modified-Since not older than the file),
// Accept-Ranges and single byte ranges (206, or 416 with `Content-Range:
// bytes */size`; several ranges get the whole file), Cache-Control as the
// mount says, and a `.br` or `.gz` sibling of the file when Accept-Encoding
// allows it (brotli first), with Content-Encoding and Vary: Accept-Encoding.
// A Range request always gets the identity file: a range is of those bytes.
//
// Files up to `chunk_size` are read in one pread into the response; larger
// ones are streamed (keel/stream.hpp) `chunk_size` bytes at a time with
// pread on the connection's I/O thread, each write waiting for the socket, so
// memory per download is one chunk whatever the file's size.
//
// Anything that is not a regular file under the root answers the same plain
// 404 (`Not Found`) that reveals nothing: `.` and `..` segments, encoded ones
// (`%2e%2e`), encoded `/` and `\` (`%2f`, `%5c`), backslashes, NUL (`%00`),
// empty segments (`//etc`), invalid escapes, dot files (unless allowed), and
// any path whose symlinks resolve outside the root (realpath prefix check,
// then the file is opened with O_NOFOLLOW).
#include <keel/router.hpp>

#include <cstddef>
#include <string>
#include <string_view>

namespace keel {

/// Per-mount settings.
struct static_options {
  /// Cache-Control on every 200/206/304 of the mount; empty = no header.
  /// The default makes caches revalidate (cheap with ETag: a 304).
  std::string cache_control = "no-cache";
  /// Serve `index.html` for a directory (`/prefix/dir/`); `/prefix/dir` gets a
  /// 301 to `/prefix/dir/`. Off by default: directories are 404.
  bool index = false;
  /// Look for `name.br` / `name.gz` beside `name` (Accept-Encoding permitting).
  bool precompressed = true;
  /// Serve names starting with `.` (`.well-known`); off by default.
  bool dotfiles = false;
  /// Bytes per pread and per write when streaming a file.
  std::size_t chunk_size = 64 * 1024;
};

/// Registers GET `prefix` and GET `prefix/{*path}` serving files under `root`
/// (a directory; std::invalid_argument at registration when it is not one).
/// `prefix` is a path such as "/assets", or "/" for the whole site.
route_ref add_static_files(route_group group, std::string_view prefix, std::string const& root,
                           static_options o = {});
route_ref add_static_files(router& r, std::string_view prefix, std::string const& root, static_options o = {});

/// A handler serving the one file at `path` with the same rules (type,
/// validators, ranges, siblings; `index` and `dotfiles` do not apply), e.g.
/// `app.get("/", keel::static_file(dir + "/index.html"))`. std::invalid_argument
/// at registration when it is not a regular file; later, a missing file is a 404.
handler static_file(std::string const& path, static_options o = {});

/// The content type keel sends for a file name, by extension (case-insensitive);
/// `application/octet-stream` when unknown. Text types carry charset=utf-8.
std::string_view content_type_for(std::string_view file_name);

}  // namespace keel
