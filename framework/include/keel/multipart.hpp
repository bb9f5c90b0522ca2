#pragma once
// multipart/form-data (RFC 7578) read as a stream of parts, over the request
// body stream (keel/body_stream.hpp): a 4 GiB file field costs one read's
// worth of memory, not 4 GiB.
//
//   app.post("/photos", [](keel::context& ctx) -> keel::task<keel::response> {
//     keel::multipart_reader form(ctx);              // 415 unless multipart/form-data
//     while (co_await form.next_part()) {
//       if (form.name() == "title") title = co_await form.read_all(1024);
//       else if (form.name() == "photo")
//         while (auto piece = co_await form.read_some()) save(form.filename(), *piece);
//     }
//     co_return keel::response::text("ok\n");
//   }).stream_body(1ull << 30);
//
// A part's data pieces are views valid until the next call on the reader.
// next_part() skips whatever the current part has left. Malformed bodies (no
// boundary, a part without a name, a header block over `max_header_bytes`,
// more than `max_parts` parts, a body that ends before the closing boundary)
// throw http_error 400; the body stream's own errors (408, 413) pass through.
// Works on a route without stream_body as well, over the buffered body.
#include <keel/net.hpp>

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace keel {

class context;

struct multipart_options {
  std::size_t max_header_bytes = 8 * 1024;  ///< one part's header block
  std::size_t max_parts = 1000;
};

class multipart_reader {
 public:
  /// Throws http_error 415 when the request is not multipart/form-data with a
  /// valid boundary.
  explicit multipart_reader(context& ctx, multipart_options o = {});
  ~multipart_reader();
  multipart_reader(multipart_reader const&) = delete;
  multipart_reader& operator=(multipart_reader const&) = delete;

  /// Moves to the next part: true when there is one, false after the last.
  task<bool> next_part();
  /// The current part's form field name, file name (empty when none) and
  /// Content-Type ("text/plain" when the part has none, RFC 7578 §4.4).
  std::string const& name() const;
  std::string const& filename() const;
  std::string const& content_type() const;
  /// A header of the current part (case-insensitive name), nullopt if absent.
  std::optional<std::string_view> header(std::string_view name) const;

  /// The current part's next piece of data, nullopt at its end.
  task<std::optional<std::string_view>> read_some();
  /// The rest of the current part as one string; http_error 413 past `limit`.
  task<std::string> read_all(std::size_t limit);

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace keel
