// The multipart/form-data scanner on its own: the same body fed whole, split
// at every position, and in pieces of 1, 3, 7 and 64 bytes gives the same
// parts; binary data with near-delimiters; boundaries; every error.
#include <catch2/catch.hpp>

#include "http/multipart_scanner.hpp"

#include <string>
#include <vector>

using keel::detail::multipart_boundary;
using keel::detail::multipart_limits;
using keel::detail::multipart_scanner;
using event = multipart_scanner::event;

namespace {

struct part {
  std::string name, filename, type, data;
  bool operator==(part const&) const = default;
};

struct outcome {
  std::vector<part> parts;
  bool ok = false;
  std::string error;
  std::size_t most_held = 0;  // the largest unconsumed tail while data flowed
};

// Feeds `body` in pieces of `step` bytes (0: whole), the caller's way: the
// unconsumed rest first, then the next piece.
outcome scan(std::string const& boundary, std::string const& body, std::size_t step, multipart_limits l = {},
             std::size_t split_at = std::string::npos) {
  multipart_scanner s(boundary, l);
  outcome out;
  std::string held;
  std::size_t fed = 0;
  auto feed_more = [&] {
    std::size_t n = step == 0 ? body.size() - fed : std::min(step, body.size() - fed);
    if (split_at != std::string::npos) n = fed < split_at ? split_at - fed : body.size() - fed;
    held.append(body, fed, n);
    fed += n;
  };
  feed_more();
  for (;;) {
    auto e = s.next(held);
    if (e == event::data) out.parts.back().data.append(s.data());  // a view into `held`: before the erase
    held.erase(0, s.consumed());
    if (e == event::need_more) {
      if (fed == body.size()) {
        auto f = s.finish();
        out.ok = f == event::done;
        out.error = std::string(s.error_message());
        return out;
      }
      if (!out.parts.empty()) out.most_held = std::max(out.most_held, held.size());
      feed_more();
      continue;
    }
    if (e == event::error) {
      out.error = std::string(s.error_message());
      return out;
    }
    if (e == event::done) {
      out.ok = true;
      return out;
    }
    if (e == event::part_begin) out.parts.push_back({s.head().name, s.head().filename, s.head().content_type, {}});
  }
}

std::string const form =
    "--AaB03x\r\n"
    "Content-Disposition: form-data; name=\"submit-name\"\r\n\r\nLarry\r\n"
    "--AaB03x\r\n"
    "Content-Disposition: form-data; name=\"files\"; filename=\"file1.txt\"\r\n"
    "Content-Type: text/plain\r\n\r\n... contents of file1.txt ...\r\n--AaB0\r\n"
    "--AaB03x  \r\n"
    "content-disposition: FORM-DATA; filename=\"a\\\"b.bin\"; name=pic\r\n"
    "CONTENT-TYPE: image/png\r\n\r\n\r\n\r\n-\r\n--\r\n--A\r\n"
    "--AaB03x--\r\n";

std::vector<part> const form_parts = {
    {"submit-name", "", "text/plain", "Larry"},
    {"files", "file1.txt", "text/plain", "... contents of file1.txt ...\r\n--AaB0"},
    {"pic", "a\"b.bin", "image/png", "\r\n\r\n-\r\n--\r\n--A"},
};

}  // namespace

TEST_CASE("multipart_boundary: token, quoted, among other parameters; anything else refused") {
  CHECK(multipart_boundary("multipart/form-data; boundary=AaB03x") == "AaB03x");
  CHECK(multipart_boundary("Multipart/Form-Data;boundary=\"a b:c\"") == "a b:c");
  CHECK(multipart_boundary("multipart/form-data; charset=utf-8; BOUNDARY=----x12") == "----x12");
  CHECK_FALSE(multipart_boundary("multipart/form-data"));
  CHECK_FALSE(multipart_boundary("multipart/mixed; boundary=x"));
  CHECK_FALSE(multipart_boundary("text/plain; boundary=x"));
  CHECK_FALSE(multipart_boundary("multipart/form-data; boundary=" + std::string(71, 'x')));
  CHECK_FALSE(multipart_boundary("multipart/form-data; boundary=\"\""));
  CHECK_FALSE(multipart_boundary("multipart/form-data; boundary=\"trailing \""));
  CHECK_FALSE(multipart_boundary("multipart/form-data; boundary=bad<char>"));
  CHECK_FALSE(multipart_boundary("multipart/form-data; boundary=\"unclosed"));
}

TEST_CASE("the same form, fed whole, split anywhere, and in small pieces, gives the same parts") {
  auto whole = scan("AaB03x", form, 0);
  REQUIRE(whole.ok);
  CHECK(whole.parts == form_parts);
  for (std::size_t at = 0; at <= form.size(); ++at) {
    auto r = scan("AaB03x", form, 0, {}, at);
    INFO("split at " << at);
    REQUIRE(r.ok);
    REQUIRE(r.parts == form_parts);
  }
  for (std::size_t step : {1u, 3u, 7u, 64u}) {
    auto r = scan("AaB03x", form, step);
    INFO("pieces of " << step);
    CHECK(r.ok);
    CHECK(r.parts == form_parts);
  }
}

TEST_CASE("binary data: every byte value and near-delimiters pass through untouched") {
  std::string data;
  for (int round = 0; round < 4; ++round) {
    for (int b = 0; b < 256; ++b) data.push_back(static_cast<char>(b));
    data += "\r\n--";
    data += "\r\n--bounDar";  // the boundary minus its last character
    data += "--bounDary";     // the boundary without its CRLF
  }
  std::string body = "preamble\r\n--bounDary\r\nContent-Disposition: form-data; name=\"bin\"\r\n\r\n" + data +
                     "\r\n--bounDary--\r\nepilogue, ignored";
  for (std::size_t step : {0u, 1u, 5u, 13u}) {
    auto r = scan("bounDary", body, step);
    REQUIRE(r.ok);
    REQUIRE(r.parts.size() == 1);
    CHECK(r.parts[0].data == data);
    CHECK(r.parts[0].type == "text/plain");
  }
}

TEST_CASE("a 1 MiB part fed a byte at a time: the caller never holds more than a delimiter's worth") {
  std::string body = "--b0undary\r\nContent-Disposition: form-data; name=f\r\n\r\n";
  std::string data(1 << 20, 'x');
  for (std::size_t i = 0; i < data.size(); i += 997) data[i] = '\r';
  for (std::size_t i = 1; i < data.size(); i += 997) data[i] = '\n';
  body += data + "\r\n--b0undary--";
  auto r = scan("b0undary", body, 1);
  REQUIRE(r.ok);
  CHECK(r.parts.at(0).data == data);
  CHECK(r.most_held < std::string("\r\n--b0undary").size());
}

TEST_CASE("an empty part, and a body that is only the closing delimiter") {
  auto r = scan("x", "--x\r\nContent-Disposition: form-data; name=e\r\n\r\n\r\n--x--", 1);
  REQUIRE(r.ok);
  REQUIRE(r.parts.size() == 1);
  CHECK(r.parts[0].data.empty());
  auto none = scan("x", "--x--\r\n", 2);
  CHECK(none.ok);
  CHECK(none.parts.empty());
}

TEST_CASE("errors name what is wrong and nothing after them is reported") {
  auto err = [](std::string const& body, multipart_limits l = {}) { return scan("b", body, 3, l).error; };
  CHECK(err("no delimiter anywhere") == "no boundary in the body");
  CHECK(err("--b\r\nContent-Disposition: form-data; name=x\r\n\r\nand then nothing") ==
        "the body ends before the closing boundary");
  CHECK(err("--b\r\nContent-Disposition: form-data; name=x\r\nX: " + std::string(200, 'h') + "\r\n\r\nx\r\n--b--",
            {100, 10}) == "a part's head is larger than max_header_bytes");
  CHECK(err("--b\r\nX: " + std::string(200, 'h'), {100, 10}) == "a part's head is larger than max_header_bytes");
  std::string three;
  for (int i = 0; i < 3; ++i) three += "--b\r\nContent-Disposition: form-data; name=p\r\n\r\nv\r\n";
  CHECK(err(three + "--b--", {8192, 2}) == "more parts than max_parts");
  CHECK(scan("b", three + "--b--", 3, {8192, 3}).ok);
  CHECK(err("--b\r\nContent-Disposition: form-data; filename=f\r\n\r\nx\r\n--b--") == "a part without a name");
  CHECK(err("--b\r\nContent-Disposition: attachment; name=x\r\n\r\nx\r\n--b--") ==
        "a part without Content-Disposition: form-data");
  CHECK(err("--b\r\n\r\nx\r\n--b--") == "a part without Content-Disposition: form-data");
  CHECK(err("--b\r\nContent-Disposition: form-data; name=x\r\ngarbage line\r\n\r\nx\r\n--b--") ==
        "a part's header line has no name");
  CHECK(err("--b\r\nContent-Disposition: form-data; name=\"x\r\n\r\nx\r\n--b--") ==
        "a part's Content-Disposition is malformed");
  CHECK(err("--bX\r\n") == "a boundary is followed by neither CRLF nor \"--\"");
}
