// SPDX-License-Identifier: Apache-2.0
// The IMAP response parser: a framer (lines and literals, fed in chunks) and,
// once a response is complete, a recursive-descent reader over its lines and
// literals. Framing first keeps the grammar code free of "need more" states:
// the only state that survives between feed() calls is "reading a line" or
// "inside a literal, N bytes left", plus the lines and literals so far.
//
// Inside this file the reader unwinds a malformed response with a private
// exception (detail::Bad); feed() catches it, so none leaves the parser.
#include "connectors/imap/core/parser.hpp"

#include "connectors/imap/core/detail.hpp"

#include <algorithm>
#include <new>
#include <utility>

namespace crmcap::imap {

namespace detail {

struct Bad {
  Errc code;
  std::string what;
};

// True for "+ ..." and "tag OK|NO|BAD|BYE|PREAUTH ...": their text may end in
// "{5}" without announcing a literal (resp-text has no literals).
bool is_text_response(std::string_view line) {
  if (line.empty()) return false;
  if (line[0] == '+') return true;
  std::size_t sp = line.find(' ');
  if (sp == std::string_view::npos) return false;
  std::string_view word = line.substr(sp + 1);
  word = word.substr(0, std::min(word.find(' '), word.find('[')));
  return iequals(word, "OK") || iequals(word, "NO") || iequals(word, "BAD") ||
         iequals(word, "BYE") || iequals(word, "PREAUTH");
}

enum class Announce { none, literal, bad };

// Looks for "{n}", "{n+}" or "~{n}" at the end of `line`.
Announce literal_announcement(std::string_view line, std::uint64_t& n) {
  if (line.empty() || line.back() != '}') return Announce::none;
  std::size_t end = line.size() - 1;
  if (end > 0 && line[end - 1] == '+') --end;
  std::size_t begin = end;
  while (begin > 0 && line[begin - 1] >= '0' && line[begin - 1] <= '9') --begin;
  if (begin == 0 || line[begin - 1] != '{' || begin == end) return Announce::none;
  if (!parse_u64(line.substr(begin, end - begin), n)) return Announce::bad;
  return Announce::literal;
}

class Reader {
 public:
  Reader(std::vector<std::string>& lines, std::vector<std::string>& literals,
         const ParserLimits& limits, bool utf8_accept)
      : lines_(lines), literals_(literals), limits_(limits), utf8_accept_(utf8_accept) {}

  Response read();

 private:
  // --- primitives -------------------------------------------------------
  std::string_view line() const { return lines_[seg_]; }
  char peek() const { return pos_ < lines_[seg_].size() ? lines_[seg_][pos_] : '\0'; }
  bool at_segment_end() const { return pos_ >= lines_[seg_].size(); }
  bool at_end() const { return seg_ + 1 == lines_.size() && at_segment_end(); }

  [[noreturn]] void fail(std::string_view expected) const {
    std::string what(context_);
    what += ": expected ";
    what += expected;
    what += " at line ";
    what += std::to_string(seg_ + 1);
    what += " offset ";
    what += std::to_string(pos_);
    throw Bad{Errc::syntax, std::move(what)};
  }
  void expect(char c) {
    if (peek() != c) fail(std::string("'") + c + "'");
    ++pos_;
  }
  // One or more spaces (servers sometimes send two).
  void sp() {
    if (peek() != ' ') fail("SP");
    while (peek() == ' ') ++pos_;
  }
  bool try_sp() {
    if (peek() != ' ') return false;
    while (peek() == ' ') ++pos_;
    return true;
  }
  void skip_spaces() {
    while (peek() == ' ') ++pos_;
  }
  void enter() {
    if (++depth_ > limits_.max_depth) {
      throw Bad{Errc::too_deep, std::string(context_) + ": lists nested too deeply"};
    }
  }
  void leave() { --depth_; }

  static bool is_atom_char(char c) {
    auto u = static_cast<unsigned char>(c);
    return u > 0x20 && u != 0x7f && c != '(' && c != ')' && c != '{' && c != '"';
  }
  // An atom-like token (also flags like \Seen and \*). Empty if none.
  std::string_view token(bool stop_at_bracket = false) {
    std::size_t start = pos_;
    while (!at_segment_end() && is_atom_char(peek()) &&
           !(stop_at_bracket && (peek() == '[' || peek() == ']'))) {
      ++pos_;
    }
    return line().substr(start, pos_ - start);
  }
  std::string_view atom() {
    std::string_view t = token();
    if (t.empty()) fail("atom");
    return t;
  }
  std::uint64_t number() {
    std::size_t start = pos_;
    while (peek() >= '0' && peek() <= '9') ++pos_;
    std::uint64_t v = 0;
    if (!parse_u64(line().substr(start, pos_ - start), v)) {
      pos_ = start;
      fail("number");
    }
    return v;
  }
  std::uint32_t number32() {
    std::size_t start = pos_;
    std::uint64_t v = number();
    if (v > 0xFFFFFFFFu) {
      pos_ = start;
      fail("32-bit number");
    }
    return static_cast<std::uint32_t>(v);
  }
  bool try_nil() {
    std::string_view rest = line().substr(pos_);
    if (rest.size() >= 3 && iequals(rest.substr(0, 3), "NIL") &&
        (rest.size() == 3 || !is_atom_char(rest[3]) || rest[3] == ')')) {
      pos_ += 3;
      return true;
    }
    return false;
  }
  bool at_literal() const {
    char c = peek();
    return c == '{' || (c == '~' && pos_ + 1 < line().size() && line()[pos_ + 1] == '{');
  }
  std::string literal() {
    if (peek() == '~') ++pos_;
    expect('{');
    // The framer ends a segment only after a well-formed announcement, so a
    // '{' anywhere else is a syntax error.
    std::size_t close = line().find('}', pos_);
    if (close == std::string_view::npos || close + 1 != line().size() ||
        seg_ + 1 >= lines_.size()) {
      fail("literal at end of line");
    }
    std::string_view digits = line().substr(pos_, close - pos_);
    if (!digits.empty() && digits.back() == '+') digits.remove_suffix(1);
    std::uint64_t n = 0;
    if (!parse_u64(digits, n)) fail("literal size");
    std::string out = std::move(literals_[seg_]);
    ++seg_;
    pos_ = 0;
    return out;
  }
  std::string quoted() {
    expect('"');
    std::string out;
    std::string_view l = line();
    for (;;) {
      if (pos_ >= l.size()) fail("closing '\"'");
      char c = l[pos_++];
      if (c == '"') break;
      if (c == '\\') {
        if (pos_ >= l.size()) fail("escaped character");
        c = l[pos_++];
      }
      out += c;
    }
    return out;
  }
  std::string string() {
    if (peek() == '"') return quoted();
    if (at_literal()) return literal();
    fail("string");
  }
  NString nstring() {
    if (try_nil()) return std::nullopt;
    return string();
  }
  // NIL where a string belongs reads as "" (servers do send it).
  std::string string_or_nil() { return nstring().value_or(std::string()); }
  std::string astring() {
    if (peek() == '"' || at_literal()) return string();
    return std::string(atom());
  }
  // "(" [x *(SP x)] ")" with x read by `item`; spaces are tolerated anywhere.
  template <class F>
  void list(F&& item) {
    expect('(');
    enter();
    skip_spaces();
    while (peek() != ')') {
      if (at_segment_end() && !at_literal()) fail("')'");
      item();
      skip_spaces();
    }
    ++pos_;
    leave();
  }
  std::vector<std::string> flag_list() {
    std::vector<std::string> out;
    list([&] { out.push_back(astring()); });
    return out;
  }
  // Skips one value of any shape (atom, number, string, literal, NIL, list).
  void skip_value() {
    if (peek() == '(') {
      list([&] { skip_value(); });
    } else if (peek() == '"') {
      quoted();
    } else if (at_literal()) {
      literal();
    } else {
      std::size_t start = pos_;
      while (!at_segment_end() && peek() != ' ' && peek() != '(' && peek() != ')') {
        if (peek() == '[') {
          std::size_t close = line().find(']', pos_);
          if (close == std::string_view::npos) fail("']'");
          pos_ = close;
        }
        ++pos_;
      }
      if (pos_ == start) fail("value");
    }
  }
  std::string rest_of_line() {
    std::string out(line().substr(pos_));
    pos_ = line().size();
    return out;
  }
  void end_of_response() {
    skip_spaces();
    if (!at_end()) fail("end of response");
  }
  std::string decode_mailbox(const std::string& raw) const {
    if (utf8_accept_) return raw;
    auto decoded = mutf7_decode(raw);
    return decoded ? std::move(*decoded) : raw;
  }

  // --- grammar ----------------------------------------------------------
  void resp_text(std::optional<ResponseCode>& code, std::string& text);
  Response untagged();
  Response numbered(std::uint32_t n);
  FetchItem fetch(std::uint32_t seq);
  void fetch_item(FetchItem& f);
  Section section_spec();
  Envelope envelope();
  std::vector<EnvelopeAddress> address_list();
  BodyStructure body(std::size_t level);
  std::vector<BodyParam> body_params();
  void body_extension(BodyStructure& b, bool multipart);
  ListEntry list_entry(bool lsub);
  MailboxStatus mailbox_status();
  Search search();
  Esearch esearch();
  Vanished vanished();
  // A sequence set atom ("1:5,7,9:*"); fails naming `what` at its start.
  UidSet sequence_set(const char* what);
  IdInfo id_info();
  std::vector<std::string> atoms_to_end();

  std::vector<std::string>& lines_;
  std::vector<std::string>& literals_;
  const ParserLimits& limits_;
  bool utf8_accept_;
  std::size_t seg_ = 0, pos_ = 0, depth_ = 0;
  const char* context_ = "response";
};

CodeKind code_kind(std::string_view name) {
  struct Entry {
    std::string_view name;
    CodeKind kind;
  };
  static constexpr Entry kCodes[] = {
      {"ALERT", CodeKind::alert},
      {"ALREADYEXISTS", CodeKind::already_exists},
      {"APPENDUID", CodeKind::appenduid},
      {"AUTHENTICATIONFAILED", CodeKind::authentication_failed},
      {"AUTHORIZATIONFAILED", CodeKind::authorization_failed},
      {"BADCHARSET", CodeKind::badcharset},
      {"CANNOT", CodeKind::cannot},
      {"CAPABILITY", CodeKind::capability},
      {"CLIENTBUG", CodeKind::client_bug},
      {"CLOSED", CodeKind::closed},
      {"CONTACTADMIN", CodeKind::contact_admin},
      {"COPYUID", CodeKind::copyuid},
      {"CORRUPTION", CodeKind::corruption},
      {"EXPIRED", CodeKind::expired},
      {"EXPUNGEISSUED", CodeKind::expunge_issued},
      {"HIGHESTMODSEQ", CodeKind::highestmodseq},
      {"INUSE", CodeKind::in_use},
      {"LIMIT", CodeKind::limit},
      {"MODIFIED", CodeKind::modified},
      {"NOMODSEQ", CodeKind::nomodseq},
      {"NOPERM", CodeKind::noperm},
      {"NONEXISTENT", CodeKind::nonexistent},
      {"NOTSAVED", CodeKind::not_saved},
      {"NOTIFICATIONOVERFLOW", CodeKind::notificationoverflow},
      {"OVERQUOTA", CodeKind::over_quota},
      {"PARSE", CodeKind::parse},
      {"PERMANENTFLAGS", CodeKind::permanentflags},
      {"PRIVACYREQUIRED", CodeKind::privacy_required},
      {"READ-ONLY", CodeKind::read_only},
      {"READ-WRITE", CodeKind::read_write},
      {"SERVERBUG", CodeKind::server_bug},
      {"THROTTLED", CodeKind::throttled},
      {"TRYCREATE", CodeKind::trycreate},
      {"UIDNEXT", CodeKind::uidnext},
      {"UIDNOTSTICKY", CodeKind::uidnotsticky},
      {"UIDVALIDITY", CodeKind::uidvalidity},
      {"UNAVAILABLE", CodeKind::unavailable},
      {"UNKNOWN-CTE", CodeKind::unknown_cte},
      {"UNSEEN", CodeKind::unseen},
  };
  for (const Entry& e : kCodes) {
    if (e.name == name) return e.kind;
  }
  return CodeKind::other;
}

std::vector<std::string> split_words(std::string_view s) {
  std::vector<std::string> out;
  std::size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && (s[i] == ' ' || s[i] == '(' || s[i] == ')')) ++i;
    std::size_t start = i;
    while (i < s.size() && s[i] != ' ' && s[i] != '(' && s[i] != ')') ++i;
    if (i > start) out.emplace_back(s.substr(start, i - start));
  }
  return out;
}

ResponseCode make_code(std::string_view name, std::string_view raw) {
  ResponseCode code;
  code.name = to_upper(name);
  code.raw = std::string(raw);
  code.kind = code_kind(code.name);
  switch (code.kind) {
    case CodeKind::uidvalidity:
    case CodeKind::uidnext:
    case CodeKind::unseen:
    case CodeKind::highestmodseq:
    case CodeKind::appenduid:
    case CodeKind::copyuid: {
      std::uint64_t v = 0;
      std::string_view first = raw.substr(0, raw.find(' '));
      if (parse_u64(first, v)) code.number = v;
      break;
    }
    case CodeKind::capability:
    case CodeKind::permanentflags:
    case CodeKind::badcharset:
      code.atoms = split_words(raw);
      break;
    default:
      break;
  }
  return code;
}

void Reader::resp_text(std::optional<ResponseCode>& code, std::string& text) {
  skip_spaces();
  if (peek() == '[') {
    // A code ends at the first ']' (RFC 3501: its text excludes "]"). With no
    // ']' on the line the bracket is taken as plain text.
    std::size_t close = line().find(']', pos_);
    if (close != std::string_view::npos) {
      std::string_view inner = line().substr(pos_ + 1, close - pos_ - 1);
      std::size_t sp = inner.find(' ');
      std::string_view name = inner.substr(0, sp);
      std::string_view raw =
          sp == std::string_view::npos ? std::string_view() : inner.substr(sp + 1);
      code = make_code(name, raw);
      pos_ = close + 1;
      skip_spaces();
    }
  }
  text = rest_of_line();
}

std::vector<std::string> Reader::atoms_to_end() {
  std::vector<std::string> out;
  skip_spaces();
  while (!at_end()) {
    out.push_back(astring());
    skip_spaces();
  }
  return out;
}

Response Reader::read() {
  std::string_view l = line();
  if (!l.empty() && l[0] == '+') {
    context_ = "continuation";
    pos_ = 1;
    if (peek() == ' ') ++pos_;
    return Continuation{rest_of_line()};
  }
  std::string_view tag = token();
  if (tag.empty()) fail("tag");
  if (tag == "*") {
    sp();
    return untagged();
  }
  context_ = "tagged status";
  sp();
  std::string word = to_upper(token(true));
  TaggedStatus t;
  t.tag = std::string(tag);
  if (word == "OK") {
    t.status = Status::ok;
  } else if (word == "NO") {
    t.status = Status::no;
  } else if (word == "BAD") {
    t.status = Status::bad;
  } else {
    fail("OK, NO or BAD");
  }
  resp_text(t.code, t.text);
  return t;
}

Response Reader::untagged() {
  if (peek() >= '0' && peek() <= '9') {
    context_ = "numbered response";
    std::uint32_t n = number32();
    sp();
    return numbered(n);
  }
  std::string_view word_raw = token(true);
  std::string word = to_upper(word_raw);
  auto status = [&](Status s) {
    context_ = "untagged status";
    UntaggedStatus u;
    u.status = s;
    resp_text(u.code, u.text);
    return u;
  };
  if (word == "OK") return status(Status::ok);
  if (word == "NO") return status(Status::no);
  if (word == "BAD") return status(Status::bad);
  if (word == "BYE") return status(Status::bye);
  if (word == "PREAUTH") return status(Status::preauth);
  if (word == "CAPABILITY") {
    context_ = "CAPABILITY";
    return Capabilities{atoms_to_end()};
  }
  if (word == "ENABLED") {
    context_ = "ENABLED";
    return Enabled{atoms_to_end()};
  }
  if (word == "FLAGS") {
    context_ = "FLAGS";
    sp();
    Flags f{flag_list()};
    end_of_response();
    return f;
  }
  if (word == "LIST" || word == "XLIST") {
    context_ = "LIST";
    return list_entry(false);
  }
  if (word == "LSUB") {
    context_ = "LSUB";
    return list_entry(true);
  }
  if (word == "STATUS") {
    context_ = "STATUS";
    return mailbox_status();
  }
  if (word == "SEARCH") {
    context_ = "SEARCH";
    return search();
  }
  if (word == "ESEARCH") {
    context_ = "ESEARCH";
    return esearch();
  }
  if (word == "VANISHED") {
    context_ = "VANISHED";
    return vanished();
  }
  if (word == "ID") {
    context_ = "ID";
    return id_info();
  }
  if (word.empty()) fail("response name");
  return Unrecognized{word, lines_[0]};
}

Response Reader::numbered(std::uint32_t n) {
  std::string name = to_upper(token(true));
  if (name == "EXISTS") {
    end_of_response();
    return Exists{n};
  }
  if (name == "RECENT") {
    end_of_response();
    return Recent{n};
  }
  if (name == "EXPUNGE") {
    end_of_response();
    return Expunge{n};
  }
  if (name == "FETCH") {
    context_ = "FETCH";
    sp();
    return fetch(n);
  }
  if (name.empty()) fail("response name");
  return Unrecognized{name, lines_[0]};
}

FetchItem Reader::fetch(std::uint32_t seq) {
  FetchItem f;
  f.seq = seq;
  list([&] { fetch_item(f); });
  end_of_response();
  return f;
}

void Reader::fetch_item(FetchItem& f) {
  std::size_t start = pos_;
  while (!at_segment_end()) {
    char c = peek();
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
        c == '-' || c == '_') {
      ++pos_;
    } else {
      break;
    }
  }
  std::string name = to_upper(line().substr(start, pos_ - start));
  if (name.empty()) fail("FETCH item name");
  // BODY.PEEK / BINARY.PEEK are request names; tolerate a server echoing them.
  if (name == "BODY.PEEK") name = "BODY";
  if (name == "BINARY.PEEK") name = "BINARY";
  if (peek() == '[') {
    bool binary = name == "BINARY";
    if (name != "BODY" && name != "BINARY") {
      // BINARY.SIZE[...] and unknown sectioned items: skipped.
      std::size_t close = line().find(']', pos_);
      if (close == std::string_view::npos) fail("']'");
      name += line().substr(pos_, close + 1 - pos_);
      pos_ = close + 1;
      sp();
      skip_value();
      f.unknown.push_back(std::move(name));
      return;
    }
    ++pos_;
    BodySection s;
    s.binary = binary;
    s.section = section_spec();
    expect(']');
    if (peek() == '<') {
      ++pos_;
      s.origin = number32();
      expect('>');
    }
    sp();
    s.data = nstring();
    f.sections.push_back(std::move(s));
    return;
  }
  sp();
  if (name == "UID") {
    f.uid = number32();
  } else if (name == "FLAGS") {
    f.flags = flag_list();
  } else if (name == "INTERNALDATE") {
    f.internaldate = nstring();
  } else if (name == "RFC822.SIZE") {
    f.size = number();
  } else if (name == "MODSEQ") {
    expect('(');
    skip_spaces();
    f.modseq = number();
    skip_spaces();
    expect(')');
  } else if (name == "ENVELOPE") {
    f.envelope = envelope();
  } else if (name == "BODYSTRUCTURE" || name == "BODY") {
    BodyStructure b = body(0);
    // Part numbers, per RFC 3501 6.4.5 (see BodyStructure::section).
    struct Numberer {
      static std::string join(const std::string& a, std::size_t i) {
        return a.empty() ? std::to_string(i) : a + "." + std::to_string(i);
      }
      static void run(BodyStructure& n, std::string number) {
        n.section = std::move(number);
        if (n.is_multipart()) {
          for (std::size_t i = 0; i < n.parts.size(); ++i) run(n.parts[i], join(n.section, i + 1));
        } else if (!n.parts.empty()) {  // message/rfc822: the enclosed body
          BodyStructure& inner = n.parts.front();
          run(inner, inner.is_multipart() ? n.section : join(n.section, 1));
        }
      }
    };
    Numberer::run(b, b.is_multipart() ? std::string() : std::string("1"));
    f.body = std::move(b);
  } else if (name == "RFC822" || name == "RFC822.HEADER" || name == "RFC822.TEXT") {
    BodySection s;
    if (name == "RFC822.HEADER") s.section.text = SectionText::header;
    if (name == "RFC822.TEXT") s.section.text = SectionText::text;
    s.data = nstring();
    f.sections.push_back(std::move(s));
  } else if (name == "X-GM-MSGID") {
    f.gm_msgid = number();
  } else if (name == "X-GM-THRID") {
    f.gm_thrid = number();
  } else if (name == "X-GM-LABELS") {
    f.gm_labels = flag_list();
  } else {
    skip_value();
    f.unknown.push_back(std::move(name));
  }
}

Section Reader::section_spec() {
  Section s;
  // Part number: digits separated by dots, then optionally ".KEYWORD".
  std::size_t start = pos_;
  while ((peek() >= '0' && peek() <= '9') || peek() == '.') {
    // Stop before a dot that starts a keyword.
    if (peek() == '.' &&
        !(pos_ + 1 < line().size() && line()[pos_ + 1] >= '0' && line()[pos_ + 1] <= '9')) {
      break;
    }
    ++pos_;
  }
  s.part = std::string(line().substr(start, pos_ - start));
  if (!s.part.empty() && peek() == '.') ++pos_;
  if (peek() == ']') return s;
  std::size_t kw_start = pos_;
  while ((peek() >= 'A' && peek() <= 'Z') || (peek() >= 'a' && peek() <= 'z') || peek() == '.') {
    ++pos_;
  }
  std::string kw = to_upper(line().substr(kw_start, pos_ - kw_start));
  if (kw == "HEADER") {
    s.text = SectionText::header;
  } else if (kw == "HEADER.FIELDS" || kw == "HEADER.FIELDS.NOT") {
    s.text = kw == "HEADER.FIELDS" ? SectionText::header_fields : SectionText::header_fields_not;
    sp();
    list([&] { s.fields.push_back(astring()); });
  } else if (kw == "TEXT") {
    s.text = SectionText::text;
  } else if (kw == "MIME") {
    s.text = SectionText::mime;
  } else {
    pos_ = kw_start;
    fail("section keyword");
  }
  return s;
}

std::vector<EnvelopeAddress> Reader::address_list() {
  std::vector<EnvelopeAddress> out;
  if (try_nil()) return out;
  list([&] {
    EnvelopeAddress a;
    expect('(');
    enter();
    skip_spaces();
    a.name = nstring();
    sp();
    a.adl = nstring();
    sp();
    a.mailbox = nstring();
    sp();
    a.host = nstring();
    skip_spaces();
    expect(')');
    leave();
    out.push_back(std::move(a));
  });
  return out;
}

Envelope Reader::envelope() {
  Envelope e;
  expect('(');
  enter();
  skip_spaces();
  e.date = nstring();
  sp();
  e.subject = nstring();
  sp();
  e.from = address_list();
  sp();
  e.sender = address_list();
  sp();
  e.reply_to = address_list();
  sp();
  e.to = address_list();
  sp();
  e.cc = address_list();
  sp();
  e.bcc = address_list();
  sp();
  e.in_reply_to = nstring();
  sp();
  e.message_id = nstring();
  skip_spaces();
  expect(')');
  leave();
  return e;
}

std::vector<BodyParam> Reader::body_params() {
  std::vector<BodyParam> out;
  if (try_nil()) return out;
  std::vector<std::string> flat;
  list([&] { flat.push_back(string_or_nil()); });
  for (std::size_t i = 0; i + 1 < flat.size(); i += 2) {
    out.push_back(BodyParam{std::move(flat[i]), std::move(flat[i + 1])});
  }
  return out;
}

// After the mandatory fields: [SP md5-or-params SP disposition SP language SP
// location *(SP extension)], each optional from the right.
void Reader::body_extension(BodyStructure& b, bool multipart) {
  skip_spaces();
  if (peek() == ')') return;
  if (multipart) {
    b.params = body_params();
  } else {
    b.md5 = nstring();
  }
  skip_spaces();
  if (peek() == ')') return;
  if (!try_nil()) {
    BodyDisposition d;
    int index = 0;
    list([&] {
      if (index == 0) {
        d.type = text::to_lower_copy(string_or_nil());
      } else if (index == 1) {
        d.params = body_params();
      } else {
        skip_value();
      }
      ++index;
    });
    b.disposition = std::move(d);
  }
  skip_spaces();
  if (peek() == ')') return;
  if (peek() == '(') {
    list([&] { b.language.push_back(string_or_nil()); });
  } else if (auto l = nstring()) {
    b.language.push_back(std::move(*l));
  }
  skip_spaces();
  if (peek() == ')') return;
  b.location = nstring();
  skip_spaces();
  while (peek() != ')') {
    if (at_segment_end() && !at_literal()) fail("')'");
    skip_value();
    skip_spaces();
  }
}

BodyStructure Reader::body(std::size_t level) {
  BodyStructure b;
  expect('(');
  enter();
  skip_spaces();
  if (peek() == '(') {
    b.type = "multipart";
    while (peek() == '(') {
      b.parts.push_back(body(level + 1));
      skip_spaces();
    }
    b.subtype = text::to_lower_copy(string_or_nil());
    body_extension(b, true);
  } else {
    b.type = text::to_lower_copy(string_or_nil());
    sp();
    b.subtype = text::to_lower_copy(string_or_nil());
    sp();
    b.params = body_params();
    sp();
    b.id = nstring();
    sp();
    b.description = nstring();
    sp();
    b.encoding = text::to_lower_copy(string_or_nil());
    sp();
    b.size = try_nil() ? 0 : number();
    bool message = b.type == "message" && (b.subtype == "rfc822" || b.subtype == "global");
    if (message) {
      // Some servers describe message/rfc822 like a basic part: only read the
      // envelope, body and lines when they are there.
      skip_spaces();
      if (peek() == '(') {
        b.envelope = envelope();
        sp();
        b.parts.push_back(body(level + 1));
        sp();
        b.lines = number();
      }
    } else if (b.type == "text") {
      skip_spaces();
      if (peek() >= '0' && peek() <= '9') b.lines = number();
    }
    body_extension(b, false);
  }
  expect(')');
  leave();
  return b;
}

ListEntry Reader::list_entry(bool lsub) {
  ListEntry e;
  e.lsub = lsub;
  sp();
  e.attributes = flag_list();
  sp();
  if (auto d = nstring(); d && !d->empty()) e.delimiter = (*d)[0];
  sp();
  e.mailbox_raw = astring();
  e.mailbox = decode_mailbox(e.mailbox_raw);
  // LIST-EXTENDED data (CHILDINFO, OLDNAME): skipped.
  skip_spaces();
  while (!at_end()) {
    skip_value();
    skip_spaces();
  }
  return e;
}

MailboxStatus Reader::mailbox_status() {
  MailboxStatus s;
  sp();
  s.mailbox_raw = astring();
  s.mailbox = decode_mailbox(s.mailbox_raw);
  sp();
  list([&] {
    std::string name = to_upper(atom());
    sp();
    if (try_nil()) return;
    std::size_t at = pos_;
    std::uint64_t v = number();
    auto small = [&]() -> std::uint32_t {
      if (v > 0xFFFFFFFFu) {
        pos_ = at;
        fail("32-bit number");
      }
      return static_cast<std::uint32_t>(v);
    };
    if (name == "MESSAGES") {
      s.messages = small();
    } else if (name == "RECENT") {
      s.recent = small();
    } else if (name == "UIDNEXT") {
      s.uidnext = small();
    } else if (name == "UIDVALIDITY") {
      s.uidvalidity = small();
    } else if (name == "UNSEEN") {
      s.unseen = small();
    } else if (name == "HIGHESTMODSEQ") {
      s.highestmodseq = v;
    } else if (name == "SIZE") {
      s.size = v;
    }
  });
  end_of_response();
  return s;
}

Search Reader::search() {
  Search s;
  skip_spaces();
  while (!at_end()) {
    if (peek() == '(') {
      // "(MODSEQ n)" (CONDSTORE) ends the list.
      expect('(');
      skip_spaces();
      if (!iequals(atom(), "MODSEQ")) fail("MODSEQ");
      sp();
      s.modseq = number();
      skip_spaces();
      expect(')');
    } else {
      s.ids.push_back(number32());
    }
    skip_spaces();
  }
  return s;
}

UidSet Reader::sequence_set(const char* what) {
  const std::size_t at = pos_;
  auto set = UidSet::parse(atom());
  if (!set) {
    pos_ = at;
    fail(what);
  }
  return std::move(*set);
}

Esearch Reader::esearch() {
  Esearch e;
  skip_spaces();
  if (peek() == '(') {
    expect('(');
    skip_spaces();
    if (!iequals(atom(), "TAG")) fail("TAG");
    sp();
    e.tag = astring();
    skip_spaces();
    expect(')');
  }
  skip_spaces();
  while (!at_end()) {
    std::string name = to_upper(atom());
    if (name == "UID") {
      e.uid = true;
      skip_spaces();
      continue;
    }
    sp();
    if (name == "MIN") {
      e.min = number32();
    } else if (name == "MAX") {
      e.max = number32();
    } else if (name == "COUNT") {
      e.count = number();
    } else if (name == "MODSEQ") {
      e.modseq = number();
    } else if (name == "ALL") {
      e.all = sequence_set("sequence set");
    } else {
      skip_value();
    }
    skip_spaces();
  }
  return e;
}

Vanished Reader::vanished() {
  Vanished v;
  sp();
  if (peek() == '(') {
    expect('(');
    skip_spaces();
    if (!iequals(atom(), "EARLIER")) fail("EARLIER");
    skip_spaces();
    expect(')');
    v.earlier = true;
    sp();
  }
  v.uids = sequence_set("UID set");
  end_of_response();
  return v;
}

IdInfo Reader::id_info() {
  IdInfo info;
  sp();
  if (!try_nil()) {
    list([&] {
      std::string key = string();
      sp();
      info.fields.emplace_back(std::move(key), nstring());
    });
  }
  end_of_response();
  return info;
}

}  // namespace detail

// ---------------------------------------------------------------------------
// ResponseParser

ResponseParser::Step ResponseParser::fail(std::error_code ec, std::string detail, bool broken) {
  error_ = ec;
  error_detail_ = std::move(detail);
  broken_ = broken_ || broken;
  in_literal_ = false;
  literal_left_ = 0;
  lines_.clear();
  literals_.clear();
  total_ = 0;
  text_only_ = false;
  return Step::error;
}

ResponseParser::Step ResponseParser::finish_response() {
  Step step = Step::event;
  try {
    detail::Reader reader(lines_, literals_, limits_, utf8_accept_);
    response_ = reader.read();
    has_response_ = true;
  } catch (detail::Bad& bad) {
    step = fail(make_error_code(bad.code), std::move(bad.what), false);
  }
  lines_.clear();
  literals_.clear();
  total_ = 0;
  text_only_ = false;
  return step;
}

ResponseParser::Step ResponseParser::feed(std::string_view& input) {
  if (broken_) return Step::error;
  error_.clear();
  error_detail_.clear();
  has_response_ = false;
  try {
    while (!input.empty()) {
      if (in_literal_) {
        auto n = static_cast<std::size_t>(
            std::min<std::uint64_t>(literal_left_, static_cast<std::uint64_t>(input.size())));
        literals_.back().append(input.data(), n);
        input.remove_prefix(n);
        literal_left_ -= n;
        if (literal_left_ == 0) {
          in_literal_ = false;
          lines_.emplace_back();
        }
        continue;
      }
      if (lines_.empty()) lines_.emplace_back();
      std::size_t lf = input.find('\n');
      std::size_t take = lf == std::string_view::npos ? input.size() : lf + 1;
      std::string& line = lines_.back();
      // Which limit the stream crosses first must not depend on how it was
      // chunked: compare the room left under each.
      std::size_t line_room = limits_.max_line - std::min(limits_.max_line, line.size());
      std::size_t response_room = limits_.max_response - std::min(limits_.max_response, total_);
      if (take > std::min(line_room, response_room)) {
        if (line_room <= response_room) {
          return fail(make_error_code(Errc::line_too_long),
                      "line longer than " + std::to_string(limits_.max_line) + " bytes", true);
        }
        return fail(make_error_code(Errc::response_too_large),
                    "response longer than " + std::to_string(limits_.max_response) + " bytes",
                    true);
      }
      line.append(input.data(), take);
      total_ += take;
      input.remove_prefix(take);
      if (lf == std::string_view::npos) break;
      // A complete line: drop LF and an optional CR (bare LF is tolerated).
      line.pop_back();
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (lines_.size() == 1) text_only_ = detail::is_text_response(line);
      std::uint64_t n = 0;
      detail::Announce a =
          text_only_ ? detail::Announce::none : detail::literal_announcement(line, n);
      if (a == detail::Announce::bad) {
        return fail(make_error_code(Errc::bad_literal), "literal size unreadable", true);
      }
      if (a == detail::Announce::none) return finish_response();
      if (n > limits_.max_literal) {
        return fail(make_error_code(Errc::literal_too_large),
                    "literal of " + std::to_string(n) + " bytes over the limit of " +
                        std::to_string(limits_.max_literal),
                    true);
      }
      if (literals_.size() >= limits_.max_literals) {
        return fail(make_error_code(Errc::too_many_literals),
                    "more than " + std::to_string(limits_.max_literals) + " literals", true);
      }
      if (total_ + n > limits_.max_response) {
        return fail(make_error_code(Errc::response_too_large),
                    "response longer than " + std::to_string(limits_.max_response) + " bytes",
                    true);
      }
      total_ += static_cast<std::size_t>(n);
      literals_.emplace_back();
      // Reserve once so the bytes are copied once (no regrowth).
      literals_.back().reserve(static_cast<std::size_t>(n));
      if (n == 0) {
        lines_.emplace_back();
      } else {
        in_literal_ = true;
        literal_left_ = n;
      }
    }
    return Step::need_more;
  } catch (const std::bad_alloc&) {
    return fail(make_error_code(Errc::out_of_memory), "out of memory", true);
  }
}

Response ResponseParser::take() {
  if (!has_response_) return Unrecognized{};
  has_response_ = false;
  return std::move(response_);
}

std::uint64_t ResponseParser::literal_remaining() const noexcept {
  return in_literal_ ? literal_left_ : 0;
}

std::size_t ResponseParser::buffered() const noexcept { return total_; }

void ResponseParser::reset() {
  in_literal_ = false;
  literal_left_ = 0;
  lines_.clear();
  literals_.clear();
  total_ = 0;
  text_only_ = false;
  has_response_ = false;
  broken_ = false;
  error_.clear();
  error_detail_.clear();
}

Result<Response> parse_response(std::string_view bytes, ParserLimits limits) {
  ResponseParser parser(limits);
  ResponseParser::Step step = parser.feed(bytes);
  if (step == ResponseParser::Step::error) return parser.error();
  if (step == ResponseParser::Step::need_more || !bytes.empty()) {
    return make_error_code(Errc::syntax);
  }
  return parser.take();
}

}  // namespace crmcap::imap
