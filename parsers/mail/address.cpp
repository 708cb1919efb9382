// SPDX-License-Identifier: Apache-2.0
// RFC 5322 address lists (section 3.4 and the obsolete syntax of 4.4), read
// the way mail clients must: groups, comments, route addresses, missing
// brackets or commas, and junk around the addresses.
#include "parsers/mail/headers.hpp"

#include "parsers/text/detail.hpp"
#include "parsers/text/text.hpp"

namespace crmcap::mail::detail {
namespace {

using text::is_space;

enum class Kind : unsigned char { atom, quoted, comment, literal, special };

struct Token {
  Kind kind;
  bool space_before;     // whitespace (or a comment) came before this token
  char special;          // for Kind::special
  std::string_view raw;  // atom/literal as written; quoted/comment content, escapes kept
};

bool is_special(char c) noexcept {
  return c == '<' || c == '>' || c == '@' || c == ',' || c == ';' || c == ':' || c == '.';
}

bool is_space_at(std::string_view v, std::size_t i) noexcept { return is_space(v[i]); }

// Where encoded words may end: the next "?=" and the next whitespace, each
// found once for the whole value (see NextFinder).
struct WordEnds {
  text::detail::NextFinder<decltype(&text::detail::is_word_close)> close;
  text::detail::NextFinder<decltype(&is_space_at)> space;
  explicit WordEnds(std::string_view v) noexcept
      : close(v, &text::detail::is_word_close), space(v, &is_space_at) {}
};

// The end of an RFC 2047 word starting at v[i] ("=?cs?X?text?="), or 0. Taken
// as one atom so that '.' or ',' inside a broken word does not split a name.
std::size_t encoded_word_end(std::string_view v, std::size_t i, WordEnds& ends) noexcept {
  if (i + 1 >= v.size() || v[i] != '=' || v[i + 1] != '?') return 0;
  std::size_t j = i + 2;
  while (j < v.size() && v[j] != '?' && !is_space(v[j])) ++j;
  if (j == i + 2 || j + 2 >= v.size() || v[j] != '?' || v[j + 2] != '?') return 0;
  const char e = v[j + 1];
  if (e != 'b' && e != 'B' && e != 'q' && e != 'Q') return 0;
  const std::size_t close = ends.close.at_or_after(j + 3);
  if (close == std::string_view::npos) return 0;
  const std::size_t space = ends.space.at_or_after(j + 3);
  if (space != std::string_view::npos && space < close) return 0;
  return close + 2;
}

// Scans a comment starting at v[i] == '(' and returns the index past its end;
// `content` gets the text inside the outer parentheses.
std::size_t scan_comment(std::string_view v, std::size_t i, std::string_view* content) noexcept {
  const std::size_t begin = i + 1;
  int depth = 0;
  while (i < v.size()) {
    const char c = v[i];
    if (c == '\\') {
      i += 2;
      continue;
    }
    ++i;
    if (c == '(') ++depth;
    if (c == ')' && --depth == 0) {
      *content = v.substr(begin, i - 1 - begin);
      return i;
    }
  }
  *content = begin <= v.size() ? v.substr(begin) : std::string_view{};
  return v.size();
}

void tokenize(std::string_view v, std::vector<Token>& out) {
  WordEnds ends(v);
  std::size_t i = 0;
  bool space = false;
  while (i < v.size()) {
    const char c = v[i];
    if (is_space(c)) {
      space = true;
      ++i;
      continue;
    }
    Token t{Kind::atom, space, 0, {}};
    space = false;
    if (c == '(') {
      t.kind = Kind::comment;
      i = scan_comment(v, i, &t.raw);
      space = true;  // a comment separates words like whitespace does
    } else if (c == '"') {
      t.kind = Kind::quoted;
      const std::size_t begin = ++i;
      while (i < v.size() && v[i] != '"') i += v[i] == '\\' ? 2 : 1;
      if (i > v.size()) i = v.size();
      t.raw = v.substr(begin, i - begin);
      if (i < v.size()) ++i;
    } else if (c == '[') {
      t.kind = Kind::literal;
      const std::size_t begin = i;
      const std::size_t end = v.find(']', i);
      i = end == std::string_view::npos ? v.size() : end + 1;
      t.raw = v.substr(begin, i - begin);
    } else if (is_special(c)) {
      t.kind = Kind::special;
      t.special = c;
      t.raw = v.substr(i, 1);
      ++i;
    } else if (const std::size_t end = encoded_word_end(v, i, ends); end != 0) {
      t.raw = v.substr(i, end - i);
      i = end;
    } else {
      const std::size_t begin = i;
      while (i < v.size()) {
        const char d = v[i];
        if (is_space(d) || is_special(d) || d == '(' || d == '"' || d == '[') break;
        ++i;
      }
      t.raw = v.substr(begin, i - begin);
    }
    out.push_back(t);
  }
}

// Appends quoted-string or comment content with its quoted-pairs resolved.
void append_unescaped(std::string& out, std::string_view raw) {
  for (std::size_t i = 0; i < raw.size(); ++i) {
    if (raw[i] == '\\' && i + 1 < raw.size()) ++i;
    if (raw[i] != '\r' && raw[i] != '\n') out.push_back(raw[i]);
  }
}

bool is_word(const Token& t) noexcept { return t.kind == Kind::atom || t.kind == Kind::quoted; }
bool is_dot(const Token& t) noexcept { return t.kind == Kind::special && t.special == '.'; }

class ListParser {
 public:
  ListParser(std::string_view value, std::vector<std::string>* problems,
             std::string_view fallback_charset)
      : value_(value),
        problems_(problems),
        problems_limit_(problems == nullptr ? 0 : problems->size() + 20),
        fallback_charset_(fallback_charset) {
    tokens_.reserve(value.size() / 4 + 4);
    tokenize(value, tokens_);
  }

  std::vector<Address> run() {
    std::size_t i = 0;
    const std::size_t n = tokens_.size();
    while (i < n) {
      const Token& t = tokens_[i];
      if (t.kind == Kind::special) {
        switch (t.special) {
          case ',':
          case ';':  // ends a group; its members are already listed
            end_entry();
            ++i;
            continue;
          case ':':
            // A group starts: its name is not kept.
            pending_.clear();
            name_target_ = npos;
            ++i;
            continue;
          case '<':
            i = angle_addr(i);
            continue;
          case '@':
            i = addr_spec(i);
            continue;
          case '>':  // stray
            ++i;
            continue;
          default:
            break;
        }
      }
      if (t.kind == Kind::comment) {
        // "jane@acme.com (Jane Doe)": the old way of naming an address.
        if (name_target_ != npos && pending_.empty()) {
          out_[name_target_].name = comment_name(t);
          if (!out_[name_target_].name.empty()) name_target_ = npos;
          ++i;
          continue;
        }
      } else {
        name_target_ = npos;
      }
      pending_.push_back(i);
      ++i;
    }
    end_entry();
    return std::move(out_);
  }

 private:
  static constexpr std::size_t npos = static_cast<std::size_t>(-1);

  void problem(std::string_view what, std::string_view excerpt) {
    if (problems_ == nullptr || problems_->size() >= problems_limit_) return;
    std::string p = "address: ";
    p += what;
    if (!excerpt.empty()) {
      p += " '";
      if (excerpt.size() > 60) excerpt = excerpt.substr(0, 60);
      p += text::repair_utf8(excerpt);
      p += "'";
    }
    problems_->push_back(std::move(p));
  }

  // The source text spanned by tokens [first, last].
  std::string_view span(std::size_t first, std::size_t last) const {
    const char* b = tokens_[first].raw.data();
    const char* e = tokens_[last].raw.data() + tokens_[last].raw.size();
    // Quoted strings and comments hold their content only; widen by the delimiter.
    if (tokens_[first].kind == Kind::quoted || tokens_[first].kind == Kind::comment) --b;
    if ((tokens_[last].kind == Kind::quoted || tokens_[last].kind == Kind::comment) &&
        e < value_.data() + value_.size())
      ++e;
    return std::string_view(b, static_cast<std::size_t>(e - b));
  }

  void end_entry() {
    bool has_word = false;
    for (std::size_t k : pending_) {
      if (tokens_[k].kind != Kind::comment) has_word = true;
    }
    if (has_word) problem("no address in", span(pending_.front(), pending_.back()));
    pending_.clear();
    name_target_ = npos;
  }

  std::string comment_name(const Token& t) const {
    std::string s;
    append_unescaped(s, t.raw);
    return finish_name(s);
  }

  std::string finish_name(std::string_view joined) const {
    std::string name = text::decode_words(text::trim(joined), fallback_charset_);
    std::string_view v = text::trim(name);
    // Outlook writes 'Jane Doe' <jane@acme.com>; the quotes are not the name.
    if (v.size() >= 2 && v.front() == '\'' && v.back() == '\'') v = v.substr(1, v.size() - 2);
    if (v.size() != name.size()) name = std::string(text::trim(v));
    return name;
  }

  // The display name from pending_[0, count): words as written, one space where
  // the source had whitespace; comments only when there is nothing else.
  std::string phrase_name(std::size_t count) const {
    std::string joined;
    const Token* first_comment = nullptr;
    for (std::size_t k = 0; k < count; ++k) {
      const Token& t = tokens_[pending_[k]];
      if (t.kind == Kind::comment) {
        if (first_comment == nullptr) first_comment = &t;
        continue;
      }
      if (t.space_before && !joined.empty()) joined.push_back(' ');
      if (t.kind == Kind::quoted) {
        append_unescaped(joined, t.raw);
      } else {
        joined.append(t.raw);
      }
    }
    if (joined.empty() && first_comment != nullptr) return comment_name(*first_comment);
    return finish_name(joined);
  }

  void emit(std::string name, std::string local, std::string domain, std::string_view source) {
    while (!domain.empty() && domain.back() == '.') domain.pop_back();
    if (local.empty() || domain.empty()) {
      problem(local.empty() ? "no local part in" : "no domain in", source);
      return;
    }
    for (char& c : domain) c = text::to_lower(c);
    Address a;
    a.name = std::move(name);
    a.address = std::move(local);
    a.address.push_back('@');
    a.address.append(domain);
    if (!text::is_valid_utf8(a.address)) a.address = text::repair_utf8(a.address);
    out_.push_back(std::move(a));
    name_target_ = out_.back().name.empty() ? out_.size() - 1 : npos;
  }

  // tokens_[i] is '<'. Reads up to '>' (or, when it is missing, up to a ',' or
  // ';' or the end) and returns the index after.
  std::size_t angle_addr(std::size_t i) {
    const std::size_t open = i;
    const std::size_t n = tokens_.size();
    std::size_t j = i + 1;
    std::size_t content_begin = j;
    std::size_t at = npos;
    while (j < n) {
      const Token& t = tokens_[j];
      if (t.kind == Kind::special) {
        if (t.special == '>') break;
        if (t.special == ':') {
          // A route ("<@a,@b:jane@c>") or a scheme ("<mailto:jane@c>") ends here.
          content_begin = j + 1;
          at = npos;
        } else if (t.special == '@') {
          at = j;
        } else if (t.special == ',' || t.special == ';' || t.special == '<') {
          // Inside a route, ',' separates domains; elsewhere the '>' is missing.
          const bool in_route = content_begin == i + 1 && tokens_[i + 1].kind == Kind::special &&
                                tokens_[i + 1].special == '@' && t.special == ',';
          if (!in_route) break;
        }
      }
      ++j;
    }
    const std::size_t content_end = j;  // exclusive
    std::string local;
    std::string domain;
    if (at != npos) {
      for (std::size_t k = content_begin; k < at; ++k) append_addr_part(local, tokens_[k]);
      for (std::size_t k = at + 1; k < content_end; ++k) append_addr_part(domain, tokens_[k]);
    } else {
      for (std::size_t k = content_begin; k < content_end; ++k) append_addr_part(local, tokens_[k]);
    }
    std::string name = phrase_name(pending_.size());
    pending_.clear();
    const std::size_t last = content_end < n ? content_end : n - 1;
    emit(std::move(name), std::move(local), std::move(domain), span(open, last));
    return content_end < n && tokens_[content_end].kind == Kind::special &&
                   tokens_[content_end].special == '>'
               ? content_end + 1
               : content_end;
  }

  static void append_addr_part(std::string& out, const Token& t) {
    switch (t.kind) {
      case Kind::atom:
      case Kind::literal:
        out.append(t.raw);
        break;
      case Kind::quoted:
        append_unescaped(out, t.raw);
        break;
      case Kind::special:
        if (t.special == '.') out.push_back('.');
        break;
      case Kind::comment:
        break;
    }
  }

  // tokens_[i] is '@' outside angle brackets: a bare addr-spec whose local part
  // ends pending_. Returns the index after the domain.
  std::size_t addr_spec(std::size_t i) {
    const std::size_t n = tokens_.size();
    // The domain: atoms and literals joined by dots; a word after whitespace
    // without a dot starts something else (a missing comma, junk).
    std::size_t j = i + 1;
    while (j < n) {
      const Token& t = tokens_[j];
      if (is_dot(t)) {
        ++j;
        continue;
      }
      if (t.kind != Kind::atom && t.kind != Kind::literal) break;
      if (j > i + 1 && t.space_before && !is_dot(tokens_[j - 1])) break;
      ++j;
    }
    // "jane@acme.com <jane@acme.com>": the first one is a display name.
    std::size_t k = j;
    while (k < n && tokens_[k].kind == Kind::comment) ++k;
    if (k < n && tokens_[k].kind == Kind::special && tokens_[k].special == '<') {
      for (std::size_t m = i; m < k; ++m) pending_.push_back(m);
      return k;
    }
    // The local part: the words and dots just before '@'.
    std::size_t begin = pending_.size();
    while (begin > 0) {
      const Token& t = tokens_[pending_[begin - 1]];
      if (!is_word(t) && !is_dot(t)) break;
      if (begin < pending_.size()) {
        const Token& next = tokens_[pending_[begin]];
        if (!is_dot(t) && !is_dot(next) && next.space_before) break;
      }
      --begin;
    }
    std::string local;
    for (std::size_t m = begin; m < pending_.size(); ++m)
      append_addr_part(local, tokens_[pending_[m]]);
    std::string domain;
    for (std::size_t m = i + 1; m < j; ++m) append_addr_part(domain, tokens_[m]);
    std::string name = phrase_name(begin);
    const std::size_t first = begin < pending_.size() ? pending_[begin] : i;
    pending_.clear();
    emit(std::move(name), std::move(local), std::move(domain), span(first, j > i ? j - 1 : i));
    return j;
  }

  std::string_view value_;
  std::vector<std::string>* problems_;
  std::size_t problems_limit_;  // at most 20 problems per list
  std::string_view fallback_charset_;
  std::vector<Token> tokens_;
  std::vector<std::size_t> pending_;  // token indices of the current phrase
  std::vector<Address> out_;
  std::size_t name_target_ = npos;  // the last address, while a comment may name it
};

}  // namespace

std::vector<Address> parse_address_list(std::string_view value,
                                        std::vector<std::string>* problems) {
  return parse_address_list(value, problems, {});
}

std::vector<Address> parse_address_list(std::string_view value, std::vector<std::string>* problems,
                                        std::string_view fallback_charset) {
  ListParser p(value, problems, fallback_charset);
  return p.run();
}

}  // namespace crmcap::mail::detail
