// SPDX-License-Identifier: Apache-2.0
// HTML to readable text. A single forward scan: mail HTML is too broken for a
// tree to help, and a scan keeps it linear on any input.
#include "parsers/text/detail.hpp"
#include "parsers/text/text.hpp"

#include <algorithm>
#include <array>

namespace crmcap::text {
namespace {

struct Entity {
  std::string_view name;
  std::uint32_t cp;
};

// Sorted by name (byte order) for binary search: the Latin-1 set and the
// typographic and symbol entities mailers emit.
constexpr Entity entities[] = {
    {"AElig", 0x00C6},  {"Aacute", 0x00C1},  {"Acirc", 0x00C2},  {"Agrave", 0x00C0},
    {"Alpha", 0x0391},  {"Aring", 0x00C5},   {"Atilde", 0x00C3}, {"Auml", 0x00C4},
    {"Ccedil", 0x00C7}, {"Dagger", 0x2021},  {"ETH", 0x00D0},    {"Eacute", 0x00C9},
    {"Ecirc", 0x00CA},  {"Egrave", 0x00C8},  {"Euml", 0x00CB},   {"Iacute", 0x00CD},
    {"Icirc", 0x00CE},  {"Igrave", 0x00CC},  {"Iuml", 0x00CF},   {"Ntilde", 0x00D1},
    {"OElig", 0x0152},  {"Oacute", 0x00D3},  {"Ocirc", 0x00D4},  {"Ograve", 0x00D2},
    {"Omega", 0x03A9},  {"Oslash", 0x00D8},  {"Otilde", 0x00D5}, {"Ouml", 0x00D6},
    {"Prime", 0x2033},  {"Scaron", 0x0160},  {"THORN", 0x00DE},  {"Uacute", 0x00DA},
    {"Ucirc", 0x00DB},  {"Ugrave", 0x00D9},  {"Uuml", 0x00DC},   {"Yacute", 0x00DD},
    {"Yuml", 0x0178},   {"aacute", 0x00E1},  {"acirc", 0x00E2},  {"acute", 0x00B4},
    {"aelig", 0x00E6},  {"agrave", 0x00E0},  {"alpha", 0x03B1},  {"amp", 0x0026},
    {"apos", 0x0027},   {"aring", 0x00E5},   {"asymp", 0x2248},  {"atilde", 0x00E3},
    {"auml", 0x00E4},   {"bdquo", 0x201E},   {"beta", 0x03B2},   {"brvbar", 0x00A6},
    {"bull", 0x2022},   {"ccedil", 0x00E7},  {"cedil", 0x00B8},  {"cent", 0x00A2},
    {"check", 0x2713},  {"circ", 0x02C6},    {"clubs", 0x2663},  {"copy", 0x00A9},
    {"cross", 0x2717},  {"curren", 0x00A4},  {"dagger", 0x2020}, {"darr", 0x2193},
    {"deg", 0x00B0},    {"delta", 0x03B4},   {"diams", 0x2666},  {"divide", 0x00F7},
    {"eacute", 0x00E9}, {"ecirc", 0x00EA},   {"egrave", 0x00E8}, {"emsp", 0x2003},
    {"ensp", 0x2002},   {"epsilon", 0x03B5}, {"eth", 0x00F0},    {"euml", 0x00EB},
    {"euro", 0x20AC},   {"fnof", 0x0192},    {"frac12", 0x00BD}, {"frac14", 0x00BC},
    {"frac34", 0x00BE}, {"gamma", 0x03B3},   {"ge", 0x2265},     {"gt", 0x003E},
    {"hArr", 0x21D4},   {"harr", 0x2194},    {"hearts", 0x2665}, {"hellip", 0x2026},
    {"iacute", 0x00ED}, {"icirc", 0x00EE},   {"iexcl", 0x00A1},  {"igrave", 0x00EC},
    {"infin", 0x221E},  {"iquest", 0x00BF},  {"iuml", 0x00EF},   {"lArr", 0x21D0},
    {"lambda", 0x03BB}, {"laquo", 0x00AB},   {"larr", 0x2190},   {"ldquo", 0x201C},
    {"le", 0x2264},     {"lrm", 0x200E},     {"lsaquo", 0x2039}, {"lsquo", 0x2018},
    {"lt", 0x003C},     {"macr", 0x00AF},    {"mdash", 0x2014},  {"micro", 0x00B5},
    {"middot", 0x00B7}, {"minus", 0x2212},   {"mu", 0x03BC},     {"nbsp", 0x00A0},
    {"ndash", 0x2013},  {"ne", 0x2260},      {"not", 0x00AC},    {"ntilde", 0x00F1},
    {"oacute", 0x00F3}, {"ocirc", 0x00F4},   {"oelig", 0x0153},  {"ograve", 0x00F2},
    {"omega", 0x03C9},  {"ordf", 0x00AA},    {"ordm", 0x00BA},   {"oslash", 0x00F8},
    {"otilde", 0x00F5}, {"ouml", 0x00F6},    {"para", 0x00B6},   {"permil", 0x2030},
    {"pi", 0x03C0},     {"plusmn", 0x00B1},  {"pound", 0x00A3},  {"prime", 0x2032},
    {"quot", 0x0022},   {"rArr", 0x21D2},    {"raquo", 0x00BB},  {"rarr", 0x2192},
    {"rdquo", 0x201D},  {"reg", 0x00AE},     {"rlm", 0x200F},    {"rsaquo", 0x203A},
    {"rsquo", 0x2019},  {"sbquo", 0x201A},   {"scaron", 0x0161}, {"sect", 0x00A7},
    {"shy", 0x00AD},    {"sigma", 0x03C3},   {"spades", 0x2660}, {"star", 0x2606},
    {"sup1", 0x00B9},   {"sup2", 0x00B2},    {"sup3", 0x00B3},   {"szlig", 0x00DF},
    {"theta", 0x03B8},  {"thinsp", 0x2009},  {"thorn", 0x00FE},  {"tilde", 0x02DC},
    {"times", 0x00D7},  {"trade", 0x2122},   {"uacute", 0x00FA}, {"uarr", 0x2191},
    {"ucirc", 0x00FB},  {"ugrave", 0x00F9},  {"uml", 0x00A8},    {"uuml", 0x00FC},
    {"yacute", 0x00FD}, {"yen", 0x00A5},     {"yuml", 0x00FF},   {"zwj", 0x200D},
    {"zwnj", 0x200C},
};

bool entity_less(const Entity& e, std::string_view name) noexcept { return e.name < name; }

std::uint32_t lookup_entity(std::string_view name) noexcept {
  const auto* it = std::lower_bound(std::begin(entities), std::end(entities), name, entity_less);
  if (it != std::end(entities) && it->name == name) return it->cp;
  return 0;
}

// HTML5 maps numeric references in 0x80..0x9F as Windows-1252, since that is
// what the authors meant.
constexpr std::array<std::uint16_t, 32> c1_as_cp1252 = {
    0x20AC, 0xFFFD, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160,
    0x2039, 0x0152, 0xFFFD, 0x017D, 0xFFFD, 0xFFFD, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022,
    0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0xFFFD, 0x017E, 0x0178};

// Decodes the character reference at s[i] == '&'. Returns the code point and
// sets *len to the bytes consumed, or returns 0 when there is none.
std::uint32_t decode_entity(std::string_view s, std::size_t i, std::size_t* len) noexcept {
  std::size_t j = i + 1;
  if (j < s.size() && s[j] == '#') {
    ++j;
    const bool hex = j < s.size() && (s[j] == 'x' || s[j] == 'X');
    if (hex) ++j;
    const std::size_t digits_begin = j;
    std::uint32_t cp = 0;
    while (j < s.size()) {
      const int v = hex ? detail::hex_value(s[j]) : (detail::is_digit(s[j]) ? s[j] - '0' : -1);
      if (v < 0) break;
      if (cp <= 0x10FFFF) cp = cp * (hex ? 16 : 10) + static_cast<std::uint32_t>(v);
      ++j;
    }
    if (j == digits_begin) return 0;
    if (j < s.size() && s[j] == ';') ++j;
    *len = j - i;
    if (cp == 0 || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0xFFFD;
    if (cp >= 0x80 && cp <= 0x9F) return c1_as_cp1252[cp - 0x80];
    return cp;
  }
  const std::size_t name_begin = j;
  while (j < s.size() && j - name_begin < 10 && (detail::is_alpha(s[j]) || detail::is_digit(s[j])))
    ++j;
  std::string_view name = s.substr(name_begin, j - name_begin);
  if (name.empty()) return 0;
  if (j < s.size() && s[j] == ';') {
    const std::uint32_t cp = lookup_entity(name);
    if (cp != 0) *len = j + 1 - i;
    return cp;
  }
  // Without ';' only the legacy few that HTML still accepts that way, as a
  // prefix ("&copy2026" is "©2026").
  for (std::string_view legacy : {"nbsp", "quot", "copy", "amp", "reg", "lt", "gt"}) {
    if (name.substr(0, legacy.size()) == legacy) {
      *len = 1 + legacy.size();
      return lookup_entity(legacy);
    }
  }
  return 0;
}

enum class Block { none, line, paragraph, cell, br };

Block block_kind(std::string_view tag) noexcept {
  static constexpr std::string_view paragraph[] = {"p",     "h1", "h2",         "h3", "h4",
                                                   "h5",    "h6", "blockquote", "ul", "ol",
                                                   "table", "hr", "pre",        "dl"};
  static constexpr std::string_view line[] = {
      "div",    "li",         "tr",    "section", "article",  "header",  "footer",
      "nav",    "aside",      "dt",    "dd",      "address",  "center",  "form",
      "figure", "figcaption", "main",  "caption", "fieldset", "legend",  "option",
      "body",   "html",       "tbody", "thead",   "tfoot",    "details", "summary"};
  for (std::string_view t : paragraph) {
    if (t == tag) return Block::paragraph;
  }
  for (std::string_view t : line) {
    if (t == tag) return Block::line;
  }
  if (tag == "td" || tag == "th") return Block::cell;
  if (tag == "br") return Block::br;
  return Block::none;
}

bool is_dropped(std::string_view tag) noexcept {
  return tag == "script" || tag == "style" || tag == "head" || tag == "title" ||
         tag == "template" || tag == "noscript" || tag == "xml" || tag == "svg";
}

// The index of '>' ending the tag that starts at s[i] == '<', skipping quoted
// attribute values; npos when the input ends first.
std::size_t tag_end(std::string_view s, std::size_t i) noexcept {
  char quote = 0;
  for (std::size_t j = i + 1; j < s.size(); ++j) {
    const char c = s[j];
    if (quote != 0) {
      if (c == quote) quote = 0;
    } else if (c == '"' || c == '\'') {
      // Only a quote after '=' opens a value; a stray one in a broken tag must
      // not swallow the rest of the document.
      std::size_t k = j;
      while (k > i && is_space(s[k - 1])) --k;
      if (k > i && s[k - 1] == '=') quote = c;
    } else if (c == '>') {
      return j;
    }
  }
  return std::string_view::npos;
}

// The index after the end tag "</name ...>" at or after `from`, or npos.
std::size_t skip_to_end_tag(std::string_view s, std::size_t from, std::string_view name) noexcept {
  std::size_t i = from;
  while (true) {
    i = s.find("</", i);
    if (i == std::string_view::npos) return i;
    const std::size_t n = i + 2;
    if (n + name.size() <= s.size() && iequals(s.substr(n, name.size()), name) &&
        (n + name.size() == s.size() || !detail::is_alpha(s[n + name.size()]))) {
      const std::size_t e = s.find('>', n);
      return e == std::string_view::npos ? s.size() : e + 1;
    }
    i = n;
  }
}

class TextWriter {
 public:
  explicit TextWriter(std::size_t hint) { out_.reserve(hint); }

  void text(char c) {
    if (pre_ == 0 && is_space(c)) {
      space_ = true;
      return;
    }
    if (pre_ > 0 && (c == '\n' || c == '\r')) {
      if (c == '\n') raw_newline();
      return;
    }
    flush_space();
    out_.push_back(c);
  }

  // A run of characters that holds no whitespace.
  void run(std::string_view r) {
    flush_space();
    out_.append(r);
  }

  void code_point(std::uint32_t cp) {
    if (cp == 0xA0 || cp == 0x2002 || cp == 0x2003 || cp == 0x2009) {
      space_ = true;  // no-break and typographic spaces read as spaces in text
      return;
    }
    if (cp == 0x200B || cp == 0x200C || cp == 0x200D || cp == 0x200E || cp == 0x200F || cp == 0xAD)
      return;  // invisible: zero-width, direction marks, soft hyphen
    flush_space();
    detail::append_utf8(out_, cp);
  }

  void cell() { space_ = true; }

  // Each <br> ends a line, but more than one empty line in a row reads as noise.
  void br() {
    while (!out_.empty() && out_.back() == ' ') out_.pop_back();
    space_ = false;
    if (out_.empty()) return;
    const std::size_t n = out_.size();
    if (n >= 2 && out_[n - 1] == '\n' && out_[n - 2] == '\n') return;
    out_.push_back('\n');
  }

  void line_break(int want) {
    while (!out_.empty() && out_.back() == ' ') out_.pop_back();
    space_ = false;
    if (out_.empty()) return;
    int have = 0;
    for (std::size_t k = out_.size(); k > 0 && out_[k - 1] == '\n' && have < 2; --k) ++have;
    while (have < want) {
      out_.push_back('\n');
      ++have;
    }
  }

  void enter_pre() { ++pre_; }
  void leave_pre() {
    if (pre_ > 0) --pre_;
  }

  std::string finish() {
    while (!out_.empty() && (out_.back() == '\n' || out_.back() == ' ')) out_.pop_back();
    if (!is_valid_utf8(out_)) return repair_utf8(out_);
    return std::move(out_);
  }

 private:
  void flush_space() {
    if (space_ && !out_.empty() && out_.back() != '\n') out_.push_back(' ');
    space_ = false;
  }
  void raw_newline() {
    while (!out_.empty() && out_.back() == ' ') out_.pop_back();
    out_.push_back('\n');
    space_ = false;
  }

  std::string out_;
  bool space_ = false;
  int pre_ = 0;
};

}  // namespace

std::string html_to_text(std::string_view s) {
  TextWriter w(s.size() / 2);
  bool no_head_end = false;
  std::size_t i = 0;
  while (i < s.size()) {
    const char c = s[i];
    if (c == '&') {
      std::size_t len = 0;
      const std::uint32_t cp = decode_entity(s, i, &len);
      if (cp != 0) {
        w.code_point(cp);
        i += len;
      } else {
        w.text(c);
        ++i;
      }
      continue;
    }
    if (c != '<') {
      // Plain text up to the next markup, space or line break goes in at once.
      std::size_t e = i + 1;
      while (e < s.size() && s[e] != '<' && s[e] != '&' && !is_space(s[e])) ++e;
      if (is_space(c)) {
        w.text(c);
        ++i;
      } else {
        w.run(s.substr(i, e - i));
        i = e;
      }
      continue;
    }
    // Comments, doctype, CDATA, processing instructions.
    if (s.substr(i, 4) == "<!--") {
      const std::size_t e = s.find("-->", i + 4);
      i = e == std::string_view::npos ? s.size() : e + 3;
      continue;
    }
    if (i + 1 < s.size() && (s[i + 1] == '!' || s[i + 1] == '?')) {
      const std::size_t e = s.find('>', i + 2);
      i = e == std::string_view::npos ? s.size() : e + 1;
      continue;
    }
    std::size_t j = i + 1;
    const bool closing = j < s.size() && s[j] == '/';
    if (closing) ++j;
    const std::size_t name_begin = j;
    while (j < s.size() && (detail::is_alpha(s[j]) || detail::is_digit(s[j]) || s[j] == ':') &&
           j - name_begin < 16)
      ++j;
    if (j == name_begin || !detail::is_alpha(s[name_begin])) {
      w.text(c);  // "a < b", "<3": text, not a tag
      ++i;
      continue;
    }
    char name_buf[16];
    const std::size_t name_len = j - name_begin;
    for (std::size_t k = 0; k < name_len; ++k) name_buf[k] = to_lower(s[name_begin + k]);
    std::string_view name(name_buf, name_len);
    // Namespaced Office tags ("o:p") behave like their local name.
    if (const std::size_t colon = name.find(':'); colon != std::string_view::npos)
      name = name.substr(colon + 1);
    const std::size_t end = tag_end(s, i);
    const std::size_t after = end == std::string_view::npos ? s.size() : end + 1;

    if (!closing && is_dropped(name)) {
      const bool self_closed = end != std::string_view::npos && end > i && s[end - 1] == '/';
      const bool head = name == "head";
      std::size_t skip = self_closed || (head && no_head_end) ? std::string_view::npos
                                                              : skip_to_end_tag(s, after, name);
      if (self_closed) skip = after;
      if (skip == std::string_view::npos) {
        // An unclosed <head> is common and holds little; drop only the tag,
        // and remember that there is no </head> for the next <head> to seek.
        // Unclosed script or style runs to the end, as in a browser.
        if (head) no_head_end = true;
        skip = head ? after : s.size();
      }
      i = skip;
      continue;
    }
    if (name == "pre") closing ? w.leave_pre() : w.enter_pre();
    switch (block_kind(name)) {
      case Block::paragraph:
        w.line_break(2);
        break;
      case Block::line:
        w.line_break(1);
        break;
      case Block::cell:
        w.cell();
        break;
      case Block::br:
        w.br();
        break;
      case Block::none:
        break;
    }
    i = after;
  }
  return w.finish();
}

}  // namespace crmcap::text
