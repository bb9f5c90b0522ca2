#pragma once
// What a chat client sends over its WebSocket, read without any I/O: the one
// place a stranger's message is parsed (apps/chat/main.cpp sends the result;
// tests/fuzz/chat_message.cpp feeds it any bytes).
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace chat {

/// Longest message text accepted, in bytes of UTF-8 (SPEC §4: 4 KiB).
inline constexpr std::size_t max_text = 4096;

/// A client message read: either the text of a chat message to post, or the
/// error frame to send back to the sender alone (never both).
struct client_message {
  std::optional<std::string> text;  ///< `{"type":"message","text":…}`'s text, at most max_text bytes
  std::string error;                ///< otherwise: `{"type":"error","code":…,"message":…}`
};

/// Reads one WebSocket message from a client. `is_text` is the frame's
/// opcode (binary messages are refused); `data` is the message, any bytes.
client_message read_client_message(bool is_text, std::string_view data);

/// `{"type":"error","code":code,"message":message}` (SPEC §4).
std::string error_message(std::string_view code, std::string_view message);

}  // namespace chat
