// Compiles against the installed headers, links the installed static
// libraries, and runs one keel::task on keel's executor: proves the exported
// targets carry the include path, C++20, the Asio separate-compilation
// definitions and the Boost/OpenSSL/Threads dependencies.
#include <keel/net.hpp>
#include <keel/options.hpp>

#include <boost/asio/co_spawn.hpp>

#include <cstdio>
#include <exception>

namespace {

keel::task<unsigned> threads_after_a_tick() {
  keel::steady_timer timer{co_await keel::asio::this_coro::executor};
  timer.expires_after(std::chrono::milliseconds(1));
  co_await timer.async_wait(keel::use_task);
  co_return keel::options{}.effective_threads();
}

}  // namespace

int main() {
  keel::asio::io_context io{1};
  unsigned threads = 0;
  bool failed = false;
  auto done = [&](std::exception_ptr e, unsigned n) {
    failed = e != nullptr;
    threads = n;
  };
  keel::asio::co_spawn(io.get_executor(), threads_after_a_tick(), done);
  io.run();
  if (failed || threads == 0) {
    std::puts("keel consumer: FAILED");
    return 1;
  }
  std::printf("keel consumer: ok, effective_threads=%u\n", threads);
  return 0;
}
