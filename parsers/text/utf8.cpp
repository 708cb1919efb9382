// SPDX-License-Identifier: Apache-2.0
// UTF-8 validation and repair, whitespace handling.
#include "parsers/text/detail.hpp"
#include "parsers/text/text.hpp"

#include <cstring>

namespace crmcap::text {
namespace detail {

void append_utf8(std::string& out, std::uint32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    if (cp >= 0xD800 && cp <= 0xDFFF) {
      out.append(replacement_char);
      return;
    }
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp <= 0x10FFFF) {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.append(replacement_char);
  }
}

}  // namespace detail

namespace {

// Length of the valid UTF-8 sequence at s[i], or 0 when the bytes there are not
// one; `*bad` receives how many bytes form the maximal invalid subpart (the
// count replaced by one U+FFFD, as the Unicode standard recommends).
std::size_t utf8_sequence(std::string_view s, std::size_t i, std::size_t* bad) noexcept {
  const auto b0 = static_cast<unsigned char>(s[i]);
  *bad = 1;
  if (b0 < 0x80) return 1;
  std::size_t len;
  unsigned char lo = 0x80;
  unsigned char hi = 0xBF;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    len = 2;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    len = 3;
    if (b0 == 0xE0) lo = 0xA0;  // overlong
    if (b0 == 0xED) hi = 0x9F;  // surrogates
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    len = 4;
    if (b0 == 0xF0) lo = 0x90;  // overlong
    if (b0 == 0xF4) hi = 0x8F;  // above U+10FFFF
  } else {
    return 0;
  }
  for (std::size_t k = 1; k < len; ++k) {
    if (i + k >= s.size()) {
      *bad = k;
      return 0;
    }
    const auto b = static_cast<unsigned char>(s[i + k]);
    const unsigned char l = k == 1 ? lo : 0x80;
    const unsigned char h = k == 1 ? hi : 0xBF;
    if (b < l || b > h) {
      *bad = k;
      return 0;
    }
  }
  return len;
}

constexpr std::string_view ellipsis = "\xE2\x80\xA6";

}  // namespace

bool is_valid_utf8(std::string_view s) noexcept {
  std::size_t i = 0;
  const std::size_t n = s.size();
  while (i < n) {
    // ASCII runs dominate mail; skip them eight bytes at a time.
    while (i + 8 <= n) {
      std::uint64_t w;
      std::memcpy(&w, s.data() + i, 8);
      if (w & 0x8080808080808080ull) break;
      i += 8;
    }
    if (i >= n) break;
    if (static_cast<unsigned char>(s[i]) < 0x80) {
      ++i;
      continue;
    }
    std::size_t bad;
    const std::size_t len = utf8_sequence(s, i, &bad);
    if (len == 0) return false;
    i += len;
  }
  return true;
}

std::string repair_utf8(std::string_view s) {
  if (is_valid_utf8(s)) return std::string(s);
  std::string out;
  out.reserve(s.size() + 16);
  std::size_t i = 0;
  while (i < s.size()) {
    std::size_t bad;
    const std::size_t len = utf8_sequence(s, i, &bad);
    if (len == 0) {
      out.append(detail::replacement_char);
      i += bad;
    } else {
      out.append(s.data() + i, len);
      i += len;
    }
  }
  return out;
}

std::string unfold(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  // A line break inside a field value is only ever part of folding; dropping
  // CR and LF keeps the WSP that follows them, which is the RFC 5322 rule.
  for (char c : value) {
    if (c != '\r' && c != '\n') out.push_back(c);
  }
  std::string_view t = trim(out);
  if (t.size() != out.size()) out = std::string(t);
  if (!is_valid_utf8(out)) return repair_utf8(out);
  return out;
}

std::string fold_whitespace(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  // Runs of other bytes are copied whole; a run of whitespace (U+00A0, the
  // no-break space of HTML mail's indents, included) becomes one space
  // between two runs, and none at either end.
  const auto space_at = [&](std::size_t i) -> std::size_t {  // its width, or 0
    if (is_space(s[i])) return 1;
    return static_cast<unsigned char>(s[i]) == 0xC2 && i + 1 < s.size() &&
                   static_cast<unsigned char>(s[i + 1]) == 0xA0
               ? 2
               : 0;
  };
  std::size_t i = 0;
  while (i < s.size()) {
    if (const std::size_t w = space_at(i)) {
      i += w;
      continue;
    }
    std::size_t end = i + 1;
    while (end < s.size() && space_at(end) == 0) ++end;
    if (!out.empty()) out.push_back(' ');
    out.append(s.data() + i, end - i);
    i = end;
  }
  if (!is_valid_utf8(out)) return repair_utf8(out);
  return out;
}

std::string truncate_utf8(std::string_view s, std::size_t max_chars) {
  std::string text = repair_utf8(s);
  if (max_chars == 0) return {};
  // Find the byte offset of each code point boundary up to max_chars.
  std::size_t count = 0;
  std::size_t cut = std::string::npos;  // byte offset after max_chars - 1 code points
  for (std::size_t i = 0; i < text.size(); ++i) {
    if ((static_cast<unsigned char>(text[i]) & 0xC0) == 0x80) continue;
    if (count == max_chars - 1) cut = i;
    ++count;
    if (count > max_chars) break;
  }
  if (count <= max_chars) return text;
  // Cut: keep max_chars - 1 code points so the ellipsis fits in the budget.
  std::size_t end = cut;
  // Prefer a word boundary when one lies within the last fifth of the text kept
  // (at most 20 code points back): a cut word reads worse than a shorter snippet.
  const std::size_t lookback = std::min<std::size_t>(20, (max_chars - 1) / 5);
  if (lookback > 0 && !is_space(text[end])) {
    std::size_t back = end;
    std::size_t steps = 0;
    while (back > 0 && steps <= lookback) {
      if (is_space(text[back - 1])) break;
      --back;
      if ((static_cast<unsigned char>(text[back]) & 0xC0) != 0x80) ++steps;
    }
    if (back > 0 && is_space(text[back - 1]) && steps <= lookback) end = back;
  }
  while (end > 0 && is_space(text[end - 1])) --end;
  text.resize(end);
  text.append(ellipsis);
  return text;
}

}  // namespace crmcap::text
