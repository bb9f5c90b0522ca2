#include <keel/context.hpp>
#include <keel/error.hpp>
#include <keel/json.hpp>
#include <keel/log.hpp>
#include <keel/utf8.hpp>

#include "http/exchange.hpp"
#include "http/route_tree.hpp"
#include "base/trace_ids.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/system/system_error.hpp>

#include <typeinfo>

namespace keel {

context::context(request const& req, options const& opts, detail::exchange* exchange)
    : req_(req), opts_(opts), exchange_(exchange) {}

namespace {
std::string percent_decode(std::string_view raw, bool plus_is_space) {
  std::string out;
  out.reserve(raw.size());
  for (std::size_t i = 0; i < raw.size(); ++i) {
    char ch = raw[i];
    if (ch == '%' && i + 2 < raw.size()) {
      auto hex = [](char h) -> int {
        if (h >= '0' && h <= '9') return h - '0';
        if (h >= 'a' && h <= 'f') return h - 'a' + 10;
        if (h >= 'A' && h <= 'F') return h - 'A' + 10;
        return -1;
      };
      int hi = hex(raw[i + 1]), lo = hex(raw[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out.push_back(static_cast<char>(hi * 16 + lo));
        i += 2;
        continue;
      }
    }
    out.push_back(plus_is_space && ch == '+' ? ' ' : ch);
  }
  return out;
}
}  // namespace

// Checked where text is decoded, so that an app cannot pass on bytes a
// client chose to a JSON body, a log or a WebSocket peer by accident.
std::string context::param(std::string_view name) const {
  auto v = param_bytes(name);
  if (!is_valid_utf8(v)) throw bad_request("the path parameter '" + std::string(name) + "' is not valid UTF-8");
  return v;
}

std::optional<std::string> context::query(std::string_view name) const {
  auto v = query_bytes(name);
  if (v && !is_valid_utf8(*v)) throw bad_request("the query parameter '" + std::string(name) + "' is not valid UTF-8");
  return v;
}

std::string context::param_bytes(std::string_view name) const {
  if (params_ == nullptr) return {};
  auto raw = params_->find(name);
  return raw ? percent_decode(*raw, false) : std::string{};
}

std::optional<std::string> context::query_bytes(std::string_view name) const {
  // application/x-www-form-urlencoded pairs; keys compared after decoding.
  std::string_view rest = req_.query_string();
  while (!rest.empty()) {
    auto amp = rest.find('&');
    auto pair = rest.substr(0, amp);
    rest = amp == std::string_view::npos ? std::string_view{} : rest.substr(amp + 1);
    auto eq = pair.find('=');
    auto key = pair.substr(0, eq);
    if (percent_decode(key, true) != name) continue;
    if (eq == std::string_view::npos) return std::string{};
    return percent_decode(pair.substr(eq + 1), true);
  }
  return std::nullopt;
}

boost::json::value context::json_body() const {
  boost::system::error_code ec;
  auto v = boost::json::parse(body(), ec);
  if (ec) throw http_error(400, "the body is not valid JSON: " + ec.message());
  return v;
}

trace_context& context::trace() {
  if (trace_ == nullptr) {
    trace_ = exchange_ != nullptr ? &exchange_->trace_storage() : &own_trace_.emplace();
    detail::assign_trace_id(trace_->trace_id);
    detail::assign_span_id(trace_->span_id);
    trace_->parent_id.clear();
    trace_->flags = 0;
    trace_->tracestate.clear();
  }
  return *trace_;
}

std::string const& context::request_id() {
  // Unset, it is the trace id itself: most requests carry no id of their own,
  // and a copy of 32 bytes is an allocation.
  return request_id_.empty() ? trace().trace_id : request_id_;
}

cancel_reason context::cancellation() const {
  return exchange_ != nullptr ? exchange_->cancellation() : cancel_reason::none;
}

executor context::get_executor() const { return exchange_->get_executor(); }

bool context::draining() const {
  return exchange_ != nullptr && exchange_->draining();
}

bool context::tls() const { return exchange_ != nullptr && exchange_->secure(); }

void context::set_peer(asio::ip::tcp::endpoint p) { peer_ = std::move(p); }

std::string const& context::client_address() const {
  if (client_address_.empty()) {
    auto a = peer_.address();
    if (exchange_ != nullptr) a = exchange_->client_address(a, req_);
    client_address_ = a.to_string();
  }
  return client_address_;
}

response context::problem(unsigned status, std::string_view detail, std::string_view title) {
  return problem(status, detail, {}, title);
}

response context::problem(unsigned status, std::string_view detail, boost::json::object extra,
                          std::string_view title) {
  boost::json::object body;
  body["type"] = "about:blank";
  body["title"] = title.empty() ? reason_phrase(status) : title;
  body["status"] = status;
  body["detail"] = detail;
  body["trace_id"] = trace_id();
  for (auto& kv : extra) body[kv.key()] = std::move(kv.value());
  response r(status);
  r.body = boost::json::serialize(body);
  // Boost.JSON writes a string's bytes as they are, and a detail often echoes
  // what a client sent. Bad bytes can only sit inside strings (the rest is
  // ASCII), so replacing them keeps the JSON well-formed (RFC 8259 §8.1).
  if (!is_valid_utf8(r.body)) r.body = to_valid_utf8(r.body);
  r.set_header("Content-Type", "application/problem+json");
  return r;
}

response response_for_exception(context& ctx, std::exception_ptr e) {
  try {
    std::rethrow_exception(std::move(e));
  } catch (json::validation_error const& v) {
    boost::json::array errors;
    for (auto const& fe : v.errors()) errors.push_back({{"field", fe.field}, {"message", fe.message}});
    return ctx.problem(422, v.detail(), {{"errors", std::move(errors)}});
  } catch (http_error const& h) {
    auto r = ctx.problem(h.status(), h.detail());
    for (auto const& [name, value] : h.headers()) r.set_header(name, value);
    return r;
  } catch (std::exception const& x) {
    if (ctx.cancellation() == cancel_reason::deadline) {
      return ctx.problem(504, "the handler did not finish before its deadline");
    }
    if (ctx.cancellation() == cancel_reason::client_gone) {
      return ctx.problem(499, "the client closed the connection");
    }
    return ctx.problem(500, ctx.settings().dev_mode ? std::string_view(x.what())
                                                    : std::string_view("the server failed to handle this request"));
  } catch (...) {
    return ctx.problem(500, "the server failed to handle this request");
  }
}

}  // namespace keel
