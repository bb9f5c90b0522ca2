// A pool of blocking "connections" used through keel::offload.
// Usage: docs_example_pool_offload [--listen HOST:PORT]
//   curl localhost:8080/lookup/42        -> {"key":"42","value":"value-of-42","connection":1}
#include <keel/app.hpp>
#include <keel/context.hpp>
#include <keel/offload.hpp>
#include <keel/pool.hpp>

#include <boost/json/object.hpp>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>

namespace example {

// Stands for a client library whose calls block (a database driver, say).
class blocking_conn {
 public:
  static blocking_conn open(int id) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));  // the connect
    return blocking_conn(id);
  }
  std::string get(std::string const& key) const { return "value-of-" + key; }
  int id() const { return id_; }

 private:
  explicit blocking_conn(int id) : id_(id) {}
  int id_;
};

// [make-pool]
std::shared_ptr<keel::pool<blocking_conn>> make_pool() {
  keel::pool_options<blocking_conn> o;
  o.max_size = 4;
  o.acquire_timeout = std::chrono::seconds(2);  // then pool_timeout: a 503
  auto next_id = std::make_shared<std::atomic<int>>(0);  // factories may run concurrently
  // The connect blocks, so it runs on the offload pool too.
  o.factory = keel::offloaded([next_id] { return blocking_conn::open(++*next_id); });
  return std::make_shared<keel::pool<blocking_conn>>(std::move(o));
}
// [make-pool]

// [lookup]
keel::task<keel::response> lookup(keel::pool<blocking_conn>& conns, keel::context& ctx) {
  auto key = ctx.param("key");
  auto conn = co_await conns.acquire();  // waits in line when all 4 are out
  // Name the closure before the co_await (g++ 12 destroys a temporary one twice).
  auto read = [&] { return conn->get(key); };
  auto value = co_await keel::offload(read);  // on a worker; resumes on this I/O thread
  co_return keel::response::json(boost::json::object{{"key", key}, {"value", value}, {"connection", conn->id()}});
  // `conn` goes back to the pool here, and on every other way out.
}
// [lookup]

}  // namespace example

int main(int argc, char** argv) {
  keel::config cfg("docs_example_pool_offload");
  return keel::serve(cfg, argc, argv, [](keel::app& app, keel::config const& c) {
    keel::offload_pool::configure(c.server().offload_threads, c.server().offload_queue);
    auto conns = example::make_pool();
    app.get("/lookup/{key}", [conns](keel::context& ctx) { return example::lookup(*conns, ctx); });
  });
}
