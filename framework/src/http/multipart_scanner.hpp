#pragma once
// The I/O-free core of multipart/form-data (RFC 7578, RFC 2046 §5.1): fed the
// body's bytes in pieces of any size, it reports parts, their heads and their
// data, the data as views into what it was fed. keel::multipart_reader
// (keel/multipart.hpp) drives it from the body stream; the fuzz target drives
// it from bytes.
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace keel::detail {

/// The boundary of a `multipart/form-data; boundary=...` Content-Type (token
/// or quoted, 1..70 characters); nullopt for any other type or a bad boundary.
std::optional<std::string> multipart_boundary(std::string_view content_type);

struct multipart_limits {
  std::size_t max_header_bytes = 8 * 1024;
  std::size_t max_parts = 1000;
};

struct multipart_part_head {
  std::string name;
  std::string filename;
  std::string content_type;                                  // "text/plain" when absent
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased
};

class multipart_scanner {
 public:
  enum class event { need_more, part_begin, data, part_end, done, error };

  explicit multipart_scanner(std::string_view boundary, multipart_limits limits = {});

  /// Scans `input`, the bytes not consumed so far followed by any new ones,
  /// and reports one event; consumed() says how much of `input` it used. The
  /// caller keeps the rest for the next call: while data flows that is less
  /// than the delimiter's length, within a head less than max_header_bytes.
  event next(std::string_view input);
  /// The end of the body: done when the closing delimiter was seen, else error.
  event finish();

  std::size_t consumed() const { return consumed_; }
  multipart_part_head const& head() const { return head_; }
  /// The data of the last `data` event: a view into that call's input.
  std::string_view data() const { return data_; }
  std::string_view error_message() const { return error_; }

 private:
  enum class state { preamble, after_delimiter, headers, body, done, failed };

  event fail(std::string_view why);
  event header_line(std::string_view line);
  event end_of_head();

  std::string delimiter_;  // CRLF "--" boundary
  multipart_limits limits_;
  state state_ = state::preamble;
  bool at_start_ = true;   // the first delimiter may come without its CRLF
  bool pending_part_end_ = false;
  std::size_t parts_ = 0;
  std::size_t head_bytes_ = 0;
  std::size_t consumed_ = 0;
  multipart_part_head head_;
  std::string_view data_;
  std::string_view error_;
};

}  // namespace keel::detail
