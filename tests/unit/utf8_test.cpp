// keel/utf8.hpp: the one validator (RFC 3629) and the U+FFFD replacement.
#include <keel/utf8.hpp>

#include <catch2/catch.hpp>

#include <string>

TEST_CASE("well-formed UTF-8 is accepted", "[utf8]") {
  CHECK(keel::is_valid_utf8(""));
  CHECK(keel::is_valid_utf8("plain ascii"));
  CHECK(keel::is_valid_utf8("caf\xC3\xA9"));                  // é
  CHECK(keel::is_valid_utf8("\xE2\x82\xAC"));                 // €
  CHECK(keel::is_valid_utf8("\xF0\x9F\x98\x80"));             // U+1F600
  CHECK(keel::is_valid_utf8("\xF4\x8F\xBF\xBF"));             // U+10FFFF
  CHECK(keel::is_valid_utf8(std::string("nul\0inside", 10)));  // U+0000 is a character
}

TEST_CASE("ill-formed UTF-8 is refused", "[utf8]") {
  CHECK_FALSE(keel::is_valid_utf8("\xFF"));
  CHECK_FALSE(keel::is_valid_utf8("\xFF\xFE"));
  CHECK_FALSE(keel::is_valid_utf8("\xC0\xAF"));          // overlong '/'
  CHECK_FALSE(keel::is_valid_utf8("\xE0\x80\xAF"));      // overlong
  CHECK_FALSE(keel::is_valid_utf8("\xED\xA0\x80"));      // surrogate U+D800
  CHECK_FALSE(keel::is_valid_utf8("\xF4\x90\x80\x80"));  // above U+10FFFF
  CHECK_FALSE(keel::is_valid_utf8("\xE2\x82"));          // truncated at the end
  CHECK_FALSE(keel::is_valid_utf8("a\x80z"));            // lone continuation byte
}

TEST_CASE("to_valid_utf8 replaces each maximal bad prefix once", "[utf8]") {
  CHECK(keel::to_valid_utf8("ok") == "ok");
  CHECK(keel::to_valid_utf8("caf\xC3\xA9") == "caf\xC3\xA9");
  CHECK(keel::to_valid_utf8("\xFF\xFE") == "\xEF\xBF\xBD\xEF\xBF\xBD");
  CHECK(keel::to_valid_utf8("a\xE2\x82z") == "a\xEF\xBF\xBDz");  // truncated € is one U+FFFD
  CHECK(keel::is_valid_utf8(keel::to_valid_utf8("\xED\xA0\x80\xC0")));
}
