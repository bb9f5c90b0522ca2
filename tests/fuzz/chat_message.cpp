// Any bytes as a chat client's WebSocket message through
// chat::read_client_message (apps/chat/client_message.hpp), the function
// apps/chat's session calls for each message. The first byte's bit 0 says
// text (set) or binary. Exactly one outcome: a text to post, at most
// chat::max_text bytes, from a JSON object of type "message"; or an error
// frame that is itself JSON of type "error" with a known code.
#include "client_message.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

namespace {

[[noreturn]] void fail(char const* what) {
  std::fprintf(stderr, "chat_message: %s\n", what);
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* data, std::size_t size) {
  if (size == 0) return 0;
  bool const is_text = data[0] & 1;
  std::string_view in(reinterpret_cast<char const*>(data + 1), size - 1);
  auto m = chat::read_client_message(is_text, in);
  if (m.text) {
    if (!m.error.empty()) fail("both a text and an error");
    if (m.text->size() > chat::max_text) fail("a text over max_text");
    if (!is_text) fail("a binary message accepted");
    boost::system::error_code ec;
    auto v = boost::json::parse(in, ec);
    auto const* o = ec ? nullptr : v.if_object();
    auto const* type = o ? o->if_contains("type") : nullptr;
    if (!type || !type->is_string() || type->get_string() != "message") fail("a text from no message object");
    return 0;
  }
  boost::system::error_code ec;
  auto v = boost::json::parse(m.error, ec);
  if (ec || !v.is_object()) fail("an error frame that is not a JSON object");
  auto const& o = v.as_object();
  auto const* type = o.if_contains("type");
  auto const* code = o.if_contains("code");
  auto is = [](boost::json::value const* v, std::string_view s) { return v && v->is_string() && v->get_string() == s; };
  if (!is(type, "error") || !(is(code, "bad_message") || is(code, "too_long"))) {
    fail("an error frame without type error and a known code");
  }
  return 0;
}
