#pragma once
// Points fd 2 (where keel::log writes) at a temporary file for a test, and
// reads back the JSON lines written meanwhile.
#include <keel/log.hpp>

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

namespace keel::test {

class capture_stderr {
 public:
  capture_stderr() {
    // Lines queued before (an earlier test's) go where they were meant to.
    keel::log::flush();
    char name[] = "/tmp/keel_mw_test_XXXXXX";
    fd_ = ::mkstemp(name);
    path_ = name;
    saved_ = ::dup(2);
    ::dup2(fd_, 2);
  }
  ~capture_stderr() {
    restore();
    ::close(fd_);
    ::unlink(path_.c_str());
  }
  capture_stderr(capture_stderr const&) = delete;
  capture_stderr& operator=(capture_stderr const&) = delete;

  /// Everything written so far (the log flushed first).
  std::string text() {
    keel::log::flush();
    std::string data;
    if (std::FILE* f = std::fopen(path_.c_str(), "rb")) {
      char buf[8192];
      std::size_t n;
      while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) data.append(buf, n);
      std::fclose(f);
    }
    return data;
  }

  /// The lines that are JSON objects with this "msg" (all when empty), in order.
  std::vector<boost::json::object> lines(std::string_view msg = {}) {
    std::vector<boost::json::object> out;
    auto all = text();
    std::size_t start = 0;
    while (start < all.size()) {
      auto nl = all.find('\n', start);
      if (nl == std::string::npos) nl = all.size();
      boost::system::error_code ec;
      auto v = boost::json::parse(std::string_view(all).substr(start, nl - start), ec);
      if (!ec && v.is_object()) {
        auto const* m = v.as_object().if_contains("msg");
        if (msg.empty() || (m && m->is_string() && m->get_string() == msg)) out.push_back(v.as_object());
      }
      start = nl + 1;
    }
    return out;
  }

  /// Raw lines, for checks on the exact text (field order).
  std::vector<std::string> raw_lines() {
    std::vector<std::string> out;
    auto all = text();
    std::size_t start = 0;
    while (start < all.size()) {
      auto nl = all.find('\n', start);
      if (nl == std::string::npos) nl = all.size();
      out.push_back(all.substr(start, nl - start));
      start = nl + 1;
    }
    return out;
  }

  void restore() {
    if (saved_ >= 0) {
      keel::log::flush();
      ::dup2(saved_, 2);
      ::close(saved_);
      saved_ = -1;
    }
  }

 private:
  int fd_ = -1;
  int saved_ = -1;
  std::string path_;
};

}  // namespace keel::test
