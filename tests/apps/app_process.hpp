#pragma once
// Runs an app binary as a child process, the way a user does: waits for its
// `listening on http://HOST:PORT` line, keeps its stderr (the log) in a file,
// and stops it with SIGTERM. Every wait is bounded.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

extern char** environ;

namespace keel::test {

class app_process {
 public:
  app_process(std::string const& binary, std::vector<std::string> args) {
    static int counter = 0;
    log_path_ = "/tmp/keel-app-" + std::to_string(::getpid()) + "-" + std::to_string(++counter) + ".log";
    int out[2];
    if (::pipe(out) != 0) throw std::runtime_error("pipe failed");
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    posix_spawn_file_actions_addclose(&fa, out[0]);
    posix_spawn_file_actions_addclose(&fa, out[1]);
    posix_spawn_file_actions_addopen(&fa, 2, log_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    std::vector<std::string> all{binary};
    all.insert(all.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : all) argv.push_back(a.data());
    argv.push_back(nullptr);
    int rc = ::posix_spawn(&pid_, binary.c_str(), &fa, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    ::close(out[1]);
    out_fd_ = out[0];
    if (rc != 0) throw std::runtime_error("cannot start " + binary);
    line_ = read_line(std::chrono::seconds(15));
    // Exactly `listening on http://127.0.0.1:PORT\n` (no <regex>: g++ 12 with
    // ASan warns inside it).
    static constexpr std::string_view prefix = "listening on http://127.0.0.1:";
    auto digits = line_.size() > prefix.size() + 1 && line_.compare(0, prefix.size(), prefix) == 0 &&
                          line_.back() == '\n'
                      ? line_.substr(prefix.size(), line_.size() - prefix.size() - 1)
                      : std::string();
    if (digits.empty() || digits.size() > 5 || digits.find_first_not_of("0123456789") != std::string::npos) {
      stop();
      throw std::runtime_error("unexpected first line from " + binary + ": \"" + line_ + "\"");
    }
    port_ = static_cast<std::uint16_t>(std::stoi(digits));
  }
  app_process(app_process const&) = delete;
  app_process& operator=(app_process const&) = delete;
  ~app_process() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    if (out_fd_ >= 0) ::close(out_fd_);
    ::unlink(log_path_.c_str());
  }

  std::uint16_t port() const { return port_; }
  std::string const& listening_line() const { return line_; }

  /// SIGTERM, then waits (bounded) for the exit; returns the exit code, -1 if killed.
  int stop(std::chrono::milliseconds timeout = std::chrono::seconds(15)) {
    if (pid_ <= 0) return exit_code_;
    ::kill(pid_, SIGTERM);
    auto end = std::chrono::steady_clock::now() + timeout;
    int status = 0;
    for (;;) {
      auto r = ::waitpid(pid_, &status, WNOHANG);
      if (r == pid_) break;
      if (std::chrono::steady_clock::now() >= end) {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, &status, 0);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    pid_ = -1;
    exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return exit_code_;
  }

  /// Everything the app logged so far (its stderr).
  std::string log() const {
    std::ifstream f(log_path_);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
  }

 private:
  std::string read_line(std::chrono::milliseconds timeout) {
    std::string line;
    auto end = std::chrono::steady_clock::now() + timeout;
    while (line.empty() || line.back() != '\n') {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(end - std::chrono::steady_clock::now());
      if (left.count() <= 0) break;
      pollfd p{out_fd_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) break;
      char ch;
      if (::read(out_fd_, &ch, 1) != 1) break;
      line.push_back(ch);
    }
    return line;
  }

  pid_t pid_ = -1;
  int out_fd_ = -1;
  int exit_code_ = -1;
  std::uint16_t port_ = 0;
  std::string line_;
  std::string log_path_;
};

}  // namespace keel::test
