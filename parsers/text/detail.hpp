// SPDX-License-Identifier: Apache-2.0
// Internal to parsers/: small ASCII and decoding helpers shared by the text
// utilities and the header readers. Locale-free on purpose: <cctype> depends on
// the global locale and is slower. The helpers others need too (is_space,
// to_lower, iequals, trim, base64) are public, in text.hpp.
#pragma once

#include "parsers/text/text.hpp"

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace crmcap::text::detail {

constexpr bool is_wsp(char c) noexcept { return c == ' ' || c == '\t'; }
constexpr bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }
constexpr bool is_alpha(char c) noexcept {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
constexpr char to_upper(char c) noexcept {
  return (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c;
}
// The value of a hex digit, or -1.
constexpr int hex_value(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Appends the UTF-8 encoding of `cp` to `out`; invalid code points (surrogates,
// above U+10FFFF) append U+FFFD.
void append_utf8(std::string& out, std::uint32_t cp);
inline constexpr std::string_view replacement_char = "\xEF\xBF\xBD";

// The first position at or after `from` where `match(v, pos)` holds (npos when
// none), remembered between calls. Readers that try a pattern at many starts
// ask in rising order, so each byte is tested once: without it, input full of
// openers without closers ("=?a?q?x" repeated) costs quadratic time.
template <class Match>
class NextFinder {
 public:
  NextFinder(std::string_view v, Match match) noexcept : v_(v), match_(match) {}
  std::size_t at_or_after(std::size_t from) noexcept {
    if (from < searched_from_ || (found_ != std::string_view::npos && found_ < from)) {
      searched_from_ = from;
      found_ = std::string_view::npos;
      for (std::size_t i = from; i < v_.size(); ++i) {
        if (match_(v_, i)) {
          found_ = i;
          break;
        }
      }
    }
    return found_;
  }

 private:
  std::string_view v_;
  Match match_;
  std::size_t searched_from_ = static_cast<std::size_t>(-1);
  std::size_t found_ = std::string_view::npos;
};

// Matches the "?=" that closes an RFC 2047 word.
inline bool is_word_close(std::string_view v, std::size_t i) noexcept {
  return v[i] == '?' && i + 1 < v.size() && v[i + 1] == '=';
}

// Returns the offset just past the RFC 5322 comment that starts at s[i] == '('
// (nested comments and backslash escapes included), or s.size() when it is not
// closed.
inline std::size_t skip_comment(std::string_view s, std::size_t i) noexcept {
  int depth = 0;
  while (i < s.size()) {
    const char c = s[i];
    if (c == '\\') {
      i += 2;
      continue;
    }
    ++i;
    if (c == '(') ++depth;
    if (c == ')' && --depth == 0) return i;
  }
  return s.size();
}

}  // namespace crmcap::text::detail
