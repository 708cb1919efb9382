// SPDX-License-Identifier: Apache-2.0
// RFC 2047 encoded words in unstructured header values and display names.
#include "parsers/text/detail.hpp"
#include "parsers/text/text.hpp"

namespace crmcap::text {
namespace {

struct EncodedWord {
  std::string_view charset;  // without an RFC 2231 "*language" suffix
  char encoding = 0;         // 'B' or 'Q'
  std::string_view text;
  std::size_t end = 0;  // offset just past the closing "?="
};

using CloseFinder = detail::NextFinder<decltype(&detail::is_word_close)>;

// Matches "=?charset?X?text?=" at value[pos]. Lenient where mailers are: the
// text may hold spaces (seen from broken encoders); it ends at the first "?=",
// which neither encoding can produce inside a word.
bool match_word(std::string_view value, std::size_t pos, CloseFinder& closes,
                EncodedWord* w) noexcept {
  if (pos + 1 >= value.size() || value[pos] != '=' || value[pos + 1] != '?') return false;
  std::size_t i = pos + 2;
  const std::size_t cs_begin = i;
  while (i < value.size() && value[i] != '?') {
    const char c = value[i];
    if (is_space(c) || c == '"' || c == '(' || c == ')' || c == '<' || c == '>' || c == ',' ||
        c == ';')
      return false;
    ++i;
  }
  if (i == cs_begin || i + 2 >= value.size() || value[i + 2] != '?') return false;
  std::string_view charset = value.substr(cs_begin, i - cs_begin);
  const char enc = detail::to_upper(value[i + 1]);
  if (enc != 'B' && enc != 'Q') return false;
  const std::size_t text_begin = i + 3;
  const std::size_t close = closes.at_or_after(text_begin);
  if (close == std::string_view::npos) return false;
  std::string_view text = value.substr(text_begin, close - text_begin);
  const std::size_t star = charset.find('*');
  if (star != std::string_view::npos) charset = charset.substr(0, star);
  if (charset.empty()) return false;
  w->charset = charset;
  w->encoding = enc;
  w->text = text;
  w->end = close + 2;
  return true;
}

void decode_q(std::string_view text, std::string& out) {
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '_') {
      out.push_back(' ');
    } else if (c == '=' && i + 2 < text.size() && detail::hex_value(text[i + 1]) >= 0 &&
               detail::hex_value(text[i + 2]) >= 0) {
      out.push_back(
          static_cast<char>(detail::hex_value(text[i + 1]) * 16 + detail::hex_value(text[i + 2])));
      i += 2;
    } else {
      out.push_back(c);  // a stray '=' is kept as written
    }
  }
}

// Appends plain (not encoded) text: UTF-8 as is, else repaired or converted
// from the fallback charset.
void append_plain(std::string& out, std::string_view s, std::string_view fallback) {
  if (is_valid_utf8(s)) {
    out.append(s);
  } else if (!fallback.empty()) {
    out.append(to_utf8(s, fallback));
  } else {
    out.append(repair_utf8(s));
  }
}

}  // namespace

std::string decode_words(std::string_view value, std::string_view fallback_charset) {
  if (value.find("=?") == std::string_view::npos) {
    std::string out;
    append_plain(out, value, fallback_charset);
    return out;
  }
  std::string out;
  out.reserve(value.size());
  // Bytes of a run of adjacent words in one charset, converted together: encoders
  // split multi-byte characters across words, which RFC 2047 forbids but which
  // every reader has to accept.
  std::string pending_bytes;
  std::string_view pending_charset;
  auto flush = [&] {
    if (!pending_charset.empty()) {
      const std::size_t from = out.size();
      out.append(to_utf8(pending_bytes, pending_charset));
      // A header value is one line: an encoded CR or LF must not start another.
      for (std::size_t k = from; k < out.size(); ++k) {
        if (out[k] == '\r' || out[k] == '\n') out[k] = ' ';
      }
    }
    pending_bytes.clear();
    pending_charset = {};
  };

  CloseFinder closes(value, &detail::is_word_close);
  std::size_t plain_begin = 0;  // start of the plain text not yet written
  bool after_word = false;      // the last thing seen was an encoded word
  std::size_t i = 0;
  while (i < value.size()) {
    EncodedWord w;
    if (value[i] == '=' && match_word(value, i, closes, &w)) {
      std::string_view between = value.substr(plain_begin, i - plain_begin);
      bool only_space = true;
      for (char c : between) {
        if (!is_space(c)) {
          only_space = false;
          break;
        }
      }
      if (!(after_word && only_space)) {
        // Whitespace between two words is dropped; anything else is text.
        flush();
        append_plain(out, between, fallback_charset);
      }
      if (!pending_charset.empty() && !iequals(pending_charset, w.charset)) flush();
      pending_charset = w.charset;
      if (w.encoding == 'B') {
        decode_base64(w.text, pending_bytes, Base64Padding::stop);
      } else {
        decode_q(w.text, pending_bytes);
      }
      i = w.end;
      plain_begin = i;
      after_word = true;
    } else {
      ++i;
    }
  }
  flush();
  append_plain(out, value.substr(plain_begin), fallback_charset);
  return out;
}

}  // namespace crmcap::text
