#include "http/multipart_scanner.hpp"

#include <algorithm>
#include <cctype>

namespace keel::detail {

namespace {

constexpr std::string_view crlf = "\r\n";

bool iequal(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// RFC 2046 §5.1.1 bchars.
bool boundary_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || std::string_view("'()+_,-./:=? ").find(c) != std::string_view::npos;
}

// Parameters of a header value after its first `;`: key=token or
// key="quoted \" string". Calls f(key, value) for each; false when malformed.
template <class F>
bool for_each_param(std::string_view rest, F f) {
  while (!rest.empty()) {
    rest = trim(rest);
    if (rest.empty()) break;
    if (rest.front() == ';') {
      rest.remove_prefix(1);
      continue;
    }
    auto eq = rest.find('=');
    if (eq == std::string_view::npos) return false;
    auto key = trim(rest.substr(0, eq));
    rest = trim(rest.substr(eq + 1));
    std::string value;
    if (!rest.empty() && rest.front() == '"') {
      std::size_t i = 1;
      for (; i < rest.size() && rest[i] != '"'; ++i) {
        if (rest[i] == '\\' && i + 1 < rest.size()) ++i;
        value.push_back(rest[i]);
      }
      if (i >= rest.size()) return false;  // no closing quote
      rest.remove_prefix(i + 1);
    } else {
      auto end = rest.find(';');
      value = std::string(trim(rest.substr(0, end)));
      rest = end == std::string_view::npos ? std::string_view() : rest.substr(end);
    }
    f(key, std::move(value));
  }
  return true;
}

}  // namespace

std::optional<std::string> multipart_boundary(std::string_view content_type) {
  auto semi = content_type.find(';');
  if (!iequal(trim(content_type.substr(0, semi)), "multipart/form-data") || semi == std::string_view::npos) {
    return std::nullopt;
  }
  std::optional<std::string> boundary;
  bool ok = for_each_param(content_type.substr(semi), [&](std::string_view key, std::string value) {
    if (iequal(key, "boundary")) boundary = std::move(value);
  });
  if (!ok || !boundary || boundary->empty() || boundary->size() > 70 || boundary->back() == ' ' ||
      !std::all_of(boundary->begin(), boundary->end(), boundary_char)) {
    return std::nullopt;
  }
  return boundary;
}

multipart_scanner::multipart_scanner(std::string_view boundary, multipart_limits limits)
    : delimiter_(std::string("\r\n--").append(boundary)), limits_(limits) {}

multipart_scanner::event multipart_scanner::fail(std::string_view why) {
  state_ = state::failed;
  error_ = why;
  return event::error;
}

multipart_scanner::event multipart_scanner::next(std::string_view in) {
  consumed_ = 0;
  data_ = {};
  std::size_t pos = 0;
  auto done_with = [&](event e) {
    consumed_ = pos;
    return e;
  };
  for (;;) {
    switch (state_) {
      case state::preamble: {
        if (at_start_) {
          // The body may open with the delimiter itself, without its CRLF.
          auto dash_boundary = std::string_view(delimiter_).substr(2);
          auto n = std::min(in.size(), dash_boundary.size());
          if (in.substr(0, n) == dash_boundary.substr(0, n)) {
            if (n < dash_boundary.size()) return done_with(event::need_more);
            pos = n;
            at_start_ = false;
            state_ = state::after_delimiter;
            continue;
          }
          at_start_ = false;
        }
        auto at = in.find(delimiter_, pos);
        if (at == std::string_view::npos) {
          // A preamble is ignored; keep only what could begin a delimiter.
          pos = std::max(pos, in.size() - std::min(in.size(), delimiter_.size() - 1));
          return done_with(event::need_more);
        }
        pos = at + delimiter_.size();
        state_ = state::after_delimiter;
        continue;
      }
      case state::after_delimiter: {
        if (in.size() - pos < 2) return done_with(event::need_more);
        if (in.substr(pos, 2) == "--") {
          pos = in.size();  // the epilogue is ignored
          state_ = state::done;
          return done_with(event::done);
        }
        auto p = pos;
        while (p < in.size() && (in[p] == ' ' || in[p] == '\t')) ++p;  // transport padding
        if (in.size() - p < 2) {
          if (p - pos > 256) return fail("too much padding after a boundary");
          return done_with(event::need_more);
        }
        if (in.substr(p, 2) != crlf) return fail("a boundary is followed by neither CRLF nor \"--\"");
        pos = p + 2;
        if (++parts_ > limits_.max_parts) return fail("more parts than max_parts");
        head_ = {};
        head_bytes_ = 0;
        state_ = state::headers;
        continue;
      }
      case state::headers: {
        auto eol = in.find(crlf, pos);
        if (eol == std::string_view::npos) {
          if (head_bytes_ + (in.size() - pos) > limits_.max_header_bytes) return fail("a part's head is larger than max_header_bytes");
          return done_with(event::need_more);
        }
        auto line = in.substr(pos, eol - pos);
        pos = eol + 2;
        head_bytes_ += line.size() + 2;
        if (head_bytes_ > limits_.max_header_bytes) return fail("a part's head is larger than max_header_bytes");
        if (line.empty()) {
          auto e = end_of_head();
          if (e == event::error) return e;
          return done_with(e);
        }
        if (header_line(line) == event::error) return event::error;
        continue;
      }
      case state::body: {
        if (pending_part_end_) {
          pending_part_end_ = false;
          pos += delimiter_.size();
          state_ = state::after_delimiter;
          return done_with(event::part_end);
        }
        auto rest = in.substr(pos);
        auto at = rest.find(delimiter_);
        std::size_t data_end = 0;
        if (at != std::string_view::npos) {
          data_end = at;
          pending_part_end_ = true;
        } else {
          // Hold back a tail that could be the start of a delimiter.
          data_end = rest.size();
          auto from = rest.size() - std::min(rest.size(), delimiter_.size() - 1);
          for (auto k = from; k < rest.size(); ++k) {
            auto tail = rest.substr(k);
            if (std::string_view(delimiter_).substr(0, tail.size()) == tail) {
              data_end = k;
              break;
            }
          }
        }
        if (data_end == 0) {
          if (pending_part_end_) continue;
          return done_with(event::need_more);
        }
        data_ = rest.substr(0, data_end);
        pos += data_end;
        return done_with(event::data);
      }
      case state::done:
        pos = in.size();
        return done_with(event::done);
      case state::failed:
        return event::error;
    }
  }
}

multipart_scanner::event multipart_scanner::header_line(std::string_view line) {
  auto colon = line.find(':');
  if (colon == std::string_view::npos || colon == 0) return fail("a part's header line has no name");
  std::string name(trim(line.substr(0, colon)));
  if (name.empty() || name.find_first_of(" \t") != std::string::npos) return fail("a part's header name is malformed");
  std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  head_.headers.emplace_back(std::move(name), std::string(trim(line.substr(colon + 1))));
  return event::need_more;
}

multipart_scanner::event multipart_scanner::end_of_head() {
  std::string_view disposition;
  bool has_type = false;
  for (auto const& [n, v] : head_.headers) {
    if (n == "content-disposition") disposition = v;
    if (n == "content-type") {
      head_.content_type = v;
      has_type = true;
    }
  }
  if (!has_type) head_.content_type = "text/plain";
  auto semi = disposition.find(';');
  if (!iequal(trim(disposition.substr(0, semi)), "form-data")) {
    return fail("a part without Content-Disposition: form-data");
  }
  bool has_name = false;
  bool ok = semi != std::string_view::npos &&
            for_each_param(disposition.substr(semi), [&](std::string_view key, std::string value) {
              if (iequal(key, "name")) {
                head_.name = std::move(value);
                has_name = true;
              } else if (iequal(key, "filename")) {
                head_.filename = std::move(value);
              }
            });
  if (!ok) return fail("a part's Content-Disposition is malformed");
  if (!has_name) return fail("a part without a name");
  state_ = state::body;
  return event::part_begin;
}

multipart_scanner::event multipart_scanner::finish() {
  if (state_ == state::done) return event::done;
  if (state_ == state::failed) return event::error;
  if (state_ == state::preamble) return fail("no boundary in the body");
  return fail("the body ends before the closing boundary");
}

}  // namespace keel::detail
