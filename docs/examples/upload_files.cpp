// Large uploads: bodies streamed to disk as they arrive, never held in memory.
// Usage: docs_example_upload_files [--listen HOST:PORT] [--body-timeout 30s]
//   curl -T big.iso localhost:8080/files/big.iso      -> stored 4700372992 bytes
//   curl -F title=trip -F file=@a.jpg -F file=@b.jpg localhost:8080/forms   -> trip: 2 files
#include <keel/app.hpp>
#include <keel/body_stream.hpp>
#include <keel/multipart.hpp>
#include <keel/offload.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

namespace {

std::filesystem::path const upload_dir = std::filesystem::temp_directory_path() / "keel-uploads";

// [upload]
// Each piece is a view into the connection's buffer, valid until the next
// read_some(): the blocking disk write runs on the offload pool meanwhile, so
// the I/O thread serves other connections, and memory stays at one piece.
keel::task<keel::response> store(keel::context& ctx) {
  auto name = ctx.param("name");
  if (name.empty() || name.find('/') != std::string::npos || name[0] == '.') {
    throw keel::bad_request("a plain file name, please");
  }
  auto part = upload_dir / (name + ".part");
  std::ofstream out(part, std::ios::binary | std::ios::trunc);
  auto& body = ctx.body_stream();
  while (auto piece = co_await body.read_some()) {
    auto write = [&] { out.write(piece->data(), static_cast<std::streamsize>(piece->size())); };
    co_await keel::offload(write);
  }
  out.close();
  std::filesystem::rename(part, upload_dir / name);  // whole files only, never a torn one
  co_return keel::response::text("stored " + std::to_string(body.received()) + " bytes\n", 201);
}
// [upload]

// [form]
// A browser form with a title and any number of files: each file streamed
// to disk part by part; the title, small by nature, read whole with a limit.
keel::task<keel::response> store_form(keel::context& ctx) {
  keel::multipart_reader form(ctx);  // 415 unless multipart/form-data
  std::string title;
  std::size_t files = 0;
  while (co_await form.next_part()) {
    if (form.name() == "title") {
      title = co_await form.read_all(256);  // 413 past 256 bytes
    } else if (form.name() == "file" && !form.filename().empty()) {
      std::ofstream out(upload_dir / ("form-" + std::to_string(files++)), std::ios::binary);
      while (auto piece = co_await form.read_some()) {
        auto write = [&] { out.write(piece->data(), static_cast<std::streamsize>(piece->size())); };
        co_await keel::offload(write);
      }
    }  // any other part is skipped by the next next_part()
  }
  co_return keel::response::text(title + ": " + std::to_string(files) + " files\n", 201);
}
// [form]

}  // namespace

int main(int argc, char** argv) {
  std::filesystem::create_directories(upload_dir);
  keel::config cfg("upload_files");
  return keel::serve(cfg, argc, argv, [](keel::app& app, keel::config const&) {
    // [route]
    app.put("/files/{name}", store).stream_body(8ull << 30);  // up to 8 GiB per file
    // [route]
    app.post("/forms", store_form).stream_body(1ull << 30);
  });
}
