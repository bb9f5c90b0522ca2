# Embeds static/index.html into a C++ header at build time, so the chat binary
# serves its page from the build tree with no install step and no extra flags.
#   cmake -DIN=static/index.html -DOUT=chat_page.hpp -P embed.cmake
file(READ "${IN}" content)
string(FIND "${content}" ")chat_page\"" clash)
if(NOT clash EQUAL -1)
  message(FATAL_ERROR "${IN} contains the raw-string delimiter )chat_page\"")
endif()
file(WRITE "${OUT}.tmp"
  "// Generated from apps/chat/static/index.html by embed.cmake: edit that file instead.\n"
  "#pragma once\n#include <string_view>\n\nnamespace chat {\n"
  "inline constexpr std::string_view page = R\"chat_page(${content})chat_page\";\n"
  "}  // namespace chat\n")
file(COPY_FILE "${OUT}.tmp" "${OUT}" ONLY_IF_DIFFERENT)
file(REMOVE "${OUT}.tmp")
