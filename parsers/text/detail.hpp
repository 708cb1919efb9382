// SPDX-License-Identifier: Apache-2.0
// Internal to parsers/: small ASCII and decoding helpers shared by the text
// utilities and the header readers. Locale-free on purpose: <cctype> depends on
// the global locale and is slower.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace crmcap::text::detail {

constexpr bool is_wsp(char c) noexcept { return c == ' ' || c == '\t'; }
constexpr bool is_space(char c) noexcept {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v';
}
constexpr bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }
constexpr bool is_alpha(char c) noexcept {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
constexpr char to_lower(char c) noexcept {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
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

bool iequals(std::string_view a, std::string_view b) noexcept;
std::string to_lower_copy(std::string_view s);
// `s` without leading and trailing spaces, tabs, CR and LF.
std::string_view trim(std::string_view s) noexcept;

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

// Lenient base64: skips characters outside the alphabet, stops at '=', ignores
// a trailing partial group of one character. Appends the bytes to `out`.
void decode_base64(std::string_view in, std::string& out);

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
