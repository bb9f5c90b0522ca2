#include <keel/request.hpp>

#include <boost/beast/core/string.hpp>

namespace keel {

std::string_view request::path() const {
  auto t = target();
  auto q = t.find('?');
  return q == std::string_view::npos ? t : t.substr(0, q);
}

std::string_view request::query_string() const {
  auto t = target();
  auto q = t.find('?');
  return q == std::string_view::npos ? std::string_view{} : t.substr(q + 1);
}

std::optional<std::string_view> request::header(std::string_view name) const {
  for (auto const& h : headers_) {
    if (boost::beast::iequals(view(h.name), name)) return view(h.value);
  }
  return std::nullopt;
}

std::vector<header_view> request::headers() const {
  std::vector<header_view> out;
  out.reserve(headers_.size());
  for (auto const& h : headers_) out.push_back({view(h.name), view(h.value)});
  return out;
}

request::ref request::store(std::string_view s) {
  ref r{static_cast<std::uint32_t>(head_.size()), static_cast<std::uint32_t>(s.size())};
  head_.append(s);
  return r;
}

void request::clear() {
  method_ = verb::unknown;
  version_ = 11;
  keep_alive_ = true;
  method_ref_ = {};
  target_ref_ = {};
  head_.clear();
  headers_.clear();
  // The storage is reused from request to request, but a large body's would
  // stay with an idle keep-alive connection until its next request: what is
  // above a small body's needs goes back now.
  constexpr std::size_t kept_body_capacity = 64 * 1024;
  if (body_.capacity() > kept_body_capacity) std::string().swap(body_);
  else body_.clear();
}

}  // namespace keel
