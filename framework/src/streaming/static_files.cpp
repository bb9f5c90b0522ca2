// Static files: path checks, conditional requests, ranges and precompressed
// siblings, then the bytes, read with pread in chunk_size pieces.
//
// Why pread on the I/O thread rather than offload(): a 64 KiB pread from the
// page cache takes microseconds, less than the hop to a pool thread and back;
// a cold disk can stall the thread for a seek, which is the documented trade
// (docs/static-files.md). Why realpath plus O_NOFOLLOW rather than openat per
// component: symlinks inside the root keep working (a deploy that links
// assets/current -> assets/v42), and only one that resolves outside is
// refused; O_NOFOLLOW on the resolved path then refuses a final component
// swapped for a link between the check and the open.
#include <keel/context.hpp>
#include <keel/static_files.hpp>
#include <keel/stream.hpp>

#include <boost/beast/core/string.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <climits>
#include <cstdlib>
#include <ctime>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <variant>

namespace keel {

namespace {

using boost::beast::iequals;

struct type_entry {
  std::string_view ext;
  std::string_view type;
};

constexpr std::array<type_entry, 36> types{{
    {"html", "text/html; charset=utf-8"},
    {"htm", "text/html; charset=utf-8"},
    {"css", "text/css; charset=utf-8"},
    {"js", "text/javascript; charset=utf-8"},
    {"mjs", "text/javascript; charset=utf-8"},
    {"json", "application/json"},
    {"map", "application/json"},
    {"txt", "text/plain; charset=utf-8"},
    {"md", "text/markdown; charset=utf-8"},
    {"csv", "text/csv; charset=utf-8"},
    {"xml", "application/xml"},
    {"svg", "image/svg+xml"},
    {"png", "image/png"},
    {"jpg", "image/jpeg"},
    {"jpeg", "image/jpeg"},
    {"gif", "image/gif"},
    {"webp", "image/webp"},
    {"avif", "image/avif"},
    {"ico", "image/vnd.microsoft.icon"},
    {"woff", "font/woff"},
    {"woff2", "font/woff2"},
    {"ttf", "font/ttf"},
    {"otf", "font/otf"},
    {"wasm", "application/wasm"},
    {"pdf", "application/pdf"},
    {"mp4", "video/mp4"},
    {"webm", "video/webm"},
    {"mp3", "audio/mpeg"},
    {"ogg", "audio/ogg"},
    {"wav", "audio/wav"},
    {"zip", "application/zip"},
    {"gz", "application/gzip"},
    {"br", "application/x-brotli"},
    {"tar", "application/x-tar"},
    {"webmanifest", "application/manifest+json"},
    {"bin", "application/octet-stream"},
}};

// A file descriptor that closes itself.
class fd_holder {
 public:
  explicit fd_holder(int fd = -1) : fd_(fd) {}
  fd_holder(fd_holder&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  fd_holder& operator=(fd_holder&& o) noexcept {
    std::swap(fd_, o.fd_);
    return *this;
  }
  fd_holder(fd_holder const&) = delete;
  fd_holder& operator=(fd_holder const&) = delete;
  ~fd_holder() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }
  explicit operator bool() const { return fd_ >= 0; }

 private:
  int fd_;
};

struct mount {
  std::string prefix;  // "/assets", or "" for "/"
  std::string root;    // realpath of the directory
  std::string file;    // static_file(): the one file served, as given
  static_options opts;
};

response not_found() { return response::text("Not Found\n", 404); }

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// The path under the mount, percent-decoded, or nullopt when it must be
// refused. `raw` is what follows the prefix, as sent ("/css/site.css").
std::optional<std::string> safe_relative_path(std::string_view raw, bool dotfiles) {
  std::string out;
  out.reserve(raw.size());
  for (std::size_t i = 0; i < raw.size(); ++i) {
    char ch = raw[i];
    if (ch == '%') {
      if (i + 2 >= raw.size()) return std::nullopt;
      int hi = hex_value(raw[i + 1]), lo = hex_value(raw[i + 2]);
      if (hi < 0 || lo < 0) return std::nullopt;
      ch = static_cast<char>(hi * 16 + lo);
      // An encoded separator names a different path than it seems to.
      if (ch == '/' || ch == '\\' || ch == '\0') return std::nullopt;
      i += 2;
    } else if (ch == '\\' || ch == '\0') {
      return std::nullopt;
    }
    out.push_back(ch);
  }
  // Segments: none empty (but a trailing '/' for a directory), none "." or
  // "..", no dot files unless allowed.
  std::string_view rest(out);
  if (rest.empty()) return out;
  if (rest.front() != '/') return std::nullopt;
  rest.remove_prefix(1);
  while (!rest.empty()) {
    auto slash = rest.find('/');
    auto seg = rest.substr(0, slash);
    if (seg.empty()) return std::nullopt;
    if (seg == "." || seg == "..") return std::nullopt;
    if (seg.front() == '.' && !dotfiles) return std::nullopt;
    if (slash == std::string_view::npos) break;
    rest.remove_prefix(slash + 1);
  }
  return out;
}

bool inside(std::string const& path, std::string const& root) {
  if (path.size() < root.size() || path.compare(0, root.size(), root) != 0) return false;
  return path.size() == root.size() || path[root.size()] == '/' || root == "/";
}

std::optional<std::string> resolve(std::string const& path) {
  char buf[PATH_MAX];
  if (!::realpath(path.c_str(), buf)) return std::nullopt;
  return std::string(buf);
}

// Opens a regular file (no symlink as its last component). O_NONBLOCK: opening
// a FIFO for reading would otherwise wait for a writer, on the I/O thread; it
// changes nothing for a regular file's pread.
fd_holder open_regular(std::string const& path, struct stat& st) {
  fd_holder fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK));
  if (!fd || ::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) return fd_holder();
  return fd;
}

std::string format_http_date(std::time_t t) {
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[40];
  auto n = std::strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
  return std::string(buf, n);
}

std::optional<std::time_t> parse_http_date(std::string_view s) {
  std::string text(s);
  std::tm tm{};
  auto* end = ::strptime(text.c_str(), "%a, %d %b %Y %H:%M:%S GMT", &tm);
  if (!end || *end != '\0') return std::nullopt;
  return ::timegm(&tm);
}

std::string make_etag(struct stat const& st, std::string_view coding) {
  char buf[64];
  auto ns = static_cast<unsigned long long>(st.st_mtim.tv_sec) * 1000000000ull +
            static_cast<unsigned long long>(st.st_mtim.tv_nsec);
  auto* p = buf;
  *p++ = '"';
  p = std::to_chars(p, buf + 30, static_cast<unsigned long long>(st.st_size), 16).ptr;
  *p++ = '-';
  p = std::to_chars(p, buf + 60, ns, 16).ptr;
  std::string out(buf, p);
  if (!coding.empty()) {
    out.push_back('-');
    out.append(coding);
  }
  out.push_back('"');
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// If-None-Match: a list of entity tags or `*`, compared weakly (RFC 9110 §13.1.2).
bool none_match(std::string_view header, std::string_view etag) {
  while (!header.empty()) {
    auto comma = header.find(',');
    auto tag = trim(header.substr(0, comma));
    if (tag == "*") return true;
    if (tag.size() > 2 && tag.substr(0, 2) == "W/") tag.remove_prefix(2);
    if (tag == etag) return true;
    if (comma == std::string_view::npos) break;
    header.remove_prefix(comma + 1);
  }
  return false;
}

// The q-value Accept-Encoding gives `coding` (0 when refused or absent).
double accepted(std::string_view header, std::string_view coding) {
  double star = -1, exact = -1;
  while (!header.empty()) {
    auto comma = header.find(',');
    auto item = trim(header.substr(0, comma));
    auto semi = item.find(';');
    auto name = trim(item.substr(0, semi));
    double q = 1;
    if (semi != std::string_view::npos) {
      auto params = trim(item.substr(semi + 1));
      if (params.size() > 2 && (params[0] == 'q' || params[0] == 'Q') && params[1] == '=') {
        std::string v(trim(params.substr(2)));
        char* end = nullptr;
        q = std::strtod(v.c_str(), &end);
        if (end == v.c_str()) q = 0;
      }
    }
    if (iequals(name, coding)) exact = q;
    else if (name == "*") star = q;
    if (comma == std::string_view::npos) break;
    header.remove_prefix(comma + 1);
  }
  if (exact >= 0) return exact;
  return star > 0 ? star : 0;
}

struct byte_range {
  std::uint64_t first = 0;
  std::uint64_t length = 0;
};

enum class range_kind { none, single, unsatisfiable };

// One `bytes=` range; anything else (several ranges, another unit, bad
// syntax) is ignored and the whole file served, as RFC 9110 §14.2 allows.
range_kind parse_range(std::string_view h, std::uint64_t size, byte_range& out) {
  h = trim(h);
  if (h.size() < 6 || !iequals(h.substr(0, 6), "bytes=")) return range_kind::none;
  h = trim(h.substr(6));
  if (h.find(',') != std::string_view::npos) return range_kind::none;
  auto dash = h.find('-');
  if (dash == std::string_view::npos) return range_kind::none;
  auto a = trim(h.substr(0, dash)), b = trim(h.substr(dash + 1));
  auto number = [](std::string_view s, std::uint64_t& v) {
    if (s.empty()) return false;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    return ec == std::errc() && p == s.data() + s.size();
  };
  std::uint64_t first = 0, last = 0;
  if (a.empty()) {  // suffix: the last N bytes
    if (!number(b, last)) return range_kind::none;
    if (last == 0 || size == 0) return range_kind::unsatisfiable;
    out.length = std::min(last, size);
    out.first = size - out.length;
    return range_kind::single;
  }
  if (!number(a, first)) return range_kind::none;
  if (b.empty()) {
    last = size ? size - 1 : 0;
  } else {
    if (!number(b, last) || last < first) return range_kind::none;
  }
  if (first >= size) return range_kind::unsatisfiable;
  last = std::min(last, size - 1);
  out.first = first;
  out.length = last - first + 1;
  return range_kind::single;
}

struct open_file {
  fd_holder fd;
  std::uint64_t offset = 0;
  std::uint64_t length = 0;
  std::size_t chunk = 0;
};

task<void> send_file(response_stream& out, std::shared_ptr<open_file> f) {
  std::string buf(std::min<std::uint64_t>(f->chunk, f->length), '\0');
  std::uint64_t pos = f->offset, end = f->offset + f->length;
  while (pos < end) {
    auto want = static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), end - pos));
    auto n = ::pread(f->fd.get(), buf.data(), want, static_cast<off_t>(pos));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) co_return;  // error or the file shrank: the stream is cut short
    pos += static_cast<std::uint64_t>(n);
    if (!co_await out.write(std::string_view(buf.data(), static_cast<std::size_t>(n)))) co_return;
  }
}

// The file `ctx` names under the mount, resolved (symlinks followed, the root
// checked, a directory's index.html found), or the response that already
// answers: 404, or 301 to a directory's path with its slash.
std::variant<std::string, response> locate(context& ctx, mount const& m) {
  auto path = ctx.path();
  std::string_view raw;
  std::optional<std::string> real;
  if (!m.file.empty()) {
    real = resolve(m.file);
    if (!real) return not_found();
  } else {
    if (path.size() < m.prefix.size() || path.compare(0, m.prefix.size(), m.prefix) != 0) return not_found();
    raw = path.substr(m.prefix.size());
    auto rel = safe_relative_path(raw, m.opts.dotfiles);
    if (!rel) return not_found();
    real = resolve(m.root + *rel);
    if (!real || !inside(*real, m.root)) return not_found();
  }

  struct stat st {};
  if (::stat(real->c_str(), &st) != 0) return not_found();
  if (!S_ISDIR(st.st_mode)) return std::move(*real);
  if (!m.file.empty() || !m.opts.index) return not_found();
  if (raw.empty() || raw.back() != '/') {
    std::string location(path);
    location.push_back('/');
    if (!ctx.req().query_string().empty()) {
      location.push_back('?');
      location.append(ctx.req().query_string());
    }
    return response::redirect(location, 301);
  }
  real->append("/index.html");
  auto index_real = resolve(*real);
  if (!index_real || !inside(*index_real, m.root)) return not_found();
  return std::move(*index_real);
}

// The bytes chosen for a response: the file or its precompressed sibling.
struct representation {
  fd_holder fd;
  struct stat st {};
  std::uint64_t size = 0;
  std::string_view coding;  // "", "br" or "gzip"
  std::string etag;
};

// Opens `real`, or the sibling the client takes (brotli before gzip) when the
// mount has precompressed files and the request asks for no range.
std::optional<representation> open_representation(context& ctx, mount const& m, std::string const& real) {
  representation f;
  f.fd = open_regular(real, f.st);
  if (!f.fd) return std::nullopt;
  f.size = static_cast<std::uint64_t>(f.st.st_size);
  if (m.opts.precompressed && !ctx.header("Range")) {
    auto ae = ctx.header("Accept-Encoding").value_or("");
    double br = accepted(ae, "br"), gz = accepted(ae, "gzip");
    std::array<std::pair<std::string_view, double>, 2> order{{{"br", br}, {"gzip", gz}}};
    if (gz > br) std::swap(order[0], order[1]);
    for (auto [name, q] : order) {
      if (q <= 0) continue;
      struct stat cst {};
      auto sibling = open_regular(real + (name == "br" ? ".br" : ".gz"), cst);
      if (!sibling) continue;
      f.fd = std::move(sibling);
      f.st = cst;
      f.size = static_cast<std::uint64_t>(f.st.st_size);
      f.coding = name;
      break;
    }
  }
  f.etag = make_etag(f.st, f.coding);
  return f;
}

void set_validators(response& r, mount const& m, representation const& f) {
  r.set_header("ETag", f.etag);
  r.set_header("Last-Modified", format_http_date(f.st.st_mtim.tv_sec));
  if (!m.opts.cache_control.empty()) r.set_header("Cache-Control", m.opts.cache_control);
  if (m.opts.precompressed) r.set_header("Vary", "Accept-Encoding");
}

// Conditional requests (RFC 9110 §13.2.2): If-None-Match decides when sent.
bool not_modified(context& ctx, representation const& f) {
  if (auto inm = ctx.header("If-None-Match")) return none_match(*inm, f.etag);
  if (auto ims = ctx.header("If-Modified-Since")) {
    auto t = parse_http_date(*ims);
    return t && f.st.st_mtim.tv_sec <= *t;
  }
  return false;
}

// The range the request asks for, set in `out` when single; none when there
// is no Range header or If-Range names another version of the file.
range_kind requested_range(context& ctx, representation const& f, byte_range& out) {
  auto range_header = ctx.header("Range");
  if (!range_header) return range_kind::none;
  if (auto if_range = ctx.header("If-Range")) {
    auto v = trim(*if_range);
    if (v != f.etag && v != format_http_date(f.st.st_mtim.tv_sec)) return range_kind::none;
  }
  byte_range r;
  auto kind = parse_range(*range_header, f.size, r);
  if (kind == range_kind::single) out = r;
  return kind;
}

// The response's status and headers, for `range` of the representation.
response head_for(mount const& m, representation const& f, std::string_view type, unsigned status,
                  byte_range range) {
  response res(status);
  res.set_header("Content-Type", type);
  if (!f.coding.empty()) res.set_header("Content-Encoding", f.coding);
  res.set_header("Accept-Ranges", "bytes");
  res.set_header("X-Content-Type-Options", "nosniff");  // the type is the extension's, never a guess
  set_validators(res, m, f);
  if (status == 206) {
    res.set_header("Content-Range", "bytes " + std::to_string(range.first) + "-" +
                                        std::to_string(range.first + range.length - 1) + "/" + std::to_string(f.size));
  }
  return res;
}

// Reads `range` of the file into `body` whole; false when the file shrank or failed.
bool read_range(fd_holder const& fd, byte_range range, std::string& body) {
  body.resize(static_cast<std::size_t>(range.length));
  std::size_t got = 0;
  while (got < body.size()) {
    auto n = ::pread(fd.get(), body.data() + got, body.size() - got, static_cast<off_t>(range.first + got));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    got += static_cast<std::size_t>(n);
  }
  return true;
}

// `res`'s status and headers over a body written chunk by chunk as the client takes it.
response streamed(response const& res, fd_holder fd, byte_range range, std::size_t chunk_size) {
  auto file = std::make_shared<open_file>();
  file->fd = std::move(fd);
  file->offset = range.first;
  file->length = range.length;
  file->chunk = chunk_size ? chunk_size : 64 * 1024;
  stream_options so;
  so.content_length = range.length;
  auto out = stream_response([file](response_stream& s) { return send_file(s, file); }, so);
  for (auto [name, value] : res.headers()) out.add_header(name, value);
  out.status = res.status;
  return out;
}

task<response> serve(context& ctx, std::shared_ptr<mount const> mp) {
  auto const& m = *mp;
  auto where = locate(ctx, m);
  if (auto* answer = std::get_if<response>(&where)) co_return std::move(*answer);
  auto const& real = std::get<std::string>(where);

  auto f = open_representation(ctx, m, real);
  if (!f) co_return not_found();
  if (not_modified(ctx, *f)) {
    response r(304);
    set_validators(r, m, *f);
    co_return r;
  }

  byte_range range{0, f->size};
  auto kind = requested_range(ctx, *f, range);
  if (kind == range_kind::unsatisfiable) {
    response res = response::text("Range Not Satisfiable\n", 416);
    res.set_header("Content-Range", "bytes */" + std::to_string(f->size));
    set_validators(res, m, *f);
    co_return res;
  }
  unsigned status = kind == range_kind::single ? 206 : 200;
  response res = head_for(m, *f, content_type_for(real), status, range);

  // Up to one chunk: an ordinary response, framed and written like any other.
  if (ctx.method() != verb::head && range.length <= m.opts.chunk_size) {
    if (!read_range(f->fd, range, res.body)) co_return not_found();
    co_return res;
  }
  co_return streamed(res, std::move(f->fd), range, m.opts.chunk_size);
}

template <class Register>
route_ref register_mount(Register&& reg, std::string_view prefix, std::string const& root, static_options o) {
  auto real = resolve(root);
  struct stat st {};
  if (!real || ::stat(real->c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    throw std::invalid_argument("static_files: \"" + root + "\" is not a directory");
  }
  auto m = std::make_shared<mount>();
  m->prefix = std::string(prefix);
  while (!m->prefix.empty() && m->prefix.back() == '/') m->prefix.pop_back();
  m->root = *real;
  m->opts = std::move(o);
  handler h = [m](context& ctx) { return serve(ctx, m); };
  reg(m->prefix.empty() ? std::string("/") : m->prefix, h);
  return reg(m->prefix + "/{*path}", h);
}

}  // namespace

std::string_view content_type_for(std::string_view file_name) {
  auto slash = file_name.rfind('/');
  if (slash != std::string_view::npos) file_name.remove_prefix(slash + 1);
  auto dot = file_name.rfind('.');
  if (dot == std::string_view::npos) return "application/octet-stream";
  auto ext = file_name.substr(dot + 1);
  for (auto const& t : types) {
    if (iequals(t.ext, ext)) return t.type;
  }
  return "application/octet-stream";
}

handler static_file(std::string const& path, static_options o) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
    throw std::invalid_argument("static_file: \"" + path + "\" is not a regular file");
  }
  auto m = std::make_shared<mount>();
  m->file = path;
  m->opts = std::move(o);
  return [m](context& ctx) { return serve(ctx, m); };
}

route_ref add_static_files(route_group group, std::string_view prefix, std::string const& root, static_options o) {
  return register_mount([&](std::string const& pattern, handler const& h) { return group.get(pattern, h); }, prefix,
                        root, std::move(o));
}

route_ref add_static_files(router& r, std::string_view prefix, std::string const& root, static_options o) {
  return register_mount([&](std::string const& pattern, handler const& h) { return r.get(pattern, h); }, prefix,
                        root, std::move(o));
}

}  // namespace keel
