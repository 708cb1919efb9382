// SPDX-License-Identifier: Apache-2.0
// Shared text utilities of the parsers: charset conversion, UTF-8 repair,
// RFC 2047 encoded words, RFC 2231 parameters, HTML to text, whitespace folding.
// All functions are pure, never throw, and always return valid UTF-8.
#pragma once

#include <map>
#include <string>
#include <string_view>

namespace crmcap::text {

// Converts `bytes` from `charset` (any name glibc's iconv knows; aliases such as
// "latin1", "utf8", "x-sjis", "ks_c_5601-1987" are mapped) to UTF-8. Bytes that
// cannot be converted become U+FFFD; an unknown charset is treated as UTF-8 with
// repair. Never fails.
std::string to_utf8(std::string_view bytes, std::string_view charset);

// Returns `s` with every invalid UTF-8 sequence replaced by U+FFFD.
std::string repair_utf8(std::string_view s);
bool is_valid_utf8(std::string_view s) noexcept;

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
