// SPDX-License-Identifier: Apache-2.0
#include "connectors/imap/core/command.hpp"

#include "connectors/imap/core/detail.hpp"

#include <array>

namespace crmcap::imap {

namespace {

// How an argument may be written.
enum class ArgKind {
  astring,       // atom, quoted string or literal
  list_mailbox,  // as astring, plus the LIST wildcards % and * in atoms
  string,        // quoted string or literal (never an atom)
};

constexpr std::size_t kMaxQuoted = 1000;  // longer strings go as literals
constexpr std::size_t kLiteralMinusMax = 4096;

bool is_atom_char(char c, bool wildcards) {
  auto u = static_cast<unsigned char>(c);
  if (u <= 0x20 || u >= 0x7f) return false;
  switch (c) {
    case '(':
    case ')':
    case '{':
    case '"':
    case '\\':
    case ']':
      return false;
    case '%':
    case '*':
      return wildcards;
    default:
      return true;
  }
}

bool is_atom(std::string_view s, bool wildcards = false) {
  if (s.empty() || detail::iequals(s, "NIL")) return false;
  for (char c : s) {
    if (!is_atom_char(c, wildcards)) return false;
  }
  return true;
}

// NUL can never be sent; CR and LF have no place in any argument we build.
bool has_forbidden(std::string_view s) {
  return s.find_first_of(std::string_view("\0\r\n", 3)) != std::string_view::npos;
}

class Writer {
 public:
  Writer(std::string tag, const BuilderOptions& options) : options_(options) {
    cmd_.tag = std::move(tag);
    raw(cmd_.tag);
  }

  void raw(std::string_view s) {
    cur_ += s;
    redacted_ += s;
  }

  // Writes one argument (preceded by a space). `secret`: never shown in logs.
  std::error_code arg(std::string_view value, ArgKind kind, bool secret = false,
                      bool allow_8bit_quoted = false, bool space = true) {
    if (has_forbidden(value)) return make_error_code(Errc::forbidden_char);
    if (space) raw(" ");
    if (!secret && kind != ArgKind::string && is_atom(value, kind == ArgKind::list_mailbox)) {
      raw(value);
      return {};
    }
    bool quotable = value.size() <= kMaxQuoted;
    for (char c : value) {
      auto u = static_cast<unsigned char>(c);
      if (u < 0x20 || u == 0x7f || (u >= 0x80 && !allow_8bit_quoted)) quotable = false;
    }
    if (quotable) {
      std::string q = "\"";
      for (char c : value) {
        if (c == '"' || c == '\\') q += '\\';
        q += c;
      }
      q += '"';
      cur_ += q;
      redacted_ += secret ? std::string_view("<redacted>") : std::string_view(q);
      return {};
    }
    // A literal: LITERAL+ (or LITERAL- for small ones) needs no round trip.
    bool plus =
        options_.literal_plus || (options_.literal_minus && value.size() <= kLiteralMinusMax);
    std::string head = "{" + std::to_string(value.size()) + (plus ? "+}" : "}");
    raw(head);
    cur_ += "\r\n";
    if (!plus) split();
    cur_ += value;
    return {};
  }

  void secret_raw(std::string_view s) {
    cur_ += s;
    redacted_ += "<redacted>";
  }

  // Ends the current segment: the next one waits for "+".
  void split() {
    cmd_.segments.push_back(std::move(cur_));
    cur_.clear();
  }

  Command finish(bool awaits_continuation = false) {
    cur_ += "\r\n";
    split();
    cmd_.awaits_continuation = awaits_continuation;
    cmd_.redacted = std::move(redacted_);
    return std::move(cmd_);
  }

 private:
  const BuilderOptions& options_;
  Command cmd_;
  std::string cur_;
  std::string redacted_;
};

Result<std::string> mailbox_name(std::string_view utf8, const BuilderOptions& options) {
  if (has_forbidden(utf8)) return make_error_code(Errc::forbidden_char);
  if (detail::iequals(utf8, "INBOX")) return std::string("INBOX");
  if (options.utf8_accept) {
    std::size_t i = 0;
    char32_t cp = 0;
    while (i < utf8.size()) {
      if (!detail::decode_utf8(utf8, i, cp)) return make_error_code(Errc::bad_utf8);
    }
    return std::string(utf8);
  }
  return mutf7_encode(utf8);
}

bool valid_section(const Section& s) {
  // part: nz-number *("." nz-number)
  if (!s.part.empty()) {
    bool digit_expected = true;
    bool leading_zero_possible = true;
    for (char c : s.part) {
      if (c == '.') {
        if (digit_expected) return false;
        digit_expected = true;
        leading_zero_possible = true;
      } else if (c >= '0' && c <= '9') {
        if (leading_zero_possible && c == '0') return false;
        digit_expected = false;
        leading_zero_possible = false;
      } else {
        return false;
      }
    }
    if (digit_expected) return false;
  }
  switch (s.text) {
    case SectionText::none:
    case SectionText::header:
    case SectionText::text:
      return s.fields.empty();
    case SectionText::mime:
      return !s.part.empty() && s.fields.empty();
    case SectionText::header_fields:
    case SectionText::header_fields_not:
      if (s.fields.empty()) return false;
      for (const std::string& f : s.fields) {
        if (!is_atom(f) || f.find(':') != std::string::npos) return false;
      }
      return true;
  }
  return false;
}

constexpr std::string_view kBase64 =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

}  // namespace

std::string Command::bytes() const {
  std::string out;
  for (const std::string& s : segments) out += s;
  return out;
}

CommandBuilder::CommandBuilder(std::string prefix) : prefix_(std::move(prefix)) {
  bool ok = !prefix_.empty() && prefix_.size() <= 8;
  for (char c : prefix_) ok = ok && ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'));
  if (!ok) prefix_ = "A";
}

std::string CommandBuilder::next_tag() const { return prefix_ + std::to_string(counter_); }

std::string CommandBuilder::take_tag() { return prefix_ + std::to_string(counter_++); }

namespace {
Command simple(std::string tag, const BuilderOptions& options, std::string_view name,
               bool awaits = false) {
  Writer w(std::move(tag), options);
  w.raw(" ");
  w.raw(name);
  return w.finish(awaits);
}
}  // namespace

Command CommandBuilder::capability() { return simple(take_tag(), options_, "CAPABILITY"); }
Command CommandBuilder::noop() { return simple(take_tag(), options_, "NOOP"); }
Command CommandBuilder::logout() { return simple(take_tag(), options_, "LOGOUT"); }
Command CommandBuilder::starttls() { return simple(take_tag(), options_, "STARTTLS"); }
Command CommandBuilder::compress_deflate() {
  return simple(take_tag(), options_, "COMPRESS DEFLATE");
}
Command CommandBuilder::idle() { return simple(take_tag(), options_, "IDLE", true); }
Command CommandBuilder::unselect() { return simple(take_tag(), options_, "UNSELECT"); }

Result<Command> CommandBuilder::login(std::string_view user, std::string_view password) {
  Writer w(take_tag(), options_);
  w.raw(" LOGIN");
  if (auto ec = w.arg(user, ArgKind::astring)) return ec;
  if (auto ec = w.arg(password, ArgKind::string, true)) return ec;
  return w.finish();
}

namespace {
// The AUTHENTICATE command for `mechanism` with the SASL response `message`.
Command authenticate(std::string tag, const BuilderOptions& options, std::string_view mechanism,
                     std::string_view message, bool sasl_ir) {
  Writer w(std::move(tag), options);
  w.raw(" AUTHENTICATE ");
  w.raw(mechanism);
  if (sasl_ir) {
    w.raw(" ");
  } else {
    w.raw("\r\n");
    w.split();
  }
  w.secret_raw(base64_encode(message));
  return w.finish();
}

bool has_control(std::string_view s) {
  for (char c : s) {
    auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) return true;
  }
  return false;
}
}  // namespace

Result<Command> CommandBuilder::authenticate_plain(std::string_view user, std::string_view password,
                                                   bool sasl_ir, std::string_view authzid) {
  std::string tag = take_tag();
  if (has_forbidden(user) || has_forbidden(password) || has_forbidden(authzid)) {
    return make_error_code(Errc::forbidden_char);
  }
  if (user.empty()) return make_error_code(Errc::invalid_argument);
  std::string message;
  message.reserve(authzid.size() + user.size() + password.size() + 2);
  message += authzid;
  message += '\0';
  message += user;
  message += '\0';
  message += password;
  return authenticate(std::move(tag), options_, "PLAIN", message, sasl_ir);
}

Result<Command> CommandBuilder::authenticate_xoauth2(std::string_view user, std::string_view token,
                                                     bool sasl_ir) {
  std::string tag = take_tag();
  // \x01 separates the fields: no control character may appear in either.
  if (has_forbidden(user) || has_forbidden(token)) return make_error_code(Errc::forbidden_char);
  if (has_control(user) || has_control(token)) return make_error_code(Errc::forbidden_char);
  if (user.empty() || token.empty()) return make_error_code(Errc::invalid_argument);
  std::string message = "user=";
  message += user;
  message +=
      "\x01"
      "auth=Bearer ";
  message += token;
  message += "\x01\x01";
  return authenticate(std::move(tag), options_, "XOAUTH2", message, sasl_ir);
}

Result<Command> CommandBuilder::authenticate_oauthbearer(std::string_view user,
                                                         std::string_view token, bool sasl_ir,
                                                         std::string_view host,
                                                         std::uint16_t port) {
  std::string tag = take_tag();
  if (has_forbidden(user) || has_forbidden(token) || has_forbidden(host)) {
    return make_error_code(Errc::forbidden_char);
  }
  if (has_control(user) || has_control(token) || has_control(host)) {
    return make_error_code(Errc::forbidden_char);
  }
  if (user.empty() || token.empty()) return make_error_code(Errc::invalid_argument);
  // RFC 7628 / RFC 5801: gs2-header "n,a=saslname," with ',' and '=' escaped.
  std::string message = "n,a=";
  for (char c : user) {
    if (c == ',') {
      message += "=2C";
    } else if (c == '=') {
      message += "=3D";
    } else {
      message += c;
    }
  }
  message += ",\x01";
  if (!host.empty()) {
    message += "host=";
    message += host;
    message += '\x01';
  }
  if (port != 0) {
    message += "port=" + std::to_string(port);
    message += '\x01';
  }
  message += "auth=Bearer ";
  message += token;
  message += "\x01\x01";
  return authenticate(std::move(tag), options_, "OAUTHBEARER", message, sasl_ir);
}

Result<Command> CommandBuilder::enable(std::span<const std::string_view> capabilities) {
  Writer w(take_tag(), options_);
  if (capabilities.empty()) return make_error_code(Errc::invalid_argument);
  w.raw(" ENABLE");
  for (std::string_view c : capabilities) {
    if (has_forbidden(c)) return make_error_code(Errc::forbidden_char);
    if (!is_atom(c)) return make_error_code(Errc::invalid_argument);
    w.raw(" ");
    w.raw(c);
  }
  return w.finish();
}

Result<Command> CommandBuilder::id(
    std::span<const std::pair<std::string_view, std::string_view>> fields) {
  Writer w(take_tag(), options_);
  w.raw(" ID");
  if (fields.empty()) {
    w.raw(" NIL");
    return w.finish();
  }
  w.raw(" (");
  bool first = true;
  for (const auto& [key, value] : fields) {
    // RFC 2971: field names at most 30 octets, values at most 1024.
    if (key.empty() || key.size() > 30 || value.size() > 1024) {
      return make_error_code(Errc::invalid_argument);
    }
    std::error_code ec = w.arg(key, ArgKind::string, false, false, !first);
    if (!ec) ec = w.arg(value, ArgKind::string);
    if (ec) return ec;
    first = false;
  }
  w.raw(")");
  return w.finish();
}

Result<Command> CommandBuilder::list(std::string_view reference, std::string_view pattern,
                                     const ListOptions& options) {
  Writer w(take_tag(), options_);
  auto ref = mailbox_name(reference, options_);
  if (!ref) return ref.error();
  auto pat = mailbox_name(pattern, options_);
  if (!pat) return pat.error();
  w.raw(" LIST");
  // An empty reference must be sent as "" (an atom cannot be empty).
  if (auto ec = w.arg(*ref, ArgKind::astring, false, options_.utf8_accept)) return ec;
  if (auto ec = w.arg(*pat, ArgKind::list_mailbox, false, options_.utf8_accept)) return ec;
  if (options.special_use || options.children) {
    w.raw(" RETURN (");
    if (options.special_use) w.raw("SPECIAL-USE");
    if (options.special_use && options.children) w.raw(" ");
    if (options.children) w.raw("CHILDREN");
    w.raw(")");
  }
  return w.finish();
}

Result<Command> CommandBuilder::status(std::string_view mailbox, const StatusItems& items) {
  Writer w(take_tag(), options_);
  auto name = mailbox_name(mailbox, options_);
  if (!name) return name.error();
  std::string list;
  auto add = [&](bool on, std::string_view item) {
    if (!on) return;
    if (!list.empty()) list += ' ';
    list += item;
  };
  add(items.messages, "MESSAGES");
  add(items.recent, "RECENT");
  add(items.uidnext, "UIDNEXT");
  add(items.uidvalidity, "UIDVALIDITY");
  add(items.unseen, "UNSEEN");
  add(items.highestmodseq, "HIGHESTMODSEQ");
  add(items.size, "SIZE");
  if (list.empty()) return make_error_code(Errc::invalid_argument);
  w.raw(" STATUS");
  if (auto ec = w.arg(*name, ArgKind::astring, false, options_.utf8_accept)) return ec;
  w.raw(" (" + list + ")");
  return w.finish();
}

Result<Command> CommandBuilder::notify_set(std::span<const std::string> mailboxes) {
  Writer w(take_tag(), options_);
  if (mailboxes.empty()) return make_error_code(Errc::invalid_argument);
  w.raw(" NOTIFY SET (selected-delayed (MessageNew MessageExpunge)) (mailboxes (");
  bool first = true;
  for (const auto& m : mailboxes) {
    auto name = mailbox_name(m, options_);
    if (!name) return name.error();
    if (auto ec = w.arg(*name, ArgKind::astring, false, options_.utf8_accept, !first)) return ec;
    first = false;
  }
  w.raw(") (MessageNew MessageExpunge))");
  return w.finish();
}

Result<Command> CommandBuilder::examine(std::string_view mailbox, const ExamineOptions& options) {
  Writer w(take_tag(), options_);
  auto name = mailbox_name(mailbox, options_);
  if (!name) return name.error();
  w.raw(" EXAMINE");
  if (auto ec = w.arg(*name, ArgKind::astring, false, options_.utf8_accept)) return ec;
  if (options.qresync) {
    const QresyncParams& q = *options.qresync;
    if (q.uidvalidity == 0 || q.modseq == 0) return make_error_code(Errc::invalid_argument);
    if (q.known_seqs.empty() != q.known_seq_uids.empty()) {
      return make_error_code(Errc::invalid_argument);
    }
    if (!q.known_seqs.empty() && q.known_uids.empty()) {
      return make_error_code(Errc::invalid_argument);
    }
    std::string p = " (QRESYNC (" + std::to_string(q.uidvalidity) + " " + std::to_string(q.modseq);
    if (!q.known_uids.empty()) p += " " + q.known_uids.to_string();
    if (!q.known_seqs.empty()) {
      p += " (" + q.known_seqs.to_string() + " " + q.known_seq_uids.to_string() + ")";
    }
    p += "))";
    w.raw(p);
  } else if (options.condstore) {
    w.raw(" (CONDSTORE)");
  }
  return w.finish();
}

Result<Command> CommandBuilder::uid_search(const SearchCriteria& criteria,
                                           const SearchReturn& ret) {
  Writer w(take_tag(), options_);
  w.raw(" UID SEARCH");
  if (ret.any()) {
    std::string r;
    auto add = [&](bool on, std::string_view item) {
      if (!on) return;
      if (!r.empty()) r += ' ';
      r += item;
    };
    add(ret.min, "MIN");
    add(ret.max, "MAX");
    add(ret.all, "ALL");
    add(ret.count, "COUNT");
    w.raw(" RETURN (" + r + ")");
  }
  std::string keys;
  auto key = [&](const std::string& k) {
    keys += ' ';
    keys += k;
  };
  for (const auto& [name, day] :
       {std::pair{"SINCE", criteria.since}, std::pair{"BEFORE", criteria.before}}) {
    if (!day) continue;
    if (!day->ok() || int(day->year()) < 1 || int(day->year()) > 9999) {
      return make_error_code(Errc::invalid_argument);
    }
    key(std::string(name) + " " + format_search_date(*day));
  }
  if (!criteria.uids.empty()) key("UID " + criteria.uids.to_string());
  if (criteria.modseq) key("MODSEQ " + std::to_string(*criteria.modseq));
  if (criteria.not_deleted) key("UNDELETED");
  if (keys.empty()) keys = " ALL";
  w.raw(keys);
  return w.finish();
}

Result<Command> CommandBuilder::uid_fetch(const UidSet& uids, std::span<const FetchAttr> attrs,
                                          const FetchModifiers& modifiers) {
  Writer w(take_tag(), options_);
  if (uids.empty() || attrs.empty()) return make_error_code(Errc::invalid_argument);
  if (modifiers.vanished && !modifiers.changedsince) {
    return make_error_code(Errc::invalid_argument);
  }
  std::string items;
  for (const FetchAttr& a : attrs) {
    if (!items.empty()) items += ' ';
    switch (a.kind) {
      case FetchAttr::Kind::uid:
        items += "UID";
        break;
      case FetchAttr::Kind::flags:
        items += "FLAGS";
        break;
      case FetchAttr::Kind::internaldate:
        items += "INTERNALDATE";
        break;
      case FetchAttr::Kind::rfc822_size:
        items += "RFC822.SIZE";
        break;
      case FetchAttr::Kind::envelope:
        items += "ENVELOPE";
        break;
      case FetchAttr::Kind::bodystructure:
        items += "BODYSTRUCTURE";
        break;
      case FetchAttr::Kind::modseq:
        items += "MODSEQ";
        break;
      case FetchAttr::Kind::gm_msgid:
        items += "X-GM-MSGID";
        break;
      case FetchAttr::Kind::gm_thrid:
        items += "X-GM-THRID";
        break;
      case FetchAttr::Kind::gm_labels:
        items += "X-GM-LABELS";
        break;
      case FetchAttr::Kind::body_peek:
      case FetchAttr::Kind::binary_peek: {
        if (!valid_section(a.section)) return make_error_code(Errc::invalid_argument);
        // BINARY works on leaf parts only and never on header keywords.
        if (a.kind == FetchAttr::Kind::binary_peek && a.section.text != SectionText::none) {
          return make_error_code(Errc::invalid_argument);
        }
        items += a.kind == FetchAttr::Kind::body_peek ? "BODY.PEEK[" : "BINARY.PEEK[";
        items += a.section.to_string();
        items += ']';
        if (a.partial) {
          if (a.partial->second == 0) return make_error_code(Errc::invalid_argument);
          items += "<" + std::to_string(a.partial->first) + "." +
                   std::to_string(a.partial->second) + ">";
        }
        break;
      }
    }
  }
  w.raw(" UID FETCH " + uids.to_string() + " (" + items + ")");
  if (modifiers.changedsince) {
    w.raw(" (CHANGEDSINCE " + std::to_string(*modifiers.changedsince));
    if (modifiers.vanished) w.raw(" VANISHED");
    w.raw(")");
  }
  return w.finish();
}

std::string format_search_date(std::chrono::year_month_day day) {
  static constexpr std::array<const char*, 12> kMonths = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                          "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  unsigned m = unsigned(day.month());
  if (m < 1 || m > 12) m = 1;
  return std::to_string(unsigned(day.day())) + "-" + kMonths[m - 1] + "-" +
         std::to_string(int(day.year()));
}

std::string base64_encode(std::string_view bytes) {
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 3 <= bytes.size(); i += 3) {
    std::uint32_t v = (std::uint32_t(static_cast<unsigned char>(bytes[i])) << 16) |
                      (std::uint32_t(static_cast<unsigned char>(bytes[i + 1])) << 8) |
                      std::uint32_t(static_cast<unsigned char>(bytes[i + 2]));
    out += kBase64[(v >> 18) & 63];
    out += kBase64[(v >> 12) & 63];
    out += kBase64[(v >> 6) & 63];
    out += kBase64[v & 63];
  }
  std::size_t rest = bytes.size() - i;
  if (rest > 0) {
    std::uint32_t v = std::uint32_t(static_cast<unsigned char>(bytes[i])) << 16;
    if (rest == 2) v |= std::uint32_t(static_cast<unsigned char>(bytes[i + 1])) << 8;
    out += kBase64[(v >> 18) & 63];
    out += kBase64[(v >> 12) & 63];
    out += rest == 2 ? kBase64[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

Result<std::string> base64_decode(std::string_view text) {
  if (text.size() % 4 != 0) return make_error_code(Errc::invalid_argument);
  std::string out;
  out.reserve(text.size() / 4 * 3);
  for (std::size_t i = 0; i < text.size(); i += 4) {
    std::uint32_t v = 0;
    int pad = 0;
    for (std::size_t k = 0; k < 4; ++k) {
      char c = text[i + k];
      int d = -1;
      if (c == '=') {
        // Padding only at the end, in the last two positions.
        if (i + 4 != text.size() || k < 2) return make_error_code(Errc::invalid_argument);
        ++pad;
        d = 0;
      } else {
        if (pad) return make_error_code(Errc::invalid_argument);
        std::size_t at = kBase64.find(c);
        if (at == std::string_view::npos) return make_error_code(Errc::invalid_argument);
        d = static_cast<int>(at);
      }
      v = (v << 6) | static_cast<std::uint32_t>(d);
    }
    out += static_cast<char>((v >> 16) & 0xFF);
    if (pad < 2) out += static_cast<char>((v >> 8) & 0xFF);
    if (pad < 1) out += static_cast<char>(v & 0xFF);
  }
  return out;
}

}  // namespace crmcap::imap
