#include "client_message.hpp"

#include <boost/json/object.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

namespace chat {

namespace json = boost::json;

std::string error_message(std::string_view code, std::string_view message) {
  json::object o;
  o["type"] = "error";
  o["code"] = code;
  o["message"] = message;
  return json::serialize(o);
}

client_message read_client_message(bool is_text, std::string_view data) {
  auto refuse = [](std::string_view code, std::string_view message) {
    return client_message{.text = std::nullopt, .error = error_message(code, message)};
  };
  if (!is_text) return refuse("bad_message", "messages are JSON text");
  boost::system::error_code ec;
  auto v = json::parse(data, ec);
  auto const* o = ec ? nullptr : v.if_object();
  auto const* type = o ? o->if_contains("type") : nullptr;
  if (!type || !type->is_string()) return refuse("bad_message", "expected a JSON object with a \"type\"");
  if (type->get_string() != "message") return refuse("bad_message", "unknown message type");
  auto const* text = o->if_contains("text");
  if (!text || !text->is_string()) return refuse("bad_message", "a message needs a \"text\" string");
  auto const& s = text->get_string();
  if (s.size() > max_text) return refuse("too_long", "text is at most 4096 bytes");
  return client_message{.text = std::string(s), .error = {}};
}

}  // namespace chat
