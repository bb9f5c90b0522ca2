// Streamed responses: a CSV export written row by row, never held in memory whole.
// Usage: docs_example_stream_csv [--listen HOST:PORT] [--write-timeout 30s]
//   curl -s localhost:8080/export?rows=1000000 | tail -1   -> 999999,row 999999
#include <keel/app.hpp>
#include <keel/stream.hpp>

#include <charconv>
#include <string>

namespace {

// [export]
// One linear loop: each write waits until the socket took the bytes, so a slow
// client slows the loop down instead of growing the server's memory. write()
// returns false once the stream has ended (client gone, write_timeout): stop.
keel::task<void> export_rows(keel::response_stream& out, unsigned rows) {
  std::string batch;
  for (unsigned i = 0; i < rows; ++i) {
    batch += std::to_string(i) + ",row " + std::to_string(i) + "\n";
    if (batch.size() < 16 * 1024 && i + 1 < rows) continue;  // a few rows per chunk
    if (!co_await out.write(batch)) co_return;
    batch.clear();
  }
}

keel::task<keel::response> export_handler(keel::context& ctx) {
  unsigned rows = 100;
  auto q = ctx.query("rows").value_or("100");
  std::from_chars(q.data(), q.data() + q.size(), rows);
  // The handler runs after the chain returned the response: capture by value.
  auto r = keel::stream_response([rows](keel::response_stream& out) { return export_rows(out, rows); });
  r.set_header("Content-Type", "text/csv; charset=utf-8");
  co_return r;
}
// [export]

}  // namespace

int main(int argc, char** argv) {
  keel::config cfg("stream_csv");
  return keel::serve(cfg, argc, argv,
                     [](keel::app& app, keel::config const&) { app.get("/export", export_handler); });
}
