#pragma once
// A redis-server from Debian for tests: its own free port and temporary
// directory, no persistence, stopped (SIGTERM, or SIGKILL) and started again
// on the same port so reconnects can be tested.
#include <keel/testing.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <string>

#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace keel::test {

inline bool redis_available() { return std::filesystem::exists("/usr/bin/redis-server"); }

inline std::uint16_t free_tcp_port() {
  boost::asio::io_context ioc;
  boost::asio::ip::tcp::acceptor a(ioc, {boost::asio::ip::make_address("127.0.0.1"), 0});
  return a.local_endpoint().port();
}

inline bool tcp_port_open(std::uint16_t port) {
  boost::asio::io_context ioc;
  boost::asio::ip::tcp::socket s(ioc);
  boost::system::error_code ec;
  s.connect({boost::asio::ip::make_address("127.0.0.1"), port}, ec);
  return !ec;
}

class redis_server {
 public:
  redis_server() : port_(free_tcp_port()) {
    std::string pattern = (std::filesystem::temp_directory_path() / "keel-redis-XXXXXX").string();
    if (!mkdtemp(pattern.data())) throw std::runtime_error("mkdtemp failed");
    dir_ = pattern;
    start();
  }
  ~redis_server() {
    stop();
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }
  redis_server(redis_server const&) = delete;
  redis_server& operator=(redis_server const&) = delete;

  std::uint16_t port() const { return port_; }
  std::string url() const { return "redis://127.0.0.1:" + std::to_string(port_) + "/0"; }

  /// Starts it (again) on the same port; true once it accepts connections.
  bool start() {
    if (pid_ > 0) return true;
    auto port = std::to_string(port_);
    char const* argv[] = {"redis-server", "--port", port.c_str(), "--bind", "127.0.0.1", "--save", "",
                          "--appendonly", "no", "--dir", dir_.c_str(), "--daemonize", "no",
                          "--loglevel", "warning", nullptr};
    // A restarted server must not inherit the test's sockets (Asio does not
    // open them close-on-exec): a client closed later would stay connected.
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addclosefrom_np(&fa, 3);
    int rc = posix_spawn(&pid_, "/usr/bin/redis-server", &fa, nullptr, const_cast<char**>(argv), environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) {
      pid_ = -1;
      return false;
    }
    return keel::testing::eventually([&] { return tcp_port_open(port_); }, std::chrono::seconds(10));
  }
  /// Freezes it (SIGSTOP): connections stay open but nothing is answered.
  void pause() { if (pid_ > 0) ::kill(pid_, SIGSTOP); }
  void resume() { if (pid_ > 0) ::kill(pid_, SIGCONT); }
  /// Stops it (SIGTERM, or SIGKILL when `kill` is set) and waits until it is gone.
  void stop(bool kill = false) {
    if (pid_ <= 0) return;
    ::kill(pid_, kill ? SIGKILL : SIGTERM);
    ::kill(pid_, SIGCONT);  // a paused server must run to see its signal
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
  }

 private:
  std::uint16_t port_;
  std::string dir_;
  pid_t pid_ = -1;
};

}  // namespace keel::test
