// multipart/form-data read as a stream of parts (keel/multipart.hpp): curl's
// -F forms with text fields and files (64 MiB with memory flat, both body
// framings), byte-exact file data, a part skipped unread, read_all's limit,
// and malformed bodies answered 400/415 on a connection that stays usable
// for the next client.
#include <catch2/catch.hpp>

#include "process_helpers.hpp"
#include "test_app.hpp"

#include <keel/error.hpp>
#include <keel/multipart.hpp>

#include <cstdio>
#include <filesystem>
#include <string>

using namespace keel::test;
using keel::task;
namespace kt = keel::testing;

namespace {

// One line per part: name, filename, type, size and hash of its data. Parts
// named "skip" are not read at all; "title" is read with read_all(16).
task<keel::response> describe(keel::context& ctx) {
  keel::multipart_reader form(ctx);
  std::string out;
  while (co_await form.next_part()) {
    out += form.name() + "|" + form.filename() + "|" + form.content_type();
    if (form.name() == "skip") {
      out += "|skipped\n";
      continue;
    }
    if (form.name() == "title") {
      out += "|" + co_await form.read_all(16) + "\n";
      continue;
    }
    std::uint64_t h = fnv_offset;
    std::uint64_t size = 0;
    while (auto piece = co_await form.read_some()) {
      h = fnv1a(h, *piece);
      size += piece->size();
    }
    out += "|" + std::to_string(size) + "|" + std::to_string(h) + "\n";
  }
  co_return keel::response::text(out);
}

// Pseudo-random bytes with boundary-like runs ("\r\n--" and dashes) mixed in.
std::uint64_t make_file(std::filesystem::path const& p, std::size_t size) {
  return write_random_file(p, size, 7, "\r\n------------------------");
}

struct fixture {
  keel::app app;
  fixture() : app(test_options()) {
    app.post("/form", describe).stream_body(1ull << 30);
    app.post("/small-form", describe);  // buffered body: the reader works on it too
  }
};

}  // namespace

TEST_CASE("curl -F: text fields and a 64 MiB file arrive part by part, memory flat", "[multipart][curl]") {
  fixture f;
  kt::running_app running(f.app);
  temp_file file("keel-multipart");
  constexpr std::size_t size = 64u << 20;
  auto hash = make_file(file.path, size);
  auto url = running.url() + "/form";
  std::string expected = "title||text/plain|holiday\n"
                         "photo|beach.jpg|image/jpeg|" + std::to_string(size) + "|" + std::to_string(hash) + "\n"
                         "note||text/plain|2|" + std::to_string(fnv1a(fnv_offset, "hi")) + "\n";
  auto rss_before = vm_kib("VmRSS:");
  reset_peak_rss();
  auto form = " -F title=holiday -F 'photo=@" + file.path.string() + ";filename=beach.jpg;type=image/jpeg' -F note=hi ";
  CHECK(run_command("curl -s" + form + url) == expected);
  CHECK(run_command("curl -s -H 'Transfer-Encoding: chunked'" + form + url) == expected);
  auto hwm = vm_kib("VmHWM:");
  INFO("VmRSS before " << rss_before << " KiB, VmHWM after " << hwm << " KiB");
  CHECK(hwm < rss_before + 16 * 1024);
}

TEST_CASE("a part left unread is skipped; empty parts and quoted names come through", "[multipart]") {
  fixture f;
  kt::running_app running(f.app);
  kt::client c(running.port());
  std::string body =
      "preamble to ignore\r\n"
      "--XyZ\r\nContent-Disposition: form-data; name=\"skip\"\r\n\r\nnot read \r\n--Xy at all\r\n"
      "--XyZ\r\nContent-Disposition: form-data; name=\"a \\\"q\\\"\"; filename=\"f.bin\"\r\n"
      "Content-Type: application/octet-stream\r\n\r\n\r\n--X\r\n"
      "--XyZ\r\nContent-Disposition: form-data; name=\"empty\"\r\n\r\n\r\n"
      "--XyZ--\r\nepilogue";
  auto r = c.request("POST", "/form", body, {{"Content-Type", "multipart/form-data; boundary=XyZ"}});
  CHECK(r.status == 200);
  CHECK(r.body == "skip||text/plain|skipped\n"
                  "a \"q\"|f.bin|application/octet-stream|5|" + std::to_string(fnv1a(fnv_offset, "\r\n--X")) + "\n"
                  "empty||text/plain|0|" + std::to_string(fnv_offset) + "\n");
  // The same on a route whose body keel buffers.
  auto b = c.request("POST", "/small-form", body, {{"Content-Type", "multipart/form-data; boundary=XyZ"}});
  CHECK(b.body == r.body);
  CHECK(c.get("/form").status == 405);  // still the same connection
}

TEST_CASE("malformed forms: 415 without a boundary, 400 for broken bodies, 413 past read_all's limit",
          "[multipart]") {
  fixture f;
  kt::running_app running(f.app);
  auto post = [&](std::string const& type, std::string const& body) {
    kt::client c(running.port());
    return c.request("POST", "/form", body, {{"Content-Type", type}}).status;
  };
  CHECK(post("text/plain", "x") == 415);
  CHECK(post("multipart/form-data", "x") == 415);
  std::string const type = "multipart/form-data; boundary=b";
  CHECK(post(type, "no delimiter here") == 400);
  CHECK(post(type, "--b\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\ntruncated") == 400);
  CHECK(post(type, "--b\r\nContent-Disposition: attachment\r\n\r\nx\r\n--b--") == 400);
  CHECK(post(type, "--b\r\nContent-Disposition: form-data; name=\"x\"\r\nX-Big: " + std::string(9000, 'h') +
                       "\r\n\r\nx\r\n--b--") == 400);
  CHECK(post(type, "--b\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\n" + std::string(17, 't') +
                       "\r\n--b--") == 413);
  CHECK(post(type, "--b\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\n" + std::string(16, 't') +
                       "\r\n--b--") == 200);
}
