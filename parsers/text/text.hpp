// SPDX-License-Identifier: Apache-2.0
// Shared text utilities of the parsers: charset conversion, UTF-8 repair,
// RFC 2047 encoded words, RFC 2231 parameters, HTML to text, whitespace folding;
// and the ASCII, base64 and UTF-8 helpers that connectors/ and daemon/ use too.
// All functions are pure and never throw (bar std::bad_alloc). Those that
// convert or repair text always return valid UTF-8; the ASCII helpers and the
// base64 decoder pass other bytes through as they are.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>

namespace crmcap::text {

// ---- ASCII helpers ----------------------------------------------------------
// Locale-free on purpose: <cctype> depends on the global locale and is slower.
// Only the ASCII letters A-Z and a-z change case; every other byte, UTF-8 lead
// and continuation bytes included, is left as it is. Inline: the IMAP response
// parser and the header readers call them for every token.

// Space, tab, CR, LF, form feed, vertical tab.
constexpr bool is_space(char c) noexcept {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v';
}

constexpr char to_lower(char c) noexcept {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

// True when `a` and `b` have the same length and bytes, ASCII letters compared
// without case.
constexpr bool iequals(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (to_lower(a[i]) != to_lower(b[i])) return false;
  }
  return true;
}

// A copy of `s` with its ASCII letters lowered.
inline std::string to_lower_copy(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = to_lower(c);
  return out;
}

// `s` without its leading and trailing whitespace (is_space); a view into `s`.
constexpr std::string_view trim(std::string_view s) noexcept {
  std::size_t b = 0;
  std::size_t e = s.size();
  while (b < e && is_space(s[b])) ++b;
  while (e > b && is_space(s[e - 1])) --e;
  return s.substr(b, e - b);
}

// ---- base64 -----------------------------------------------------------------

// What a padding '=' does to lenient base64: ends the input (RFC 2047 words,
// where nothing may follow it), or ends the group, so that a later group of
// concatenated encodings starts clean (MIME bodies).
enum class Base64Padding { stop, restart };

// Lenient base64 (RFC 4648 alphabet, and the URL-safe '-' and '_' seen in the
// wild): appends the decoded bytes of `in` to `out`. Characters outside the
// alphabet are skipped, and `*junk`, when given, is set to true when one of
// them is not a space, tab, CR or LF. A trailing partial group (fewer than 8
// bits) is dropped.
void decode_base64(std::string_view in, std::string& out,
                   Base64Padding padding = Base64Padding::restart, bool* junk = nullptr);
// The number of bytes decode_base64(in, out, Base64Padding::restart) appends,
// without building them.
std::uint64_t base64_decoded_size(std::string_view in) noexcept;

// ---- UTF-8 ------------------------------------------------------------------

// Converts `bytes` from `charset` (any name glibc's iconv knows; aliases such as
// "latin1", "utf8", "x-sjis", "ks_c_5601-1987" are mapped) to UTF-8. Bytes that
// cannot be converted become U+FFFD; an unknown charset is treated as UTF-8 with
// repair. Never fails.
std::string to_utf8(std::string_view bytes, std::string_view charset);

// True when `s` is well-formed UTF-8 (the Unicode standard's table 3-7): no overlong
// forms, no surrogates, nothing above U+10FFFF.
bool is_valid_utf8(std::string_view s) noexcept;
// Returns `s` with every invalid UTF-8 sequence replaced by U+FFFD.
std::string repair_utf8(std::string_view s);

// ---- Mail and HTML text -----------------------------------------------------

// Decodes RFC 2047 encoded words (B and Q) in an unstructured header value or a
// display name; whitespace between adjacent encoded words is dropped; malformed
// words are kept as written. Raw 8-bit bytes outside words are taken as UTF-8
// (repaired), or as `fallback_charset` when given and not valid UTF-8.
std::string decode_words(std::string_view value, std::string_view fallback_charset = {});

// Unfolds a header value (CRLF/LF followed by WSP becomes the WSP) and trims it.
std::string unfold(std::string_view value);

// Parses the parameters of a structured header value such as Content-Type or
// Content-Disposition ("text/plain; charset=utf-8; name*=UTF-8''a%20b").
// Returns the lowercase main value ("text/plain") in `value` and the parameters
// with lowercase names, RFC 2231 continuations joined and charsets decoded, and
// RFC 2047 words in quoted values decoded.
struct HeaderParams {
  std::string value;
  std::map<std::string, std::string> params;
};
HeaderParams parse_params(std::string_view header_value);

// Turns HTML into readable text: drops script/style/head, turns block elements
// and <br> into line breaks, decodes entities (named, decimal, hex).
std::string html_to_text(std::string_view html);

// Folds runs of whitespace (including newlines) into one space and trims.
std::string fold_whitespace(std::string_view s);

// Cuts UTF-8 text to at most `max_chars` code points, at a word boundary when one
// is near, appending "…" when cut.
std::string truncate_utf8(std::string_view s, std::size_t max_chars);

}  // namespace crmcap::text
