// SPDX-License-Identifier: Apache-2.0
// Parameters of structured header values (RFC 2045 5.1, RFC 2231), read
// leniently: mailers write unquoted spaces, missing semicolons, stray quotes.
#include "parsers/text/detail.hpp"
#include "parsers/text/text.hpp"

#include <map>

namespace crmcap::text {
namespace {

using detail::skip_comment;

bool is_token_char(char c) noexcept {
  const auto b = static_cast<unsigned char>(c);
  if (b <= 0x20 || b == 0x7F) return false;
  switch (c) {
    case '(':
    case ')':
    case '<':
    case '>':
    case '@':
    case ',':
    case ';':
    case ':':
    case '\\':
    case '"':
    case '/':
    case '[':
    case ']':
    case '?':
    case '=':
      return false;
    default:
      return true;
  }
}

// Skips whitespace and comments ("(...)", nested, with quoted-pairs).
std::size_t skip_cfws(std::string_view s, std::size_t i) noexcept {
  while (i < s.size()) {
    if (is_space(s[i])) {
      ++i;
    } else if (s[i] == '(') {
      i = skip_comment(s, i);
    } else {
      break;
    }
  }
  return i < s.size() ? i : s.size();
}

// At a whitespace inside an unquoted value: does "name=" follow, i.e. did the
// sender forget the ';' before the next parameter?
bool next_param_follows(std::string_view s, std::size_t i) noexcept {
  while (i < s.size() && is_space(s[i])) ++i;
  const std::size_t name_begin = i;
  while (i < s.size() && (is_token_char(s[i]) || s[i] == '*')) ++i;
  if (i == name_begin) return false;
  while (i < s.size() && is_space(s[i])) ++i;
  return i < s.size() && s[i] == '=';
}

// The check above, made once per run of whitespace (at its first character)
// so that a long run does not make the scan quadratic.
bool at_param_boundary(std::string_view s, std::size_t i) noexcept {
  return is_space(s[i]) && (i == 0 || !is_space(s[i - 1])) && next_param_follows(s, i);
}

struct Section {
  std::string value;  // raw: quotes removed, escapes resolved, not decoded
  bool encoded = false;
};

struct Collected {
  bool has_plain = false;
  std::string plain;
  std::map<int, Section> sections;  // RFC 2231: name*N or name* (section 0)
};

void percent_decode(std::string_view in, std::string& out) {
  for (std::size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '%' && i + 2 < in.size() && detail::hex_value(in[i + 1]) >= 0 &&
        detail::hex_value(in[i + 2]) >= 0) {
      out.push_back(
          static_cast<char>(detail::hex_value(in[i + 1]) * 16 + detail::hex_value(in[i + 2])));
      i += 2;
    } else {
      out.push_back(in[i]);
    }
  }
}

std::string join_rfc2231(const std::map<int, Section>& sections) {
  std::string bytes;
  std::string charset;
  bool first = true;
  bool any_encoded = false;
  for (const auto& [index, sec] : sections) {
    any_encoded = any_encoded || sec.encoded;
    std::string_view v = sec.value;
    if (first && sec.encoded) {
      // charset'language'value; without both quotes the whole is the value.
      const std::size_t q1 = v.find('\'');
      const std::size_t q2 = q1 == std::string_view::npos ? q1 : v.find('\'', q1 + 1);
      if (q2 != std::string_view::npos) {
        charset = std::string(v.substr(0, q1));
        v = v.substr(q2 + 1);
      }
    }
    first = false;
    if (sec.encoded) {
      percent_decode(v, bytes);
    } else {
      bytes.append(v);
    }
  }
  // Plain continuations sometimes carry an RFC 2047 word split across them
  // (name*0="=?utf-8?B?..."; name*1="...?="): joined, it decodes.
  if (!any_encoded) return decode_words(bytes);
  return to_utf8(bytes, charset.empty() ? std::string_view("utf-8") : std::string_view(charset));
}

}  // namespace

HeaderParams parse_params(std::string_view s) {
  HeaderParams result;
  std::size_t i = skip_cfws(s, 0);
  // The main value runs to the first ';' (comments and spaces dropped).
  {
    std::string main;
    while (i < s.size() && s[i] != ';') {
      if (s[i] == '(') {
        i = skip_cfws(s, i);
        continue;
      }
      // "text/plain charset=x": the ';' was forgotten.
      if (at_param_boundary(s, i)) break;
      if (!is_space(s[i]) && s[i] != '"') main.push_back(to_lower(s[i]));
      ++i;
    }
    result.value = repair_utf8(main);
  }

  std::map<std::string, Collected> found;
  while (i < s.size()) {
    // Separators, including the doubled ';' some mailers write.
    while (i < s.size() && (s[i] == ';' || is_space(s[i]) || s[i] == '(')) {
      if (s[i] == '(') {
        i = skip_cfws(s, i);
      } else {
        ++i;
      }
    }
    if (i >= s.size()) break;
    const std::size_t name_begin = i;
    while (i < s.size() && s[i] != '=' && s[i] != ';' && !is_space(s[i])) ++i;
    std::string name = to_lower_copy(s.substr(name_begin, i - name_begin));
    i = skip_cfws(s, i);
    if (i >= s.size() || s[i] != '=') {
      // An attribute without '=': skip it and whatever junk follows up to ';'.
      while (i < s.size() && s[i] != ';') ++i;
      continue;
    }
    i = skip_cfws(s, i + 1);

    std::string value;
    if (i < s.size() && s[i] == '"') {
      ++i;
      while (i < s.size() && s[i] != '"') {
        if (s[i] == '\\' && i + 1 < s.size()) ++i;
        // A folded quoted value keeps its space but not the line break.
        if (s[i] != '\r' && s[i] != '\n') value.push_back(s[i]);
        ++i;
      }
      if (i < s.size()) ++i;  // closing quote
      // Junk after the closing quote up to ';' is dropped, unless it is the
      // next parameter with its ';' forgotten.
      while (i < s.size() && s[i] != ';') {
        if (at_param_boundary(s, i)) break;
        ++i;
      }
    } else {
      const std::size_t v_begin = i;
      while (i < s.size() && s[i] != ';') {
        if (at_param_boundary(s, i)) break;
        ++i;
      }
      std::string_view v = trim(s.substr(v_begin, i - v_begin));
      // A comment after a token value ("12 (bytes)"); "report (1).pdf" keeps its
      // parentheses because they do not end the value.
      if (!v.empty() && v.back() == ')') {
        const std::size_t open = v.find(" (");
        if (open != std::string_view::npos) v = trim(v.substr(0, open));
      }
      value = std::string(v);
    }
    if (name.empty()) continue;

    // RFC 2231: name*, name*N, name*N*.
    bool encoded = false;
    int section = -1;
    std::string base = name;
    if (base.back() == '*') {
      encoded = true;
      base.pop_back();
    }
    const std::size_t star = base.rfind('*');
    if (star != std::string::npos) {
      std::string_view digits = std::string_view(base).substr(star + 1);
      bool ok = !digits.empty() && digits.size() <= 3;
      int n = 0;
      for (std::size_t k = 0; ok && k < digits.size(); ++k) {
        if (!detail::is_digit(digits[k])) ok = false;
        n = n * 10 + (digits[k] - '0');
      }
      if (!ok) continue;  // "a*b": not a name we can read
      section = n;
      base.resize(star);
    } else if (encoded) {
      section = 0;
    }
    if (base.empty()) continue;
    Collected& c = found[base];
    if (section < 0) {
      if (!c.has_plain) {  // the first of duplicate parameters wins
        c.has_plain = true;
        c.plain = std::move(value);
      }
    } else {
      c.sections.try_emplace(section, Section{std::move(value), encoded});
    }
  }

  for (auto& [name, c] : found) {
    // RFC 2231 says a reader that understands name* prefers it to name.
    if (!c.sections.empty()) {
      result.params.emplace(name, join_rfc2231(c.sections));
    } else {
      result.params.emplace(name, decode_words(c.plain));
    }
  }
  return result;
}

}  // namespace crmcap::text
