// UTF-8 decoding/encoding and the few Unicode character classes the GPT-2 pre-tokenizer needs
// (letters \p{L}, numbers \p{N}, whitespace \s). The class tables are ranges of code points taken
// from the Unicode 14.0 character database (general categories L* and N*).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace sq::unicode {

enum class CharClass : uint8_t { kLetter, kNumber, kSpace, kOther };

bool is_letter(char32_t cp);  // general category Lu Ll Lt Lm Lo
bool is_number(char32_t cp);  // general category Nd Nl No
bool is_space(char32_t cp);   // Unicode White_Space property (what \s matches in Unicode regexes)
CharClass classify(char32_t cp);

// Decodes the UTF-8 sequence starting at s[i] (i < s.size()).
// Valid: returns its length (1..4) and sets *cp. Invalid (overlong, surrogate, > U+10FFFF, stray
// continuation byte, truncated): returns -k where k >= 1 is the length of the maximal invalid
// subpart, the unit that U+FFFD replaces (Unicode's recommended practice, as Python's errors="replace").
int next_utf8(std::string_view s, size_t i, char32_t* cp);

void append_utf8(std::string& out, char32_t cp);
bool is_valid_utf8(std::string_view s);
// Copies s, replacing each maximal invalid subpart by U+FFFD; valid input comes back unchanged.
std::string sanitize_utf8(std::string_view s);

inline constexpr std::string_view kReplacementChar = "\xEF\xBF\xBD";  // U+FFFD in UTF-8

}  // namespace sq::unicode
