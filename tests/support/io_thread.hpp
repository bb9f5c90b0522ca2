#pragma once
// An io_context run by a thread of its own for the life of the object, so a
// test's main thread can start coroutines on it and wait for their results
// (co_spawn with use_future), or poll counters while they run.
#include <keel/net.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_future.hpp>

#include <future>
#include <optional>
#include <thread>

namespace keel::test {

class io_thread {
 public:
  io_thread() : guard_(ioc_.get_executor()), thread_([this] { ioc_.run(); }) {}
  ~io_thread() {
    guard_.reset();
    thread_.join();
  }
  io_thread(io_thread const&) = delete;
  io_thread& operator=(io_thread const&) = delete;

  keel::executor executor() { return ioc_.get_executor(); }
  std::thread::id id() const { return thread_.get_id(); }

  /// Starts `t` on this thread; the future has its result or exception.
  template <class T>
  std::future<T> spawn(keel::task<T> t) {
    return boost::asio::co_spawn(ioc_.get_executor(), std::move(t), boost::asio::use_future);
  }
  /// The result of `f` (or its exception), taken once this thread has let go
  /// of its side, so that the result is destroyed on the caller's thread.
  /// (TSan cannot see the reference count inside libstdc++'s exception_ptr
  /// and would report an exception destroyed here as a race.)
  template <class T>
  T get(std::future<T>& f) {
    f.wait();
    run([] {});
    return f.get();
  }
  /// spawn(t), then get().
  template <class T>
  T result(keel::task<T> t) {
    auto f = spawn(std::move(t));
    return get(f);
  }
  /// Runs `f` on this thread and waits for it.
  template <class F>
  void run(F f) {
    std::promise<void> done;
    boost::asio::post(ioc_, [&] {
      f();
      done.set_value();
    });
    done.get_future().get();
  }

 private:
  boost::asio::io_context ioc_{1};
  boost::asio::executor_work_guard<keel::executor> guard_;
  std::thread thread_;
};

}  // namespace keel::test
